// Package namespaces proves that a mount of the plugin inside a namespace works there and
// only there, on OpenBao (whose namespaces are open source). It is its own package so
// that `make test-namespaces` runs it against OpenBao whatever server `make test` uses.
package namespaces

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apono-io/vault-plugin-apono/internal/testvault"
)

// tenant is one namespace with the vendor's setup and a configured mount of the plugin.
type tenant struct {
	ns               string
	roleID, secretID string
}

type grantOut struct {
	LeaseID string `json:"lease_id"`
	Data    struct {
		Username string `json:"username"`
		Password string `json:"password"`
		Policy   string `json:"policy"`
	} `json:"data"`
}

// Two tenants (team-a, team-b) and a namespace nested in one (team-a/nested), each with
// the seed's setup done inside it and the plugin enabled there from the root catalog. A
// grant in a namespace makes its user and policy in that namespace and nowhere else; the
// grant's login works there and reads that tenant's secret; revoking it removes them;
// discovery sees only the tenant's own secrets; the sweeper removes an orphan in its
// namespace and leaves the same name in another alone; and a mount cannot be pointed at
// another tenant's namespace with its own credentials.
func TestNamespacedMountsKeepTenantsApart(t *testing.T) {
	if !testvault.IsOpenBao() {
		t.Fatalf("this test needs OpenBao (namespaces are open source there); VAULT_SERVER is %s: run it with make test-namespaces", testvault.ServerName())
	}
	s, setup := testvault.StartWithPluginT(t, testvault.Options{PluginEnv: []string{"APONO_SWEEP_INTERVAL=1s"}})
	s.MustCLI(t, "", "namespace", "create", "team-a")
	s.MustCLI(t, "", "namespace", "create", "team-b")
	mustIn(t, s, "team-a", "namespace", "create", "nested")

	tenants := []*tenant{{ns: "team-a"}, {ns: "team-b"}, {ns: "team-a/nested"}}
	for _, tn := range tenants {
		var err error
		if tn.roleID, tn.secretID, err = s.SeedSetupIn(tn.ns); err != nil {
			t.Fatal(err)
		}
		mustIn(t, s, tn.ns, "secrets", "enable", "-path=apono", "-plugin-version="+setup.Version, testvault.PluginName)
		mustIn(t, s, tn.ns, "kv", "put", "kv/app/db", "tenant="+tn.ns)
	}

	// The finding that opened this: without namespace, the plugin logs in at the root
	// namespace, where this AppRole does not exist, and nothing is saved.
	a, b, nested := tenants[0], tenants[1], tenants[2]
	if _, _, err := s.CLIIn(a.ns, "", "write", "apono/config", "vault_addr="+s.URL(), "role_id="+a.roleID, "secret_id="+a.secretID); err == nil {
		t.Fatal("a config write in team-a without namespace logged in (at the root namespace?)")
	}
	for _, tn := range tenants {
		mustIn(t, s, tn.ns, "write", "apono/config", "vault_addr="+s.URL(), "namespace="+tn.ns, "role_id="+tn.roleID, "secret_id="+tn.secretID)
		mustIn(t, s, tn.ns, "write", "apono/roles/app", "resources=kv/app/db", "ttl=1h")
		if got := strings.TrimSpace(mustIn(t, s, tn.ns, "read", "-field=namespace", "apono/config")); got != tn.ns {
			t.Fatalf("%s: config reads namespace %q", tn.ns, got)
		}
	}
	// Pointing team-b's mount at team-a with team-b's credentials: the login is refused
	// there, and team-b's config stays.
	if _, _, err := s.CLIIn(b.ns, "", "write", "apono/config", "vault_addr="+s.URL(), "namespace=team-a", "role_id="+b.roleID, "secret_id="+b.secretID); err == nil {
		t.Fatal("team-b's mount logged in to team-a with team-b's AppRole")
	}
	if got := strings.TrimSpace(mustIn(t, s, b.ns, "read", "-field=namespace", "apono/config")); got != b.ns {
		t.Fatalf("team-b's config after the refused write: namespace %q", got)
	}

	everywhere := []string{"", a.ns, b.ns, nested.ns}
	for _, tn := range []*tenant{a, nested} {
		var g grantOut
		if err := json.Unmarshal([]byte(mustIn(t, s, tn.ns, "write", "-f", "-format=json", "apono/grants/app")), &g); err != nil || g.Data.Username == "" || g.LeaseID == "" {
			t.Fatalf("%s: grant: %v %+v", tn.ns, err, g)
		}
		for _, ns := range everywhere {
			users := listIn(t, s, ns, "auth/userpass/users")
			policies := listIn(t, s, ns, "sys/policies/acl")
			want := ns == tn.ns
			if slices.Contains(users, g.Data.Username) != want || slices.Contains(policies, g.Data.Policy) != want {
				t.Fatalf("grant in %s: namespace %q has user %v, policy %v; want both only in %s", tn.ns, ns, users, policies, tn.ns)
			}
		}
		// The grant's login works in its namespace and reads that tenant's secret.
		tok := strings.TrimSpace(mustIn(t, s, tn.ns, "write", "-field=token", "auth/userpass/login/"+g.Data.Username, "password="+g.Data.Password))
		if got := strings.TrimSpace(mustTokenIn(t, s, tn.ns, tok, "kv", "get", "-field=tenant", "kv/app/db")); got != tn.ns {
			t.Fatalf("%s: the grant read tenant %q", tn.ns, got)
		}
		other := b.ns
		if _, _, err := s.CLIIn(other, tok, "kv", "get", "kv/app/db"); err == nil {
			t.Fatalf("%s's grant token read %s's secret", tn.ns, other)
		}
		mustIn(t, s, tn.ns, "lease", "revoke", g.LeaseID)
		waitFor(t, tn.ns+": the revoked grant's user and policy gone", func() bool {
			return !slices.Contains(listIn(t, s, tn.ns, "auth/userpass/users"), g.Data.Username) &&
				!slices.Contains(listIn(t, s, tn.ns, "sys/policies/acl"), g.Data.Policy)
		}, 30*time.Second)
	}

	// Discovery in team-b lists team-b's secrets and none of team-a's.
	mustIn(t, s, a.ns, "kv", "put", "kv/only-a/db", "tenant=team-a")
	mustIn(t, s, b.ns, "write", "-f", "apono/sync")
	var found []string
	waitFor(t, "team-b's sync", func() bool {
		out, _, err := s.CLIIn(b.ns, "", "list", "-format=json", "apono/resources")
		found = nil
		return err == nil && json.Unmarshal([]byte(out), &found) == nil && slices.Contains(found, "kv/app/db")
	}, time.Minute)
	if slices.Contains(found, "kv/only-a/db") || slices.Contains(found, "kv/only-a/*") {
		t.Fatalf("team-b's discovery lists team-a's secret: %v", found)
	}

	// The sweeper of team-a's mount removes an orphan named like its grants in team-a,
	// and leaves the same name alone in the root namespace and in team-b.
	var g grantOut
	if err := json.Unmarshal([]byte(mustIn(t, s, a.ns, "write", "-f", "-format=json", "apono/grants/app")), &g); err != nil {
		t.Fatal(err)
	}
	prefix := g.Data.Username[:len(g.Data.Username)-16]
	orphan := prefix + "00000000000000aa"
	for _, ns := range []string{"", a.ns, b.ns} {
		mustIn(t, s, ns, "write", "auth/userpass/users/"+orphan, "password=orphan-pw-1", "token_policies=default")
	}
	began := time.Now()
	waitFor(t, "the sweeper of team-a's mount to remove the orphan in team-a", func() bool {
		return !slices.Contains(listIn(t, s, a.ns, "auth/userpass/users"), orphan)
	}, 5*time.Minute)
	t.Logf("orphan in team-a swept %s after it was made", time.Since(began).Round(time.Second))
	for _, ns := range []string{"", b.ns} {
		if !slices.Contains(listIn(t, s, ns, "auth/userpass/users"), orphan) {
			t.Fatalf("the orphan's namesake in namespace %q was removed", ns)
		}
	}
	if !slices.Contains(listIn(t, s, a.ns, "auth/userpass/users"), g.Data.Username) {
		t.Fatal("the sweeper removed team-a's live grant")
	}
}

func mustIn(t *testing.T, s *testvault.Server, ns string, args ...string) string {
	t.Helper()
	out, _, err := s.CLIIn(ns, "", args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func mustTokenIn(t *testing.T, s *testvault.Server, ns, token string, args ...string) string {
	t.Helper()
	out, _, err := s.CLIIn(ns, token, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// listIn LISTs path in namespace ns with the root token; nothing there is an empty list.
func listIn(t *testing.T, s *testvault.Server, ns, path string) []string {
	t.Helper()
	c, err := s.Client.Clone()
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(s.RootToken)
	c.SetNamespace(ns)
	keys, err := testvault.ListKeys(c, path)
	if err != nil {
		t.Fatal(fmt.Errorf("list %s in %q: %w", path, ns, err))
	}
	return keys
}

func waitFor(t *testing.T, what string, cond func() bool, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
