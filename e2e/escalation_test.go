package e2e

import (
	"strings"
	"testing"
	"time"
)

// A request nobody answers is reminded after remind_after, then escalated after
// escalate_after (each once, by the periodic job, about once a minute); the escalation
// approver, refused before, approves, and the requester picks up.
func TestAccessFlowReminderThenEscalation(t *testing.T) {
	t.Parallel()
	f := flowsEnv(t)
	e := f.e
	role := uniqueName(t)
	e.root(t, "kv", "put", "kv/"+role+"/db", "password=esc-secret")
	f.role(t, role, "resources=kv/"+role+"/db", "approval=required", "approvers=group:kv-owners", "ttl=5m",
		"remind_after=1m", "escalate_after=2m", "escalate_to=entity:carol")
	req := f.request(t, role, "resources=kv/"+role+"/db", "justification=nobody answers")
	id := req["request_id"].(string)
	created, err := time.Parse(time.RFC3339, req["created_at"].(string))
	if err != nil {
		t.Fatal(err)
	}
	f.refused(t, "carol", 403, "is not an approver", "write", "-f", flowsMount+"/requests/"+id+"/approve")

	match := func(ev map[string]interface{}) bool { return ev["request_id"] == id }
	eventTime := func(ev receivedEvent) time.Time {
		at, err := time.Parse(time.RFC3339Nano, ev.fields["time"].(string))
		if err != nil {
			t.Fatal(err)
		}
		return at
	}
	reminded := f.hook.waitFor(t, 4*time.Minute, "request.reminded", match)
	if at := eventTime(reminded); at.Before(created.Add(time.Minute)) {
		t.Fatalf("reminded at %s, before remind_after (made %s)", at, created)
	}
	if got := jsonString(t, reminded.fields["approvers"]); got != `["group:kv-owners"]` {
		t.Fatalf("the reminder goes to %s", got)
	}
	escalated := f.hook.waitFor(t, 4*time.Minute, "request.escalated", match)
	if at := eventTime(escalated); at.Before(created.Add(2 * time.Minute)) {
		t.Fatalf("escalated at %s, before escalate_after (made %s)", at, created)
	}
	if got := jsonString(t, escalated.fields["escalated_to"]); got != `["entity:carol"]` {
		t.Fatalf("escalated_to %s", got)
	}
	// Everyone in the flow sees when it was escalated and to whom.
	for _, who := range []string{"alice", "bob", "carol"} {
		d := f.as(t, who, "read", flowsMount+"/requests/"+id)["data"].(map[string]interface{})
		if d["escalated_at"] == "" || d["reminded_at"] == "" || jsonString(t, d["escalate_to"]) != `["entity:carol"]` ||
			!strings.Contains(jsonString(t, d["approvers"]), "entity:carol") {
			t.Fatalf("%s reads: escalated_at %v, reminded_at %v, escalate_to %v, approvers %v", who, d["escalated_at"], d["reminded_at"], d["escalate_to"], d["approvers"])
		}
	}
	if got := f.approve(t, "carol", id, "reason=nobody else answered"); got["status"] != "approved" {
		t.Fatalf("carol's approval after the escalation: %v", got)
	}
	g := f.pickUp(t, id)
	tok := e.mustLogin(t, g)
	if got := strings.TrimSpace(e.s.MustCLI(t, tok, "kv", "get", "-field=password", "kv/"+role+"/db")); got != "esc-secret" {
		t.Fatalf("the grant user read %q", got)
	}
	for _, typ := range []string{"request.reminded", "request.escalated"} {
		if n := len(f.hook.matching(func(ev map[string]interface{}) bool { return ev["type"] == typ && match(ev) })); n != 1 {
			t.Fatalf("%d %s events, want 1", n, typ)
		}
	}
	e.root(t, "lease", "revoke", g.LeaseID)
}
