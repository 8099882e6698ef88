package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/apono-io/vault-plugin-apono/internal/testvault"
)

// Each access rule of the README's "What an auditor can rely on", tried as an attacker
// would against the real Vault, by real identities (userpass logins), with the README's
// policies: each attack is refused with a 400 or 403 that says why, and nothing is
// created in Vault.

// attackRole writes a role on mount as root.
func (a *attacksFixture) attackRole(t *testing.T, mount, name string, args ...string) {
	t.Helper()
	a.e.root(t, append([]string{"write", mount + "/roles/" + name}, args...)...)
}

func (a *attacksFixture) ask(t *testing.T, mount, role string, args ...string) map[string]interface{} {
	t.Helper()
	v := a.as(t, "alice", append([]string{"write", "-f", mount + "/requests/" + role}, args...)...)
	data, _ := v["data"].(map[string]interface{})
	if data["status"] != "pending" {
		t.Fatalf("new request: %v", v)
	}
	return data
}

// setLabels is "label = approvers" for each approver set of a request.
func setLabels(data map[string]interface{}) []string {
	var out []string
	for _, s := range data["approver_sets"].([]interface{}) {
		m := s.(map[string]interface{})
		var names []string
		for _, n := range m["approvers"].([]interface{}) {
			names = append(names, n.(string))
		}
		out = append(out, m["label"].(string)+" = "+strings.Join(names, "|"))
	}
	return out
}

// 1. Asked for a secret owned by kv-owners and one with no owner, the integration owner
// (erin, security) approves: that covers only the unowned one, and the request stays
// pending until kv-owners approve too.
func TestAttackIntegrationOwnerCannotApproveAnOwnedSecret(t *testing.T) {
	a := attacksEnv(t)
	e := a.e
	u := uniqueName(t)
	e.root(t, "kv", "put", "kv/"+u+"/db", "password=owned")
	e.root(t, "kv", "metadata", "put", "-custom-metadata=owner=kv-owners", "kv/"+u+"/db")
	e.root(t, "kv", "put", "kv/"+u+"/scratch", "v=1")
	a.attackRole(t, attacksMount, u, "resources=kv/"+u+"/*", "approval=required", "approvers=owner")

	req := a.ask(t, attacksMount, u, "resources=kv/"+u+"/db,kv/"+u+"/scratch")
	id := req["request_id"].(string)
	if got, want := strings.Join(setLabels(req), "\n"), "owners of kv/"+u+"/db = group:kv-owners\nintegration owner of kv/"+u+"/scratch = group:security"; got != want {
		t.Fatalf("approver sets:\n%s\nwant\n%s", got, want)
	}
	before := e.created(t, a.prefix)
	v := a.as(t, "erin", "write", "-f", attacksMount+"/requests/"+id+"/approve")["data"].(map[string]interface{})
	if v["status"] != "pending" || v["approval_progress"] != "1/1 approvals, 1/2 owner sets" {
		t.Fatalf("after erin alone: %v (%v)", v["status"], v["approval_progress"])
	}
	if open := jsonString(t, v["approver_sets_still_open"]); open != `["owners of kv/`+u+`/db"]` {
		t.Fatalf("still open after erin: %s", open)
	}
	a.refused(t, "alice", 400, "not approved yet", "write", "-f", attacksMount+"/requests/"+id+"/grant")
	a.nothingCreated(t, before, "a pickup after the integration owner alone")

	if s := a.as(t, "bob", "write", "-f", attacksMount+"/requests/"+id+"/approve")["data"].(map[string]interface{})["status"]; s != "approved" {
		t.Fatalf("after bob (kv-owners) too: %v", s)
	}
	g := e.grantAs(t, a.people["alice"].token, attacksMount+"/requests/"+id+"/grant")
	if got := strings.TrimSpace(e.s.MustCLI(t, e.mustLogin(t, g), "kv", "get", "-field=password", "kv/"+u+"/db")); got != "owned" {
		t.Fatalf("the grant read %q", got)
	}
	e.root(t, "lease", "revoke", "-sync", g.LeaseID)
}

