package backend

import (
	"context"
	"errors"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/apono-io/vault-plugin-apono/backend/config"
	"github.com/apono-io/vault-plugin-apono/backend/grants"
	"github.com/apono-io/vault-plugin-apono/backend/store"
	"github.com/apono-io/vault-plugin-apono/backend/vaultapi/vaultfake"
	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/sdk/logical"
)

var seedRuleRe = regexp.MustCompile(`(?m)^path "([^"]+)" \{ capabilities = \[([^\]]*)\] \}$`)

// seedPolicyRules is the vendor's apono-management policy (testdata, verbatim) as the
// fake's ACL, with its userpass mount renamed to userpassMount.
func seedPolicyRules(t *testing.T, userpassMount string) map[string][]string {
	t.Helper()
	raw, err := os.ReadFile("../testdata/apono-management.hcl")
	if err != nil {
		t.Fatal(err)
	}
	rules := map[string][]string{}
	for _, m := range seedRuleRe.FindAllStringSubmatch(string(raw), -1) {
		var caps []string
		for _, c := range strings.Split(m[2], ",") {
			caps = append(caps, strings.Trim(strings.TrimSpace(c), `"`))
		}
		rules[strings.Replace(m[1], "auth/userpass/", "auth/"+userpassMount+"/", 1)] = caps
	}
	if len(rules) != 8 {
		t.Fatalf("parsed %d rules from the seed policy, want 8: %v", len(rules), rules)
	}
	return rules
}

// health reads apono/health and fails unless it is a plain (non-error) response.
func (e *testEnv) health(t *testing.T) map[string]interface{} {
	t.Helper()
	resp, err := e.do(t, logical.ReadOperation, "health", nil)
	if err != nil || resp == nil || resp.IsError() {
		t.Fatalf("health: err=%v resp=%#v", err, resp)
	}
	return resp.Data
}

// healthEntry returns the capability entry for path, failing if there is none.
func healthEntry(t *testing.T, data map[string]interface{}, path string) map[string]interface{} {
	t.Helper()
	for _, c := range data["capabilities"].([]map[string]interface{}) {
		if c["path"] == path {
			return c
		}
	}
	t.Fatalf("no capability entry for %s in %v", path, data["capabilities"])
	return nil
}

func TestHealthWithTheSeedPolicy(t *testing.T) {
	e := newTestEnv(t)
	e.configure(t)
	e.vault.CapRules = seedPolicyRules(t, "userpass")
	d := e.health(t)

	if d["status"] != healthOK {
		t.Fatalf("status %v, problems %v", d["status"], d["problems"])
	}
	if p := d["problems"].([]string); len(p) != 0 {
		t.Fatalf("problems with the seed policy: %v", p)
	}
	if d["login"].(map[string]interface{})["ok"] != true || d["vault"].(map[string]interface{})["reachable"] != true {
		t.Fatalf("login %v vault %v", d["login"], d["vault"])
	}
	probe := e.b.grants.ObjectName(grants.ProbeID)
	for path, needs := range map[string][]string{
		"sys/capabilities-self":        {"update"},
		"sys/mounts":                   {"read"},
		"auth/userpass/users":          {"list"},
		"auth/userpass/users/" + probe: {"create", "delete", "read", "update"},
		"sys/policies/acl/" + probe:    {"create", "delete", "read", "update"},
		"kv/metadata/":                 {"list", "read"},
		"transit/keys":                 {"list"},
	} {
		c := healthEntry(t, d, path)
		if c["status"] != "ok" || !reflect.DeepEqual(c["needs"], needs) {
			t.Errorf("%s: %v", path, c)
		}
	}
	for _, path := range []string{"auth/userpass/users", "sys/policies/acl/" + probe, "sys/mounts"} {
		if healthEntry(t, d, path)["required"] != true {
			t.Errorf("%s not required", path)
		}
	}

	// Optional ones the seed does not give: reported as missing, with has vs needs.
	rp := healthEntry(t, d, "sys/leases/revoke-prefix/auth/userpass/login/"+probe)
	if rp["status"] != "missing" || rp["required"] != false ||
		!reflect.DeepEqual(rp["has"], []string{"deny"}) || !reflect.DeepEqual(rp["missing"], []string{"sudo", "update"}) {
		t.Fatalf("revoke-prefix entry: %v", rp)
	}
	if healthEntry(t, d, "sys/policies/acl")["status"] != "missing" {
		t.Fatal("LIST sys/policies/acl reported as allowed")
	}
	if healthEntry(t, d, "secret/metadata/")["status"] != "missing" {
		t.Fatal("discovery of secret/ (not in the seed) reported as allowed")
	}
	if d["revoke_login_tokens"] != false {
		t.Fatal("revoke_login_tokens true without sudo on revoke-prefix")
	}
	if w := strings.Join(d["warnings"].([]string), "\n"); !strings.Contains(w, "sys/leases/revoke-prefix/auth/userpass/login/") {
		t.Fatalf("warnings do not mention revoke-prefix: %s", w)
	}
	for _, c := range d["capabilities"].([]map[string]interface{}) {
		if strings.HasPrefix(c["path"].(string), "apono/") {
			t.Fatalf("the plugin's own mount is checked for discovery: %v", c)
		}
	}
}

