package e2e

import (
	"strings"
	"testing"
	"time"
)

// flowsRole writes a role on the access-flow mount as root.
func (f *flowsFixture) role(t *testing.T, name string, args ...string) {
	t.Helper()
	f.e.root(t, append([]string{"write", flowsMount + "/roles/" + name}, args...)...)
}

// An owner named in custom_metadata approves; the requester, a person in no group and
// the integration owner cannot; only the requester picks up, once, and then reads the
// secret as the grant's user.
func TestAccessFlowOwnerApprovesRequesterPicksUp(t *testing.T) {
	f := flowsEnv(t)
	e := f.e
	role := uniqueName(t)
	e.root(t, "kv", "put", "kv/"+role+"/db", "password=flow-secret")
	e.root(t, "kv", "metadata", "put", "-custom-metadata=owner=kv-owners", "kv/"+role+"/db")
	f.role(t, role, "resources=kv/"+role+"/*", "approval=required", "approvers=owner", "ttl=5m")

	// Who asks is an identity entity: the root token has none.
	e.mustBadRequest(t, "log in through an auth method", "write", flowsMount+"/requests/"+role, "resources=kv/"+role+"/db")

	req := f.request(t, role, "resources=kv/"+role+"/db", "justification=INC-7 db migration")
	id := req["request_id"].(string)
	if got := req["approvers"].([]interface{}); len(got) != 1 || got[0] != "group:kv-owners" {
		t.Fatalf("approvers resolved from the owner tag: %v", got)
	}
	if req["requester"] != "alice" || req["requester_entity_id"] != f.people["alice"].entityID || req["expires_at"] == "" {
		t.Fatalf("request: %v", req)
	}

	f.refused(t, "alice", 403, "self-approval never counts", "write", "-f", flowsMount+"/requests/"+id+"/approve")
	f.refused(t, "carol", 403, "carol (userpass-carol) is not an approver", "write", "-f", flowsMount+"/requests/"+id+"/approve")
	f.refused(t, "erin", 403, "erin (userpass-erin) is not an approver", "write", "-f", flowsMount+"/requests/"+id+"/approve")
	f.refused(t, "alice", 400, "not approved yet", "write", "-f", flowsMount+"/requests/"+id+"/grant")
	if s := f.status(t, id); s != "pending" {
		t.Fatalf("status after refused approvals: %s", s)
	}

	approved := f.approve(t, "bob", id, "reason=owner of the db, fine for INC-7")
	if approved["status"] != "approved" || approved["pickup_by"] == "" {
		t.Fatalf("after bob: %v", approved)
	}
	f.refused(t, "carol", 403, "only the requester, alice (userpass-alice), may pick up", "write", "-f", flowsMount+"/requests/"+id+"/grant")

	g := f.pickUp(t, id)
	tok := e.mustLogin(t, g)
	if got := strings.TrimSpace(e.s.MustCLI(t, tok, "kv", "get", "-field=password", "kv/"+role+"/db")); got != "flow-secret" {
		t.Fatalf("the grant's user read %q", got)
	}
	f.refused(t, "alice", 400, "already picked up as grant "+g.GrantID, "write", "-f", flowsMount+"/requests/"+id+"/grant")

	// The grant's record names the request, each approver and their reason.
	rec := e.jsonOut(t, "", "read", flowsMount+"/grants/"+role+"/"+g.GrantID)["data"].(map[string]interface{})
	approvals, _ := rec["approvals"].([]interface{})
	if rec["request_id"] != id || rec["requester"] != "alice" || len(approvals) != 1 {
		t.Fatalf("grant record: %v", rec)
	}
	if a := approvals[0].(map[string]interface{}); a["approver"] != "bob" || a["reason"] != "owner of the db, fine for INC-7" {
		t.Fatalf("grant record approval: %v", a)
	}
	// vault list -detailed shows it, and alice's own filter finds it.
	list := e.jsonOut(t, "", "list", "-detailed", flowsMount+"/audit/requests")
	info, _ := list["data"].(map[string]interface{})["key_info"].(map[string]interface{})[id].(map[string]interface{})
	if info["status"] != "granted" || info["requester"] != "alice" || info["approvals"] != "1/1 approvals, 1/1 owner sets" {
		t.Fatalf("list -detailed entry: %v", info)
	}
	mine := f.as(t, "alice", "read", flowsMount+"/requests", "mine=true", "status=granted")
	if !strings.Contains(jsonString(t, mine), id) {
		t.Fatalf("mine=true status=granted lacks %s: %v", id, mine)
	}
	e.root(t, "lease", "revoke", g.LeaseID)
}

