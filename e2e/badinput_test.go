package e2e

import (
	"reflect"
	"strings"
	"testing"
)

// snapshot is the state bad input must not change.
type snapshot struct {
	users, policies []string
	roles           string
	config          map[string]interface{}
}

func (e *env) snapshot(t *testing.T) snapshot {
	t.Helper()
	u, p := e.aponoObjects(t)
	roles, _, _ := e.s.CLI("", "list", "-format=json", "apono/roles")
	return snapshot{users: u, policies: p, roles: roles, config: e.jsonOut(t, "", "read", "apono/config")["data"].(map[string]interface{})}
}

// Every kind of bad input gets a 400 naming what is wrong, and Vault's users, policies,
// the plugin's roles and its config are the same afterwards.
func TestBadInputIsRejectedAndChangesNothing(t *testing.T) {
	e := shared
	role := uniqueName(t)
	e.root(t, "secrets", "enable", "-path="+role+"-kv1", "-version=1", "kv")
	e.root(t, "kv", "put", "kv/"+role+"/db", "v=1")
	e.root(t, "write", "apono/roles/"+role, "resources=kv/"+role+"/db,kv/"+role+"/dir/*", "permissions=read", "ttl=5m")
	e.root(t, "write", "apono/roles/"+role+"-strict", "resources=kv/"+role+"/db", "require_justification=true")

	before := e.snapshot(t)
	roleCases := []struct{ resources, want string }{
		{"sys/policies/acl/root", "nothing under sys/"},
		{"auth/userpass/users/admin", "nothing under auth/"},
		{"identity/entity/name/x", "nothing under identity/"},
		{"cubbyhole/x", "nothing under cubbyhole/"},
		{"apono/config", "own mount"},
		{"kv/a/../../sys/mounts", `".." segments are not allowed`},
		{"kv//a", "empty path segment"},
		{"kv/a/", "empty path segment"},
		{`kv/a"b`, "is not allowed"},
		{"kv/a{b}", "is not allowed"},
		{"kv/{{identity.entity.id}}/x", "is not allowed"},
		{"kv/+/x", "is not allowed"},
		{"kv/*/x", "is not allowed"},
		{"kv/a*", "is not allowed"},
		{"kv/a\nb", "is not allowed"},
		{"kv/a\x1bb", "is not allowed"},      // escape: a NUL cannot be passed in argv
		{"kv/\u0430pp/db", "is not allowed"}, // Cyrillic a
		{"kv/" + strings.Repeat("a", 600), "longer than 512"},
		{role + "-kv1/db", "kv version 1"},
		{"nomount/db", "not under any mounted"},
		{"transit/*", "one key"},
		{"kv", "must name a mount and a path"},
	}
	for _, tc := range roleCases {
		e.mustBadRequest(t, tc.want, "write", "apono/roles/"+role+"-new", "resources="+tc.resources)
	}
	otherCases := []struct {
		want string
		args []string
	}{
		{"not a permission level", []string{"write", "apono/roles/" + role + "-new", "resources=kv/" + role + "/db", "permissions=root"}},
		{"applies to transit", []string{"write", "apono/roles/" + role + "-new", "resources=kv/" + role + "/db", "permissions=encrypt"}},
		{"token_bound_cidrs", []string{"write", "apono/roles/" + role + "-new", "resources=kv/" + role + "/db", "token_bound_cidrs=300.0.0.0/8"}},
		{"max_ttl", []string{"write", "apono/roles/" + role + "-new", "resources=kv/" + role + "/db", "ttl=2h", "max_ttl=1h"}},
		{"not a valid role name", []string{"write", "apono/roles/a.b", "resources=kv/" + role + "/db"}},
		{"does not exist", []string{"write", "-f", "apono/grants/" + role + "-missing"}},
		{"not among role", []string{"write", "apono/grants/" + role, "resources=kv/" + role + "/other"}},
		{"nothing under sys/", []string{"write", "apono/grants/" + role, "resources=sys/mounts"}},
		{"not allowed by role", []string{"write", "apono/grants/" + role, "permission=admin"}},
		{"control characters", []string{"write", "apono/grants/" + role, "requester=alice\ntoken_policies=root"}},
		{"at most 256", []string{"write", "apono/grants/" + role, "requester=" + strings.Repeat("x", 300)}},
		{"justification is required", []string{"write", "-f", "apono/grants/" + role + "-strict"}},
		{"vault_addr", []string{"write", "apono/config", "vault_addr=ftp://x"}},
		{"not both", []string{"write", "apono/config", "token=abc", "secret_id=def"}},
		{"access_details", []string{"write", "apono/config", "access_details=" + strings.Repeat("x", 401)}},
		{"userpass_mount", []string{"write", "apono/config", "userpass_mount=../../sys"}},
		{"cannot log in", []string{"write", "apono/config", "role_id=not-a-role"}},
		{"still active", nil}, // filled below: config delete while a grant is live
	}
	g := e.grant(t, role)
	otherCases[len(otherCases)-1].args = []string{"delete", "apono/config"}
	for _, tc := range otherCases {
		e.mustBadRequest(t, tc.want, tc.args...)
	}
	e.root(t, "lease", "revoke", "-sync", g.LeaseID) // done when it returns, not queued

	after := e.snapshot(t)
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("bad input changed state:\nbefore %+v\nafter  %+v", before, after)
	}
	// A bad field smuggled next to good ones changes nothing either.
	e.mustBadRequest(t, "is not allowed", "write", "apono/roles/"+role, "resources=kv/"+role+"/db,kv/"+role+"/x\"}", "ttl=1s")
	if r := e.jsonOut(t, "", "read", "apono/roles/"+role)["data"].(map[string]interface{}); r["ttl"].(float64) != 300 {
		t.Fatalf("rejected update changed the role: %v", r)
	}
}
