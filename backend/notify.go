package backend

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/config"
	"github.com/apono-io/vault-plugin-apono/backend/notify"
	"github.com/apono-io/vault-plugin-apono/internal/textsafe"
	uuid "github.com/hashicorp/go-uuid"
	"github.com/hashicorp/vault/sdk/framework"
)

// Access-flow events: a JSON body POSTed to notify_url for every step, so a chat channel
// or ticket system hears of it. An event is stored (one storage write, only when
// notify_url is set) before the request that caused it answers, then delivered in order
// by one goroutine, at least once: retried 5 times in ~15 s, then every minute for up to
// 24 hours, across plugin reloads, restarts and leader changes. It never fails the request
// that caused it. An event never holds a password, secret_id or token; only names, IDs,
// reasons and times.

// setNotifyConfig applies and checks the notify_* and request_retention fields sent.
func setNotifyConfig(cfg *config.Config, d *framework.FieldData) string {
	_, urlSent := d.GetOk("notify_url")
	_, allowSent := d.GetOk("notify_allowed_hosts")
	_, vaultSent := d.GetOk("vault_addr")
	if v, ok := d.GetOk("notify_url"); ok {
		cfg.NotifyURL = strings.TrimSpace(v.(string))
	}
	if v, ok := d.GetOk("notify_allowed_hosts"); ok {
		norm, _, msg := notify.ParseAllowedHosts(v.([]string))
		if msg != "" {
			return msg
		}
		cfg.NotifyAllowedHosts = strings.Join(norm, ",")
	}
	// notify_url is checked against the rules this write leaves in force (notify_dest.go);
	// a write that changes none of the three leaves it be.
	if cfg.NotifyURL != "" && (urlSent || allowSent || vaultSent) {
		if msg := notify.CheckURL(cfg.NotifyURL, "notify_url", notify.PolicyOf(cfg)); msg != "" {
			return msg
		}
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
	if v, ok := d.GetOk("history_retention"); ok {
		r := time.Duration(v.(int)) * time.Second
		if r <= 0 || r > 10*365*24*time.Hour {
			return fmt.Sprintf("history_retention must be more than 0 and at most 87600h, got %s", r)
		}
		cfg.HistoryRetention = r
	}
	if v, ok := d.GetOk("portal_url"); ok {
		u := strings.TrimSpace(v.(string))
		if u != "" {
			p, err := url.Parse(u)
			if err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" || p.User != nil || len(u) > 2048 {
				return fmt.Sprintf("portal_url %q must be an http:// or https:// URL with a host and no user:password@ (at most 2048 characters)", textsafe.Truncate(u))
			}
			p.Fragment = ""
			u = p.String()
		}
		cfg.PortalURL = u
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

// emit stores ev for cfg's notify_url and for each named target that wants it, and wakes
// their delivery goroutines. It never fails the caller: an event that cannot be stored is
// logged as lost.
func (b *aponoBackend) emit(ctx context.Context, cfg *config.Config, ev notify.Event) {
	if cfg == nil {
		return
	}
	targets, err := b.loadTargets(ctx, b.events.Storage)
	if err != nil {
		b.Logger().Error("reading the notification targets; the event goes to notify_url only", "type", ev.Type, "error", err)
	}
	if cfg.NotifyURL == "" && len(targets) == 0 {
		return
	}
	if ev.ID == "" {
		ev.ID, _ = uuid.GenerateUUID()
	}
	now := time.Now().UTC()
	ev.Time = now.Format(time.RFC3339Nano)
	ev.Mount = b.ownMountPath()
	ev.PortalLink = b.portalLink(cfg, &ev)
	body, err := json.Marshal(ev)
	if err != nil {
		b.Logger().Error("encoding an event", "type", ev.Type, "error", err)
		return
	}
	pe := &notify.StoredEvent{ID: ev.ID, Type: ev.Type, Body: body, Created: now}
	if cfg.NotifyURL != "" {
		cp := *pe
		b.events.Store(ctx, &cp)
	}
	b.emitTo(ctx, targets, pe)
}