func TestHealthReportsMissingCapabilities(t *testing.T) {
	e := newTestEnv(t)
	e.mustOK(t, logical.UpdateOperation, "config", map[string]interface{}{
		"vault_addr": "http://127.0.0.1:8200", "role_id": "r", "secret_id": "s", "userpass_mount": "people",
	})
	rules := seedPolicyRules(t, "people")
	rules["auth/people/users/*"] = []string{"create", "update"}
	delete(rules, "sys/mounts")
	e.vault.CapRules = rules
	d := e.health(t)

	if d["status"] != healthDegraded {
		t.Fatalf("status %v", d["status"])
	}
	probe := e.b.grants.ObjectName(grants.ProbeID)
	users := healthEntry(t, d, "auth/people/users/"+probe)
	if users["status"] != "missing" || !reflect.DeepEqual(users["missing"], []string{"delete", "read"}) ||
		!reflect.DeepEqual(users["has"], []string{"create", "update"}) {
		t.Fatalf("users entry: %v", users)
	}
	if m := healthEntry(t, d, "sys/mounts"); m["status"] != "missing" || !reflect.DeepEqual(m["has"], []string{"deny"}) {
		t.Fatalf("sys/mounts entry: %v", m)
	}
	problems := strings.Join(d["problems"].([]string), "\n")
	for _, want := range []string{"auth/people/users/" + probe + ": missing delete, read (has create, update)", "sys/mounts: missing read"} {
		if !strings.Contains(problems, want) {
			t.Errorf("problems do not say %q:\n%s", want, problems)
		}
	}
	if healthEntry(t, d, "auth/people/users")["status"] != "ok" {
		t.Fatal("the configured userpass mount is not the one checked")
	}
}

func TestHealthRevokePrefixAvailable(t *testing.T) {
	e := newTestEnv(t)
	e.configure(t)
	rules := seedPolicyRules(t, "userpass")
	rules["sys/leases/revoke-prefix/auth/userpass/login/*"] = []string{"sudo", "update"}
	rules["sys/policies/acl"] = []string{"list"}
	e.vault.CapRules = rules
	d := e.health(t)
	if d["status"] != healthOK || d["revoke_login_tokens"] != true {
		t.Fatalf("status %v revoke_login_tokens %v", d["status"], d["revoke_login_tokens"])
	}
	if w := strings.Join(d["warnings"].([]string), "\n"); strings.Contains(w, "revoke-prefix") || strings.Contains(w, "sys/policies/acl:") {
		t.Fatalf("warnings about capabilities that are held: %s", w)
	}
}

