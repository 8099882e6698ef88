// Package notify owns access-flow events: their types, how one is built from a request or
// a grant record, the durable per-target queues in the plugin's storage, signed delivery
// with retries, the message formats (json, Slack, Teams), and the rules on where an event
// may be sent. It reads records and the config; it never decides an access rule.
package notify

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/apono-io/vault-plugin-apono/backend/config"
	"github.com/apono-io/vault-plugin-apono/backend/metrics"
	"github.com/apono-io/vault-plugin-apono/backend/notify/chat"
	"github.com/apono-io/vault-plugin-apono/internal/netaddr"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"
)

// UserAgent names the plugin and its version in every delivery; the backend sets it.
var UserAgent = "vault-plugin-apono"

// Event types: the one list is the chat formats' (chat.go), which render each.
const (
	EventRequestCreated   = chat.RequestCreated
	EventRequestApproval  = chat.RequestApproval // one approval, more needed
	EventRequestApproved  = chat.RequestApproved // the approval rule is met
	EventRequestDenied    = chat.RequestDenied
	EventRequestCancelled = chat.RequestCancelled
	EventRequestExpired   = chat.RequestExpired
	EventRequestReminded  = chat.RequestReminded  // nobody decided after remind_after
	EventRequestEscalated = chat.RequestEscalated // escalate_to added to the approvers
	EventGrantIssued      = chat.GrantIssued
	EventGrantRevoked     = chat.GrantRevoked
	EventBreakGlass       = chat.GrantBreakGlass
)

const (
	// EventStoragePrefix holds the events not delivered yet (storedEvent).
	EventStoragePrefix = "events/"
	// EventOtherPrefix marks, under the same key, each stored event that may be dropped
	// to make room (droppableEvent), so the oldest of them is found with one LIST.
	EventOtherPrefix = "events-other/"
	// MaxPendingEvents bounds the stored events. Past it the oldest droppable event goes
	// to make room; events of the audit trail (grants, approvals, denials, break-glass)
	// are never dropped for room, and once nothing but them is stored, new access requests
	// are refused until the receiver takes them.
	MaxPendingEvents = 10000
	// NotifyRetryLater is the wait between attempts after the first five; notifyMaxAge is
	// how long an event is tried before it is dropped with a warning.
	NotifyRetryLater = time.Minute
	NotifyMaxAge     = 24 * time.Hour
	// EventsLateAfter: health warns when the oldest stored event is older than this.
	EventsLateAfter = time.Minute
	// NotifyTimeout bounds one delivery attempt.
	NotifyTimeout = 10 * time.Second
	// SignatureHeader carries "sha256=<hex HMAC-SHA256 of the body with notify_secret>".
	SignatureHeader = "X-Apono-Signature-256"
)

// DroppableEvent reports whether an event of type typ may be dropped to make room in a
// full store: the steps of a request that grant nothing (asked, one approval of several,
// cancelled, expired). What grants access or decides on it is the audit trail and stays.
func DroppableEvent(typ string) bool {
	switch typ {
	case EventRequestCreated, EventRequestApproval, EventRequestCancelled, EventRequestExpired:
		return true
	}
	return false
}

// NotifyRetryDelays are the waits before the 2nd to 5th attempts: 5 attempts in ~15 s.
var NotifyRetryDelays = []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}

// Event is what is POSTed. Fields are omitted when they do not apply.
type Event struct {
	ID        string `json:"id"`
	Type      string `json:"type"`
	Time      string `json:"time"`
	Mount     string `json:"mount,omitempty"`
	RequestID string `json:"request_id,omitempty"`
	GrantID   string `json:"grant_id,omitempty"`
	Role      string `json:"role,omitempty"`
	// Bundle names the bundle a request or grant is for (Role is then "bundle:<name>").
	Bundle          string              `json:"bundle,omitempty"`
	Status          string              `json:"status,omitempty"`
	Requester       string              `json:"requester,omitempty"`
	RequesterEntity *access.IdentityRef `json:"requester_entity,omitempty"`
	// RequesterKind is "entity" or, for a grant a service wrote, "stated" (StatedBy says
	// by which token).
	RequesterKind string              `json:"requester_kind,omitempty"`
	StatedBy      string              `json:"requester_stated_by,omitempty"`
	Actor         *access.IdentityRef `json:"actor,omitempty"` // who approved, denied or cancelled
	Reason        string              `json:"reason,omitempty"`
	Justification string              `json:"justification,omitempty"`
	Resources     []string            `json:"resources,omitempty"`
	Permission    string              `json:"permission,omitempty"`
	Approvers     []string            `json:"approvers,omitempty"`
	Approvals     string              `json:"approvals,omitempty"`
	ExpiresAt     string              `json:"expires_at,omitempty"`
	BreakGlass    bool                `json:"break_glass,omitempty"`
	// For people and chat messages: the requester's name as people know it, how long
	// the access lasts (seconds), an approved request's pickup deadline, and a link that
	// opens the request (or the requester's access) in the portal.
	RequesterName string `json:"requester_name,omitempty"`
	TTL           int64  `json:"ttl,omitempty"`
	PickupBy      string `json:"pickup_by,omitempty"`
	PortalLink    string `json:"portal_link,omitempty"`

	// RequestedBy is who asked on behalf of the requester, the grantee (omitted when the
	// requester asked themself).
	RequestedBy *access.IdentityRef `json:"requested_by,omitempty"`
	// EscalatedTo names who escalation added to the approvers (request.escalated).
	EscalatedTo []string `json:"escalated_to,omitempty"`
}

