package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// Issue 23, findings 3, 8 and 9: what was approved is what is held (a renewal stops at the
// end approved for the request, an approved extension goes past it), a rule that approved
// a scheduled request must still hold when the access really starts, and owners can
// subscribe to the event that says a rule approved a request without them.

// renewAs renews lease by increment as token (the requester's own `vault lease renew`) and
// returns its lease_duration and warnings.
func (tv *timeVault) renewAs(t *testing.T, token, lease, increment string) (time.Duration, string) {
	t.Helper()
	r := tv.jsonOut(t, token, "lease", "renew", "-increment="+increment, lease)
	d, _ := r["lease_duration"].(float64)
	return time.Duration(d) * time.Second, jsonString(t, r["warnings"])
}

// grantRead is the grant's record as an operator reads it, with its max_expires_at.
func (tv *timeVault) grantRead(t *testing.T, role, grantID string) (map[string]interface{}, time.Time) {
	t.Helper()
	rec := tv.jsonOut(t, "", "read", "apono/grants/"+role+"/"+grantID)["data"].(map[string]interface{})
	end, err := time.Parse(time.RFC3339, fmt.Sprint(rec["max_expires_at"]))
	if err != nil {
		t.Fatalf("max_expires_at of grant %s: %v (%v)", grantID, err, rec)
	}
	return rec, end
}

// notPast fails when a lease renewed at asked, lasting d, ends after end, with 2 s of
// slack: end is read to the second (RFC 3339) and a lease_duration is whole seconds.
func notPast(t *testing.T, what string, asked time.Time, d time.Duration, end time.Time) {
	t.Helper()
	if asked.Add(d).After(end.Add(2 * time.Second)) {
		t.Fatalf("%s: the lease lasts %s from %s, to %s: past the end %s", what, d, asked.UTC().Format(time.RFC3339),
			asked.Add(d).UTC().Format(time.RFC3339), end.UTC().Format(time.RFC3339))
	}
}

