package e2e

import (
	"strings"
	"testing"

	"github.com/apono-io/vault-plugin-apono/internal/testvault"
)

// previousRelease is the last commit before the backend was split into layers (and before
// the security review's fixes): storage written by it must read the same after the move.
const previousRelease = "4559071"

// A mount upgraded in place from the previous release keeps its live grants, pending and
// approved requests, history and config: the new code lists, approves, picks up, renews,
// revokes and reports them, and the grant users of the old version lose their access when
// their grants end.
func TestUpgradeFromThePreviousReleaseKeepsEverything(t *testing.T) {
	t.Parallel()
	e := ownVault(t, testvault.Options{})
	const mount = "apono-prev"
	e.enableOldPlugin(t, previousRelease, "v0.0.10", mount)
	e.writePolicy(t, "prev-people", requesterPolicy(t, mount)+"\n"+approverPolicy(t, mount))
	alice := e.person(t, "alice", "prev-people")
	bob := e.person(t, "bob", "prev-people")
	e.root(t, "write", "identity/group", "name=prev-owners", "member_entity_ids="+bob.entityID)
	e.root(t, "kv", "put", "kv/prev/db", "password=before")
	e.root(t, "write", mount+"/roles/flow", "resources=kv/prev/db", "approval=required", "approvers=group:prev-owners", "ttl=10m", "max_ttl=1h")
	e.root(t, "write", mount+"/roles/direct", "resources=kv/prev/db", "ttl=10m", "max_ttl=1h")

	ask := func() string {
		return e.jsonOut(t, alice.token, "write", mount+"/requests/flow", "justification=before the upgrade")["data"].(map[string]interface{})["request_id"].(string)
	}
	approve := func(id string) { e.jsonOut(t, bob.token, "write", mount+"/requests/"+id+"/approve", "reason=ok") }
	pickUp := func(id string) grant { return e.grantAs(t, alice.token, mount+"/requests/"+id+"/grant") }

	pending := ask()
	approved := ask()
	approve(approved)
	live := ask()
	approve(live)
	gLive := pickUp(live)
	gDirect := e.grantAs(t, "", mount+"/grants/direct", "requester=svc@example.com")
	gEnded := e.grantAs(t, "", mount+"/grants/direct", "requester=ended@example.com")
	e.root(t, "lease", "revoke", "-sync", gEnded.LeaseID)
	oldToken := e.mustLogin(t, gLive)

	e.upgradeInPlace(t, mount)

	// Config: the stored credentials still log in (health), and nothing needs writing again.
	health := e.jsonOut(t, "", "read", mount+"/health")["data"].(map[string]interface{})
	if health["status"] == "down" || health["status"] == "not_configured" {
		t.Fatalf("health after the upgrade: %v", health)
	}
	// Requests: all three listed; the pending one is still bob's to approve.
	if got := e.requestIDs(t, "", mount+"/audit/requests"); strings.Join(got, ",") != strings.Join([]string{live, approved, pending}, ",") {
		t.Fatalf("requests after the upgrade: %v, want %v", got, []string{live, approved, pending})
	}
	if got := e.requestIDs(t, bob.token, mount+"/requests", "can_approve=true"); len(got) != 1 || got[0] != pending {
		t.Fatalf("bob can approve %v, want only %s", got, pending)
	}
	approve(pending)
	gPending, gApproved := pickUp(pending), pickUp(approved)
	for _, g := range []grant{gPending, gApproved} {
		if got := strings.TrimSpace(e.s.MustCLI(t, e.mustLogin(t, g), "kv", "get", "-field=password", "kv/prev/db")); got != "before" {
			t.Fatalf("a grant picked up after the upgrade read %q", got)
		}
	}
	// Live grants of the old version: listed, read, usable, renewable, revoked for good.
	if keys := e.listAll(t, mount+"/grants"); len(keys) != 4 {
		t.Fatalf("live grants after the upgrade: %v", keys)
	}
	rec := e.jsonOut(t, "", "read", mount+"/grants/flow/"+gLive.GrantID)["data"].(map[string]interface{})
	if rec["request_id"] != live || rec["requester"] == "" {
		t.Fatalf("the old grant's record after the upgrade: %v", rec)
	}
	if got := strings.TrimSpace(e.s.MustCLI(t, oldToken, "kv", "get", "-field=password", "kv/prev/db")); got != "before" {
		t.Fatalf("the old grant's token read %q after the upgrade", got)
	}
	e.root(t, "lease", "renew", gDirect.LeaseID)
	for _, g := range []grant{gLive, gDirect, gPending, gApproved} {
		e.root(t, "lease", "revoke", "-sync", g.LeaseID)
		if e.hasUser(t, g.Username) || e.hasPolicy(t, g.Policy) {
			t.Fatalf("grant %s left its user or policy after revoke", g.GrantID)
		}
	}
	if _, _, err := e.s.CLI(oldToken, "kv", "get", "kv/prev/db"); err == nil {
		t.Fatal("the old grant's token still reads after its grant was revoked")
	}
	// History: the grant that ended before the upgrade and those that ended after.
	hist := e.jsonOut(t, "", "read", mount+"/history")["data"].(map[string]interface{})
	ids := map[string]bool{}
	for _, h := range hist["history"].([]interface{}) {
		ids[h.(map[string]interface{})["grant_id"].(string)] = true
	}
	for _, g := range []grant{gEnded, gLive, gDirect, gPending, gApproved} {
		if !ids[g.GrantID] {
			t.Fatalf("history after the upgrade lacks grant %s: %v", g.GrantID, hist)
		}
	}
}