// A secret with no owner tag is approved by the integration owner, not by kv-owners.
func TestAccessFlowNoOwnerFallsBackToIntegrationOwner(t *testing.T) {
	f := flowsEnv(t)
	e := f.e
	role := uniqueName(t)
	e.root(t, "kv", "put", "kv/"+role+"/plain", "v=1")
	f.role(t, role, "resources=kv/"+role+"/plain", "approval=required", "approvers=owner")
	id := f.request(t, role)["request_id"].(string)
	canApprove := func(who string) bool {
		v := f.as(t, who, "read", flowsMount+"/requests", "can_approve=true")
		return strings.Contains(jsonString(t, v), id)
	}
	if canApprove("bob") || !canApprove("erin") {
		t.Fatalf("can_approve: bob %v erin %v; want only erin", canApprove("bob"), canApprove("erin"))
	}
	f.refused(t, "bob", 403, "group:security", "write", "-f", flowsMount+"/requests/"+id+"/approve")
	if got := f.approve(t, "erin", id); got["status"] != "approved" {
		t.Fatalf("after erin: %v", got)
	}
}

// required_approvals=2 needs two distinct people: bob twice is not enough, bob and dave are.
func TestAccessFlowTwoApprovalsNeedTwoPeople(t *testing.T) {
	f := flowsEnv(t)
	e := f.e
	role := uniqueName(t)
	e.root(t, "kv", "put", "kv/"+role+"/db", "v=1")
	f.role(t, role, "resources=kv/"+role+"/db", "approval=required", "approvers=group:kv-owners", "required_approvals=2", "require_approver_reason=true")
	id := f.request(t, role)["request_id"].(string)
	f.refused(t, "bob", 400, "reason is required", "write", "-f", flowsMount+"/requests/"+id+"/approve")
	f.approve(t, "bob", id, "reason=first")
	v := f.as(t, "bob", "write", flowsMount+"/requests/"+id+"/approve", "reason=second time")
	if w := jsonString(t, v["warnings"]); !strings.Contains(w, "counts once") {
		t.Fatalf("bob's second approval: warnings %s", w)
	}
	if s := f.status(t, id); s != "pending" {
		t.Fatalf("bob twice made it %s", s)
	}
	if got := f.approve(t, "dave", id, "reason=second person"); got["status"] != "approved" || got["approval_progress"] != "2/2 approvals" {
		t.Fatalf("after bob and dave: %v", got)
	}

	// Picked up at grants/<role> with request_id, the lease is the role's like any other
	// grant of it, and revoke -prefix <mount>/grants/<role> ends it.
	g := e.grantAs(t, f.people["alice"].token, flowsMount+"/grants/"+role, "request_id="+id)
	if prefix := flowsMount + "/grants/" + role + "/"; !strings.HasPrefix(g.LeaseID, prefix) || g.Data["request_id"] != id {
		t.Fatalf("pickup at grants/%s: lease %s (want it under %s), request_id %v", role, g.LeaseID, prefix, g.Data["request_id"])
	}
	e.mustLogin(t, g)
	e.root(t, "lease", "revoke", "-sync", "-prefix", flowsMount+"/grants/"+role)
	if user, policy := e.hasUser(t, g.Username), e.hasPolicy(t, g.Policy); user || policy {
		t.Fatalf("left after revoke -prefix %s/grants/%s: user %v, policy %v", flowsMount, role, user, policy)
	}
}