// 2. A folder's owners are those of every secret below it: asked for kv/<u>/*, kv-owners
// (owner of db) and the integration owner (scratch has no tag) must both approve;
// apono/sync reports the same owners; a secret with another owner added before the
// pickup makes the pickup a 403 until it is gone.
func TestAttackFolderRequestNeedsEveryOwnerBelowIt(t *testing.T) {
	a := attacksEnv(t)
	e := a.e
	u := uniqueName(t)
	e.root(t, "kv", "put", "kv/"+u+"/db", "password=in-folder")
	e.root(t, "kv", "metadata", "put", "-custom-metadata=owner=kv-owners", "kv/"+u+"/db")
	e.root(t, "kv", "put", "kv/"+u+"/scratch", "v=1")
	a.attackRole(t, attacksMount, u, "resources=kv/"+u+"/*", "approval=required", "approvers=owner")

	req := a.ask(t, attacksMount, u, "resources=kv/"+u+"/*")
	id := req["request_id"].(string)
	if got, want := strings.Join(setLabels(req), "\n"), "owners of kv/"+u+"/db = group:kv-owners\nintegration owner of kv/"+u+"/scratch = group:security"; got != want {
		t.Fatalf("folder approver sets:\n%s\nwant\n%s", got, want)
	}
	// apono/sync shows an access system the very owners the request asks.
	e.root(t, "write", "-f", attacksMount+"/sync")
	res := e.jsonOut(t, "", "read", attacksMount+"/resources", "prefix=kv/"+u+"/", "limit=100")["data"].(map[string]interface{})
	var folder map[string]interface{}
	for _, en := range res["resources"].([]interface{}) {
		if m := en.(map[string]interface{}); m["name"] == "kv/"+u+"/*" {
			folder = m
		}
	}
	if got := jsonString(t, folder["owners"]); got != `[{"approvers":["group:kv-owners"],"source":"custom_metadata"},{"approvers":["group:security"],"source":"integration_owner"}]` {
		t.Fatalf("sync's owners of kv/%s/*: %s (entry %v)", u, got, folder)
	}
	if folder["owner_source"] != "several_owners" {
		t.Fatalf("sync's owner_source of the folder: %v", folder["owner_source"])
	}

	before := e.created(t, a.prefix)
	if s := a.as(t, "erin", "write", "-f", attacksMount+"/requests/"+id+"/approve")["data"].(map[string]interface{})["status"]; s != "pending" {
		t.Fatalf("the integration owner alone made the folder request %v", s)
	}
	a.refused(t, "alice", 400, "not approved yet", "write", "-f", attacksMount+"/requests/"+id+"/grant")
	if s := a.as(t, "bob", "write", "-f", attacksMount+"/requests/"+id+"/approve")["data"].(map[string]interface{})["status"]; s != "approved" {
		t.Fatalf("after both owners: %v", s)
	}
	// Someone adds a secret of another owner below the folder before the pickup: the
	// grant's glob would cover it, so its owner is asked first.
	e.root(t, "kv", "put", "kv/"+u+"/payroll", "v=1")
	e.root(t, "kv", "metadata", "put", "-custom-metadata=owner=pay-owners", "kv/"+u+"/payroll")
	a.refused(t, "alice", 403, "owners of kv/"+u+"/payroll (group:pay-owners) did not approve it", "write", "-f", attacksMount+"/requests/"+id+"/grant")
	a.nothingCreated(t, before, "a pickup after an owner was added")
	e.root(t, "kv", "metadata", "delete", "kv/"+u+"/payroll")
	g := e.grantAs(t, a.people["alice"].token, attacksMount+"/requests/"+id+"/grant")
	if got := strings.TrimSpace(e.s.MustCLI(t, e.mustLogin(t, g), "kv", "get", "-field=password", "kv/"+u+"/db")); got != "in-folder" {
		t.Fatalf("the folder grant read %q", got)
	}
	e.root(t, "lease", "revoke", "-sync", g.LeaseID)
}

