package backend

import (
	"strings"
	"testing"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/apono-io/vault-plugin-apono/backend/vaultapi/vaultfake"
	"github.com/hashicorp/vault/sdk/logical"
)

// onBehalfEnv is a flowEnv with lena, a lead (group leads, and in kv-owners too, so that
// only the rule against self-approval keeps her from approving what she asked for), and
// every person's entity known by name to the fake Vault (the for= lookup).
func onBehalfEnv(t *testing.T) (*flowEnv, string) {
	t.Helper()
	f := newFlowEnv(t)
	lena := f.ids.addEntity("lena", "leads", "kv-owners")
	for _, name := range []string{"alice", "bob", "carol", "dave", "erin", "lena"} {
		f.vault.Entities[name] = vaultfake.Entity{ID: "id-" + name}
	}
	f.mustOK(t, logical.CreateOperation, "roles/app", map[string]interface{}{
		"resources": "kv/app/*", "approval": "required", "approvers": "owner", "ttl": "10m",
		"on_behalf_allowed": "group:leads,entity:erin",
	})
	return f, lena
}

// requestCount is how many requests the operator's list holds.
func (f *flowEnv) requestCount(t *testing.T) int {
	t.Helper()
	return len(f.mustAs(t, "", logical.ReadOperation, "audit/requests", nil).Data["requests"].([]map[string]interface{}))
}

func TestOnBehalfRoleField(t *testing.T) {
	f, _ := onBehalfEnv(t)
	read := f.mustOK(t, logical.ReadOperation, "roles/app", nil).Data
	if got := read["on_behalf_allowed"].([]string); strings.Join(got, ",") != "group:leads,entity:erin" {
		t.Fatalf("on_behalf_allowed read back: %v", got)
	}
	for value, want := range map[string]string{
		"bob":          `on_behalf_allowed: "bob" is not a principal (allowed: group:<identity group name>, entity:<entity name>)`,
		"group:":       "on_behalf_allowed:",
		"owner":        `on_behalf_allowed: "owner" is not a principal`,
		"entity:a\x01": "on_behalf_allowed:",
	} {
		f.mustBadRequest(t, logical.UpdateOperation, "roles/app", map[string]interface{}{"on_behalf_allowed": value}, want)
	}
	if got := f.mustOK(t, logical.ReadOperation, "roles/app", nil).Data["on_behalf_allowed"].([]string); len(got) != 2 {
		t.Fatalf("a refused write changed the role: %v", got)
	}
	roles := f.mustAs(t, f.alice, logical.ReadOperation, "my/roles", nil).Data["roles"].([]map[string]interface{})
	if len(roles) != 1 || len(roles[0]["on_behalf_allowed"].([]string)) != 2 {
		t.Fatalf("my/roles: %v", roles)
	}
}

// Who may not ask for someone else, or names nobody or themself, gets a 403 or a 400
// naming for, and nothing is stored.
func TestOnBehalfRefusals(t *testing.T) {
	f, lena := onBehalfEnv(t)
	f.mustOK(t, logical.CreateOperation, "roles/plain", map[string]interface{}{
		"resources": "kv/app/*", "approval": "required", "approvers": "owner",
	})
	ask := map[string]interface{}{"resources": "kv/app/db", "for": "alice"}
	f.mustForbiddenAsWith(t, f.carol, "requests/app", ask, "carol (userpass-carol) may not ask for access for someone else on role \"app\": it needs one of group:leads, entity:erin")
	f.mustForbiddenAsWith(t, f.alice, "requests/app", map[string]interface{}{"for": "bob"}, "may not ask for access for someone else")
	f.mustForbiddenAsWith(t, lena, "requests/plain", ask, "its on_behalf_allowed is empty")
	for value, want := range map[string]string{
		"nobody":                 `for: no identity entity is named "nobody" in Vault`,
		"lena":                   "the caller: leave out for to ask for yourself",
		"":                       "for names the person the access is for",
		"a/b":                    "character '/' is not allowed",
		strings.Repeat("x", 200): "longer than 128 characters",
	} {
		f.mustBadRequestAs(t, lena, logical.UpdateOperation, "requests/app", map[string]interface{}{"resources": "kv/app/db", "for": value}, want)
	}
	// The entity's name may differ from the one on the caller's token: the ID decides.
	f.vault.Entities["lena-alias"] = vaultfake.Entity{ID: lena}
	f.mustBadRequestAs(t, lena, logical.UpdateOperation, "requests/app", map[string]interface{}{"for": "lena-alias"}, "the caller")
	// erin is allowed by entity:erin.
	f.mustAs(t, f.erin, logical.UpdateOperation, "requests/app", map[string]interface{}{"resources": "kv/app/db", "for": "alice", "dry_run": true})
	if n := f.requestCount(t); n != 0 {
		t.Fatalf("refused requests were stored: %d", n)
	}
	// Without read on identity/entity/name/* the plugin says which rule it needs.
	f.vault.Fail("Read", vaultfake.ErrForbidden)
	_, err := f.doAs(t, lena, logical.UpdateOperation, "requests/app", ask)
	f.vault.Fail("Read", nil)
	if err == nil || !strings.Contains(err.Error(), "identity/entity/name/*") {
		t.Fatalf("lookup refused by Vault: %v", err)
	}
}