func TestHealthWhenVaultIsDownOrLoginFails(t *testing.T) {
	t.Run("not configured", func(t *testing.T) {
		e := newTestEnv(t)
		d := e.health(t)
		if d["status"] != healthNotConfigured {
			t.Fatalf("status %v", d["status"])
		}
	})
	t.Run("Vault down with a client cached", func(t *testing.T) {
		e := newTestEnv(t)
		e.configure(t)
		e.vault.Fail("Health", errors.New("dial tcp 127.0.0.1:8200: connect: connection refused"))
		d := e.health(t)
		v := d["vault"].(map[string]interface{})
		if d["status"] != healthDown || v["reachable"] != false || !strings.Contains(v["error"].(string), "connection refused") {
			t.Fatalf("status %v vault %v", d["status"], v)
		}
		if n := e.vault.CallCount("CapabilitiesSelf"); n != 0 {
			t.Fatalf("capabilities checked against a Vault that is down (%d calls)", n)
		}
	})
	t.Run("sealed, no client: login fails, sys/health says sealed", func(t *testing.T) {
		e := newTestEnv(t)
		e.configure(t)
		e.b.resetClient()
		e.vault.LoginErr = errors.New("approle login failed: 503: Vault is sealed")
		e.b.healthProbe = func(context.Context, *config.Config) (*api.HealthResponse, error) {
			return &api.HealthResponse{Initialized: true, Sealed: true, Version: "1.14.2"}, nil
		}
		d := e.health(t)
		v, l := d["vault"].(map[string]interface{}), d["login"].(map[string]interface{})
		if d["status"] != healthDown || v["sealed"] != true || v["reachable"] != true || l["ok"] != false {
			t.Fatalf("status %v vault %v login %v", d["status"], v, l)
		}
		problems := strings.Join(d["problems"].([]string), "\n")
		if !strings.Contains(problems, "sealed") || !strings.Contains(problems, "cannot log in") {
			t.Fatalf("problems: %s", problems)
		}
	})
	t.Run("bad secret_id, Vault up", func(t *testing.T) {
		e := newTestEnv(t)
		e.configure(t)
		e.b.resetClient()
		e.vault.LoginErr = errors.New("approle login failed: 400: invalid role or secret ID")
		e.b.healthProbe = func(context.Context, *config.Config) (*api.HealthResponse, error) {
			return &api.HealthResponse{Initialized: true}, nil
		}
		d := e.health(t)
		l := d["login"].(map[string]interface{})
		if d["status"] != healthDown || l["ok"] != false || !strings.Contains(l["error"].(string), "invalid role or secret ID") {
			t.Fatalf("status %v login %v", d["status"], l)
		}
		if d["vault"].(map[string]interface{})["reachable"] != true {
			t.Fatal("Vault reported unreachable although sys/health answered")
		}
	})
	t.Run("capabilities-self forbidden", func(t *testing.T) {
		e := newTestEnv(t)
		e.configure(t)
		e.vault.Fail("CapabilitiesSelf", vaultfake.ErrForbidden)
		d := e.health(t)
		if d["status"] != healthDegraded || healthEntry(t, d, "sys/mounts")["status"] != "unknown" {
			t.Fatalf("status %v capabilities %v", d["status"], d["capabilities"])
		}
	})
	t.Run("authenticated call fails otherwise", func(t *testing.T) {
		e := newTestEnv(t)
		e.configure(t)
		e.vault.Fail("CapabilitiesSelf", vaultfake.ErrDown)
		d := e.health(t)
		if d["status"] != healthDown || d["login"].(map[string]interface{})["ok"] != false {
			t.Fatalf("status %v login %v", d["status"], d["login"])
		}
	})
}

func TestRevokeAlsoRevokesLoginTokensWhenAllowed(t *testing.T) {
	e := newTestEnv(t)
	e.grantEnv(t)
	rules := seedPolicyRules(t, "userpass")
	rules["sys/leases/revoke-prefix/auth/userpass/login/apono-*"] = []string{"sudo", "update"}
	e.vault.CapRules = rules
	var names []string
	afterFirst := 0
	for i := 0; i < 3; i++ {
		resp := e.mustOK(t, logical.UpdateOperation, "grants/app", nil)
		if _, err := e.revoke(t, resp.Secret); err != nil {
			t.Fatal(err)
		}
		names = append(names, "userpass/"+resp.Data["username"].(string))
		if i == 0 {
			afterFirst = e.vault.CallCount("CapabilitiesSelf")
		}
	}
	if !reflect.DeepEqual(e.vault.RevokedLogins, names) {
		t.Fatalf("revoked logins %v, want %v", e.vault.RevokedLogins, names)
	}
	if n := e.vault.CallCount("CapabilitiesSelf"); n != afterFirst || n == 0 {
		t.Fatalf("capabilities-self asked %d times after the first grant and revoke, %d after three; the answers should be cached", afterFirst, n)
	}
}