// 3. A person with the README's requester policy lists and reads only their own requests
// and those they may decide: carol and erin see nothing of alice's request for a secret
// kv-owners own, and the operator's audit/requests is Vault's ACL's to refuse.
func TestAttackPeopleSeeOnlyTheirOwnRequests(t *testing.T) {
	a := attacksEnv(t)
	e := a.e
	u := uniqueName(t)
	e.root(t, "kv", "put", "kv/"+u+"/db", "v=1")
	e.root(t, "kv", "metadata", "put", "-custom-metadata=owner=kv-owners", "kv/"+u+"/db")
	a.attackRole(t, attacksMount, u, "resources=kv/"+u+"/db", "approval=required", "approvers=owner")
	id := a.ask(t, attacksMount, u, "justification=merger-plan-"+u)["request_id"].(string)

	for _, who := range []string{"carol", "erin"} {
		for _, args := range [][]string{
			{"list", "-detailed", attacksMount + "/requests"},
			{"read", attacksMount + "/requests"},
			{"read", attacksMount + "/requests", "status=pending"},
		} {
			out, _, _ := e.s.CLI(a.people[who].token, append(args, "-format=json")...)
			if strings.Contains(out, id) || strings.Contains(out, "merger-plan-"+u) {
				t.Fatalf("%s sees alice's request with vault %s:\n%s", who, strings.Join(args, " "), out)
			}
		}
		a.refused(t, who, 403, "is not yours to see", "read", attacksMount+"/requests/"+id)
		a.refused(t, who, 403, "permission denied", "list", attacksMount+"/audit/requests")
		a.refused(t, who, 403, "permission denied", "read", attacksMount+"/audit/requests/"+id)
	}
	for _, who := range []string{"alice", "bob"} {
		if got := a.as(t, who, "read", attacksMount+"/requests/"+id)["data"].(map[string]interface{})["justification"]; got != "merger-plan-"+u {
			t.Fatalf("%s cannot read the request: %v", who, got)
		}
	}
	if !strings.Contains(e.root(t, "list", attacksMount+"/audit/requests"), id) {
		t.Fatal("the operator's audit/requests does not list the request")
	}
	// The root token has no entity: the people's path says where an operator looks.
	e.mustBadRequest(t, attacksMount+"/audit/requests", "list", attacksMount+"/requests")
}

// 4. A person allowed to write grants/+ cannot name someone else as the requester; a
// token without an entity (a service) can, and the grant says it was stated. With the
// README's requester policy alone, a person cannot write a direct grant at all.
func TestAttackPersonCannotActForSomeoneElse(t *testing.T) {
	a := attacksEnv(t)
	e := a.e
	u := uniqueName(t)
	e.root(t, "kv", "put", "kv/"+u+"/db", "password=direct")
	a.attackRole(t, attacksMount, u, "resources=kv/"+u+"/db") // approval=none
	e.writePolicy(t, "attacks-grant-writer", `path "`+attacksMount+`/grants/+" { capabilities = ["update"] }`)
	erin := e.person(t, "writer-"+u, "attacks-grant-writer")

	before := e.created(t, a.prefix)
	stderr := e.mustFail(t, erin.token, "write", attacksMount+"/grants/"+u, "requester=bob@example.com")
	if !strings.Contains(stderr, "Code: 400") || !strings.Contains(stderr, "requester: not allowed from a caller with an identity entity") {
		t.Fatalf("a person naming another requester: %s", stderr)
	}
	a.nothingCreated(t, before, "a grant naming another requester")

	g := e.grantAs(t, erin.token, attacksMount+"/grants/"+u)
	rec := e.jsonOut(t, "", "read", attacksMount+"/grants/"+u+"/"+g.GrantID)["data"].(map[string]interface{})
	if rec["requester"] != "writer-"+u || rec["requester_kind"] != "entity" || rec["requester_entity"].(map[string]interface{})["entity_id"] != erin.entityID {
		t.Fatalf("the person's own grant: %v", rec)
	}
	e.root(t, "lease", "revoke", "-sync", g.LeaseID)

	// A service token (no entity) states whom a grant is for; the record says so.
	svc := e.jsonOut(t, "", "token", "create", "-policy=attacks-grant-writer", "-display-name=broker")["auth"].(map[string]interface{})["client_token"].(string)
	g = e.grantAs(t, svc, attacksMount+"/grants/"+u, "requester=bob@example.com")
	rec = e.jsonOut(t, "", "read", attacksMount+"/grants/"+u+"/"+g.GrantID)["data"].(map[string]interface{})
	if rec["requester"] != "bob@example.com" || rec["requester_kind"] != "stated" || rec["requester_stated_by"] != "token-broker" || rec["requester_entity"] != nil {
		t.Fatalf("a service's grant: %v", rec)
	}
	e.root(t, "lease", "revoke", "-sync", g.LeaseID)

	// The README's requester policy (alice, carol) lets a person pick up at grants/<role>
	// with request_id, and nothing else there.
	before = e.created(t, a.prefix)
	for _, args := range [][]string{
		{"write", "-f", attacksMount + "/grants/" + u},
		{"write", attacksMount + "/grants/" + u, "ttl=5m"},
		{"write", attacksMount + "/grants/" + u, "request_id=0f8fad5b-d9cb-469f-a165-70867728950e", "ttl=5m"},
	} {
		a.refused(t, "carol", 403, "permission denied", args...)
	}
	a.nothingCreated(t, before, "direct grants under the requester policy")
}

