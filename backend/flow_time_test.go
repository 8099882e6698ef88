package backend

import (
	"encoding/csv"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/apono-io/vault-plugin-apono/backend/store"
	"github.com/hashicorp/vault/sdk/logical"
)

// window is a daily UTC window from now+from to now+to, to the minute.
func dailyWindow(from, to time.Duration) string {
	now := time.Now().UTC()
	f := func(d time.Duration) string { return now.Add(d).Format("15:04") }
	return fmt.Sprintf("daily %s-%s UTC", f(from), f(to))
}

// Requests, pickups and direct grants outside every window are refused with the next
// start; a grant ends with its window; break-glass ignores windows and says so.
func TestAccessWindows(t *testing.T) {
	f := newFlowEnv(t)
	f.mustOK(t, logical.CreateOperation, "roles/closed", map[string]interface{}{
		"resources": "kv/app/db", "approval": "required", "approvers": "owner", "break_glass": true,
		"access_windows": []interface{}{dailyWindow(2*time.Hour, 3*time.Hour)},
	})
	f.mustBadRequestAs(t, f.alice, logical.UpdateOperation, "requests/closed", nil, "outside every access window; the next opens at")
	resp := f.mustAs(t, f.alice, logical.UpdateOperation, "break-glass/closed", map[string]interface{}{"justification": "outage"})
	rec := f.mustOK(t, logical.ReadOperation, "grants/closed/"+resp.Data["grant_id"].(string), nil).Data
	if rec["windows_ignored"] != true || !strings.Contains(strings.Join(resp.Warnings, " "), "break-glass outside the role's access windows") {
		t.Fatalf("break-glass outside the windows: record %v warnings %v", rec, resp.Warnings)
	}

	// Open now, closing in about 10 minutes: a 1h grant ends with the window.
	f.mustOK(t, logical.CreateOperation, "roles/open", map[string]interface{}{
		"resources": "kv/app/db", "ttl": "1h", "access_windows": []interface{}{dailyWindow(-time.Hour, 11*time.Minute)},
	})
	g := f.mustOK(t, logical.UpdateOperation, "grants/open", nil)
	if g.Secret.TTL > 11*time.Minute || g.Secret.MaxTTL > 11*time.Minute || !strings.Contains(strings.Join(g.Warnings, " "), "windows_cap_grants") {
		t.Fatalf("grant in a closing window: ttl %s max %s warnings %v", g.Secret.TTL, g.Secret.MaxTTL, g.Warnings)
	}
	// Without the cap the grant keeps its ttl.
	f.mustOK(t, logical.UpdateOperation, "roles/open", map[string]interface{}{"windows_cap_grants": false})
	if g := f.mustOK(t, logical.UpdateOperation, "grants/open", nil); g.Secret.TTL != time.Hour {
		t.Fatalf("uncapped grant ttl %s", g.Secret.TTL)
	}
	f.mustBadRequest(t, logical.UpdateOperation, "roles/open", map[string]interface{}{"access_windows": []interface{}{"mon-fry 08:00-18:00 UTC"}}, `unknown day "fry"`)
}