// A denial is final: an approver who could otherwise approve is refused afterwards, and so
// is the pickup.
func TestAccessFlowDenyIsFinal(t *testing.T) {
	f := flowsEnv(t)
	e := f.e
	role := uniqueName(t)
	e.root(t, "kv", "put", "kv/"+role+"/db", "v=1")
	f.role(t, role, "resources=kv/"+role+"/db", "approval=required", "approvers=group:security,group:kv-owners")
	id := f.request(t, role)["request_id"].(string)
	f.as(t, "erin", "write", flowsMount+"/requests/"+id+"/deny", "reason=not during the freeze")
	f.refused(t, "bob", 400, "was denied by erin", "write", "-f", flowsMount+"/requests/"+id+"/approve")
	f.refused(t, "alice", 400, "denied", "write", "-f", flowsMount+"/requests/"+id+"/grant")
	data := e.jsonOut(t, "", "read", flowsMount+"/audit/requests/"+id)["data"].(map[string]interface{})
	if data["status"] != "denied" || data["decided_by"] != "erin" || data["decision_reason"] != "not during the freeze" {
		t.Fatalf("denied request: %v", data)
	}

	// Cancelling is the requester's alone.
	id = f.request(t, role)["request_id"].(string)
	f.refused(t, "bob", 403, "only the requester", "write", "-f", flowsMount+"/requests/"+id+"/cancel")
	f.as(t, "alice", "write", "-f", flowsMount+"/requests/"+id+"/cancel")
	f.refused(t, "bob", 400, "cancelled", "write", "-f", flowsMount+"/requests/"+id+"/approve")
}

// all_of across two secrets with different owners needs an approval from each owner.
func TestAccessFlowAllOfNeedsEachOwner(t *testing.T) {
	f := flowsEnv(t)
	e := f.e
	role := uniqueName(t)
	e.root(t, "kv", "put", "kv/"+role+"/db", "v=1")
	e.root(t, "kv", "metadata", "put", "-custom-metadata=owner=kv-owners", "kv/"+role+"/db")
	e.root(t, "kv", "put", "kv/"+role+"/audit", "v=2")
	e.root(t, "kv", "metadata", "put", "-custom-metadata=owner=entity:erin", "kv/"+role+"/audit")
	f.role(t, role, "resources=kv/"+role+"/*", "approval=required", "approvers=owner", "approval_mode=all_of")

	req := f.request(t, role, "resources=kv/"+role+"/db,kv/"+role+"/audit")
	id := req["request_id"].(string)
	if got := jsonString(t, req["approvers"]); got != `["entity:erin","group:kv-owners"]` {
		t.Fatalf("approvers: %s", got)
	}
	after := f.approve(t, "bob", id)
	if after["status"] != "pending" || !strings.Contains(after["approval_progress"].(string), "1/2 approver sets") {
		t.Fatalf("after one owner: %v %v", after["status"], after["approval_progress"])
	}
	if got := f.approve(t, "erin", id); got["status"] != "approved" {
		t.Fatalf("after both owners: %v", got)
	}
	g := f.pickUp(t, id)
	tok := e.mustLogin(t, g)
	e.s.MustCLI(t, tok, "kv", "get", "kv/"+role+"/db")
	e.s.MustCLI(t, tok, "kv", "get", "kv/"+role+"/audit")
	e.root(t, "lease", "revoke", g.LeaseID)
}

// A request nobody approves expires at request_ttl on its own: the expiry event arrives
// without anyone reading the request, and approving it afterwards is refused.
func TestAccessFlowRequestExpiresUnattended(t *testing.T) {
	t.Parallel()
	f := flowsEnv(t)
	e := f.e
	role := uniqueName(t)
	e.root(t, "kv", "put", "kv/"+role+"/db", "v=1")
	f.role(t, role, "resources=kv/"+role+"/db", "approval=required", "approvers=group:kv-owners", "request_ttl=3s")
	id := f.request(t, role)["request_id"].(string)
	// Vault's rollback manager runs the plugin's periodic job once a minute.
	ev := f.hook.waitFor(t, 150*time.Second, "request.expired", func(m map[string]interface{}) bool { return m["request_id"] == id })
	if ev.fields["status"] != "expired" {
		t.Fatalf("expiry event: %v", ev.fields)
	}
	if s := f.status(t, id); s != "expired" {
		t.Fatalf("status: %s", s)
	}
	f.refused(t, "bob", 400, "expired unapproved", "write", "-f", flowsMount+"/requests/"+id+"/approve")
}

