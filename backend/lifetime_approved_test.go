package backend

import (
	"strings"
	"testing"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/apono-io/vault-plugin-apono/backend/store"
	"github.com/hashicorp/vault/sdk/logical"
)

// What was approved is what is held (issue 23, finding 3): a grant picked up from a request
// is renewed at most to the end approved for it (the request's ttl from pickup), not to
// the role's max_ttl; a direct grant and a record stored before keep the role's max_ttl.

// renewGrant renews the lease of grant g by increment, as `vault lease renew` does.
func (e *testEnv) renewGrant(t *testing.T, g *logical.Response, increment time.Duration) *logical.Response {
	t.Helper()
	s := *g.Secret
	s.Increment = increment
	resp, err := e.b.HandleRequest(e.ctx, &logical.Request{Operation: logical.RenewOperation, Path: "grants/app", Storage: e.storage, Secret: &s})
	if err != nil || resp.IsError() {
		t.Fatalf("renew: %v %v", err, resp)
	}
	return resp
}

func TestRenewStopsAtTheApprovedLifetime(t *testing.T) {
	f := newFlowEnv(t)
	f.ids.addEntity("olly", "oncall")
	f.mustOK(t, logical.CreateOperation, "roles/app", map[string]interface{}{
		"resources": "kv/app/db", "approval": "required", "approvers": "group:kv-owners", "ttl": "5m", "max_ttl": "8h",
		"auto_approve": `[{"name":"oncall-short","groups":["oncall"],"resources":["kv/app/db"],"max_ttl":"5m"}]`,
	})

	// Approved by a rule that approves at most 5 minutes.
	d := f.mustAs(t, "id-olly", logical.UpdateOperation, "requests/app", map[string]interface{}{"ttl": "5m"}).Data
	if d["auto_approved_by"] != "oncall-short" {
		t.Fatalf("the 5m request was not approved by the rule: %v", d)
	}
	g := f.mustAs(t, "id-olly", logical.UpdateOperation, "requests/"+d["request_id"].(string)+"/grant", nil)
	if g.Secret.MaxTTL != 5*time.Minute {
		t.Fatalf("the lease of an approved 5m grant has max ttl %s", g.Secret.MaxTTL)
	}
	r := f.renewGrant(t, g, 8*time.Hour)
	if r.Secret.TTL > 5*time.Minute {
		t.Fatalf("renew -increment=8h of an approved 5m grant gave %s", r.Secret.TTL)
	}
	if w := strings.Join(r.Warnings, " "); !strings.Contains(w, "the lifetime approved for request "+d["request_id"].(string)) || !strings.Contains(w, "/extend") {
		t.Fatalf("the capped renewal does not say why: %v", r.Warnings)
	}
	rec := f.mustOK(t, logical.ReadOperation, "grants/app/"+g.Data["grant_id"].(string), nil).Data
	issued, _ := time.Parse(time.RFC3339, rec["issued_at"].(string))
	maxEnd, _ := time.Parse(time.RFC3339, rec["max_expires_at"].(string))
	if got := maxEnd.Sub(issued); got < 4*time.Minute+58*time.Second || got > 5*time.Minute || rec["lifetime_approved"] != true {
		t.Fatalf("the grant read: max_expires_at %s after issue, lifetime_approved %v", got, rec["lifetime_approved"])
	}

	// A person's approval of 1h is 1h too.
	id := f.request(t, "app", map[string]interface{}{"ttl": "1h"})
	f.mustAs(t, f.bob, logical.UpdateOperation, "requests/"+id+"/approve", nil)
	g = f.mustAs(t, f.alice, logical.UpdateOperation, "requests/"+id+"/grant", nil)
	if r := f.renewGrant(t, g, 8*time.Hour); r.Secret.TTL > time.Hour || r.Secret.TTL < 59*time.Minute {
		t.Fatalf("renew -increment=8h of an approved 1h grant gave %s", r.Secret.TTL)
	}

	// A direct grant keeps the role's max_ttl.
	f.mustOK(t, logical.CreateOperation, "roles/direct", map[string]interface{}{"resources": "kv/app/db", "ttl": "5m", "max_ttl": "8h"})
	direct := f.mustOK(t, logical.UpdateOperation, "grants/direct", map[string]interface{}{"requester": "svc@example.com"})
	if r := f.renewGrant(t, direct, 8*time.Hour); r.Secret.TTL < 7*time.Hour+59*time.Minute {
		t.Fatalf("a direct grant renewed to %s; want the role's max_ttl of 8h", r.Secret.TTL)
	} else if w := strings.Join(r.Warnings, " "); !strings.Contains(w, "(the role's max_ttl)") || strings.Contains(w, "extend") {
		t.Fatalf("a direct grant's capped renewal warns %q", w)
	}
	if rec := f.mustOK(t, logical.ReadOperation, "grants/direct/"+direct.Data["grant_id"].(string), nil).Data; rec["lifetime_approved"] != false {
		t.Fatalf("a direct grant says its lifetime was approved: %v", rec)
	}

	// A record stored before (no lifetime_approved, max_expires_at at the role's max_ttl)
	// renews as before.
	grantID := g.Data["grant_id"].(string)
	old, err := store.GetGrant(f.ctx, f.storage, grantID)
	if err != nil || old == nil {
		t.Fatal(old, err)
	}
	before := store.GrantEntries(old)
	old.LifetimeApproved, old.MaxExpiresAt = false, old.IssuedAt.Add(8*time.Hour)
	if err := f.b.grants.Store(f.ctx, f.storage, before, old); err != nil {
		t.Fatal(err)
	}
	if r := f.renewGrant(t, g, 8*time.Hour); r.Secret.TTL < 7*time.Hour+59*time.Minute {
		t.Fatalf("a record stored before the approved end renewed to %s; want its max_expires_at", r.Secret.TTL)
	}
}