// The requester renews with -increment=8h: (a) a grant a rule approved for 2 minutes (a
// 6h request goes to the owner instead) stays within the 2 minutes, and the renewal says
// why; (b) a grant bob approved for 1h stays within 1h from pickup; (c) an extension bob
// approves lets the renewal pass that end, up to the extension's end and no further.
func TestAttackRenewStopsAtTheApprovedEnd(t *testing.T) {
	t.Parallel()
	tv := newTimeVault(t)
	tv.writePolicy(t, "time-extend", `path "apono/grants/+/+/extend" { capabilities = ["update"] }`)
	tv.root(t, "write", "identity/entity/id/"+tv.alice.entityID, "policies=time-extend")
	tv.root(t, "write", "identity/group", "name=oncall", "member_entity_ids="+tv.alice.entityID)

	// (a) Approved by a rule, no person involved.
	tv.root(t, "write", "apono/roles/short", "resources=kv/app/db", "approval=required", "approvers=owner", "ttl=2m", "max_ttl=8h",
		`auto_approve=[{"name":"oncall-short","groups":["oncall"],"resources":["kv/app/db"],"max_ttl":"2m"}]`)
	if d := tv.ask(t, "short", "ttl=6h"); d["status"] != "pending" {
		t.Fatalf("a 6h request passed the 2m rule: %v", d["status"])
	}
	d := tv.ask(t, "short", "ttl=2m")
	if d["status"] != "approved" || d["auto_approved_by"] != "oncall-short" {
		t.Fatalf("a 2m request: %v by %v", d["status"], d["auto_approved_by"])
	}
	g := tv.grantAs(t, tv.alice.token, "apono/requests/"+d["request_id"].(string)+"/grant")
	pickedUp := time.Now() // the approved end is at most 2m after this
	asked := time.Now()
	got, warnings := tv.renewAs(t, tv.alice.token, g.LeaseID, "8h")
	notPast(t, "renew -increment=8h of a grant a rule approved for 2m", asked, got, pickedUp.Add(2*time.Minute))
	if !strings.Contains(warnings, "the lifetime approved for request "+d["request_id"].(string)) || !strings.Contains(warnings, "/extend") {
		t.Fatalf("the capped renewal (%s) does not say why: %s", got, warnings)
	}
	rec, end := tv.grantRead(t, "short", g.GrantID)
	issued, _ := time.Parse(time.RFC3339, fmt.Sprint(rec["issued_at"]))
	if life := end.Sub(issued); life < 119*time.Second || life > 120*time.Second || rec["lifetime_approved"] != true {
		t.Fatalf("the grant read: max_expires_at %s after issue (want the approved 2m), lifetime_approved %v", life, rec["lifetime_approved"])
	}
	notPast(t, "renew -increment=8h of a grant a rule approved for 2m", asked, got, end)
	tv.root(t, "lease", "revoke", "-sync", g.LeaseID)

	// (b) A person approved 1h ("Duration: 1 h" in the portal).
	tv.root(t, "write", "apono/roles/hour", "resources=kv/app/db", "approval=required", "approvers=owner", "ttl=10m", "max_ttl=8h")
	id := tv.ask(t, "hour", "ttl=1h")["request_id"].(string)
	tv.jsonOut(t, tv.bob.token, "write", "-f", "apono/requests/"+id+"/approve")
	before := time.Now()
	g = tv.grantAs(t, tv.alice.token, "apono/grants/hour", "request_id="+id)
	after := time.Now()
	_, end = tv.grantRead(t, "hour", g.GrantID)
	if end.Before(before.Add(time.Hour-time.Second)) || end.After(after.Add(time.Hour)) {
		t.Fatalf("the approved 1h grant picked up between %s and %s has max_expires_at %s", before.UTC().Format(time.RFC3339),
			after.UTC().Format(time.RFC3339), end.UTC().Format(time.RFC3339))
	}
	asked = time.Now()
	if got, _ := tv.renewAs(t, tv.alice.token, g.LeaseID, "8h"); got < 55*time.Minute {
		t.Fatalf("renew of the approved 1h grant gave %s; want what is left of the hour", got)
	} else {
		notPast(t, "renew -increment=8h of a grant approved for 1h", asked, got, end)
	}

	// (c) More time is an extension, approved as such: pending, nothing changes; approved,
	// the renewal passes the approved end, up to the extension's end.
	ext := tv.jsonOut(t, tv.alice.token, "write", "apono/grants/hour/"+g.GrantID+"/extend", "ttl=30m", "justification=the migration runs long")["data"].(map[string]interface{})
	asked = time.Now()
	got, _ = tv.renewAs(t, tv.alice.token, g.LeaseID, "8h")
	notPast(t, "renew with the extension pending", asked, got, end)
	tv.jsonOut(t, tv.bob.token, "write", "apono/requests/"+ext["request_id"].(string)+"/approve", "reason=once")
	rec, _ = tv.grantRead(t, "hour", g.GrantID)
	extEnd, err := time.Parse(time.RFC3339, fmt.Sprint(rec["extended_until"]))
	if err != nil || extEnd.Sub(end) != 30*time.Minute {
		t.Fatalf("the grant's extended_until %v is not 30m past its approved end %s", rec["extended_until"], end)
	}
	asked = time.Now()
	got, _ = tv.renewAs(t, tv.alice.token, g.LeaseID, "8h")
	if !asked.Add(got).After(end.Add(time.Minute)) {
		t.Fatalf("after the approved extension a renewal gave %s, not past the approved end %s", got, end.UTC().Format(time.RFC3339))
	}
	notPast(t, "renew -increment=8h after the extension", asked, got, extEnd)
	tv.root(t, "lease", "revoke", "-sync", g.LeaseID)
}

// utcClock is t as a window bound (HH:MM, UTC); midnight as an end is 24:00.
func utcClock(t time.Time, end bool) string {
	s := t.UTC().Format("15:04")
	if end && s == "00:00" {
		return "24:00"
	}
	return s
}