// An approved request not picked up within pickup_ttl cannot be picked up.
func TestAccessFlowPickupAfterWindowIsRefused(t *testing.T) {
	t.Parallel()
	f := flowsEnv(t)
	e := f.e
	role := uniqueName(t)
	e.root(t, "kv", "put", "kv/"+role+"/db", "v=1")
	f.role(t, role, "resources=kv/"+role+"/db", "approval=required", "approvers=entity:erin", "pickup_ttl=3s")
	id := f.request(t, role)["request_id"].(string)
	f.approve(t, "erin", id)
	time.Sleep(4 * time.Second)
	f.refused(t, "alice", 400, "not picked up by", "write", "-f", flowsMount+"/requests/"+id+"/grant")
	// Other tests make users on this Vault meanwhile: the grants of this test's role, and
	// the request's grant_id, say whether the refused pickup made one.
	if s, err := e.s.Client.Logical().ReadWithData(flowsMount+"/grants", map[string][]string{"list": {"true"}, "role": {role}}); err != nil || (s != nil && s.Data["keys"] != nil) {
		t.Fatalf("a refused pickup made grants: %v %v", s, err)
	}
	if g := e.jsonOut(t, "", "read", flowsMount+"/audit/requests/"+id)["data"].(map[string]interface{})["grant_id"]; g != "" {
		t.Fatalf("a refused pickup gave the request grant %v", g)
	}
}

// A direct grant on an approval role is refused with the path to ask at; break-glass
// works where the role allows it, capped at break_glass_max_ttl and marked everywhere.
func TestAccessFlowBreakGlass(t *testing.T) {
	f := flowsEnv(t)
	e := f.e
	role := uniqueName(t)
	e.root(t, "kv", "put", "kv/"+role+"/db", "password=bg")
	f.role(t, role, "resources=kv/"+role+"/db", "approval=required", "approvers=group:kv-owners", "ttl=1h", "max_ttl=4h")
	// A person's requester policy allows grants/<role> only with request_id; without a
	// policy in the way, the plugin says where to ask.
	f.refused(t, "alice", 403, "permission denied", "write", "-f", flowsMount+"/grants/"+role)
	e.mustBadRequest(t, flowsMount+"/requests/"+role, "write", "-f", flowsMount+"/grants/"+role)
	f.refused(t, "alice", 400, "does not allow break-glass", "write", flowsMount+"/break-glass/"+role, "justification=db down")

	f.role(t, role, "break_glass=true", "break_glass_max_ttl=2m")
	f.refused(t, "alice", 400, "justification is required for break-glass", "write", "-f", flowsMount+"/break-glass/"+role)
	_, offset := e.serverLog(t, 0)
	v := f.as(t, "alice", "write", flowsMount+"/break-glass/"+role, "justification=INC-9 prod db down", "ttl=1h")
	data := v["data"].(map[string]interface{})
	if v["lease_duration"].(float64) != 120 || data["break_glass"] != true || !strings.Contains(jsonString(t, v["warnings"]), "break_glass_max_ttl") {
		t.Fatalf("break-glass grant: %v", v)
	}
	grantID := data["grant_id"].(string)
	rec := e.jsonOut(t, "", "read", flowsMount+"/grants/"+role+"/"+grantID)["data"].(map[string]interface{})
	if rec["break_glass"] != true || rec["requester"] != "alice" || rec["justification"] != "INC-9 prod db down" {
		t.Fatalf("break-glass record: %v", rec)
	}
	e.waitLogLine(t, offset, 10*time.Second, "BREAK-GLASS", grantID)
	f.hook.waitFor(t, 20*time.Second, "grant.break_glass", func(m map[string]interface{}) bool { return m["grant_id"] == grantID })
	// Renewal cannot stretch it past the cap either.
	r := e.jsonOut(t, "", "lease", "renew", "-increment=1h", v["lease_id"].(string))
	if d := r["lease_duration"].(float64); d > 120 {
		t.Fatalf("break-glass lease renewed to %vs", d)
	}
	e.root(t, "lease", "revoke", v["lease_id"].(string))
}