// A scheduled grant may be renewed to ttl after start_at at the latest.
func TestScheduledGrantEndsTTLAfterStart(t *testing.T) {
	f := newFlowEnv(t)
	f.mustOK(t, logical.CreateOperation, "roles/app", map[string]interface{}{
		"resources": "kv/app/db", "approval": "required", "approvers": "group:kv-owners", "ttl": "1h", "max_ttl": "8h", "max_schedule_ahead": "48h",
	})
	start := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	id := f.request(t, "app", map[string]interface{}{"start_at": start.Format(time.RFC3339)})
	f.mustAs(t, f.bob, logical.UpdateOperation, "requests/"+id+"/approve", nil)
	// As if picked up 20 minutes after its start.
	f.moveDeadlines(t, id, -80*time.Minute)
	rec, _ := store.GetRequest(f.ctx, f.storage, id)
	before := store.RequestEntries(rec)
	rec.StartAt = rec.StartAt.Add(-80 * time.Minute)
	if err := f.b.store.SaveRequest(f.ctx, f.storage, before, rec); err != nil {
		t.Fatal(err)
	}
	g := f.mustAs(t, f.alice, logical.UpdateOperation, "requests/"+id+"/grant", nil)
	end := rec.StartAt.Add(time.Hour)
	if r := f.renewGrant(t, g, 8*time.Hour); time.Now().Add(r.Secret.TTL).After(end.Add(time.Second)) {
		t.Fatalf("a scheduled grant renewed to %s, past start_at + ttl (%s)", time.Now().Add(r.Secret.TTL), end)
	}
	got := f.mustOK(t, logical.ReadOperation, "grants/app/"+g.Data["grant_id"].(string), nil).Data["max_expires_at"].(string)
	if maxEnd, _ := time.Parse(time.RFC3339, got); maxEnd.After(end) || maxEnd.Before(end.Add(-2*time.Second)) {
		t.Fatalf("a scheduled grant's max_expires_at is %s; want start_at + ttl, %s", got, end.Format(time.RFC3339))
	}
}

