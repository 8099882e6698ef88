package cluster

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/apono-io/vault-plugin-apono/internal/testvault"
)

// A request nobody answers on roles with remind_after=1m, escalate_after=3m. The active
// node sends the reminder (the periodic job, about once a minute) and is killed (SIGKILL,
// its plugin with it) the moment the webhook has the reminder; a standby takes over and
// its plugin carries out the escalation, which the old node never reached. The periodic
// job marks each step in the request record before it stores the event, so across the
// failover each step's event exists once: the webhook gets exactly one request.reminded
// and one request.escalated for the request (one event id each; a delivery the killed
// node made but had not yet removed from storage may come again with the same id).
//
// That no further event comes is checked over at least two more runs of the job on the
// new active node, after the killed node is back as a standby: a second request (the
// canary, remind_after=1m, escalate_after=2m) is made then, and its reminder and its
// escalation come at two different runs after it was made (the canary's events are what
// the test polls for, not a fixed sleep). Then the escalation approver, refused before,
// approves through the restarted node and the requester picks the grant up through the
// other standby. Delivery is at least once (docs/access-flows.md): the kill can come
// between the webhook taking the reminder and the old node removing it from storage, and
// the new active node then delivers it again, under the same id; that is logged, with
// the log lines of each node about it. On OpenBao a standby's plugin also delivers what
// its own copy of storage holds when it starts (the killed node, restarted, before its
// copy has caught up; its removal then fails on read-only storage): one more delivery
// under the same id.
func TestFailoverBetweenReminderAndEscalationSendsEachOnce(t *testing.T) {
	began := time.Now()
	c := startCluster(t)
	old := c.active
	const hookSecret = "cluster-escalation-hook-key"
	hook := newEventHook(hookSecret)
	t.Cleanup(hook.srv.Close)

	if _, err := old.Client.Logical().Write("apono/config", map[string]interface{}{
		"vault_addr": c.lb.URL(), "role_id": c.setup.RoleID, "secret_id": c.setup.SecretID,
		"notify_url": hook.URL(), "notify_secret": hookSecret,
	}); err != nil {
		t.Fatal(err)
	}
	old.MustCLI(t, "", "kv", "put", "kv/esc/db", "password=esc-secret")
	for name, file := range map[string]string{"access-requester": "testdata/access-requester.hcl", "access-approver": "testdata/access-approver.hcl"} {
		rules, err := os.ReadFile(repoFile(t, file))
		if err != nil {
			t.Fatal(err)
		}
		if err := old.Client.Sys().PutPolicy(name, string(rules)); err != nil {
			t.Fatal(err)
		}
	}
	// alice asks through one standby; bob, the role's approver, never answers; carol, in
	// no group, is whom the request escalates to (an entity named carol).
	sbA, sbB := c.standbys[0], c.standbys[1]
	alice, _ := personLogin(t, old, sbA, "alice")
	_, bobEntity := personLogin(t, old, old, "bob")
	carol, carolEntity := personLogin(t, old, sbB, "carol")
	if _, err := old.Client.Logical().Write("identity/entity/id/"+carolEntity, map[string]interface{}{"name": "carol"}); err != nil {
		t.Fatal(err)
	}
	if _, err := old.Client.Logical().Write("identity/group", map[string]interface{}{
		"name": "esc-owners", "member_entity_ids": bobEntity,
	}); err != nil {
		t.Fatal(err)
	}
	for role, escalateAfter := range map[string]string{"esc": "3m", "esc-canary": "2m"} {
		if _, err := old.Client.Logical().Write("apono/roles/"+role, map[string]interface{}{
			"resources": "kv/esc/db", "ttl": "10m", "approval": "required", "approvers": "group:esc-owners",
			"remind_after": "1m", "escalate_after": escalateAfter, "escalate_to": "entity:carol",
		}); err != nil {
			t.Fatal(err)
		}
	}

	r, err := alice.Logical().Write("apono/requests/esc", map[string]interface{}{"justification": "nobody answers, then a failover"})
	if err != nil || r == nil || r.Data["status"] != "pending" {
		t.Fatalf("request through standby %s: %v %v", sbA.NodeID, r, err)
	}
	id, _ := r.Data["request_id"].(string)
	created, err := time.Parse(time.RFC3339, fmt.Sprint(r.Data["created_at"]))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := carol.Logical().Write("apono/requests/"+id+"/approve", map[string]interface{}{"reason": "too early"}); err == nil ||
		!strings.Contains(err.Error(), "is not an approver") {
		t.Fatalf("carol approving through standby %s before the escalation: %v", sbB.NodeID, err)
	}
	forID := func(typ, reqID string) func(map[string]interface{}) bool {
		return func(f map[string]interface{}) bool { return f["type"] == typ && f["request_id"] == reqID }
	}

	// The reminder, from the first active node; it dies as soon as the webhook has it.
	reminded := hook.waitFor(t, 3*time.Minute, "the reminder", forID("request.reminded", id))
	if err := old.Kill(); err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	remindedAt := eventTime(t, reminded)
	if remindedAt.Before(created.Add(time.Minute)) {
		t.Fatalf("reminded at %s, before remind_after (request made %s)", remindedAt.Format(time.RFC3339Nano), created.Format(time.RFC3339))
	}
	if !remindedAt.Before(created.Add(3 * time.Minute)) {
		t.Fatalf("reminded at %s, 3 minutes after the request: the escalation could have been due before the failover", remindedAt.Format(time.RFC3339Nano))
	}
	newActive, err := testvault.WaitActiveNode(c.servers, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	activeAt := time.Now()
	t.Logf("request %s made %s; reminded %s later (event time), received %s later; %s killed %s after the receipt; %s active %s after the kill",
		id, created.Format(time.RFC3339), remindedAt.Sub(created).Round(time.Millisecond), reminded.received.Sub(created).Round(time.Millisecond),
		old.NodeID, killedAt.Sub(reminded.received).Round(time.Millisecond), newActive.NodeID, activeAt.Sub(killedAt).Round(time.Millisecond))

	// The escalation, from the new active node.
	escalated := hook.waitFor(t, 4*time.Minute, "the escalation", forID("request.escalated", id))
	escalatedAt := eventTime(t, escalated)
	if escalatedAt.Before(created.Add(3 * time.Minute)) {
		t.Fatalf("escalated at %s, before escalate_after (request made %s)", escalatedAt.Format(time.RFC3339Nano), created.Format(time.RFC3339))
	}
	if !escalatedAt.After(killedAt) {
		t.Fatalf("escalated at %s, before the kill at %s", escalatedAt.Format(time.RFC3339Nano), killedAt.Format(time.RFC3339Nano))
	}
	if got := jsonText(t, escalated.fields["escalated_to"]); got != `["entity:carol"]` {
		t.Fatalf("escalated_to %s", got)
	}
	t.Logf("escalated %s after the request (event time), %s after the kill, %s after %s became active",
		escalatedAt.Sub(created).Round(time.Millisecond), escalatedAt.Sub(killedAt).Round(time.Millisecond),
		escalatedAt.Sub(activeAt).Round(time.Millisecond), newActive.NodeID)
	// Each node's plugin logged the step it carried out, and not the other one.
	const remindLine, escalateLine = "approvers reminded of an access request", "access request escalated"
	if n := logLines(t, old, remindLine, id); n != 1 {
		t.Errorf("%s (killed) logged %q for the request %d times, want 1", old.NodeID, remindLine, n)
	}
	if n := logLines(t, old, escalateLine, id); n != 0 {
		t.Errorf("%s (killed) logged %q for the request %d times, want 0", old.NodeID, escalateLine, n)
	}
	if n := logLines(t, newActive, escalateLine, id); n != 1 {
		t.Errorf("%s (new active) logged %q for the request %d times, want 1", newActive.NodeID, escalateLine, n)
	}
	if n := logLines(t, newActive, remindLine, id); n != 0 {
		t.Errorf("%s (new active) logged %q for the request %d times, want 0", newActive.NodeID, remindLine, n)
	}

	// The killed node comes back, as a standby of the new active node.
	if err := old.Restart(); err != nil {
		t.Fatal(err)
	}
	if a, err := testvault.ActiveNode(c.servers); err != nil || a != newActive {
		t.Fatalf("after %s restarted, no active node or another one (%v), want %s still", old.NodeID, err, newActive.NodeID)
	}
	mountsReached(t, old)
	restartedAt := time.Now()
	t.Logf("%s back as a standby %s after the kill", old.NodeID, restartedAt.Sub(killedAt).Round(time.Millisecond))

	// At least two more runs of the job: the canary's reminder at the first run a minute
	// after it is made, its escalation at a later one. The job sends each step of each request in one run, and the queue delivers in
	// the order events were stored, so a second reminder or escalation of the request
	// would be here before it.
	cr, err := alice.Logical().Write("apono/requests/esc-canary", map[string]interface{}{"justification": "counts the periodic job's runs"})
	if err != nil || cr == nil || cr.Data["status"] != "pending" {
		t.Fatalf("canary request through %s: %v %v", sbA.NodeID, cr, err)
	}
	canary, _ := cr.Data["request_id"].(string)
	canaryReminded := hook.waitFor(t, 3*time.Minute, "the canary's reminder", forID("request.reminded", canary))
	canaryEscalated := hook.waitFor(t, 3*time.Minute, "the canary's escalation", forID("request.escalated", canary))
	t.Logf("canary %s: reminded %s and escalated %s after the request's escalation (event times)", canary,
		eventTime(t, canaryReminded).Sub(escalatedAt).Round(time.Millisecond), eventTime(t, canaryEscalated).Sub(escalatedAt).Round(time.Millisecond))
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		h, err := newActive.Client.Logical().Read("apono/health")
		if err != nil || h == nil {
			t.Fatalf("apono/health: %v %v", h, err)
		}
		if fmt.Sprint(h.Data["events_pending"]) == "0" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("events still waiting for delivery: %v", h.Data["events_pending"])
		}
	}

	// One event per step, by event id; the same id more than once is a delivery made again.
	for _, typ := range []string{"request.created", "request.reminded", "request.escalated"} {
		got := hook.matching(forID(typ, id))
		ids := map[string]int{}
		for _, ev := range got {
			evID, _ := ev.fields["id"].(string)
			if evID == "" || ev.delivery != evID {
				t.Errorf("%s event with id %q delivered as %q", typ, evID, ev.delivery)
			}
			ids[evID]++
		}
		if len(ids) != 1 {
			t.Errorf("%d %s events for the request (ids and deliveries: %v), want 1", len(ids), typ, ids)
		}
		// At least once, but no more than the kill explains: the killed node may have
		// delivered it without removing it, and the new active node delivers it again. A
		// third delivery came from a restarted OpenBao standby's stale storage before it
		// stopped delivering from read-only storage.
		for evID, n := range ids {
			if n > 2 {
				t.Errorf("%s event %s delivered %d times, want at most 2 (once, and again by the new active node)", typ, evID, n)
			}
		}
		if len(got) > 1 {
			// Which node's plugin delivered it: its "event delivered" lines (debug).
			var when, who []string
			for _, ev := range got {
				when = append(when, ev.received.Format("15:04:05.000"))
			}
			for evID := range ids {
				for _, s := range c.servers {
					who = append(who, fmt.Sprintf("%s %d", s.NodeID, logLines(t, s, "event delivered", evID)))
				}
			}
			t.Logf("%s: one event delivered %d times (%v), received at %s; \"event delivered\" lines by node: %s",
				typ, len(got), ids, strings.Join(when, ", "), strings.Join(who, ", "))
			for evID := range ids {
				for _, s := range c.servers {
					for _, line := range grepLog(t, s, evID, "event delivery", "event not delivered") {
						t.Logf("  %s: %s", s.NodeID, line)
					}
				}
			}
		}
	}
	if n := hook.badCount(); n != 0 {
		t.Errorf("%d deliveries with a bad signature", n)
	}
	rec, err := newActive.Client.Logical().Read("apono/audit/requests/" + id)
	if err != nil || rec == nil {
		t.Fatalf("the request after the failover: %v %v", rec, err)
	}
	// The record holds the job run's start, to the second; the event its store, a moment later.
	for _, step := range []struct {
		field string
		event time.Time
	}{{"reminded_at", remindedAt}, {"escalated_at", escalatedAt}} {
		at, err := time.Parse(time.RFC3339, fmt.Sprint(rec.Data[step.field]))
		if err != nil || step.event.Before(at) || step.event.Sub(at) > 5*time.Second {
			t.Errorf("the request records %s %v; its event came at %s", step.field, rec.Data[step.field], step.event.Format(time.RFC3339Nano))
		}
	}
	if rec.Data["status"] != "pending" {
		t.Errorf("the request is %v after the escalation, want pending", rec.Data["status"])
	}
	if t.Failed() {
		t.FailNow()
	}

	// carol approves through the node that was killed, now a standby; alice picks up
	// through the other standby, and the grant reads the secret.
	var other *testvault.Server
	for _, s := range c.servers {
		if s != old && s != newActive {
			other = s
		}
	}
	carolOnOld, err := carol.Clone()
	if err != nil {
		t.Fatal(err)
	}
	if err := carolOnOld.SetAddress(old.URL()); err != nil {
		t.Fatal(err)
	}
	carolOnOld.SetToken(carol.Token())
	ap, err := carolOnOld.Logical().Write("apono/requests/"+id+"/approve", map[string]interface{}{"reason": "nobody else answered"})
	if err != nil || ap == nil || ap.Data["status"] != "approved" {
		t.Fatalf("carol's approval through %s after the escalation: %v %v", old.NodeID, ap, err)
	}
	aliceOnOther, err := alice.Clone()
	if err != nil {
		t.Fatal(err)
	}
	if err := aliceOnOther.SetAddress(other.URL()); err != nil {
		t.Fatal(err)
	}
	aliceOnOther.SetToken(alice.Token())
	g, err := aliceOnOther.Logical().Write("apono/requests/"+id+"/grant", nil)
	if err != nil || g == nil || g.LeaseID == "" {
		t.Fatalf("pickup through %s: %v %v", other.NodeID, g, err)
	}
	username, _ := g.Data["username"].(string)
	password, _ := g.Data["password"].(string)
	login, err := newActive.Client.Logical().Write("auth/userpass/login/"+username, map[string]interface{}{"password": password})
	if err != nil || login == nil || login.Auth == nil {
		t.Fatalf("login as the grant's user %s: %v %v", username, login, err)
	}
	if got := strings.TrimSpace(newActive.MustCLI(t, login.Auth.ClientToken, "kv", "get", "-field=password", "kv/esc/db")); got != "esc-secret" {
		t.Fatalf("the grant's user read %q from kv/esc/db", got)
	}
	if err := newActive.Client.Sys().Revoke(g.LeaseID); err != nil {
		t.Fatal(err)
	}
	t.Logf("times: request %s; reminded %s (+%s, on %s); killed %s (+%s); %s active %s (+%s); escalated %s (+%s, on %s); "+
		"%s back %s; canary escalated %s; test took %s",
		created.Format("15:04:05"), remindedAt.Format("15:04:05.000"), remindedAt.Sub(created).Round(time.Second), old.NodeID,
		killedAt.Format("15:04:05.000"), killedAt.Sub(created).Round(time.Second), newActive.NodeID, activeAt.Format("15:04:05.000"),
		activeAt.Sub(created).Round(time.Second), escalatedAt.Format("15:04:05.000"), escalatedAt.Sub(created).Round(time.Second), newActive.NodeID,
		old.NodeID, restartedAt.Format("15:04:05.000"), eventTime(t, canaryEscalated).Format("15:04:05.000"), time.Since(began).Round(time.Second))
}