// The local receiver gets every kind of event, each with a valid signature, and no event
// holds a password, secret_id or token.
func TestAccessFlowEventsReachTheReceiverSigned(t *testing.T) {
	f := flowsEnv(t)
	e := f.e
	role := uniqueName(t)
	e.root(t, "kv", "put", "kv/"+role+"/db", "v=1")
	f.role(t, role, "resources=kv/"+role+"/db", "approval=required", "approvers=group:kv-owners",
		"break_glass=true", "break_glass_max_ttl=1m")

	granted := f.request(t, role, "justification=events")["request_id"].(string)
	f.approve(t, "bob", granted, "reason=ok")
	g := f.pickUp(t, granted)
	e.root(t, "lease", "revoke", g.LeaseID)
	denied := f.request(t, role)["request_id"].(string)
	f.as(t, "dave", "write", flowsMount+"/requests/"+denied+"/deny", "reason=no")
	cancelled := f.request(t, role)["request_id"].(string)
	f.as(t, "alice", "write", "-f", flowsMount+"/requests/"+cancelled+"/cancel")
	bg := f.as(t, "alice", "write", flowsMount+"/break-glass/"+role, "justification=outage")
	bgData := bg["data"].(map[string]interface{})
	e.root(t, "lease", "revoke", bg["lease_id"].(string))

	ofRequest := func(id string) func(map[string]interface{}) bool {
		return func(m map[string]interface{}) bool { return m["request_id"] == id }
	}
	ofGrant := func(id string) func(map[string]interface{}) bool {
		return func(m map[string]interface{}) bool { return m["grant_id"] == id }
	}
	for _, w := range []struct {
		typ   string
		match func(map[string]interface{}) bool
	}{
		{"request.created", ofRequest(granted)},
		{"request.approved", ofRequest(granted)},
		{"grant.issued", ofGrant(g.GrantID)},
		{"grant.revoked", ofGrant(g.GrantID)},
		{"request.denied", ofRequest(denied)},
		{"request.cancelled", ofRequest(cancelled)},
		{"grant.break_glass", ofGrant(bgData["grant_id"].(string))},
		{"grant.issued", ofGrant(bgData["grant_id"].(string))},
		{"grant.revoked", ofGrant(bgData["grant_id"].(string))},
	} {
		f.hook.waitFor(t, 30*time.Second, w.typ, w.match)
	}
	approved := f.hook.waitFor(t, time.Second, "request.approved", ofRequest(granted)).fields
	if actor, _ := approved["actor"].(map[string]interface{}); actor["entity_name"] != "bob" || approved["reason"] != "ok" {
		t.Fatalf("approved event: %v", approved)
	}
	if n := f.hook.badCount(); n != 0 {
		t.Fatalf("%d events arrived without a valid signature", n)
	}
	secrets := map[string]string{"grant password": g.Password, "break-glass password": bgData["password"].(string),
		"AppRole secret_id": f.secretID, "notify_secret": flowsHookSecret}
	for name, p := range f.people {
		secrets[name+"'s token"] = p.token
		secrets[name+"'s password"] = p.password
	}
	all := f.hook.matching(func(map[string]interface{}) bool { return true })
	for _, ev := range all {
		for name, s := range secrets {
			if strings.Contains(ev.body, s) {
				t.Fatalf("a %s event holds the %s: %s", ev.fields["type"], name, ev.body)
			}
		}
	}
	t.Logf("%d events received, all signed, none holding a secret", len(all))
}

// Ended requests are removed by the periodic job once request_retention has passed
// (its own mount, so that the short retention touches no other test's requests).
func TestAccessFlowEndedRequestsGoAfterRetention(t *testing.T) {
	t.Parallel()
	f := flowsEnv(t)
	e := f.e
	mount := "apono-retention"
	e.root(t, "secrets", "enable", "-path="+mount, "-plugin-version="+e.setup.Version, "vault-plugin-apono")
	e.root(t, "write", mount+"/config", "vault_addr="+e.s.URL(), "role_id="+e.setup.RoleID, "secret_id="+e.newSecretID(t),
		"request_retention=1s")
	e.writePolicy(t, "retention-requester", requesterPolicy(t, mount))
	// Any person with an entity will do: rita asks and cancels.
	e.root(t, "write", "auth/userpass/users/rita", "password=pw-rita-Zq81", "token_policies=retention-requester")
	tok, err := e.login("rita", "pw-rita-Zq81")
	if err != nil {
		t.Fatal(err)
	}
	e.root(t, "kv", "put", "kv/retention/db", "v=1")
	e.root(t, "write", mount+"/roles/r", "resources=kv/retention/db", "approval=required", "approvers=group:kv-owners")
	v := e.jsonOut(t, tok, "write", "-f", mount+"/requests/r")
	id := v["data"].(map[string]interface{})["request_id"].(string)
	e.jsonOut(t, tok, "write", "-f", mount+"/requests/"+id+"/cancel")
	if s := e.jsonOut(t, "", "read", mount+"/audit/requests/"+id)["data"].(map[string]interface{})["status"]; s != "cancelled" {
		t.Fatalf("status %v", s)
	}
	deadline := time.Now().Add(150 * time.Second)
	for {
		out, _, err := e.s.CLI("", "read", "-format=json", mount+"/audit/requests/"+id)
		if err != nil && strings.Contains(err.Error(), "No value found") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ended request still readable after 150 s with request_retention=1s: %v %s", err, out)
		}
		time.Sleep(2 * time.Second)
	}
}