// A request scheduled to start inside a rule's window is approved by the rule. Picked up
// at its start, inside the window, it is granted; a second one just like it, picked up
// after the window closed, is refused (403): the rule approved access inside its window,
// and a pickup is when the access starts.
func TestAttackScheduledAutoApprovalRecheckedAtPickup(t *testing.T) {
	t.Parallel()
	tv := newTimeVault(t)
	tv.root(t, "write", "identity/group", "name=oncall", "member_entity_ids="+tv.alice.entityID)
	now := time.Now().UTC()
	closes := now.Add(50 * time.Second).Truncate(time.Minute).Add(time.Minute) // 50 to 110 seconds from now
	window := fmt.Sprintf("daily %s-%s UTC", utcClock(now.Add(-time.Hour), false), utcClock(closes, true))
	tv.root(t, "write", "apono/roles/sched", "resources=kv/app/db", "approval=required", "approvers=owner", "ttl=10m", "max_schedule_ahead=1h",
		`auto_approve=[{"name":"oncall-window","groups":["oncall"],"resources":["kv/app/db"],"windows":["`+window+`"]}]`)
	start := time.Now().Add(15 * time.Second).UTC().Truncate(time.Second)
	if !start.Before(closes) {
		t.Fatalf("start_at %s is not inside the window closing at %s", start, closes)
	}
	var ids []string
	for i := 0; i < 2; i++ {
		d := tv.ask(t, "sched", "start_at="+start.Format(time.RFC3339))
		if d["status"] != "approved" || d["auto_approved_by"] != "oncall-window" {
			t.Fatalf("a request starting inside the rule's window: %v by %v", d["status"], d["auto_approved_by"])
		}
		ids = append(ids, d["request_id"].(string))
	}
	time.Sleep(time.Until(start) + time.Second)
	if !time.Now().Before(closes) {
		t.Fatalf("the machine is too slow: the window closed at %s before the first pickup", closes)
	}
	g := tv.grantAs(t, tv.alice.token, "apono/requests/"+ids[0]+"/grant")
	tv.root(t, "lease", "revoke", "-sync", g.LeaseID)

	for time.Now().Before(closes.Add(2 * time.Second)) {
		time.Sleep(time.Until(closes.Add(2 * time.Second)))
	}
	tv.refusedAs(t, tv.alice.token, 403, `approved by rule "oncall-window", which approves access only inside its windows`,
		"write", "-f", "apono/requests/"+ids[1]+"/grant")
	if s := tv.jsonOut(t, "", "read", "apono/audit/requests/"+ids[1])["data"].(map[string]interface{})["status"]; s != "approved" {
		t.Fatalf("the refused pickup changed the request: %v", s)
	}
	data, _ := tv.jsonOut(t, tv.alice.token, "read", "apono/my/grants")["data"].(map[string]interface{})
	if live, ok := data["grants"].([]interface{}); !ok || len(live) != 0 {
		t.Fatalf("alice holds grants after the refused pickup: %v", data)
	}
}

// A notification target that asks for request.auto_approved (owners who want to hear
// when a rule approved without them) is accepted and receives it, signed, when a rule
// approves; it does not get the events it did not ask for.
func TestAutoApprovedEventReachesSubscribedTargets(t *testing.T) {
	t.Parallel()
	tv := newTimeVault(t)
	tv.root(t, "write", "identity/group", "name=oncall", "member_entity_ids="+tv.alice.entityID)
	const secret = "owners-hook-key"
	hook := newEventReceiver(secret)
	t.Cleanup(hook.srv.Close)
	tv.root(t, "write", "apono/notify/owners", "format=json", "url="+hook.URL(), "secret="+secret, "events=request.approved,request.auto_approved")
	if ev := tv.jsonOut(t, "", "read", "apono/notify/owners")["data"].(map[string]interface{})["events"]; jsonString(t, ev) != `["request.approved","request.auto_approved"]` {
		t.Fatalf("the target's events: %v", ev)
	}
	tv.refusedAs(t, "", 400, "request.auto_approved", "write", "apono/notify/bad", "url="+hook.URL(), "events=request.auto_approve")

	tv.root(t, "write", "apono/roles/auto", "resources=kv/app/db", "approval=required", "approvers=owner", "ttl=10m",
		`auto_approve=[{"name":"oncall-read","groups":["oncall"],"resources":["kv/app/db"]}]`)
	d := tv.ask(t, "auto")
	id := d["request_id"].(string)
	if d["auto_approved_by"] != "oncall-read" {
		t.Fatalf("the request was not approved by the rule: %v", d)
	}
	ev := hook.waitFor(t, 60*time.Second, "request.auto_approved", func(m map[string]interface{}) bool { return m["request_id"] == id })
	if !strings.Contains(ev.body, "oncall-read") || !strings.Contains(ev.body, `"role":"auto"`) {
		t.Fatalf("the request.auto_approved event: %s", ev.body)
	}
	// It asked for approvals only. A target's events come in order, so once the next
	// request's request.auto_approved is in, the pickup's and the revocation's events would
	// have come before it had the target got them.
	g := tv.grantAs(t, tv.alice.token, "apono/requests/"+id+"/grant")
	tv.root(t, "lease", "revoke", "-sync", g.LeaseID)
	id2 := tv.ask(t, "auto")["request_id"].(string)
	hook.waitFor(t, 60*time.Second, "request.auto_approved", func(m map[string]interface{}) bool { return m["request_id"] == id2 })
	for _, e := range hook.matching(func(map[string]interface{}) bool { return true }) {
		if e.fields["type"] != "request.auto_approved" {
			t.Fatalf("the target got a %v event it did not ask for: %s", e.fields["type"], e.body)
		}
	}
	if n := hook.badCount(); n != 0 {
		t.Fatalf("%d events failed the signature check", n)
	}
}
