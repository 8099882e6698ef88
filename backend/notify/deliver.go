package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// Begin starts the delivery goroutine once, with a pass over what is stored already.
func (n *Notifier) Begin() {
	n.Start.Do(func() {
		n.Wake()
		go n.run()
	})
}

func (n *Notifier) Wake() {
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

func (n *Notifier) run() {
	var wait time.Duration
	for {
		var retry <-chan time.Time
		var timer *time.Timer
		if wait > 0 {
			timer = time.NewTimer(wait)
			retry = timer.C
		}
		select {
		case <-n.lifetime.Done():
			return
		case <-n.kick:
		case <-retry:
		}
		if timer != nil {
			timer.Stop()
		}
		wait = n.drain()
	}
}

// drain delivers the stored events in order until none is left (0) or the oldest must
// wait for its next attempt (how long).
func (n *Notifier) drain() time.Duration {
	ctx := n.lifetime
	// The counts are refreshed under storeMu: a Store between the list and the refresh
	// would otherwise be counted out again, and a full store would take one event too many.
	n.storeMu.Lock()
	keys, err := n.Storage.List(ctx, n.prefix)
	if err == nil {
		n.pending.Store(int64(len(keys)))
		if others, err := n.Storage.List(ctx, n.otherPrefix); err == nil {
			n.other.Store(int64(len(others)))
		}
	}
	n.storeMu.Unlock()
	if err != nil {
		if ctx.Err() == nil {
			n.log().Warn("listing stored events failed; trying again later", "error", err)
		}
		return n.RetryLater
	}
	if len(keys) > 0 && n.readOnly(ctx) {
		return n.RetryLater
	}
	sort.Strings(keys)
	for _, k := range keys {
		if ctx.Err() != nil {
			return 0
		}
		wait, err := n.deliverStored(ctx, n.prefix+k)
		if err != nil {
			if ctx.Err() == nil {
				n.log().Warn("event delivery: storage failed; trying again later", "error", err)
			}
			return n.RetryLater
		}
		if wait > 0 {
			return wait
		}
	}
	return 0
}

// ProbeKey is written before a delivery pass: only a node whose storage takes writes (the
// active node) delivers. An OpenBao standby initializes its mounts as well, on a copy of
// storage that may lag the active node's: delivering from it would send again what the
// active node delivered and removed, and it could not remove what it sent.
const ProbeKey = "notify-probe"

// readOnly reports whether this node's storage refuses writes (a standby): it then
// delivers nothing, and looks again after RetryLater.
func (n *Notifier) readOnly(ctx context.Context) bool {
	err := n.Storage.Put(ctx, &logical.StorageEntry{Key: ProbeKey, Value: []byte(time.Now().UTC().Format(time.RFC3339))})
	if err == nil {
		return false
	}
	if IsReadOnly(err) {
		n.log().Debug("this node's storage is read-only (a standby): the active node delivers the events")
		return true
	}
	return false // another failure: the delivery's own storage calls report it
}

// IsReadOnly reports whether err is storage refusing a write on a standby (across the
// plugin's gRPC boundary only its message survives).
func IsReadOnly(err error) bool {
	return err != nil && (errors.Is(err, logical.ErrReadOnly) || strings.Contains(err.Error(), logical.ErrReadOnly.Error()))
}

// deliverStored makes one attempt at the stored event key, unless it is not due yet
// (wait). It removes the event once the receiver took it, refused it for good (4xx other
// than 408/429), or has not taken it for notifyMaxAge; or when notify_url is unset.
func (n *Notifier) deliverStored(ctx context.Context, key string) (wait time.Duration, err error) {
	entry, err := n.Storage.Get(ctx, key)
	if err != nil || entry == nil {
		return 0, err
	}
	var pe StoredEvent
	if err := entry.DecodeJSON(&pe); err != nil {
		n.log().Error("dropping a stored event that cannot be decoded", "key", key, "error", err)
		return 0, n.remove(ctx, key, "")
	}
	now := time.Now()
	if now.Before(pe.NextAt) {
		return pe.NextAt.Sub(now), nil
	}
	target, err := n.target(ctx)
	if err != nil {
		return 0, err
	}
	if target == nil {
		n.log().Info("the notification target is no longer set; dropping an event not delivered", "target", n.Label(), "type", pe.Type, "id", pe.ID)
		return 0, n.remove(ctx, key, pe.Type)
	}
	retry, perr := n.post(*target, &pe)
	n.Metrics.Delivery(n.Name, perr == nil)
	if perr == nil {
		n.log().Debug("event delivered", "type", pe.Type, "id", pe.ID)
		return 0, n.remove(ctx, key, pe.Type)
	}
	if ctx.Err() != nil {
		return 0, nil // stopping: the next instance tries again
	}
	pe.Attempts++
	if !retry || now.Sub(pe.Created) >= NotifyMaxAge {
		why := "refused"
		if retry {
			why = "not taken for " + NotifyMaxAge.String()
		}
		n.log().Warn("event not delivered, dropped: "+why, "type", pe.Type, "id", pe.ID, "attempts", pe.Attempts,
			"notify_url", RedactURL(target.Url), "error", perr)
		return 0, n.remove(ctx, key, pe.Type)
	}
	delay := n.RetryLater
	if pe.Attempts <= len(n.RetryDelays) {
		delay = n.RetryDelays[pe.Attempts-1]
	}
	if pe.Attempts == len(n.RetryDelays)+1 {
		n.log().Warn("event not delivered yet; it stays stored and is tried again every "+n.RetryLater.String()+
			" for up to "+NotifyMaxAge.String(), "type", pe.Type, "id", pe.ID, "attempts", pe.Attempts,
			"notify_url", RedactURL(target.Url), "error", perr)
	}
	pe.NextAt = now.Add(delay)
	if entry, err = logical.StorageEntryJSON(key, &pe); err != nil {
		return 0, err
	}
	return delay, n.Storage.Put(ctx, entry)
}

func (n *Notifier) remove(ctx context.Context, key, typ string) error {
	if err := n.Storage.Delete(ctx, key); err != nil {
		return err
	}
	n.pending.Add(-1)
	if DroppableEvent(typ) {
		n.other.Add(-1)
		// A mark left behind costs only a skipped entry in dropOldestOther.
		_ = n.Storage.Delete(ctx, n.otherKey(key))
	}
	return nil
}

// SignBody is the value of the signature header.
func SignBody(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

func (n *Notifier) post(target NotifyTarget, pe *StoredEvent) (retry bool, err error) {
	if target.Policy == nil {
		target.Policy = &Policy{}
	}
	// The rules may have changed since the URL was written (notify_allowed_hosts,
	// vault_addr): a refused event stays stored and is tried again, so that fixing the
	// config delivers it.
	if msg := CheckURL(target.Url, n.Label(), target.Policy); msg != "" {
		return true, errors.New(msg)
	}
	client, err := n.HttpClient(target.CaCert, target.Policy)
	if err != nil {
		return false, err
	}
	body, err := FormatBody(target.Format, pe.Body)
	if err != nil {
		return false, fmt.Errorf("formatting the event as %s: %w", target.Format, err)
	}
	ctx, cancel := context.WithTimeout(n.lifetime, NotifyTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target.Url, bytes.NewReader(body))
	if err != nil {
		return false, errors.New("building the request failed")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", UserAgent)
	req.Header.Set("X-Apono-Event", pe.Type)
	req.Header.Set("X-Apono-Delivery", pe.ID)
	if target.Secret != "" {
		req.Header.Set(SignatureHeader, SignBody(target.Secret, body))
	}
	resp, err := client.Do(req)
	if err != nil {
		// A url.Error repeats the URL, which may hold a secret: keep only the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return true, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return false, nil
	case resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return true, fmt.Errorf("receiver answered %d", resp.StatusCode)
	default:
		return false, fmt.Errorf("receiver refused the event with %d", resp.StatusCode)
	}
}

// HttpClient is one client per CA bundle and destination policy; redirects are not
// followed (an event goes only where the config says), and every address dialed is
// checked against the policy once resolved (dest.go).
func (n *Notifier) HttpClient(caCert string, policy *Policy) (*http.Client, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	key := caCert + "\x00" + policy.key
	if c, ok := n.clients[key]; ok {
		return c, nil
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = policy.dialContext
	if caCert != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(caCert)) {
			return nil, errors.New("notify_ca_cert holds no certificate")
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	c := &http.Client{
		Transport:     tr,
		Timeout:       NotifyTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	if len(n.clients) > 8 {
		n.clients = map[string]*http.Client{}
	}
	n.clients[key] = c
	return c, nil
}
