package e2e

import (
	"strings"
	"testing"
)

// On behalf: a lead asks for access for someone else (requests/<role> with for=<entity
// name>), on the attack fixture's mount, whose AppRole has the identity additions of
// testdata/apono-identity.hcl (the for= lookup reads identity/entity/name/*), with the
// README's policies unchanged. The access is the grantee's: only they pick it up and see
// it as theirs, and neither of them may approve it.
func TestOnBehalfLeadAsksForAlice(t *testing.T) {
	a := attacksEnv(t)
	e := a.e
	u := uniqueName(t)
	mount := attacksMount
	leads := "leads-" + u
	e.root(t, "write", "identity/group", "name="+leads, "member_entity_ids="+a.people["carol"].entityID)
	t.Cleanup(func() { e.s.CLI("", "delete", "identity/group/name/"+leads) })
	e.root(t, "kv", "put", "kv/"+u+"/db", "password=on-behalf-secret")
	e.root(t, "kv", "metadata", "put", "-custom-metadata=owner=kv-owners", "kv/"+u+"/db")
	a.attackRole(t, mount, u, "resources=kv/"+u+"/*", "approval=required", "approvers=owner", "ttl=5m",
		"on_behalf_allowed=group:"+leads)
	if got := e.jsonOut(t, "", "read", mount+"/roles/"+u)["data"].(map[string]interface{})["on_behalf_allowed"]; jsonString(t, got) != `["group:`+leads+`"]` {
		t.Fatalf("on_behalf_allowed read back: %v", got)
	}
	e.mustBadRequest(t, `on_behalf_allowed: "carol" is not a principal`, "write", mount+"/roles/"+u, "on_behalf_allowed=carol")

	stored := func() int {
		v := e.jsonOut(t, "", "read", mount+"/audit/requests", "role="+u)
		reqs, _ := v["data"].(map[string]interface{})["requests"].([]interface{})
		return len(reqs)
	}
	path := mount + "/requests/" + u
	// People the role does not name may not ask for someone else: 403, nothing stored.
	a.refused(t, "dave", 403, "may not ask for access for someone else on role \""+u+"\"", "write", path, "resources=kv/"+u+"/db", "for=alice")
	a.refused(t, "alice", 403, "may not ask for access for someone else", "write", path, "for=bob")
	// The lead naming nobody, or herself: 400 naming for, nothing stored.
	a.refused(t, "carol", 400, `for: no identity entity is named "nobody-`+u+`"`, "write", path, "for=nobody-"+u)
	a.refused(t, "carol", 400, "the caller: leave out for to ask for yourself", "write", path, "for=carol")
	a.refused(t, "carol", 400, "for names the person the access is for", "write", path, "for=")
	if n := stored(); n != 0 {
		t.Fatalf("refused requests were stored: %d", n)
	}

	v := a.as(t, "carol", "write", path, "resources=kv/"+u+"/db", "for=alice", "justification=alice joins the team")
	req, _ := v["data"].(map[string]interface{})
	id, _ := req["request_id"].(string)
	if req["status"] != "pending" || req["requester"] != "alice" || req["requester_entity_id"] != a.people["alice"].entityID ||
		req["requested_by"] != "carol" || req["requested_by_entity_id"] != a.people["carol"].entityID || req["on_behalf"] != true {
		t.Fatalf("request on behalf: %v", v)
	}

	// alice sees it among hers, and so does carol, who asked.
	for _, who := range []string{"alice", "carol"} {
		if mine := a.as(t, who, "read", mount+"/requests", "mine=true"); !strings.Contains(jsonString(t, mine), id) {
			t.Fatalf("%s's mine=true lacks %s: %v", who, id, mine)
		}
	}
	if mine := a.as(t, "bob", "read", mount+"/requests", "mine=true"); strings.Contains(jsonString(t, mine), id) {
		t.Fatalf("bob's mine=true has %s", id)
	}

	a.refused(t, "carol", 403, "asked for request "+id+" on behalf of alice and cannot approve it", "write", "-f", mount+"/requests/"+id+"/approve")
	a.refused(t, "alice", 403, "the person the access is for cannot approve it", "write", "-f", mount+"/requests/"+id+"/approve")
	a.refused(t, "alice", 400, "not approved yet", "write", "-f", mount+"/requests/"+id+"/grant")
	if s := a.auditStatus(t, mount, id); s != "pending" {
		t.Fatalf("status after refused approvals: %s", s)
	}

	if got := a.as(t, "bob", "write", mount+"/requests/"+id+"/approve", "reason=welcome")["data"].(map[string]interface{}); got["status"] != "approved" {
		t.Fatalf("after bob: %v", got)
	}
	a.refused(t, "carol", 403, "on behalf of alice: only alice, whose access it is, may pick up", "write", "-f", mount+"/requests/"+id+"/grant")

	g := e.grantAs(t, a.people["alice"].token, mount+"/requests/"+id+"/grant")
	if g.Data["request_id"] != id {
		t.Fatalf("pickup answered for %v", g.Data["request_id"])
	}
	tok := e.mustLogin(t, g)
	if got := strings.TrimSpace(e.s.MustCLI(t, tok, "kv", "get", "-field=password", "kv/"+u+"/db")); got != "on-behalf-secret" {
		t.Fatalf("the grant's user read %q", got)
	}

	rec := e.jsonOut(t, "", "read", mount+"/grants/"+u+"/"+g.GrantID)["data"].(map[string]interface{})
	by, _ := rec["requested_by"].(map[string]interface{})
	if rec["requester"] != "alice" || by["entity_id"] != a.people["carol"].entityID || by["name"] != "carol" {
		t.Fatalf("grant record: %v", rec)
	}
	if mine := a.as(t, "alice", "read", mount+"/my/grants"); !strings.Contains(jsonString(t, mine), g.GrantID) {
		t.Fatalf("alice's my/grants lacks %s: %v", g.GrantID, mine)
	}

	e.root(t, "lease", "revoke", "-sync", g.LeaseID)
	hist := e.jsonOut(t, "", "read", mount+"/history", "role="+u)["data"].(map[string]interface{})["history"].([]interface{})
	if len(hist) != 1 {
		t.Fatalf("history: %v", hist)
	}
	if h := hist[0].(map[string]interface{}); h["grant_id"] != g.GrantID || h["requester"] != "alice" || h["requested_by"] != "carol" {
		t.Fatalf("history row: %v", h)
	}
	if n := stored(); n != 1 {
		t.Fatalf("requests of the role: %d, want the one asked for alice", n)
	}
}
