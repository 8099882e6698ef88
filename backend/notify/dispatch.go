package notify

import (
	"context"
	"encoding/json"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/config"
	"github.com/apono-io/vault-plugin-apono/backend/metrics"
	hclog "github.com/hashicorp/go-hclog"
	uuid "github.com/hashicorp/go-uuid"
	"github.com/hashicorp/vault/sdk/logical"
)

// Access-flow events: a JSON body POSTed to notify_url for every step, so a chat channel
// or ticket system hears of it. An event is stored (one storage write, only when
// notify_url is set) before the request that caused it answers, then delivered in order
// by one goroutine, at least once: retried 5 times in ~15 s, then every minute for up to
// 24 hours, across plugin reloads, restarts and leader changes. It never fails the request
// that caused it. An event never holds a password, secret_id or token; only names, IDs,
// reasons and times.
//
// Dispatcher sends access-flow events to every destination: the config's notify_url
// (Events, one json target) and the named targets (notify/<name>), each through a durable
// queue of its own. One per backend, built in backend/factory.go.
type Dispatcher struct {
	// Events is the queue of the config's notify_url.
	Events *Notifier
	// Storage is the plugin's storage, where the events and targets are kept.
	Storage  logical.Storage
	Lifetime context.Context
	Logger   func() hclog.Logger
	// Config reads the plugin's config.
	Config func(ctx context.Context, s logical.Storage) (*config.Config, error)
	// OwnMount is this plugin's mount path ("apono/"), for events and portal links.
	OwnMount func() string
	// Metrics counts events and deliveries (nil: nothing counted).
	Metrics *metrics.Metrics

	mu      sync.Mutex
	targets []*Target // nil: read storage
	queues  map[string]*Notifier
}

// LoadTargets returns the named targets, from memory once read.
func (q *Dispatcher) LoadTargets(ctx context.Context, s logical.Storage) ([]*Target, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.targets != nil {
		return q.targets, nil
	}
	names, err := s.List(ctx, NotifyTargetPrefix)
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	out := []*Target{}
	for _, name := range names {
		t, err := GetTarget(ctx, s, name)
		if err != nil {
			return nil, err
		}
		if t != nil {
			out = append(out, t)
		}
	}
	q.targets = out
	return out, nil
}

// DropTargetCache makes the next LoadTargets read storage (a target written, here or on
// another node).
func (q *Dispatcher) DropTargetCache() {
	q.mu.Lock()
	q.targets = nil
	q.mu.Unlock()
}

// Queue is the delivery queue of target name, started on first use.
func (q *Dispatcher) Queue(name string) *Notifier {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.queues == nil {
		q.queues = map[string]*Notifier{}
	}
	n := q.queues[name]
	if n == nil {
		s := q.Storage
		n = NewQueue(q.Lifetime, q.Logger, s, name,
			NotifyQueuePrefix+name+"/", NotifyOtherPrefix+name+"/",
			func(ctx context.Context) (*NotifyTarget, error) {
				t, err := GetTarget(ctx, s, name)
				if err != nil || t == nil {
					return nil, err
				}
				cfg, err := q.Config(ctx, s)
				if err != nil {
					return nil, err
				}
				return &NotifyTarget{Url: t.URL, Secret: t.Secret, CaCert: t.CACert, Format: t.Format, Policy: PolicyOf(cfg)}, nil
			})
		n.Metrics = q.Metrics
		n.MaxPending = q.Events.MaxPending
		n.RetryDelays, n.RetryLater = q.Events.RetryDelays, q.Events.RetryLater
		q.queues[name] = n
	}
	return n
}

// AllQueues is the config's queue and every named target's.
func (q *Dispatcher) AllQueues(ctx context.Context, s logical.Storage) []*Notifier {
	out := []*Notifier{q.Events}
	targets, err := q.LoadTargets(ctx, s)
	if err != nil {
		return out
	}
	for _, t := range targets {
		out = append(out, q.Queue(t.Name))
	}
	return out
}

// RefuseNewFlows is why new requests are refused (a queue holds nothing but audit events
// and is full), or "".
func (q *Dispatcher) RefuseNewFlows(ctx context.Context, s logical.Storage) string {
	for _, n := range q.AllQueues(ctx, s) {
		if msg := n.RefuseNewFlows(); msg != "" {
			return msg
		}
	}
	return ""
}

// BeginQueues starts delivering what every queue has stored (a restart, a new leader).
func (q *Dispatcher) BeginQueues(ctx context.Context, s logical.Storage) {
	for _, n := range q.AllQueues(ctx, s) {
		n.Begin()
	}
}

// portalLink opens ev in the access portal: portal_url (default: vault_addr's
// [<namespace>/]<mount>ui) with the request, or the requester's access for a grant of none.
func (q *Dispatcher) portalLink(cfg *config.Config, ev *Event) string {
	base := cfg.PortalURL
	if base == "" {
		mount := q.OwnMount()
		if mount == "" || cfg.VaultAddr == "" {
			return ""
		}
		ns := ""
		if cfg.Namespace != "" {
			ns = cfg.Namespace + "/" // a mount path is relative to its namespace
		}
		base = strings.TrimSuffix(cfg.VaultAddr, "/") + "/v1/" + ns + mount + "ui"
	}
	if ev.RequestID != "" {
		return base + "#/requests/" + ev.RequestID
	}
	return base + "#/access"
}

// emitTo stores ev (already complete) for every named target that wants its type.
func (q *Dispatcher) emitTo(ctx context.Context, targets []*Target, pe *StoredEvent) {
	for _, t := range targets {
		if t.Wants(pe.Type) {
			cp := *pe
			q.Queue(t.Name).Store(ctx, &cp)
		}
	}
}

// Emit stores ev for cfg's notify_url and for each named target that wants it, and wakes
// their delivery goroutines. It never fails the caller: an event that cannot be stored is
// logged as lost.
func (q *Dispatcher) Emit(ctx context.Context, cfg *config.Config, ev Event) {
	if cfg == nil {
		return
	}
	q.Metrics.Event(ev.Type)
	targets, err := q.LoadTargets(ctx, q.Storage)
	if err != nil {
		q.Logger().Error("reading the notification targets; the event goes to notify_url only", "type", ev.Type, "error", err)
	}
	if cfg.NotifyURL == "" && len(targets) == 0 {
		return
	}
	if ev.ID == "" {
		ev.ID, _ = uuid.GenerateUUID()
	}
	now := time.Now().UTC()
	ev.Time = now.Format(time.RFC3339Nano)
	ev.Mount = q.OwnMount()
	ev.PortalLink = q.portalLink(cfg, &ev)
	body, err := json.Marshal(ev)
	if err != nil {
		q.Logger().Error("encoding an event", "type", ev.Type, "error", err)
		return
	}
	pe := &StoredEvent{ID: ev.ID, Type: ev.Type, Body: body, Created: now}
	if cfg.NotifyURL != "" {
		cp := *pe
		q.Events.Store(ctx, &cp)
	}
	q.emitTo(ctx, targets, pe)
}