// lena asks for alice: alice alone picks it up and sees it as hers, neither of them may
// approve or deny it, and the request, the grant, its history and the events name both.
func TestOnBehalfFlow(t *testing.T) {
	h := newHookReceiver(t)
	f, lena := onBehalfEnv(t)
	f.mustOK(t, logical.UpdateOperation, "config", map[string]interface{}{"notify_url": h.srv.URL})

	d := f.mustAs(t, lena, logical.UpdateOperation, "requests/app", map[string]interface{}{
		"resources": "kv/app/db", "for": "alice", "justification": "new joiner",
	}).Data
	id := d["request_id"].(string)
	if d["status"] != access.StatusPending || d["requester"] != "alice" || d["requester_entity_id"] != f.alice ||
		d["requested_by"] != "lena" || d["requested_by_entity_id"] != lena || d["on_behalf"] != true {
		t.Fatalf("request: %v", d)
	}

	listed := func(who string, data map[string]interface{}) bool {
		for _, r := range f.mustAs(t, who, logical.ReadOperation, "requests", data).Data["requests"].([]map[string]interface{}) {
			if r["request_id"] == id {
				if r["requester"] != "alice" || r["requested_by"] != "lena" {
					t.Fatalf("list entry: %v", r)
				}
				return true
			}
		}
		return false
	}
	mine := map[string]interface{}{"mine": true}
	canApprove := map[string]interface{}{"can_approve": true}
	if !listed(f.alice, mine) || !listed(lena, mine) || listed(f.bob, mine) {
		t.Fatal("mine=true: alice and lena see it, bob does not")
	}
	if !listed(f.bob, canApprove) || listed(lena, canApprove) || listed(f.alice, canApprove) {
		t.Fatal("can_approve=true: bob, not lena (an owner, but she asked) nor alice")
	}
	f.mustAs(t, f.alice, logical.ReadOperation, "requests/"+id, nil)
	f.mustAs(t, lena, logical.ReadOperation, "requests/"+id, nil)

	f.mustForbiddenAs(t, lena, "requests/"+id+"/approve", "lena (userpass-lena) asked for request "+id+" on behalf of alice and cannot approve it")
	f.mustForbiddenAs(t, f.alice, "requests/"+id+"/approve", "the person the access is for cannot approve it")
	f.mustForbiddenAs(t, lena, "requests/"+id+"/deny", "cancel the request")
	f.mustForbiddenAs(t, f.alice, "requests/"+id+"/deny", "cancel the request")
	f.mustBadRequestAs(t, f.alice, logical.UpdateOperation, "requests/"+id+"/grant", nil, "not approved yet")
	if s := f.status(t, id); s != access.StatusPending {
		t.Fatalf("status after refused approvals: %s", s)
	}

	f.mustAs(t, f.bob, logical.UpdateOperation, "requests/"+id+"/approve", map[string]interface{}{"reason": "ok"})
	f.mustForbiddenAs(t, lena, "requests/"+id+"/grant", "only alice, whose access it is, may pick up")
	f.mustForbiddenAs(t, f.carol, "requests/"+id+"/grant", "only the requester, alice")
	g := f.mustAs(t, f.alice, logical.UpdateOperation, "requests/"+id+"/grant", nil)
	gid := g.Data["grant_id"].(string)
	rec := f.mustOK(t, logical.ReadOperation, "grants/app/"+gid, nil).Data
	by, _ := rec["requested_by"].(map[string]interface{})
	if rec["requester"] != "alice" || by["entity_id"] != lena || by["name"] != "lena" {
		t.Fatalf("grant record: %v", rec)
	}
	if mine := f.mustAs(t, f.alice, logical.ReadOperation, "my/grants", nil).Data["grants"].([]map[string]interface{}); len(mine) != 1 || mine[0]["grant_id"] != gid {
		t.Fatalf("alice's my/grants: %v", mine)
	}
	if mine := f.mustAs(t, lena, logical.ReadOperation, "my/grants", nil).Data["grants"].([]map[string]interface{}); len(mine) != 0 {
		t.Fatalf("lena's my/grants: %v", mine)
	}

	h.waitFor(t, "a created event naming both", func(a []hookAttempt) bool {
		for _, x := range a {
			if x.typ == "request.created" && strings.Contains(x.body, `"requested_by":{"entity_id":"id-lena"`) &&
				strings.Contains(x.body, `"requester":"alice"`) {
				return true
			}
		}
		return false
	})

	if _, err := f.revoke(t, g.Secret); err != nil {
		t.Fatal(err)
	}
	hist := f.mustOK(t, logical.ReadOperation, "history", nil).Data["history"].([]map[string]interface{})
	if len(hist) != 1 || hist[0]["requester"] != "alice" || hist[0]["requested_by"] != "lena" {
		t.Fatalf("history: %v", hist)
	}
	_, rows := csvRows(t, f.mustOK(t, logical.ReadOperation, "history", map[string]interface{}{"format": "csv"}))
	if len(rows) != 1 || rows[0]["requester"] != "alice" || rows[0]["requested_by"] != "lena" {
		t.Fatalf("csv history: %v", rows)
	}
}