// Every access-flow path answers path-help and is in Vault's OpenAPI document, with its
// fields.
func TestAccessFlowPathsHaveHelpAndOpenAPI(t *testing.T) {
	e := shared
	for path, want := range map[string]string{
		"apono/requests":     "List access requests",
		"apono/requests/app": "Ask for access from a role",
		"apono/requests/0f8fad5b-d9cb-469f-a165-70867728950e/approve": "Approve a pending request",
		"apono/requests/0f8fad5b-d9cb-469f-a165-70867728950e/deny":    "Deny a request",
		"apono/requests/0f8fad5b-d9cb-469f-a165-70867728950e/cancel":  "Cancel your own request",
		"apono/requests/0f8fad5b-d9cb-469f-a165-70867728950e/grant":   "Turn your approved request into a grant",
		"apono/break-glass/app": "Grant access at once in an emergency",
		"apono/audit/requests":  "Every access request of the mount",
		"apono/audit/requests/0f8fad5b-d9cb-469f-a165-70867728950e": "Read any access request",
		"apono/grants/app/0123456789abcdef/extend":                  "Ask for a live grant to last longer",
		"apono/my/roles":               "What people may ask for",
		"apono/my/grants":              "The caller's own live grants",
		"apono/my/history":             "The caller's own ended grants",
		"apono/history":                "Ended grants: who had access to what",
		"apono/notify/team-slack":      "A named notification target",
		"apono/notify":                 "List the notification targets",
		"apono/indexes":                "State of the indexes",
		"apono/indexes/rebuild":        "Add every record's index entries again",
		"apono/bundles/oncall":         "Define a bundle",
		"apono/bundles":                "List the bundles",
		"apono/my/bundles":             "What people may ask for as a bundle",
		"apono/requests/bundle/oncall": "Ask for a bundle's access",
	} {
		if help := e.root(t, "path-help", path); !strings.Contains(help, want) {
			t.Errorf("path-help %s lacks %q:\n%s", path, want, help)
		}
	}
	spec := jsonString(t, e.jsonOut(t, "", "read", "sys/internal/specs/openapi"))
	for _, want := range []string{
		`"/apono/requests/"`, `"/apono/requests/{name}"`, `"/apono/requests/{id}/approve"`, `"/apono/requests/{id}/deny"`,
		`"/apono/requests/{id}/cancel"`, `"/apono/requests/{id}/grant"`, `"/apono/break-glass/{role}"`,
		`"/apono/audit/requests/"`, `"/apono/audit/requests/{id}"`,
		`"break_glass_allowed"`, `"break_glass_max_live_grants"`, `"approver_max_token_age"`,
		`"max_resources_per_request"`, `"max_open_requests"`, `"max_folder_secrets"`,
		`"/apono/grants/{role}/{grant_id}/extend"`, `"/apono/my/roles"`, `"/apono/my/grants/"`, `"/apono/my/history"`, `"/apono/history"`,
		`"/apono/notify/{name}"`, `"/apono/indexes"`, `"/apono/indexes/rebuild"`,
		`"access_windows"`, `"windows_cap_grants"`, `"max_schedule_ahead"`, `"auto_approve"`, `"start_at"`, `"wait"`, `"dry_run"`,
		`"history_retention"`, `"portal_url"`, `"password_hash_cost"`, `"limit"`, `"after"`, `"format"`, `"events"`,
		`"approvers"`, `"approval_mode"`, `"required_approvals"`, `"request_ttl"`, `"pickup_ttl"`, `"require_approver_reason"`,
		`"break_glass"`, `"break_glass_max_ttl"`, `"request_id"`, `"notify_url"`, `"notify_secret"`, `"notify_ca_cert"`, `"request_retention"`,
		`"can_approve"`, `"/apono/bundles/{name}"`, `"/apono/my/bundles"`, `"/apono/requests/bundle/{name}"`, `"parts"`,
	} {
		if !strings.Contains(spec, want) {
			t.Errorf("the OpenAPI document lacks %s", want)
		}
	}
}
