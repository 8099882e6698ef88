package e2e

import (
	"archive/zip"
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/apono-io/vault-plugin-apono/internal/testvault"
)

// releaseBinary builds the release zip for this platform with scripts/release (what
// `make release` runs), checks it against the SHA256SUMS beside it, and unzips the plugin
// into pluginDir, as docs/operations.md tells an operator to. It returns the binary's
// sha256, which `vault plugin register -sha256` takes.
func releaseBinary(t *testing.T, version, pluginDir string) string {
	t.Helper()
	root, err := testvault.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	cmd := exec.Command("go", "run", "./scripts/release", "-version="+version, "-out="+out, "-platforms="+runtime.GOOS+"/"+runtime.GOARCH)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/release: %v\n%s", err, b)
	}
	zipName := "vault-plugin-apono_" + version + "_" + runtime.GOOS + "_" + runtime.GOARCH + ".zip"
	zipBytes, err := os.ReadFile(filepath.Join(out, zipName))
	if err != nil {
		t.Fatal(err)
	}
	sums, err := os.Open(filepath.Join(out, "vault-plugin-apono_"+version+"_SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	defer sums.Close()
	sum := sha256.Sum256(zipBytes)
	listed := false
	for sc := bufio.NewScanner(sums); sc.Scan(); {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[1] == zipName {
			listed = f[0] == hex.EncodeToString(sum[:])
		}
	}
	if !listed {
		t.Fatalf("%s is not in SHA256SUMS with its sha256", zipName)
	}
	zr, err := zip.NewReader(strings.NewReader(string(zipBytes)), int64(len(zipBytes)))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range zr.File {
		if f.Name != testvault.PluginName {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		bin, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(pluginDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(pluginDir, testvault.PluginName), bin, 0o755); err != nil {
			t.Fatal(err)
		}
		s := sha256.Sum256(bin)
		return hex.EncodeToString(s[:])
	}
	t.Fatalf("%s holds no %s", zipName, testvault.PluginName)
	return ""
}

// A server started the way docs/operations.md tells operators to run one: a config file
// with a TLS listener (certificates made here), integrated storage (raft), a plugin
// directory, api_addr and cluster_addr, init and unseal, and the plugin from the release
// zip registered by its sha256. On it: the grant lifecycle, an access flow, revoke, and a
// restart with a live grant.
func TestProductionServerTLSRaftRelease(t *testing.T) {
	t.Parallel()
	dir := keptDir(t)
	tlsFiles, err := testvault.NewTLS(filepath.Join(dir, "tls"))
	if err != nil {
		t.Fatal(err)
	}
	servers, err := testvault.StartRaftCluster(1, testvault.Options{Dir: filepath.Join(dir, "vault"), TLS: tlsFiles})
	if err != nil {
		t.Fatal(err)
	}
	s := servers[0]
	e := &env{s: s}
	t.Cleanup(func() { e.stop(t) })
	if !strings.HasPrefix(s.URL(), "https://") {
		t.Fatalf("the server's address is %s", s.URL())
	}
	const version = "v0.0.0-production"
	sha := releaseBinary(t, version, s.PluginDir)
	setup, err := s.SetupPlugin(version, sha)
	if err != nil {
		t.Fatal(err)
	}
	e.setup = setup
	// `plugin info -format=json` prints the entry itself on some servers, wrapped in data on others.
	info := e.jsonOut(t, "", "plugin", "info", "-version="+version, "secret", testvault.PluginName)
	if d, ok := info["data"].(map[string]interface{}); ok {
		info = d
	}
	if info["sha256"] != sha || info["version"] != version {
		t.Fatalf("plugin catalog entry: %v", info)
	}
	// The plugin calls back into Vault over TLS and trusts the listener's CA (ca_cert);
	// without the CA it cannot log in.
	if stderr := e.mustFail(t, "", "write", "apono/config", "vault_addr="+s.URL(), "role_id="+setup.RoleID, "secret_id="+setup.SecretID); !strings.Contains(stderr, "certificate") {
		t.Fatalf("a config without the CA: %s", stderr)
	}
	e.root(t, "write", "apono/config", "vault_addr="+s.URL(), "role_id="+setup.RoleID, "secret_id="+setup.SecretID, "ca_cert=@"+tlsFiles.CACert)
	if h := e.jsonOut(t, "", "read", "apono/health")["data"].(map[string]interface{}); h["status"] != "ok" {
		t.Fatalf("apono/health: %v", h)
	}

	t.Run("grant lifecycle", func(t *testing.T) {
		e.root(t, "kv", "put", "kv/app/db", "password=prod-secret")
		e.root(t, "write", "apono/roles/app", "resources=kv/app/db", "ttl=5m", "max_ttl=10m")
		g := e.grant(t, "app")
		tok := e.mustLogin(t, g)
		if got := strings.TrimSpace(s.MustCLI(t, tok, "kv", "get", "-field=password", "kv/app/db")); got != "prod-secret" {
			t.Fatalf("the grant user read %q", got)
		}
		e.root(t, "lease", "revoke", g.LeaseID)
		e.waitGone(t, g, 30*time.Second)
		if stderr := e.mustFail(t, tok, "kv", "get", "kv/app/db"); !strings.Contains(stderr, "403") && !strings.Contains(stderr, "permission denied") {
			t.Fatalf("after revoke: %s", stderr)
		}
	})

	t.Run("an access flow with real identities", func(t *testing.T) {
		e.writePolicy(t, "prod-requester", requesterPolicy(t, "apono"))
		e.writePolicy(t, "prod-approver", approverPolicy(t, "apono"))
		alice := e.person(t, "prod-alice", "prod-requester")
		bob := e.person(t, "prod-bob", "prod-approver")
		e.root(t, "write", "apono/roles/app-flow", "resources=kv/app/db", "ttl=5m", "approval=required", "approvers=entity:prod-bob")
		req := e.jsonOut(t, alice.token, "write", "apono/requests/app-flow", "resources=kv/app/db", "justification=prod check")["data"].(map[string]interface{})
		id := req["request_id"].(string)
		e.jsonOut(t, bob.token, "write", "-f", "apono/requests/"+id+"/approve")
		g := e.grantAs(t, alice.token, "apono/requests/"+id+"/grant")
		tok := e.mustLogin(t, g)
		if got := strings.TrimSpace(s.MustCLI(t, tok, "kv", "get", "-field=password", "kv/app/db")); got != "prod-secret" {
			t.Fatalf("the grant user read %q", got)
		}
		e.root(t, "lease", "revoke", g.LeaseID)
		e.waitGone(t, g, 30*time.Second)
	})

	t.Run("a restart keeps a live grant, and its revoke still removes it", func(t *testing.T) {
		g := e.grant(t, "app")
		if err := s.Restart(); err != nil {
			t.Fatal(err)
		}
		// The plugin comes back with Vault (its catalog entry and mount are in raft).
		tok := e.mustLogin(t, g)
		if got := strings.TrimSpace(s.MustCLI(t, tok, "kv", "get", "-field=password", "kv/app/db")); got != "prod-secret" {
			t.Fatalf("after the restart the grant user read %q", got)
		}
		e.root(t, "lease", "revoke", g.LeaseID)
		e.waitGone(t, g, 60*time.Second)
		if users, policies := e.aponoObjects(t); len(users)+len(policies) != 0 {
			t.Fatalf("left behind: users %v, policies %v", users, policies)
		}
	})
}