// checkNotifyURL allows https and http only to a loopback address, where no network sees
// the body, and only to a destination p allows (dest.go). The message starts with
// field (notify_url, or a target's url).
func CheckURL(raw, field string, p *Policy) string {
	rule := field + " must be an https:// URL, or http:// to a loopback address (127.0.0.1, [::1], localhost)"
	if len(raw) > 2048 {
		return rule + "; it is longer than 2048 characters"
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Hostname() == "" || u.User != nil || u.Fragment != "" {
		return rule + " with a host and no user:password@ or #fragment"
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !netaddr.IsLoopbackHost(u.Hostname()) {
			return rule + fmt.Sprintf("; %q is not a loopback address", u.Hostname())
		}
	default:
		return rule
	}
	return p.checkURL(field, u)
}

// RedactURL keeps a URL's scheme and host: a webhook URL's path often is its secret.
func RedactURL(raw string) string {
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

// NotifyTarget is where an event goes, as it is when the event is delivered: the
// config's notify_* fields (format json), or a named target (dispatch.go).
type NotifyTarget struct {
	Url, Secret, CaCert string
	Format              string // notifyFormatJSON, notifyFormatSlack, notifyFormatTeams
	// Policy says where events may go (dest.go), from the config at delivery time.
	Policy *Policy
}

// StoredEvent is an event kept in storage (eventStoragePrefix) until the receiver takes
// it, so that a plugin reload, a crash or a leadership change loses none: the next
// instance on the active node delivers what is stored. Body is the exact bytes signed.
type StoredEvent struct {
	ID       string    `json:"id"`
	Type     string    `json:"type"`
	Body     []byte    `json:"body"`
	Created  time.Time `json:"created"`
	Attempts int       `json:"attempts"`
	NextAt   time.Time `json:"next_at,omitempty"`
}

// eventKey sorts stored events by creation time: delivery goes in that order.
func (n *Notifier) eventKey(pe *StoredEvent) string {
	return fmt.Sprintf("%s%020d-%s", n.prefix, pe.Created.UnixNano(), pe.ID)
}

// eventCreated reads the creation time back from a key under the queue's prefix.
func (n *Notifier) eventCreated(key string) (time.Time, bool) {
	nanos, _, ok := strings.Cut(strings.TrimPrefix(key, n.prefix), "-")
	ns, err := strconv.ParseInt(nanos, 10, 64)
	if !ok || err != nil {
		return time.Time{}, false
	}
	return time.Unix(0, ns), true
}

// Notifier is one target's queue: it stores events and runs the one goroutine that
// delivers them, in order.
type Notifier struct {
	lifetime context.Context
	logger   func() hclog.Logger
	Storage  logical.Storage
	// Name is the target's ("" for the config's notify_url); prefix holds its events and
	// otherPrefix the marks of the droppable ones.
	Name, prefix, otherPrefix string
	// target is where to deliver, read at delivery time; nil when it is gone.
	target func(ctx context.Context) (*NotifyTarget, error)
	kick   chan struct{}
	Start  sync.Once
	// pending is how many events this instance knows to be stored, other how many of
	// them are droppable (both refreshed from storage at each pass); dropped counts events
	// dropped because too many were stored.
	pending atomic.Int64
	other   atomic.Int64
	Dropped atomic.Uint64
	// storeMu makes the check for room and the store one step.
	storeMu sync.Mutex
	// Tests override these: the waits before the 2nd to 5th attempts, the wait between
	// later ones, and the cap on stored events.
	RetryDelays []time.Duration
	RetryLater  time.Duration
	MaxPending  int64
	// Metrics counts deliveries (nil: not counted).
	Metrics *metrics.Metrics

	mu      sync.Mutex
	clients map[string]*http.Client // by notify_ca_cert
}

// NewNotifier is the queue of the config's notify_url, in events/.
func NewNotifier(lifetime context.Context, logger func() hclog.Logger, storage logical.Storage,
	config func(ctx context.Context) (*config.Config, error),
) *Notifier {
	return NewQueue(lifetime, logger, storage, "", EventStoragePrefix, EventOtherPrefix, func(ctx context.Context) (*NotifyTarget, error) {
		cfg, err := config(ctx)
		if err != nil || cfg == nil || cfg.NotifyURL == "" {
			return nil, err
		}
		return &NotifyTarget{Url: cfg.NotifyURL, Secret: cfg.NotifySecret, CaCert: cfg.NotifyCACert, Format: NotifyFormatJSON,
			Policy: PolicyOf(cfg)}, nil
	})
}

func NewQueue(lifetime context.Context, logger func() hclog.Logger, storage logical.Storage, name, prefix, otherPrefix string,
	target func(ctx context.Context) (*NotifyTarget, error),
) *Notifier {
	return &Notifier{
		lifetime:    lifetime,
		logger:      logger,
		Storage:     storage,
		Name:        name,
		prefix:      prefix,
		otherPrefix: otherPrefix,
		target:      target,
		kick:        make(chan struct{}, 1),
		RetryDelays: NotifyRetryDelays,
		RetryLater:  NotifyRetryLater,
		MaxPending:  MaxPendingEvents,
		clients:     map[string]*http.Client{},
	}
}

// Label names the queue's target in log lines and messages.
func (n *Notifier) Label() string {
	if n.Name == "" {
		return "notify_url"
	}
	return "notify/" + n.Name
}

func (n *Notifier) log() hclog.Logger {
	if n.logger == nil {
		return hclog.NewNullLogger()
	}
	return n.logger()
}

func (n *Notifier) Store(ctx context.Context, pe *StoredEvent) {
	n.Begin()
	n.storeMu.Lock()
	defer n.storeMu.Unlock()
	if n.pending.Load() >= n.MaxPending {
		// Full: make room by dropping the oldest droppable event; with none stored, a
		// droppable newcomer is the one that goes, and an audit event is kept past the cap.
		switch {
		case n.other.Load() > 0:
			if err := n.dropOldestOther(ctx); err != nil {
				n.log().Error("making room in the event store failed; the new event is lost", "type", pe.Type, "id", pe.ID, "error", err)
				return
			}
		case DroppableEvent(pe.Type):
			n.countDrop(pe.Type, "the store is full of audit events")
			return
		}
	}
	entry, err := logical.StorageEntryJSON(n.eventKey(pe), pe)
	if err == nil && DroppableEvent(pe.Type) {
		// The mark goes first: a crash between the two leaves a mark without an event,
		// which dropOldestOther skips, never a droppable event that looks like an audit one.
		err = n.Storage.Put(ctx, &logical.StorageEntry{Key: n.otherKey(n.eventKey(pe)), Value: []byte{1}})
	}
	if err == nil {
		err = n.Storage.Put(ctx, entry)
	}
	if err != nil {
		n.log().Error("storing an event for delivery failed; the event is lost", "type", pe.Type, "id", pe.ID, "error", err)
		return
	}
	n.pending.Add(1)
	if DroppableEvent(pe.Type) {
		n.other.Add(1)
	}
	n.Wake()
}

// otherKey is the droppable mark of the event stored at key.
func (n *Notifier) otherKey(key string) string {
	return n.otherPrefix + strings.TrimPrefix(key, n.prefix)
}

// dropOldestOther removes the oldest droppable event. The caller holds storeMu.
func (n *Notifier) dropOldestOther(ctx context.Context) error {
	keys, err := n.Storage.List(ctx, n.otherPrefix)
	if err != nil {
		return err
	}
	sort.Strings(keys)
	for _, k := range keys {
		entry, err := n.Storage.Get(ctx, n.prefix+k)
		if err != nil {
			return err
		}
		if err := n.Storage.Delete(ctx, n.otherPrefix+k); err != nil {
			return err
		}
		if entry == nil {
			continue // delivered meanwhile, or a mark left by a crash
		}
		var pe StoredEvent
		_ = entry.DecodeJSON(&pe)
		if err := n.Storage.Delete(ctx, n.prefix+k); err != nil {
			return err
		}
		n.pending.Add(-1)
		n.other.Add(-1)
		n.countDrop(pe.Type, "the store is full; the oldest droppable event made room")
		return nil
	}
	n.other.Store(0)
	return nil
}

func (n *Notifier) countDrop(typ, why string) {
	if c := n.Dropped.Add(1); c == 1 || c%100 == 0 {
		n.log().Warn("too many events waiting for notify_url; dropping one: "+why, "type", typ, "waiting", n.pending.Load(), "dropped_so_far", c)
	}
}

// RefuseNewFlows is the reason new access requests are refused, or "": the store is full
// and holds nothing but audit events, so a new flow's events could not be kept.
func (n *Notifier) RefuseNewFlows() string {
	if pending := n.pending.Load(); pending >= n.MaxPending && n.other.Load() == 0 {
		return fmt.Sprintf("new access requests are refused for now: %d events wait for "+n.Label()+", every one of them part of the audit trail "+
			"(grants, approvals, denials, break-glass), which is never dropped to make room; once the receiver takes them, requests are accepted again (apono/health)", pending)
	}
	return ""
}

// PendingSummary is what health reports: how many events are stored and the oldest's age.
func (n *Notifier) PendingSummary(ctx context.Context) (count int, oldest time.Duration, err error) {
	keys, err := n.Storage.List(ctx, n.prefix)
	if err != nil || len(keys) == 0 {
		return 0, 0, err
	}
	sort.Strings(keys)
	if created, ok := n.eventCreated(n.prefix + keys[0]); ok {
		oldest = time.Since(created)
	}
	return len(keys), oldest, nil
}