// personLogin makes the userpass user name (through admin, with the requester and
// approver policies) and logs in through node, so that Vault gives the person an entity.
func personLogin(t *testing.T, admin, node *testvault.Server, name string) (*api.Client, string) {
	t.Helper()
	if _, err := admin.Client.Logical().Write("auth/userpass/users/"+name, map[string]interface{}{
		"password": name + "-pw-esc", "token_policies": "access-requester,access-approver",
	}); err != nil {
		t.Fatal(err)
	}
	cl, err := node.Client.Clone()
	if err != nil {
		t.Fatal(err)
	}
	var s *api.Secret
	err = replicated(t, node, "the login of "+name, "invalid username or password", func() (err error) {
		s, err = cl.Logical().Write("auth/userpass/login/"+name, map[string]interface{}{"password": name + "-pw-esc"})
		return err
	})
	if err != nil || s == nil || s.Auth == nil || s.Auth.EntityID == "" {
		t.Fatalf("login of %s through %s: %v %v", name, node.NodeID, s, err)
	}
	cl.SetToken(s.Auth.ClientToken)
	return cl, s.Auth.EntityID
}

// logLines counts the lines of s's log (every run of it) that hold all of parts.
func logLines(t *testing.T, s *testvault.Server, parts ...string) int {
	t.Helper()
	b, err := os.ReadFile(s.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
lines:
	for _, line := range strings.Split(string(b), "\n") {
		for _, p := range parts {
			if !strings.Contains(line, p) {
				continue lines
			}
		}
		n++
	}
	return n
}

// grepLog is the lines of s's log (every run of it) that hold any of parts, at most 20.
func grepLog(t *testing.T, s *testvault.Server, parts ...string) []string {
	t.Helper()
	b, err := os.ReadFile(s.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		for _, p := range parts {
			if strings.Contains(line, p) && len(out) < 20 {
				out = append(out, line)
				break
			}
		}
	}
	return out
}

func eventTime(t *testing.T, ev hookEvent) time.Time {
	t.Helper()
	at, err := time.Parse(time.RFC3339Nano, fmt.Sprint(ev.fields["time"]))
	if err != nil {
		t.Fatalf("event time: %v", err)
	}
	return at
}

func jsonText(t *testing.T, v interface{}) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// eventHook is the webhook the plugin POSTs events to (notify_url): it keeps every
// delivery whose signature verifies, with its delivery id (X-Apono-Delivery) and when it
// came, and counts the others.
type eventHook struct {
	srv    *httptest.Server
	secret string
	kick   chan struct{}

	mu     sync.Mutex
	events []hookEvent
	bad    int
}

type hookEvent struct {
	delivery string
	received time.Time
	fields   map[string]interface{}
}

func newEventHook(secret string) *eventHook {
	h := &eventHook{secret: secret, kick: make(chan struct{}, 1)}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		received := time.Now()
		body, _ := io.ReadAll(req.Body)
		mac := hmac.New(sha256.New, []byte(h.secret))
		mac.Write(body)
		want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
		var fields map[string]interface{}
		h.mu.Lock()
		defer h.mu.Unlock()
		if !hmac.Equal([]byte(req.Header.Get("X-Apono-Signature-256")), []byte(want)) || json.Unmarshal(body, &fields) != nil {
			h.bad++
			http.Error(w, "bad signature or body", http.StatusUnauthorized)
			return
		}
		h.events = append(h.events, hookEvent{delivery: req.Header.Get("X-Apono-Delivery"), received: received, fields: fields})
		select {
		case h.kick <- struct{}{}:
		default:
		}
	}))
	return h
}

func (h *eventHook) URL() string { return h.srv.URL + "/hook" }

func (h *eventHook) matching(match func(map[string]interface{}) bool) []hookEvent {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []hookEvent
	for _, ev := range h.events {
		if match(ev.fields) {
			out = append(out, ev)
		}
	}
	return out
}

// waitFor returns the first delivery match accepts, as soon as it comes.
func (h *eventHook) waitFor(t *testing.T, timeout time.Duration, what string, match func(map[string]interface{}) bool) hookEvent {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		if got := h.matching(match); len(got) > 0 {
			return got[0]
		}
		select {
		case <-h.kick:
		case <-timer.C:
			t.Fatalf("no event for %s after %s", what, timeout)
		}
	}
}

func (h *eventHook) badCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.bad
}