// A scheduled request is approved now and picked up from its start; approvals are checked
// again at pickup.
func TestScheduledRequest(t *testing.T) {
	f := newFlowEnv(t)
	f.mustOK(t, logical.CreateOperation, "roles/app", map[string]interface{}{
		"resources": "kv/app/db", "approval": "required", "approvers": "group:kv-owners", "ttl": "1h", "max_schedule_ahead": "48h",
	})
	start := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	f.mustBadRequestAs(t, f.alice, logical.UpdateOperation, "requests/app", map[string]interface{}{"start_at": start.Add(72 * time.Hour).Format(time.RFC3339)}, "max_schedule_ahead")
	f.mustBadRequestAs(t, f.alice, logical.UpdateOperation, "requests/app", map[string]interface{}{"start_at": "tomorrow"}, "not an RFC 3339 time")
	id := f.request(t, "app", map[string]interface{}{"start_at": start.Format(time.RFC3339)})
	f.mustAs(t, f.bob, logical.UpdateOperation, "requests/"+id+"/approve", nil)
	data := f.requestData(t, id)
	if data["status"] != access.StatusApproved || data["pickup_by"] != access.FormatTime(start.Add(time.Hour)) {
		t.Fatalf("approved scheduled request: %v pickup_by %v", data["status"], data["pickup_by"])
	}
	f.mustBadRequestAs(t, f.alice, logical.UpdateOperation, "requests/"+id+"/grant", nil, "is for access from "+access.FormatTime(start))
	// At 20 minutes past its start, after bob left kv-owners: refused, as his approval lapsed.
	f.moveDeadlines(t, id, -80*time.Minute)
	rec, _ := store.GetRequest(f.ctx, f.storage, id)
	before := store.RequestEntries(rec)
	rec.StartAt = rec.StartAt.Add(-80 * time.Minute)
	if err := f.b.store.SaveRequest(f.ctx, f.storage, before, rec); err != nil {
		t.Fatal(err)
	}
	f.ids.groups[f.bob] = nil
	f.mustForbiddenAs(t, f.alice, "requests/"+id+"/grant", "the approval of bob (userpass-bob) no longer counts")
	f.ids.addEntity("bob", "kv-owners")
	resp := f.mustAs(t, f.alice, logical.UpdateOperation, "requests/"+id+"/grant", nil)
	if ttl := resp.Secret.TTL; ttl > 41*time.Minute || ttl < 39*time.Minute {
		t.Fatalf("picked up 20 minutes late, the grant lasts %s; want about 40m (it ends ttl after start_at)", ttl)
	}
}

// An extension approved by the approvers lets a renewal pass the approved end (the
// request's ttl, not the role's max_ttl), up to the extension's end.
func TestGrantExtension(t *testing.T) {
	f := newFlowEnv(t)
	f.mustOK(t, logical.CreateOperation, "roles/app", map[string]interface{}{
		"resources": "kv/app/db", "approval": "required", "approvers": "group:kv-owners", "ttl": "30m", "max_ttl": "1h",
	})
	id := f.request(t, "app", nil)
	f.mustAs(t, f.bob, logical.UpdateOperation, "requests/"+id+"/approve", nil)
	g := f.mustAs(t, f.alice, logical.UpdateOperation, "requests/"+id+"/grant", nil)
	grantID := g.Data["grant_id"].(string)
	if mine := f.mustAs(t, f.alice, logical.ReadOperation, "my/grants", nil).Data["grants"].([]map[string]interface{}); len(mine) != 1 || mine[0]["grant_id"] != grantID {
		t.Fatalf("a picked-up grant in its requester's my/grants: %v", mine)
	}
	renew := func(increment time.Duration) *logical.Response {
		s := *g.Secret
		s.Increment = increment
		resp, err := f.b.HandleRequest(f.ctx, &logical.Request{Operation: logical.RenewOperation, Path: "grants/app", Storage: f.storage, Secret: &s})
		if err != nil || resp.IsError() {
			t.Fatalf("renew: %v %v", err, resp)
		}
		return resp
	}
	if r := renew(3 * time.Hour); r.Secret.TTL > 30*time.Minute {
		t.Fatalf("renewed past the approved 30m before any extension: %s", r.Secret.TTL)
	}
	f.mustForbiddenAsWith(t, f.carol, "grants/app/"+grantID+"/extend", map[string]interface{}{"ttl": "2h"}, "only the requester")
	ext := f.mustAs(t, f.alice, logical.UpdateOperation, "grants/app/"+grantID+"/extend", map[string]interface{}{"ttl": "2h", "justification": "longer migration"}).Data
	if ext["kind"] != requestKindExtension || ext["status"] != access.StatusPending {
		t.Fatalf("extension request: %v", ext)
	}
	if r := renew(3 * time.Hour); r.Secret.TTL > 30*time.Minute {
		t.Fatalf("a pending extension changed the grant: %s", r.Secret.TTL)
	}
	f.mustAs(t, f.bob, logical.UpdateOperation, "requests/"+ext["request_id"].(string)+"/approve", map[string]interface{}{"reason": "fine"})
	if r := renew(3 * time.Hour); r.Secret.TTL < 2*time.Hour+29*time.Minute || r.Secret.TTL > 2*time.Hour+30*time.Minute {
		t.Fatalf("renewal after the extension: %s, want 2h30m (the approved 30m + 2h)", r.Secret.TTL)
	}
	rec := f.mustOK(t, logical.ReadOperation, "grants/app/"+grantID, nil).Data
	exts := rec["extensions"].([]map[string]interface{})
	if len(exts) != 1 || exts[0]["request_id"] != ext["request_id"] || exts[0]["approvals"].([]map[string]interface{})[0]["approver"] != "bob" {
		t.Fatalf("grant record extensions: %v", exts)
	}
}

