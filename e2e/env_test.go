// Package e2e proves the plugin's behaviour against a real Vault server and the real
// `vault` CLI, started by the test run itself (internal/testvault). If Vault cannot be
// built or started, every test here fails; none skips.
package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
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
	return e.grantAs(t, "", "apono/grants/"+role, args...)
}

// grantAs writes path (grants/<role>, requests/<id>/grant) with token and returns the
// lease it answers with.
func (e *env) grantAs(t *testing.T, token, path string, args ...string) grant {
	t.Helper()
	v := e.jsonOut(t, token, append([]string{"write", "-f", path}, args...)...)
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
		t.Fatalf("%s: the response lacks a lease or credentials: %v", path, v)
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

// ownVault starts a dev Vault of the test's own (vendor setup done, plugin configured
// with the apono-plugin AppRole), for tests that inject faults the shared server's other
// tests must not see. Its directory is removed when the test passes and kept, with the
// server's log, when it fails.
func ownVault(t *testing.T, opts testvault.Options) *env {
	t.Helper()
	opts.Dir = keptDir(t)
	s, setup, err := testvault.StartWithPlugin(opts)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{s: s, setup: setup}
	t.Cleanup(func() { e.stop(t) })
	if err := e.configure(); err != nil {
		t.Fatal(err)
	}
	return e
}

// fileVault is ownVault on a server with file storage (not -dev): its data survives
// Kill and Restart.
func fileVault(t *testing.T) *env {
	t.Helper()
	return fileVaultEnv(t, nil)
}

// fileVaultEnv is fileVault with KEY=VALUE pairs for the plugin process's environment.
func fileVaultEnv(t *testing.T, pluginEnv []string) *env {
	t.Helper()
	s, err := testvault.StartFile(testvault.Options{Dir: keptDir(t)})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{s: s}
	t.Cleanup(func() { e.stop(t) })
	sha, err := testvault.InstallPlugin(s.PluginDir, testvault.DefaultPluginVersion)
	if err != nil {
		t.Fatal(err)
	}
	if e.setup, err = s.SetupPluginEnv(testvault.DefaultPluginVersion, sha, pluginEnv); err != nil {
		t.Fatal(err)
	}
	if err := e.configure(); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) stop(t *testing.T) {
	if err := e.s.Stop(); err != nil {
		t.Error(err)
	}
	if t.Failed() {
		t.Logf("Vault log kept at %s", e.s.LogPath)
	}
}

// keptDir is a new directory that is removed when the test passes and kept when it fails.
func keptDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "e2e-"+uniqueName(t)+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !t.Failed() {
			_ = os.RemoveAll(dir)
		}
	})
	return dir
}

// serverLog is the server's log from byte offset on, and the log's current length.
func (e *env) serverLog(t *testing.T, offset int) (string, int) {
	t.Helper()
	f, err := os.Open(e.s.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Only what follows offset is read: tests poll this every few milliseconds.
	if _, err := f.Seek(int64(offset), io.SeekStart); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), offset + len(b)
}

// waitLogLine polls the server's log (from offset on) until a line contains every one of
// parts, and returns that line.
func (e *env) waitLogLine(t *testing.T, offset int, timeout time.Duration, parts ...string) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		log, _ := e.serverLog(t, offset)
		for _, line := range strings.Split(log, "\n") {
			ok := true
			for _, p := range parts {
				ok = ok && strings.Contains(line, p)
			}
			if ok {
				return line
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no line with %q in %s after %s", parts, e.s.LogPath, timeout)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// assertLogHasNone fails if any of the named secrets appears anywhere in the server's log.
func (e *env) assertLogHasNone(t *testing.T, secrets map[string]string) {
	t.Helper()
	log, _ := e.serverLog(t, 0)
	for name, secret := range secrets {
		if secret != "" && strings.Contains(log, secret) {
			t.Errorf("%s appears in Vault's log %s", name, e.s.LogPath)
		}
	}
}

// writePolicy writes an ACL policy with the CLI, as root.
func (e *env) writePolicy(t *testing.T, name, rules string) {
	t.Helper()
	if _, _, err := e.s.CLIWithStdin("", rules, "policy", "write", name, "-"); err != nil {
		t.Fatal(err)
	}
}

// managementPolicy is the vendor's apono-management policy as the seed wrote it.
func managementPolicy(t *testing.T) string {
	t.Helper()
	return testdataFile(t, "apono-management.hcl")
}

// testdataFile is the text of a file in the repository's testdata/.
func testdataFile(t *testing.T, name string) string {
	t.Helper()
	root, err := testvault.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// replaceOnce replaces old with new in s and fails the test if old is not there, so a
// change to the seed's policy cannot silently turn a fault test into a no-op.
func replaceOnce(t *testing.T, s, old, new string) string {
	t.Helper()
	if strings.Count(s, old) != 1 {
		t.Fatalf("%q is not in the text exactly once:\n%s", old, s)
	}
	return strings.Replace(s, old, new, 1)
}

// newSecretID issues a fresh secret_id for the plugin's AppRole.
func (e *env) newSecretID(t *testing.T) string {
	t.Helper()
	id := strings.TrimSpace(e.root(t, "write", "-f", "-field=secret_id", "auth/approle/role/"+testvault.AppRoleName+"/secret-id"))
	if id == "" {
		t.Fatal("empty secret_id")
	}
	return id
}

// listAll lists a path with the root API client; a missing or empty list is empty.
func (e *env) listAll(t *testing.T, path string) []string {
	t.Helper()
	keys, err := testvault.ListKeys(e.s.Client, path)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// grantKeys lists the plugin's grant records (LIST apono/grants), as role/grant_id keys.
func (e *env) grantKeys(t *testing.T) []string {
	t.Helper()
	return e.listAll(t, "apono/grants")
}

// leaseExists reports whether Vault still holds the lease (`vault lease lookup`).
func (e *env) leaseExists(t *testing.T, leaseID string) bool {
	t.Helper()
	_, stderr, err := e.s.CLI("", "lease", "lookup", leaseID)
	if err == nil {
		return true
	}
	if strings.Contains(stderr, "invalid lease") || strings.Contains(stderr, "lease not found") {
		return false
	}
	t.Fatalf("lease lookup %s: %v", leaseID, err)
	return false
}

// reloadMount reloads the plugin behind one mount with the CLI. Vault 1.21.4's
// `vault plugin reload -mounts=` ignores the mounts in the root namespace: it asks for
// sys/plugins/reload/unknown/ with no plugin name, a 404 "unsupported path" (checked, so
// the difference stays known). There the CLI writes the endpoint that `plugin reload
// -mounts` uses on the other servers, sys/plugins/reload/backend, which 1.21.4 still serves.
func (e *env) reloadMount(t *testing.T, mount string) {
	t.Helper()
	if testvault.ServerName() != testvault.Vault1214 {
		e.root(t, "plugin", "reload", "-mounts="+mount)
		return
	}
	if stderr := e.mustFail(t, "", "plugin", "reload", "-mounts="+mount); !strings.Contains(stderr, "sys/plugins/reload/unknown") || !strings.Contains(stderr, "unsupported path") {
		t.Fatalf("vault 1.21.4 plugin reload -mounts: want its 404 on sys/plugins/reload/unknown, got:\n%s", stderr)
	}
	e.root(t, "write", "sys/plugins/reload/backend", "mounts="+mount)
}
