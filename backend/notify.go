package backend

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	uuid "github.com/hashicorp/go-uuid"
	"github.com/hashicorp/vault/sdk/framework"
)

// Access-flow events: a JSON body POSTed to notify_url for every step, so a chat channel
// or ticket system hears of it. Delivery is asynchronous from a bounded queue with bounded
// retries: it never blocks or fails the request that caused it. An event never holds a
// password, secret_id or token; only names, IDs, reasons and times.

// Event types.
const (
	eventRequestCreated   = "request.created"
	eventRequestApproval  = "request.approval" // one approval, more needed
	eventRequestApproved  = "request.approved" // the approval rule is met
	eventRequestDenied    = "request.denied"
	eventRequestCancelled = "request.cancelled"
	eventRequestExpired   = "request.expired"
	eventGrantIssued      = "grant.issued"
	eventGrantRevoked     = "grant.revoked"
	eventBreakGlass       = "grant.break_glass"
)

const (
	// notifyQueueSize bounds the events waiting for delivery; past it, new ones are dropped
	// (and counted in the log) rather than held in memory without limit.
	notifyQueueSize = 1000
	// notifyTimeout bounds one delivery attempt.
	notifyTimeout = 10 * time.Second
	// SignatureHeader carries "sha256=<hex HMAC-SHA256 of the body with notify_secret>".
	signatureHeader = "X-Apono-Signature-256"
)

// notifyRetryDelays are the waits before the 2nd, 3rd, ... attempts: 5 attempts in ~15 s.
var notifyRetryDelays = []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}

// event is what is POSTed. Fields are omitted when they do not apply.
type event struct {
	ID              string       `json:"id"`
	Type            string       `json:"type"`
	Time            string       `json:"time"`
	Mount           string       `json:"mount,omitempty"`
	RequestID       string       `json:"request_id,omitempty"`
	GrantID         string       `json:"grant_id,omitempty"`
	Role            string       `json:"role,omitempty"`
	Status          string       `json:"status,omitempty"`
	Requester       string       `json:"requester,omitempty"`
	RequesterEntity *identityRef `json:"requester_entity,omitempty"`
	Actor           *identityRef `json:"actor,omitempty"` // who approved, denied or cancelled
	Reason          string       `json:"reason,omitempty"`
	Justification   string       `json:"justification,omitempty"`
	Resources       []string     `json:"resources,omitempty"`
	Permission      string       `json:"permission,omitempty"`
	Approvers       []string     `json:"approvers,omitempty"`
	Approvals       string       `json:"approvals,omitempty"`
	ExpiresAt       string       `json:"expires_at,omitempty"`
	BreakGlass      bool         `json:"break_glass,omitempty"`
}

// setNotifyConfig applies and checks the notify_* and request_retention fields sent.
func setNotifyConfig(cfg *pluginConfig, d *framework.FieldData) string {
	if v, ok := d.GetOk("notify_url"); ok {
		u := strings.TrimSpace(v.(string))
		if u != "" {
			if msg := checkNotifyURL(u); msg != "" {
				return msg
			}
		}
		cfg.NotifyURL = u
	}
	if v, ok := d.GetOk("notify_secret"); ok {
		cfg.NotifySecret = v.(string)
		if len(cfg.NotifySecret) > 1024 {
			return "notify_secret must be at most 1024 bytes"
		}
	}
	if v, ok := d.GetOk("notify_ca_cert"); ok {
		cfg.NotifyCACert = strings.TrimSpace(v.(string))
		if cfg.NotifyCACert != "" && !x509.NewCertPool().AppendCertsFromPEM([]byte(cfg.NotifyCACert)) {
			return "notify_ca_cert must hold at least one PEM-encoded certificate"
		}
	}
	if v, ok := d.GetOk("request_retention"); ok {
		r := time.Duration(v.(int)) * time.Second
		if r <= 0 || r > 365*24*time.Hour {
			return fmt.Sprintf("request_retention must be more than 0 and at most 8760h, got %s", r)
		}
		cfg.RequestRetention = r
	}
	return ""
}

// checkNotifyURL allows https anywhere and http only to a loopback address, where no
// network sees the body.
func checkNotifyURL(raw string) string {
	const rule = "notify_url must be an https:// URL, or http:// to a loopback address (127.0.0.1, [::1], localhost)"
	if len(raw) > 2048 {
		return rule + "; it is longer than 2048 characters"
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || u.Fragment != "" {
		return rule + " with a host and no user:password@ or #fragment"
	}
	switch u.Scheme {
	case "https":
		return ""
	case "http":
		host := u.Hostname()
		if host == "localhost" {
			return ""
		}
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
			return ""
		}
		return rule + fmt.Sprintf("; %q is not a loopback address", host)
	}
	return rule
}