// An auto_approve rule approves a matching request at once, with its own event; a
// request it does not match goes to people; a requester who is an approver is never
// approved by a rule.
func TestAutoApprove(t *testing.T) {
	h := newHookReceiver(t)
	f := newFlowEnv(t)
	f.mustOK(t, logical.UpdateOperation, "config", map[string]interface{}{"notify_url": h.srv.URL})
	f.ids.addEntity("olly", "oncall")
	f.ids.addEntity("kim", "oncall", "kv-owners")
	f.mustOK(t, logical.CreateOperation, "roles/app", map[string]interface{}{
		"resources": "kv/app/*", "approval": "required", "approvers": "owner", "permissions": "read,read-write", "ttl": "30m",
		"auto_approve": `[{"name":"oncall-read","groups":["oncall"],"resources":["kv/app/db"],"permissions":["read"],"max_ttl":"1h"}]`,
	})
	ask := func(who string, data map[string]interface{}) map[string]interface{} {
		return f.mustAs(t, who, logical.UpdateOperation, "requests/app", data).Data
	}
	if d := ask("id-olly", map[string]interface{}{"resources": "kv/app/db"}); d["status"] != access.StatusApproved || d["auto_approved_by"] != "oncall-read" {
		t.Fatalf("a matching request: %v by %v", d["status"], d["auto_approved_by"])
	}
	for name, data := range map[string]map[string]interface{}{
		"another resource":    {"resources": "kv/app/plain"},
		"a wider one":         {"resources": "kv/app/*"},
		"read-write":          {"resources": "kv/app/db", "permission": "read-write"},
		"longer than 1h":      {"resources": "kv/app/db", "ttl": "2h"},
		"not in the group":    nil,
		"approver of its own": {"resources": "kv/app/db"},
	} {
		who := "id-olly"
		switch name {
		case "not in the group":
			who, data = f.alice, map[string]interface{}{"resources": "kv/app/db"}
		case "approver of its own":
			who = "id-kim"
		}
		if d := ask(who, data); d["status"] != access.StatusPending {
			t.Fatalf("%s: %v (by %v)", name, d["status"], d["auto_approved_by"])
		}
	}
	h.waitFor(t, "auto-approved event", func(a []hookAttempt) bool {
		for _, x := range a {
			if x.typ == access.EventRequestAutoApproved && strings.Contains(x.body, "oncall-read") {
				return true
			}
		}
		return false
	})
	for _, bad := range []string{`[{"name":"x","resources":["kv/app/db"]}]`, `[{"name":"x","groups":["g"],"resources":["kv/other/db"]}]`,
		`[{"name":"x","groups":["g"],"resources":["kv/app/db"],"windows":["someday"]}]`, `{"not":"a list"}`} {
		f.mustBadRequest(t, logical.UpdateOperation, "roles/app", map[string]interface{}{"auto_approve": bad}, "auto_approve")
	}
}

