// Package e2e proves the plugin's behaviour against a real Vault server and the real
// `vault` CLI, started by the test run itself (internal/testvault). If Vault cannot be
// built or started, every test here fails; none skips.
package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/apono-io/vault-plugin-apono/internal/testvault"
)

// shared is the dev Vault most tests use: the vendor's setup done, the plugin enabled at
// apono/ and configured with only the apono-plugin AppRole.
var shared *env

type env struct {
	s     *testvault.Server
	setup *testvault.Setup
}

func TestMain(m *testing.M) {
	s, setup, err := testvault.StartWithPlugin(testvault.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: cannot start Vault:", err)
		os.Exit(1)
	}
	shared = &env{s: s, setup: setup}
	if err := shared.configure(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: cannot configure the plugin:", err)
		_ = s.Stop()
		os.Exit(1)
	}
	code := m.Run()
	if err := s.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: stopping Vault:", err)
	}
	if code == 0 {
		_ = os.RemoveAll(s.Dir)
	} else {
		fmt.Fprintln(os.Stderr, "e2e: Vault log kept at", s.LogPath)
	}
	os.Exit(code)
}

// configure gives the plugin only the AppRole credentials of the vendor setup.
func (e *env) configure() error {
	_, _, err := e.s.CLI("", "write", "apono/config",
		"vault_addr="+e.s.URL(), "role_id="+e.setup.RoleID, "secret_id="+e.setup.SecretID)
	return err
}

// root runs the CLI with the root token and fails the test on error.
func (e *env) root(t *testing.T, args ...string) string {
	t.Helper()
	return e.s.MustCLI(t, "", args...)
}

// jsonOut runs the CLI with -format=json and decodes its output.
func (e *env) jsonOut(t *testing.T, token string, args ...string) map[string]interface{} {
	t.Helper()
	// Flags follow the command's words: "vault write -format=json ...", "vault plugin info -format=json ...".
	words := 1
	switch args[0] {
	case "plugin", "secrets", "lease", "kv", "auth", "policy", "token":
		words = 2
	}
	full := append(append(append([]string{}, args[:words]...), "-format=json"), args[words:]...)
	out, _, err := e.s.CLI(token, full...)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]interface{}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("vault %s: output is not JSON: %v\n%s", strings.Join(args, " "), err, out)
	}
	return v
}

// mustFail runs the CLI expecting failure and returns its stderr.
func (e *env) mustFail(t *testing.T, token string, args ...string) string {
	t.Helper()
	out, stderr, err := e.s.CLI(token, args...)
	if err == nil {
		t.Fatalf("vault %s: want failure, got success:\n%s", strings.Join(args, " "), out)
	}
	return stderr
}

// mustBadRequest expects a 400 whose message contains want.
func (e *env) mustBadRequest(t *testing.T, want string, args ...string) {
	t.Helper()
	stderr := e.mustFail(t, "", args...)
	if !strings.Contains(stderr, "Code: 400") {
		t.Fatalf("vault %s: want a 400, got:\n%s", strings.Join(args, " "), stderr)
	}
	if !strings.Contains(stderr, want) {
		t.Fatalf("vault %s: error does not mention %q:\n%s", strings.Join(args, " "), want, stderr)
	}
}

type grant struct {
	LeaseID       string
	LeaseDuration int
	Renewable     bool
	Username      string
	Password      string
	Policy        string
	GrantID       string
	Data          map[string]interface{}
	Warnings      []interface{}
}

func (e *env) grant(t *testing.T, role string, args ...string) grant {
	t.Helper()
	v := e.jsonOut(t, "", append([]string{"write", "-f", "apono/grants/" + role}, args...)...)
	data, _ := v["data"].(map[string]interface{})
	g := grant{Data: data}
	g.LeaseID, _ = v["lease_id"].(string)
	if d, ok := v["lease_duration"].(float64); ok {
		g.LeaseDuration = int(d)
	}
	g.Renewable, _ = v["renewable"].(bool)
	g.Username, _ = data["username"].(string)
	g.Password, _ = data["password"].(string)
	g.Policy, _ = data["policy"].(string)
	g.GrantID, _ = data["grant_id"].(string)
	g.Warnings, _ = v["warnings"].([]interface{})
	if g.LeaseID == "" || g.Username == "" || g.Password == "" {
		t.Fatalf("grant response lacks a lease or credentials: %v", v)
	}
	return g
}

// login logs in as a grant's user with the real CLI and returns the token.
func (e *env) login(username, password string) (string, error) {
	out, _, err := e.s.CLI("", "login", "-no-store", "-token-only", "-method=userpass",
		"username="+username, "password="+password)
	return strings.TrimSpace(out), err
}

func (e *env) mustLogin(t *testing.T, g grant) string {
	t.Helper()
	tok, err := e.login(g.Username, g.Password)
	if err != nil || tok == "" {
		t.Fatalf("grant user cannot log in: %v", err)
	}
	return tok
}

// aponoObjects lists every apono-* userpass user and ACL policy in Vault.
func (e *env) aponoObjects(t *testing.T) (users, policies []string) {
	t.Helper()
	// The root API client, not the CLI: an empty LIST is a 404 the CLI reports as failure.
	list, err := e.s.Client.Logical().List("auth/userpass/users")
	if err != nil {
		t.Fatal(err)
	}
	if list != nil {
		keys, _ := list.Data["keys"].([]interface{})
		for _, k := range keys {
			if s, _ := k.(string); strings.HasPrefix(s, "apono-") {
				users = append(users, s)
			}
		}
	}
	var all []string
	if err := json.Unmarshal([]byte(e.root(t, "policy", "list", "-format=json")), &all); err != nil {
		t.Fatal(err)
	}
	for _, p := range all {
		if strings.HasPrefix(p, "apono-") && p != "apono-management" {
			policies = append(policies, p)
		}
	}
	sort.Strings(users)
	sort.Strings(policies)
	return users, policies
}

func (e *env) hasUser(t *testing.T, name string) bool {
	t.Helper()
	users, _ := e.aponoObjects(t)
	return contains(users, name)
}

func (e *env) hasPolicy(t *testing.T, name string) bool {
	t.Helper()
	_, policies := e.aponoObjects(t)
	return contains(policies, name)
}

// waitGone polls until the grant's user and policy are both gone.
func (e *env) waitGone(t *testing.T, g grant, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		if !e.hasUser(t, g.Username) && !e.hasPolicy(t, g.Policy) {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("grant %s still has user=%v policy=%v after %s", g.Username,
				e.hasUser(t, g.Username), e.hasPolicy(t, g.Policy), timeout)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func contains(list []string, v string) bool {
	for _, s := range list {
		if s == v {
			return true
		}
	}
	return false
}

// uniqueName keeps tests that share one Vault from touching each other's roles and data.
func uniqueName(t *testing.T) string {
	n := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(n) > 40 {
		n = n[len(n)-40:]
	}
	return strings.Trim(n, "-")
}