// Finding 8: a scheduled request approved by a rule is checked against the rule at the
// pickup, the moment the access starts, not at start_at.
func TestScheduledAutoApprovalRecheckedAtPickup(t *testing.T) {
	f := newFlowEnv(t)
	f.ids.addEntity("olly", "oncall")
	rule := func(from, to time.Duration) string {
		return `[{"name":"oncall-window","groups":["oncall"],"resources":["kv/app/db"],"windows":["` + dailyWindow(from, to) + `"]}]`
	}
	f.mustOK(t, logical.CreateOperation, "roles/app", map[string]interface{}{
		"resources": "kv/app/db", "approval": "required", "approvers": "group:kv-owners", "ttl": "30m", "max_schedule_ahead": "48h",
		"auto_approve": rule(50*time.Minute, 70*time.Minute),
	})
	start := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	d := f.mustAs(t, "id-olly", logical.UpdateOperation, "requests/app", map[string]interface{}{"start_at": start.Format(time.RFC3339)}).Data
	if d["auto_approved_by"] != "oncall-window" {
		t.Fatalf("a request starting inside the rule's window: %v", d)
	}
	id := d["request_id"].(string)
	// Its start is now 20 minutes ago, inside a window [now-30m, now-10m] that has closed.
	f.moveDeadlines(t, id, -80*time.Minute)
	rec, _ := store.GetRequest(f.ctx, f.storage, id)
	before := store.RequestEntries(rec)
	rec.StartAt = rec.StartAt.Add(-80 * time.Minute)
	if err := f.b.store.SaveRequest(f.ctx, f.storage, before, rec); err != nil {
		t.Fatal(err)
	}
	f.mustOK(t, logical.UpdateOperation, "roles/app", map[string]interface{}{"auto_approve": rule(-30*time.Minute, -10*time.Minute)})
	f.mustForbiddenAs(t, "id-olly", "requests/"+id+"/grant", `approved by rule "oncall-window", which approves access only inside its windows`)
	if s := f.status(t, id); s != access.StatusApproved {
		t.Fatalf("a refused pickup changed the request: %s", s)
	}
	// Open again now: picked up.
	f.mustOK(t, logical.UpdateOperation, "roles/app", map[string]interface{}{"auto_approve": rule(-30*time.Minute, 30*time.Minute)})
	f.mustAs(t, "id-olly", logical.UpdateOperation, "requests/"+id+"/grant", nil)
}

// Finding 9: request.auto_approved is an event type a target may ask for, and gets.
func TestTargetSubscribesToAutoApproved(t *testing.T) {
	h := newHookReceiver(t)
	f := newFlowEnv(t)
	f.ids.addEntity("olly", "oncall")
	f.mustOK(t, logical.CreateOperation, "notify/owners", map[string]interface{}{"url": h.srv.URL, "events": "request.auto_approved"})
	f.mustOK(t, logical.CreateOperation, "roles/app", map[string]interface{}{
		"resources": "kv/app/db", "approval": "required", "approvers": "group:kv-owners",
		"auto_approve": `[{"name":"oncall-read","groups":["oncall"],"resources":["kv/app/db"]}]`,
	})
	id := f.mustAs(t, "id-olly", logical.UpdateOperation, "requests/app", nil).Data["request_id"].(string)
	got := h.waitFor(t, "request.auto_approved", func(a []hookAttempt) bool { return len(a) >= 1 })
	if got[0].typ != access.EventRequestAutoApproved || !strings.Contains(got[0].body, id) || !strings.Contains(got[0].body, "oncall-read") {
		t.Fatalf("the target subscribed to request.auto_approved got %s: %s", got[0].typ, got[0].body)
	}
	time.Sleep(200 * time.Millisecond)
	if n := len(h.got()); n != 1 {
		t.Fatalf("the target got %d events; it asked for request.auto_approved only", n)
	}
}