// The owner tag is the operator's: an admin grant of a secret cannot change its
// custom_metadata, by put or by patch, but can change the rest of its metadata.
func TestAttackGranteeCannotMoveOwnership(t *testing.T) {
	a := attacksEnv(t)
	e := a.e
	u := uniqueName(t)
	e.root(t, "kv", "put", "kv/"+u+"/db", "v=1")
	e.root(t, "kv", "metadata", "put", "-custom-metadata=owner=kv-owners", "kv/"+u+"/db")
	a.attackRole(t, attacksMount, u, "resources=kv/"+u+"/db,kv/"+u+"/*", "permissions=admin")
	g := e.grantAs(t, "", attacksMount+"/grants/"+u, "resources=kv/"+u+"/db")
	tok := e.mustLogin(t, g)
	for _, args := range [][]string{
		{"kv", "metadata", "put", "-custom-metadata=owner=" + g.Username, "kv/" + u + "/db"},
		{"kv", "metadata", "patch", "-custom-metadata=owner=" + g.Username, "kv/" + u + "/db"},
		{"write", "kv/metadata/" + u + "/db", "-"}, // the JSON body below, as the API takes it
	} {
		_, stderr, err := e.s.CLIWithStdin(tok, `{"custom_metadata":{"owner":"`+g.Username+`"}}`, args...)
		if err == nil || !strings.Contains(stderr, "Code: 403") || !strings.Contains(stderr, "permission denied") {
			t.Fatalf("vault %s as the admin grant: %v %s", strings.Join(args, " "), err, stderr)
		}
	}
	e.s.MustCLI(t, tok, "kv", "metadata", "put", "-max-versions=7", "kv/"+u+"/db")
	meta := e.jsonOut(t, "", "read", "kv/metadata/"+u+"/db")["data"].(map[string]interface{})
	if owner := meta["custom_metadata"].(map[string]interface{})["owner"]; owner != "kv-owners" || meta["max_versions"].(float64) != 7 {
		t.Fatalf("metadata after the grantee's writes: owner %v, max_versions %v", owner, meta["max_versions"])
	}
	// A folder admin grant cannot tag a secret below it either.
	g2 := e.grantAs(t, "", attacksMount+"/grants/"+u, "resources=kv/"+u+"/*")
	tok2 := e.mustLogin(t, g2)
	if stderr := e.mustFail(t, tok2, "kv", "metadata", "patch", "-custom-metadata=owner=me", "kv/"+u+"/db"); !strings.Contains(stderr, "Code: 403") {
		t.Fatalf("folder admin grant patched the owner tag: %s", stderr)
	}
	e.root(t, "lease", "revoke", "-sync", g.LeaseID)
	e.root(t, "lease", "revoke", "-sync", g2.LeaseID)
}

// approver_max_token_age: an approver's token older than the limit, or one made with
// auth/token/create from a login token, is refused; a fresh login approves.
func TestAttackOldTokenCannotDecide(t *testing.T) {
	a := attacksEnv(t)
	e := a.e
	u := uniqueName(t)
	e.root(t, "kv", "put", "kv/"+u+"/db", "v=1")
	e.writePolicy(t, "attacks-token-maker", `path "auth/token/create" { capabilities = ["update"] }`)
	olga := e.person(t, "olga-"+u, "attacks-approver", "attacks-token-maker")
	e.root(t, "write", "identity/group", "name=approvers-"+u, "member_entity_ids="+olga.entityID)
	a.attackRole(t, attacksMount, u, "resources=kv/"+u+"/db", "approval=required", "approvers=group:approvers-"+u, "approver_max_token_age=5s")
	id := a.ask(t, attacksMount, u)["request_id"].(string)

	// A token made from the login token looks new, but it is not a login.
	child := e.jsonOut(t, olga.token, "token", "create", "-policy=attacks-approver")["auth"].(map[string]interface{})["client_token"].(string)
	a.refusedToken(t, "olga's child token", child, 403, "made by auth/token/create, not by a login", "write", "-f", attacksMount+"/requests/"+id+"/approve")
	time.Sleep(6 * time.Second) // past approver_max_token_age since olga logged in
	a.refusedToken(t, "olga", olga.token, 403, "needs approvers to have logged in within 5s (approver_max_token_age)", "write", "-f", attacksMount+"/requests/"+id+"/approve")
	a.refusedToken(t, "olga", olga.token, 403, "approver_max_token_age", "write", "-f", attacksMount+"/requests/"+id+"/deny")
	if s := a.auditStatus(t, attacksMount, id); s != "pending" {
		t.Fatalf("refused decisions changed the request: %s", s)
	}
	e.loginPerson(t, olga)
	if s := e.jsonOut(t, olga.token, "write", "-f", attacksMount+"/requests/"+id+"/approve")["data"].(map[string]interface{})["status"]; s != "approved" {
		t.Fatalf("a fresh login's approval: %v", s)
	}
}