// Ended grants leave history: revoked, expired, swept; by requester, by resource (its
// folders included) and as CSV.
func TestHistory(t *testing.T) {
	f := newFlowEnv(t)
	f.mustOK(t, logical.CreateOperation, "roles/direct", map[string]interface{}{"resources": "kv/app/*", "ttl": "1h"})
	one := f.mustAs(t, f.erin, logical.UpdateOperation, "grants/direct", map[string]interface{}{"resources": "kv/app/db"})
	two := f.mustOK(t, logical.UpdateOperation, "grants/direct", map[string]interface{}{"resources": "kv/app/*", "requester": "svc@example.com"})
	for _, g := range []*logical.Response{one, two} {
		if _, err := f.revoke(t, g.Secret); err != nil {
			t.Fatal(err)
		}
	}
	all := f.mustOK(t, logical.ReadOperation, "history", nil).Data["history"].([]map[string]interface{})
	if len(all) != 2 || all[0]["grant_id"] != two.Data["grant_id"] || all[0]["ended"] != store.EndedRevoked || all[1]["requester"] != "erin" {
		t.Fatalf("history: %v", all)
	}
	db := f.mustOK(t, logical.ReadOperation, "history", map[string]interface{}{"resource": "kv/app/db"}).Data["history"].([]map[string]interface{})
	if len(db) != 2 {
		t.Fatalf("who had access to kv/app/db (the secret, and the folder above it): %v", db)
	}
	mine := f.mustAs(t, f.erin, logical.ReadOperation, "my/history", nil).Data["history"].([]map[string]interface{})
	if len(mine) != 1 || mine[0]["grant_id"] != one.Data["grant_id"] {
		t.Fatalf("erin's history: %v", mine)
	}
	if got := f.mustOK(t, logical.ReadOperation, "history", map[string]interface{}{"since": time.Now().Add(time.Hour).Format(time.RFC3339)}).Data["history"].([]map[string]interface{}); len(got) != 0 {
		t.Fatalf("since an hour from now: %v", got)
	}
	resp := f.mustOK(t, logical.ReadOperation, "history", map[string]interface{}{"format": "csv"})
	rows, err := csv.NewReader(strings.NewReader(string(resp.Data[logical.HTTPRawBody].([]byte)))).ReadAll()
	if err != nil || len(rows) != 3 || rows[0][0] != "grant_id" || rows[1][0] != two.Data["grant_id"] || rows[2][2] != "erin" {
		t.Fatalf("csv: %v %v", rows, err)
	}
}

// The auto-approval rule as a table: who, what, how long, when, and never for a
// requester who is one of the request's approvers.
func TestMatchAutoApprove(t *testing.T) {
	rules, msg := access.ParseAutoApprove(`[
		{"name":"oncall","groups":["oncall"],"resources":["kv/app/*"],"permissions":["read"],"max_ttl":"1h"},
		{"name":"olly","entities":["olly"],"resources":["kv/app/db","transit/k"]},
		{"name":"closed","groups":["night"],"resources":["kv/*"],"windows":["` + dailyWindow(2*time.Hour, 3*time.Hour) + `"]},
		{"name":"open","groups":["day"],"resources":["kv/*"],"windows":["` + dailyWindow(-time.Hour, time.Hour) + `"]}]`)
	if msg != "" {
		t.Fatal(msg)
	}
	owners := []access.ApproverSet{{Label: "owners of kv/app/db", Principals: []access.Principal{{Kind: access.PrincipalGroup, Name: "kv-owners"}}, Owner: true}}
	id := func(name string, groups ...string) *access.Identity {
		return &access.Identity{EntityID: "id-" + name, EntityName: name, Groups: groups}
	}
	for _, tc := range []struct {
		name      string
		who       *access.Identity
		resources []string
		perm      string
		ttl       time.Duration
		want      string
	}{
		{"group member, resource below the folder", id("a", "oncall"), []string{"kv/app/db"}, "read", 30 * time.Minute, "oncall"},
		{"the folder itself", id("a", "oncall"), []string{"kv/app/*"}, "read", time.Hour, "oncall"},
		{"a resource outside", id("a", "oncall"), []string{"kv/app/db", "kv/other/x"}, "read", time.Minute, ""},
		{"a permission not allowed", id("a", "oncall"), []string{"kv/app/db"}, "read-write", time.Minute, ""},
		{"longer than max_ttl", id("a", "oncall"), []string{"kv/app/db"}, "read", 2 * time.Hour, ""},
		{"not in the group", id("b", "dev"), []string{"kv/app/db"}, "read", time.Minute, ""},
		{"an entity rule, any permission and ttl", id("olly"), []string{"transit/k"}, "encrypt", 24 * time.Hour, "olly"},
		{"outside the rule's window", id("n", "night"), []string{"kv/app/db"}, "read", time.Minute, ""},
		{"inside the rule's window", id("d", "day"), []string{"kv/app/db"}, "read", time.Minute, "open"},
		{"an approver of the request itself", id("k", "oncall", "kv-owners"), []string{"kv/app/db"}, "read", time.Minute, ""},
		{"no resources", id("a", "oncall"), nil, "read", time.Minute, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := access.MatchAutoApprove(rules, access.AutoApproval{Requester: tc.who, Resources: tc.resources, Permission: tc.perm, Ttl: tc.ttl, At: time.Now(), Sets: owners})
			name := ""
			if got != nil {
				name = got.Name
			}
			if name != tc.want {
				t.Fatalf("matched %q, want %q", name, tc.want)
			}
		})
	}
}