func TestRevokeWithoutRevokePrefixCapability(t *testing.T) {
	t.Run("seed policy: never tried", func(t *testing.T) {
		e := newTestEnv(t)
		e.grantEnv(t)
		e.vault.CapRules = seedPolicyRules(t, "userpass")
		for i := 0; i < 2; i++ {
			resp := e.mustOK(t, logical.UpdateOperation, "grants/app", nil)
			if _, err := e.revoke(t, resp.Secret); err != nil {
				t.Fatal(err)
			}
		}
		if n := e.vault.CallCount("RevokeLoginTokens"); n != 0 {
			t.Fatalf("revoke-prefix tried %d times although the policy denies it", n)
		}
		if u, p := e.vault.UserNames(), e.vault.PolicyNames(); len(u) != 0 || len(p) != 0 {
			t.Fatalf("left: users %v policies %v", u, p)
		}
	})
	for name, injected := range map[string]error{"403": vaultfake.ErrForbidden, "500": vaultfake.ErrDown} {
		t.Run("revoke-prefix answers "+name+": revoke still succeeds", func(t *testing.T) {
			e := newTestEnv(t)
			e.grantEnv(t)
			e.vault.Fail("RevokeLoginTokens", injected)
			resp := e.mustOK(t, logical.UpdateOperation, "grants/app", nil)
			if _, err := e.revoke(t, resp.Secret); err != nil {
				t.Fatalf("revoke failed because of revoke-prefix: %v", err)
			}
			if u, p := e.vault.UserNames(), e.vault.PolicyNames(); len(u) != 0 || len(p) != 0 {
				t.Fatalf("left: users %v policies %v", u, p)
			}
			if ids, _ := store.ListGrantIDs(e.ctx, e.storage); len(ids) != 0 {
				t.Fatalf("record left: %v", ids)
			}
			if e.vault.CallCount("RevokeLoginTokens") != 1 {
				t.Fatal("revoke-prefix was not tried")
			}
			// After a 403 the capability counts as missing for a while: no call, no re-login.
			resp = e.mustOK(t, logical.UpdateOperation, "grants/app", nil)
			if _, err := e.revoke(t, resp.Secret); err != nil {
				t.Fatal(err)
			}
			want := 2
			if injected == vaultfake.ErrForbidden {
				want = 1
			}
			if n := e.vault.CallCount("RevokeLoginTokens"); n != want {
				t.Fatalf("revoke-prefix calls after a %s: %d, want %d", name, n, want)
			}
		})
	}
}

func TestCapabilityCacheStartsOverWithANewClient(t *testing.T) {
	e := newTestEnv(t)
	e.configure(t)
	c1, err := e.b.getClient(e.ctx, e.storage)
	if err != nil {
		t.Fatal(err)
	}
	if !e.b.caps.Allowed(e.ctx, c1, "sys/policies/acl", "list") {
		t.Fatal("root token denied")
	}
	e.vault.CapRules = seedPolicyRules(t, "userpass")
	if !e.b.caps.Allowed(e.ctx, c1, "sys/policies/acl", "list") {
		t.Fatal("cached answer not used")
	}
	e.b.resetClient()
	c2, err := e.b.getClient(e.ctx, e.storage)
	if err != nil {
		t.Fatal(err)
	}
	if e.b.caps.Allowed(e.ctx, c2, "sys/policies/acl", "list") {
		t.Fatal("a new client (new config) got the old client's cached answer")
	}
}