func (a *attacksFixture) auditStatus(t *testing.T, mount, id string) string {
	t.Helper()
	s, _ := a.e.jsonOut(t, "", "read", mount+"/audit/requests/"+id)["data"].(map[string]interface{})["status"].(string)
	return s
}

// The bounds: max_resources_per_request, max_open_requests, break_glass_allowed and one
// live break-glass grant per person and role. Each refusal says the limit and creates
// nothing. (A mount of its own: its limits would get in the other tests' way.)
func TestAttackBoundsRefuseAndCreateNothing(t *testing.T) {
	a := attacksEnv(t)
	e := a.e
	const mount = "apono-bounds"
	var failed error
	a.enableMount(t, mount, &failed)
	if failed != nil {
		t.Fatal(failed)
	}
	for name, file := range map[string]string{"bounds-requester": "access-requester.hcl", "bounds-approver": "access-approver.hcl"} {
		e.writePolicy(t, name, policyForMount(t, file, mount))
	}
	for _, who := range []string{"alice", "carol", "erin"} {
		e.root(t, "write", "identity/entity/id/"+a.people[who].entityID, "policies=attacks-requester,attacks-approver,bounds-requester,bounds-approver")
	}
	prefix, err := mountPrefix(e, mount)
	if err != nil {
		t.Fatal(err)
	}
	e.root(t, "write", mount+"/config", "max_resources_per_request=2", "max_open_requests=2")
	u := uniqueName(t)
	for _, s := range []string{"a", "b", "c"} {
		e.root(t, "kv", "put", "kv/"+u+"/"+s, "v=1")
	}
	three := "resources=kv/" + u + "/a,kv/" + u + "/b,kv/" + u + "/c"
	e.root(t, "write", mount+"/roles/flow", "resources=kv/"+u+"/a,kv/"+u+"/b,kv/"+u+"/c", "approval=required", "approvers=group:kv-owners",
		"break_glass=true", "break_glass_allowed=group:security")
	e.root(t, "write", mount+"/roles/direct", "resources=kv/"+u+"/a,kv/"+u+"/b,kv/"+u+"/c")

	before := e.created(t, prefix)
	a.refused(t, "alice", 400, "3 resources asked for; at most 2 are allowed in one request or grant (max_resources_per_request)", "write", mount+"/requests/flow", three)
	e.mustBadRequest(t, "at most 2 are allowed in one request or grant (max_resources_per_request)", "write", mount+"/grants/direct", three)
	a.refused(t, "erin", 400, "max_resources_per_request", "write", mount+"/break-glass/flow", three, "justification=outage")

	first := a.as(t, "alice", "write", mount+"/requests/flow", "resources=kv/"+u+"/a")["data"].(map[string]interface{})["request_id"].(string)
	a.as(t, "alice", "write", mount+"/requests/flow", "resources=kv/"+u+"/b")
	a.refused(t, "alice", 400, "you have 2 open requests (pending, or approved and not picked up); at most 2 are allowed at a time (max_open_requests)",
		"write", mount+"/requests/flow", "resources=kv/"+u+"/c")
	a.as(t, "carol", "write", mount+"/requests/flow", "resources=kv/"+u+"/c") // alice's limit is hers alone
	a.as(t, "alice", "write", "-f", mount+"/requests/"+first+"/cancel")
	a.as(t, "alice", "write", mount+"/requests/flow", "resources=kv/"+u+"/c")

	// Break-glass: only group:security, and one live grant per person and role.
	a.refused(t, "carol", 403, `break-glass on role "flow" is only for group:security`, "write", mount+"/break-glass/flow", "justification=outage")
	e.nothingCreatedSince(t, prefix, before, "refused requests, grants and break-glass")
	bg := e.grantAs(t, a.people["erin"].token, mount+"/break-glass/flow", "justification=outage", "resources=kv/"+u+"/a")
	withOne := e.created(t, prefix)
	a.refused(t, "erin", 400, `already holds 1 live break-glass grant(s) of role "flow"`, "write", mount+"/break-glass/flow", "justification=again", "resources=kv/"+u+"/a")
	e.nothingCreatedSince(t, prefix, withOne, "a second live break-glass grant")
	e.root(t, "lease", "revoke", "-sync", bg.LeaseID)
	bg = e.grantAs(t, a.people["erin"].token, mount+"/break-glass/flow", "justification=the first ended", "resources=kv/"+u+"/a")
	e.root(t, "lease", "revoke", "-sync", bg.LeaseID)
}

