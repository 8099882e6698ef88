package backend

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/config"
	"github.com/apono-io/vault-plugin-apono/backend/notify"
	"github.com/hashicorp/vault/sdk/logical"
)

// hookReceiver answers each POST with the next status of its script (200 once the script
// is used up, or always fail if set) and records what it got.
type hookReceiver struct {
	srv *httptest.Server

	mu       sync.Mutex
	script   []int
	fail     int // when not 0, every answer past the script
	attempts []hookAttempt
}

type hookAttempt struct {
	id, typ, body, signature string
	status                   int
}

func newHookReceiver(t *testing.T, script ...int) *hookReceiver {
	h := &hookReceiver{script: script}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		status := http.StatusOK
		if len(h.script) > 0 {
			status, h.script = h.script[0], h.script[1:]
		} else if h.fail != 0 {
			status = h.fail
		}
		h.attempts = append(h.attempts, hookAttempt{id: r.Header.Get("X-Apono-Delivery"), typ: r.Header.Get("X-Apono-Event"),
			body: string(body), signature: r.Header.Get(notify.SignatureHeader), status: status})
		h.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookReceiver) setFail(status int) {
	h.mu.Lock()
	h.fail = status
	h.mu.Unlock()
}

func (h *hookReceiver) got() []hookAttempt {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hookAttempt(nil), h.attempts...)
}