// redactURL keeps a URL's scheme and host: a webhook URL's path often is its secret.
func redactURL(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(set)"
	}
	out := u.Scheme + "://" + u.Host
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		out += "/..."
	}
	return out
}

// notifyTarget is where one event goes, as the config said when the event happened.
type notifyTarget struct {
	url, secret, caCert string
}

type delivery struct {
	target notifyTarget
	typ    string
	id     string
	body   []byte
}

// notifier owns the queue and the one goroutine that delivers from it, in order.
type notifier struct {
	lifetime context.Context
	logger   func() hclog.Logger
	queue    chan delivery
	start    sync.Once
	dropped  atomic.Uint64
	// retryDelays overrides notifyRetryDelays (unit tests).
	retryDelays []time.Duration

	mu      sync.Mutex
	clients map[string]*http.Client // by notify_ca_cert
}

func newNotifier(lifetime context.Context, logger func() hclog.Logger) *notifier {
	return &notifier{
		lifetime: lifetime,
		logger:   logger,
		queue:    make(chan delivery, notifyQueueSize),
		clients:  map[string]*http.Client{},
	}
}

func (n *notifier) log() hclog.Logger {
	if n.logger == nil {
		return hclog.NewNullLogger()
	}
	return n.logger()
}

// emit queues ev for cfg's notify_url; it never blocks and never fails.
func (b *aponoBackend) emit(cfg *pluginConfig, ev event) {
	if cfg == nil || cfg.NotifyURL == "" {
		return
	}
	if ev.ID == "" {
		ev.ID, _ = uuid.GenerateUUID()
	}
	ev.Time = time.Now().UTC().Format(time.RFC3339Nano)
	ev.Mount = b.ownMountPath()
	body, err := json.Marshal(ev)
	if err != nil {
		b.Logger().Error("encoding an event", "type", ev.Type, "error", err)
		return
	}
	b.events.enqueue(delivery{
		target: notifyTarget{url: cfg.NotifyURL, secret: cfg.NotifySecret, caCert: cfg.NotifyCACert},
		typ:    ev.Type, id: ev.ID, body: body,
	})
}

func (n *notifier) enqueue(d delivery) {
	n.start.Do(func() { go n.run() })
	select {
	case n.queue <- d:
	default:
		if c := n.dropped.Add(1); c == 1 || c%100 == 0 {
			n.log().Warn("event queue full; dropping events", "type", d.typ, "dropped_so_far", c)
		}
	}
}

func (n *notifier) run() {
	for {
		select {
		case <-n.lifetime.Done():
			return
		case d := <-n.queue:
			n.deliver(d)
		}
	}
}

// deliver tries d until it is accepted (2xx), refused for good (4xx other than 408/429),
// or out of attempts.
func (n *notifier) deliver(d delivery) {
	delays := n.retryDelays
	if delays == nil {
		delays = notifyRetryDelays
	}
	for attempt := 0; ; attempt++ {
		retry, err := n.post(d)
		if err == nil {
			n.log().Debug("event delivered", "type", d.typ, "id", d.id)
			return
		}
		if !retry || attempt >= len(delays) {
			n.log().Warn("event not delivered", "type", d.typ, "id", d.id, "attempts", attempt+1,
				"notify_url", redactURL(d.target.url), "error", err)
			return
		}
		select {
		case <-n.lifetime.Done():
			return
		case <-time.After(delays[attempt]):
		}
	}
}

// signBody is the value of the signature header.
func signBody(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

func (n *notifier) post(d delivery) (retry bool, err error) {
	client, err := n.httpClient(d.target.caCert)
	if err != nil {
		return false, err
	}
	ctx, cancel := context.WithTimeout(n.lifetime, notifyTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.target.url, bytes.NewReader(d.body))
	if err != nil {
		return false, errors.New("building the request failed")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "vault-plugin-apono/"+Version)
	req.Header.Set("X-Apono-Event", d.typ)
	req.Header.Set("X-Apono-Delivery", d.id)
	if d.target.secret != "" {
		req.Header.Set(signatureHeader, signBody(d.target.secret, d.body))
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

// httpClient is one client per CA bundle; redirects are not followed (an event goes only
// where the config says).
func (n *notifier) httpClient(caCert string) (*http.Client, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if c, ok := n.clients[caCert]; ok {
		return c, nil
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if caCert != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(caCert)) {
			return nil, errors.New("notify_ca_cert holds no certificate")
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	c := &http.Client{
		Transport:     tr,
		Timeout:       notifyTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	if len(n.clients) > 8 {
		n.clients = map[string]*http.Client{}
	}
	n.clients[caCert] = c
	return c, nil
}