// nothingCreatedSince fails if a mount with prefix made objects since before.
func (e *env) nothingCreatedSince(t *testing.T, prefix string, before []string, what string) {
	t.Helper()
	if after := e.created(t, prefix); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Fatalf("%s made objects in Vault: before %v, after %v", what, before, after)
	}
}

// The event store never drops the audit trail to make room: with a store of 4 events and
// a receiver that is down, the requests asked for are dropped first; once only grants,
// approvals and denials are stored, new requests are refused (503, health says so); when
// the receiver is back it gets every one of those, and requests are taken again.
func TestAttackEventStoreKeepsTheAuditTrail(t *testing.T) {
	t.Parallel()
	e := ownVault(t, testvault.Options{PluginEnv: []string{"APONO_EVENT_STORE_MAX=4"}})
	hook := newEventReceiver("store-key")
	hook.setStatus(503)
	e.root(t, "write", "apono/config", "notify_url="+hook.URL(), "notify_secret=store-key")
	e.writePolicy(t, "store-people", requesterPolicy(t, "apono")+"\n"+approverPolicy(t, "apono"))
	alice := e.person(t, "alice", "store-people")
	bob := e.person(t, "bob", "store-people")
	e.root(t, "write", "identity/group", "name=owners", "member_entity_ids="+bob.entityID)
	e.root(t, "kv", "put", "kv/app/db", "v=1")
	e.root(t, "write", "apono/roles/app", "resources=kv/app/db", "approval=required", "approvers=group:owners", "ttl=10m")

	ask := func() string {
		return e.jsonOut(t, alice.token, "write", "-f", "apono/requests/app")["data"].(map[string]interface{})["request_id"].(string)
	}
	r1, r2 := ask(), ask()                                                      // 2 x request.created
	e.jsonOut(t, bob.token, "write", "-f", "apono/requests/"+r1+"/approve")     // request.approved
	e.jsonOut(t, bob.token, "write", "apono/requests/"+r2+"/deny", "reason=no") // request.denied: the store is full
	ask()                                                                       // request.created: the oldest created event makes room
	g := e.grantAs(t, alice.token, "apono/requests/"+r1+"/grant")               // grant.issued: the next created event makes room
	e.root(t, "lease", "revoke", "-sync", g.LeaseID)                            // grant.revoked: the last created event makes room

	stderr := e.mustFail(t, alice.token, "write", "-f", "apono/requests/app")
	if !strings.Contains(stderr, "Code: 503") || !strings.Contains(stderr, "never dropped to make room") {
		t.Fatalf("a request while only audit events are stored: %s", stderr)
	}
	health := e.jsonOut(t, "", "read", "apono/health")["data"].(map[string]interface{})
	if health["events_refusing_requests"] != true || health["events_pending"].(float64) != 4 || !strings.Contains(jsonString(t, health["problems"]), "new access requests are refused") {
		t.Fatalf("health with a full store: %v", health)
	}

	hook.setStatus(0)
	for _, typ := range []string{"request.approved", "request.denied", "grant.issued", "grant.revoked"} {
		hook.waitFor(t, 100*time.Second, typ, func(map[string]interface{}) bool { return true })
	}
	if created := hook.matching(func(m map[string]interface{}) bool { return m["type"] == "request.created" }); len(created) != 0 {
		t.Fatalf("%d request.created events were delivered; they were the ones dropped", len(created))
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		h := e.jsonOut(t, "", "read", "apono/health")["data"].(map[string]interface{})
		if h["events_refusing_requests"] == false {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("health still refusing after delivery: %v", h)
		}
		time.Sleep(time.Second)
	}
	ask()
}
