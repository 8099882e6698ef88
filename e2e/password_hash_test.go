package e2e

import (
	"strings"
	"testing"

	"github.com/apono-io/vault-plugin-apono/internal/testvault"
)

// Where userpass takes password_hash (Vault 1.17+, OpenBao 2.6+), the plugin sends a
// bcrypt hash of the grant's password and Vault hashes nothing; on Vault 1.14 it sends
// the password. Either way the grant's user logs in with the password it was given.
func TestGrantPasswordHashWhereTheServerTakesIt(t *testing.T) {
	e := shared
	want := testvault.ServerName() != "vault-1.14.2"
	health := e.jsonOut(t, "", "read", "apono/health")["data"].(map[string]interface{})
	if health["password_hash"] != want || health["password_hash_cost"].(float64) != 5 {
		t.Fatalf("on %s health says password_hash=%v (cost %v), want %v", testvault.ServerName(), health["password_hash"], health["password_hash_cost"], want)
	}
	role := uniqueName(t)
	e.root(t, "kv", "put", "kv/"+role+"/db", "password=hashed")
	e.root(t, "write", "apono/roles/"+role, "resources=kv/"+role+"/db", "ttl=5m")
	g := e.grant(t, role)
	if got := strings.TrimSpace(e.s.MustCLI(t, e.mustLogin(t, g), "kv", "get", "-field=password", "kv/"+role+"/db")); got != "hashed" {
		t.Fatalf("the grant read %q", got)
	}
	if _, _, err := e.s.CLI("", "login", "-no-store", "-method=userpass", "username="+g.Username, "password=wrong"); err == nil {
		t.Fatal("a wrong password logged in")
	}
	e.root(t, "lease", "revoke", "-sync", g.LeaseID)
}