// waitFor polls h until cond holds, or fails the test after 5 s.
func (h *hookReceiver) waitFor(t *testing.T, what string, cond func([]hookAttempt) bool) []hookAttempt {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := h.got()
		if cond(got) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the receiver got %+v", what, got)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// testNotifier is a notifier on s whose config points at url, with millisecond retries.
func testNotifier(t *testing.T, s logical.Storage, url string) (*notify.Notifier, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	n := notify.NewNotifier(ctx, nil, s, func(context.Context) (*config.Config, error) {
		if url == "" {
			return &config.Config{}, nil
		}
		return &config.Config{NotifyURL: url, NotifySecret: "hook-key"}, nil
	})
	n.RetryDelays = []time.Duration{time.Millisecond, time.Millisecond}
	n.RetryLater = 2 * time.Millisecond
	return n, cancel
}

func storedEvents(t *testing.T, s logical.Storage) []string {
	t.Helper()
	keys, err := s.List(context.Background(), notify.EventStoragePrefix)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func newEvent(id string, created time.Time) *notify.StoredEvent {
	return &notify.StoredEvent{ID: id, Type: "t", Body: []byte(`{"id":"` + id + `"}`), Created: created}
}

// Events go in the order they happened; a busy receiver gets the same event again (same
// delivery ID, same signed bytes) until it takes it, and the next waits its turn; a
// refusal drops only that event; nothing stays stored once taken.
func TestNotifierDeliversInOrderAtLeastOnce(t *testing.T) {
	h := newHookReceiver(t, 503, 429, 200, 400, 200)
	s := &logical.InmemStorage{}
	n, _ := testNotifier(t, s, h.srv.URL)
	now := time.Now()
	for i, id := range []string{"e1", "e2", "e3"} {
		n.Store(context.Background(), newEvent(id, now.Add(time.Duration(i)*time.Microsecond)))
	}
	got := h.waitFor(t, "three events", func(a []hookAttempt) bool { return len(a) >= 5 })
	var seq []string
	for _, a := range got {
		seq = append(seq, a.id)
		if a.signature != notify.SignBody("hook-key", []byte(a.body)) || a.body != `{"id":"`+a.id+`"}` {
			t.Fatalf("attempt %+v: body or signature changed", a)
		}
	}
	if strings.Join(seq, ",") != "e1,e1,e1,e2,e3" {
		t.Fatalf("attempts in order %v, want e1 three times (503, 429, 200), e2 refused once (400), e3", seq)
	}
	waitStored(t, s, 0)
}

// An event outlives the instance that stored it: one stopped while the receiver was down
// leaves it stored with its attempts, and the next instance on the same storage delivers it.
func TestNotifierEventsSurviveARestart(t *testing.T) {
	h := newHookReceiver(t)
	h.setFail(http.StatusServiceUnavailable)
	s := &logical.InmemStorage{}
	first, stop := testNotifier(t, s, h.srv.URL)
	first.RetryLater = time.Hour // after the two quick retries, it waits
	first.Store(context.Background(), newEvent("e1", time.Now()))
	h.waitFor(t, "three failed attempts", func(a []hookAttempt) bool { return len(a) >= 3 })
	var pe notify.StoredEvent
	var keys []string
	for deadline := time.Now().Add(5 * time.Second); pe.Attempts < 3; time.Sleep(5 * time.Millisecond) {
		if keys = storedEvents(t, s); len(keys) != 1 || time.Now().After(deadline) {
			t.Fatalf("stored while the receiver is down: %v (%+v)", keys, pe)
		}
		entry, _ := s.Get(context.Background(), notify.EventStoragePrefix+keys[0])
		if err := entry.DecodeJSON(&pe); err != nil || pe.ID != "e1" {
			t.Fatalf("stored event %+v (%v)", pe, err)
		}
	}
	stop()
	if pe.Attempts != 3 || len(h.got()) != 3 {
		t.Fatalf("stored after %d attempts, receiver saw %d; want 3 and 3 (then an hour's wait)", pe.Attempts, len(h.got()))
	}

	h.setFail(0)
	second, _ := testNotifier(t, s, h.srv.URL)
	second.Begin() // what Initialize does after a reload, restart or leader change
	// The stored next attempt is an hour away: the new instance honours it. Make it due.
	pe.NextAt = time.Time{}
	entry, _ := logical.StorageEntryJSON(notify.EventStoragePrefix+keys[0], &pe)
	_ = s.Put(context.Background(), entry)
	second.Wake()
	got := h.waitFor(t, "delivery by the second instance", func(a []hookAttempt) bool { return len(a) >= 4 && a[len(a)-1].status == 200 })
	if last := got[len(got)-1]; last.id != "e1" {
		t.Fatalf("second instance delivered %+v", last)
	}
	waitStored(t, s, 0)
}

// Events are dropped, with a log line, when notify_url is unset before delivery, when the
// receiver has not taken them for notifyMaxAge, and past maxPending (never blocking).
func TestNotifierDropsWhatCannotBeDelivered(t *testing.T) {
	s := &logical.InmemStorage{}
	unset, _ := testNotifier(t, s, "")
	unset.Store(context.Background(), newEvent("e1", time.Now()))
	waitStored(t, s, 0)

	h := newHookReceiver(t)
	h.setFail(http.StatusBadGateway)
	s = &logical.InmemStorage{} // the first notifier's goroutine would drop this one too
	old, _ := testNotifier(t, s, h.srv.URL)
	old.Store(context.Background(), newEvent("e2", time.Now().Add(-notify.NotifyMaxAge-time.Minute)))
	waitStored(t, s, 0)
	if got := h.got(); len(got) != 1 {
		t.Fatalf("an event past notifyMaxAge was tried %d times, want 1", len(got))
	}

}

// A full store makes room by dropping the oldest droppable event (a request asked for, a
// partial approval, a cancellation, an expiry); grants, approvals, denials and break-glass
// are never dropped for room, and once only they are stored, new requests are refused.
func TestNotifierFullStoreKeepsTheAuditTrail(t *testing.T) {
	h := newHookReceiver(t)
	full, _ := testNotifier(t, &logical.InmemStorage{}, h.srv.URL)
	full.Start.Do(func() {}) // no delivery goroutine: nothing leaves storage
	full.MaxPending = 3
	stored := func() []string {
		var types []string
		for _, k := range storedEvents(t, full.Storage) {
			entry, err := full.Storage.Get(context.Background(), notify.EventStoragePrefix+k)
			if err != nil || entry == nil {
				t.Fatal(k, err)
			}
			var pe notify.StoredEvent
			if err := entry.DecodeJSON(&pe); err != nil {
				t.Fatal(err)
			}
			types = append(types, pe.ID+"="+pe.Type)
		}
		return types
	}
	at := time.Now()
	add := func(id, typ string) {
		at = at.Add(time.Millisecond) // keys sort by creation time
		full.Store(context.Background(), &notify.StoredEvent{ID: id, Type: typ, Body: []byte(`{}`), Created: at})
	}
	begin := time.Now()
	for _, step := range []struct {
		id, typ string
		want    []string
		refuse  bool
	}{
		{"1", notify.EventRequestCreated, []string{"1=request.created"}, false},
		{"2", notify.EventGrantIssued, []string{"1=request.created", "2=grant.issued"}, false},
		{"3", notify.EventRequestApproval, []string{"1=request.created", "2=grant.issued", "3=request.approval"}, false},
		// Full: the oldest droppable (1) makes room for an audit event...
		{"4", notify.EventRequestApproved, []string{"2=grant.issued", "3=request.approval", "4=request.approved"}, false},
		// ...and for a droppable one.
		{"5", notify.EventRequestExpired, []string{"2=grant.issued", "4=request.approved", "5=request.expired"}, false},
		{"6", notify.EventBreakGlass, []string{"2=grant.issued", "4=request.approved", "6=grant.break_glass"}, true},
		// Only audit events left: requests are refused, and a droppable newcomer is dropped...
		{"7", notify.EventRequestCreated, []string{"2=grant.issued", "4=request.approved", "6=grant.break_glass"}, true},
		// ...an audit event is kept past the cap, and new requests are refused.
		{"8", notify.EventRequestDenied, []string{"2=grant.issued", "4=request.approved", "6=grant.break_glass", "8=request.denied"}, true},
		{"9", notify.EventGrantRevoked, []string{"2=grant.issued", "4=request.approved", "6=grant.break_glass", "8=request.denied", "9=grant.revoked"}, true},
	} {
		add(step.id, step.typ)
		if got := stored(); !reflect.DeepEqual(got, step.want) {
			t.Fatalf("after %s (%s): stored %v, want %v", step.id, step.typ, got, step.want)
		}
		if msg := full.RefuseNewFlows(); (msg != "") != step.refuse || (step.refuse && !strings.Contains(msg, "never dropped")) {
			t.Fatalf("after %s: refuseNewFlows = %q, want refusing=%v", step.id, msg, step.refuse)
		}
	}
	if full.Dropped.Load() != 4 || time.Since(begin) > time.Second {
		t.Fatalf("dropped %d (want 4: 1, 3, 5, 7), in %s", full.Dropped.Load(), time.Since(begin))
	}
	// Delivering the audit events opens the store again.
	full.Start = sync.Once{}
	full.Begin()
	waitStored(t, full.Storage, 0)
	if msg := full.RefuseNewFlows(); msg != "" {
		t.Fatalf("after delivery: %s", msg)
	}
	if others, _ := full.Storage.List(context.Background(), notify.EventOtherPrefix); len(others) != 0 {
		t.Fatalf("droppable marks left after delivery: %v", others)
	}
}

func waitStored(t *testing.T, s logical.Storage, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		keys := storedEvents(t, s)
		if len(keys) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("stored events %v, want %d", keys, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Health counts the stored events and warns once the oldest has waited past
// eventsLateAfter; with notify_url unset it says nothing of events.
func TestHealthReportsEventsWaiting(t *testing.T) {
	e := newTestEnv(t)
	e.configure(t)
	if _, ok := e.health(t)["events_pending"]; ok {
		t.Fatal("events_pending reported without a notify_url")
	}
	h := newHookReceiver(t)
	h.setFail(http.StatusServiceUnavailable)
	e.mustOK(t, logical.UpdateOperation, "config", map[string]interface{}{"notify_url": h.srv.URL})
	e.b.notify.Events.RetryLater = time.Hour
	e.b.notify.Events.Store(context.Background(), newEvent("recent", time.Now()))
	if got := e.health(t); got["events_pending"] != 1 || strings.Contains(jsonOf(t, got["warnings"]), "wait for notify_url") {
		t.Fatalf("one recent event: %v, warnings %v", got["events_pending"], got["warnings"])
	}
	e.b.notify.Events.Store(context.Background(), newEvent("late", time.Now().Add(-2*notify.EventsLateAfter)))
	got := e.health(t)
	if got["events_pending"] != 2 || !strings.Contains(jsonOf(t, got["warnings"]), "2 events wait for notify_url, the oldest for 2m0s") {
		t.Fatalf("a late event: %v, warnings %v", got["events_pending"], got["warnings"])
	}
}

func jsonOf(t *testing.T, v interface{}) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// readOnlyStorage refuses writes while ro is set, as a standby's storage does (the
// message is all that crosses the plugin's gRPC boundary).
type readOnlyStorage struct {
	logical.Storage
	ro atomic.Bool
}

func (s *readOnlyStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	if s.ro.Load() {
		return errors.New("rpc error: " + logical.ErrReadOnly.Error())
	}
	return s.Storage.Put(ctx, e)
}

func (s *readOnlyStorage) Delete(ctx context.Context, key string) error {
	if s.ro.Load() {
		return errors.New("rpc error: " + logical.ErrReadOnly.Error())
	}
	return s.Storage.Delete(ctx, key)
}

// A node whose storage is read-only (an OpenBao standby initializes its mounts too, on a
// copy of storage that may lag) delivers nothing: what it holds is the active node's to
// deliver, and sending it would repeat what the active node sent and removed. Once its
// storage takes writes (it became the active node), it delivers what is stored.
func TestNotifierOnAReadOnlyNodeDeliversNothing(t *testing.T) {
	h := newHookReceiver(t)
	s := &readOnlyStorage{Storage: &logical.InmemStorage{}}
	n, _ := testNotifier(t, s, h.srv.URL)
	n.Start.Do(func() {}) // delivery begins below, once the event is stored
	n.Store(context.Background(), newEvent("e1", time.Now()))
	s.ro.Store(true)
	n2, _ := testNotifier(t, s, h.srv.URL) // the standby's instance on the same storage
	n2.Begin()
	time.Sleep(100 * time.Millisecond) // 50 retry periods of the read-only check
	if got := h.got(); len(got) != 0 {
		t.Fatalf("a read-only node delivered: %+v", got)
	}
	s.ro.Store(false)
	h.waitFor(t, "the delivery once writes are taken", func(a []hookAttempt) bool { return len(a) == 1 })
	waitStored(t, s, 0)
}
