package e2e

import (
	"strings"
	"testing"
)

// Two mounts of the plugin name their users and policies apart, and revoking every grant
// of one leaves the other's intact.
func TestTwoMountsNeverTouchEachOther(t *testing.T) {
	e := shared
	role := uniqueName(t)
	mount := "apono-" + role[len(role)-8:]
	e.root(t, "secrets", "enable", "-path="+mount, "-plugin-version="+e.setup.Version, "vault-plugin-apono")
	defer e.root(t, "secrets", "disable", mount)
	// A second secret_id for the same AppRole: each mount logs in on its own.
	secretID := strings.TrimSpace(e.root(t, "write", "-f", "-field=secret_id", "auth/approle/role/apono-plugin/secret-id"))
	e.root(t, "write", mount+"/config", "vault_addr="+e.s.URL(), "role_id="+e.setup.RoleID, "secret_id="+secretID)

	e.root(t, "kv", "put", "kv/"+role+"/db", "v=1")
	e.root(t, "write", "apono/roles/"+role, "resources=kv/"+role+"/db", "ttl=5m")
	e.root(t, "write", mount+"/roles/"+role, "resources=kv/"+role+"/db", "ttl=5m")
	a := e.grant(t, role)
	v := e.jsonOut(t, "", "write", "-f", mount+"/grants/"+role)
	bUser := v["data"].(map[string]interface{})["username"].(string)

	prefixA := a.Username[:strings.LastIndex(a.Username, "-")+1]
	prefixB := bUser[:strings.LastIndex(bUser, "-")+1]
	if prefixA == prefixB {
		t.Fatalf("two mounts share the name prefix %q", prefixA)
	}
	// The other mount's path is not grantable from this one either.
	e.mustBadRequest(t, "grantable_path_prefixes (none is)", "write", "apono/roles/"+role+"-x", "resources="+mount+"/config")

	e.root(t, "lease", "revoke", "-sync", "-prefix", mount+"/") // done when it returns, not queued
	if !e.hasUser(t, a.Username) || !e.hasPolicy(t, a.Policy) {
		t.Fatal("revoking the other mount's grants removed this mount's user or policy")
	}
	if e.hasUser(t, bUser) || e.hasPolicy(t, bUser) {
		t.Fatal("the other mount's grant survived its revoke")
	}
	e.root(t, "lease", "revoke", a.LeaseID)
}