// Either of them may cancel it.
func TestOnBehalfEitherMayCancel(t *testing.T) {
	f, lena := onBehalfEnv(t)
	for _, who := range []string{lena, f.alice} {
		d := f.mustAs(t, lena, logical.UpdateOperation, "requests/app", map[string]interface{}{"resources": "kv/app/db", "for": "alice"}).Data
		id := d["request_id"].(string)
		f.mustForbiddenAs(t, f.carol, "requests/"+id+"/cancel", "only the requester")
		f.mustAs(t, who, logical.UpdateOperation, "requests/"+id+"/cancel", nil)
		if s := f.status(t, id); s != access.StatusCancelled {
			t.Fatalf("cancelled by %s: %s", who, s)
		}
	}
}

// A rule approves for the person the access is for, unless who asked could approve it.
func TestOnBehalfAutoApprove(t *testing.T) {
	f, lena := onBehalfEnv(t)
	f.ids.addEntity("olly", "oncall")
	f.ids.addEntity("lee", "leads")
	f.vault.Entities["olly"] = vaultfake.Entity{ID: "id-olly"}
	f.mustOK(t, logical.UpdateOperation, "roles/app", map[string]interface{}{
		"auto_approve": `[{"name":"oncall-read","groups":["oncall"],"resources":["kv/app/db"]}]`,
	})
	ask := func(who, grantee string) map[string]interface{} {
		return f.mustAs(t, who, logical.UpdateOperation, "requests/app", map[string]interface{}{"resources": "kv/app/db", "for": grantee}).Data
	}
	if d := ask("id-lee", "olly"); d["status"] != access.StatusApproved || d["auto_approved_by"] != "oncall-read" {
		t.Fatalf("lee for olly: %v", d)
	}
	if d := ask("id-lee", "alice"); d["status"] != access.StatusPending {
		t.Fatalf("lee for alice, not on call: %v", d)
	}
	if d := ask(lena, "olly"); d["status"] != access.StatusPending {
		t.Fatalf("lena, an owner, for olly: %v", d)
	}
}
