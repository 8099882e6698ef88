package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apono-io/vault-plugin-apono/internal/testvault"
)

// preIndexCommit is the commit the indexes were built on: its plugin stores requests and
// grants as records only, as the release before them did.
const preIndexCommit = "a316ce5"

// buildPluginAt builds the plugin as it was at commit into dir under the file name file,
// and returns its SHA-256.
func buildPluginAt(t *testing.T, commit, version, dir, file string) string {
	t.Helper()
	root, err := testvault.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	archive := exec.Command("git", "-C", root, "archive", "--format=tar", commit)
	tar := exec.Command("tar", "-x", "-C", src)
	var errs bytes.Buffer
	archive.Stderr, tar.Stderr = &errs, &errs
	pipe, err := archive.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	tar.Stdin = pipe
	if err := tar.Start(); err != nil {
		t.Fatal(err)
	}
	if err := archive.Run(); err != nil {
		t.Fatalf("git archive %s (the test needs the repository's history): %v %s", commit, err, errs.String())
	}
	if err := tar.Wait(); err != nil {
		t.Fatalf("unpacking %s: %v %s", commit, err, errs.String())
	}
	out := filepath.Join(dir, file)
	build := exec.Command("go", "build", "-ldflags", "-X github.com/apono-io/vault-plugin-apono/backend.Version="+version, "-o", out, "./cmd/vault-plugin-apono")
	build.Dir = src
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the plugin at %s: %v\n%s", commit, err, b)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// requestIDs reads path (requests or audit/requests, with filters) as token and returns
// the request IDs of the page, in order.
func (e *env) requestIDs(t *testing.T, token string, args ...string) []string {
	t.Helper()
	out, _, err := e.s.CLI(token, append([]string{"read", "-format=json"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	return requestIDsOf(t, out)
}

func requestIDsOf(t *testing.T, out string) []string {
	t.Helper()
	var v struct {
		Data struct {
			Requests []struct {
				ID string `json:"request_id"`
			} `json:"requests"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	var ids []string
	for _, r := range v.Data.Requests {
		ids = append(ids, r.ID)
	}
	return ids
}

// runningVersion is the plugin version the mount runs, as vault secrets list says.
func (e *env) runningVersion(t *testing.T, mount string) string {
	t.Helper()
	out := e.root(t, "secrets", "list", "-detailed", "-format=json")
	var mounts map[string]struct {
		Running string `json:"running_plugin_version"`
	}
	if err := json.Unmarshal([]byte(out), &mounts); err != nil {
		t.Fatal(err)
	}
	return mounts[mount+"/"].Running
}

// enableOldPlugin builds the plugin as it was at commit, registers it as version and
// enables it at mount, configured with the vendor AppRole.
func (e *env) enableOldPlugin(t *testing.T, commit, version, mount string) {
	t.Helper()
	file := testvault.PluginName + "-" + commit
	sha := buildPluginAt(t, commit, version, e.s.PluginDir, file)
	e.root(t, "plugin", "register", "-sha256="+sha, "-version="+version, "-command="+file, "secret", testvault.PluginName)
	e.root(t, "secrets", "enable", "-path="+mount, "-plugin-version="+version, testvault.PluginName)
	e.root(t, "write", mount+"/config", "vault_addr="+e.s.URL(), "role_id="+e.setup.RoleID, "secret_id="+e.newSecretID(t))
	if v := e.runningVersion(t, mount); v != version {
		t.Fatalf("the plugin at %s runs %q, want the old %s", mount, v, version)
	}
}

// upgradeInPlace moves mount to this build's plugin, as an operator does it (tune
// -plugin-version, reload), and waits until it runs.
func (e *env) upgradeInPlace(t *testing.T, mount string) {
	t.Helper()
	e.root(t, "secrets", "tune", "-plugin-version="+e.setup.Version, mount)
	e.reloadMount(t, mount) // Vault 1.21.4: see reloadMount
	deadline := time.Now().Add(60 * time.Second)
	for e.runningVersion(t, mount) != e.setup.Version {
		if time.Now().After(deadline) {
			t.Fatal("the mount does not run the new version after the reload")
		}
		time.Sleep(time.Second)
	}
}

// Requests and grants written by the release before the indexes are listed, approved,
// picked up and revoked after an upgrade in place (register, tune -plugin-version,
// reload): the active node indexes the records once.
func TestUpgradeFromRecordsWithoutIndexes(t *testing.T) {
	t.Parallel()
	e := ownVault(t, testvault.Options{})
	const mount = "apono-up"
	e.enableOldPlugin(t, preIndexCommit, "v0.0.9", mount)
	e.writePolicy(t, "up-people", requesterPolicy(t, mount)+"\n"+approverPolicy(t, mount))
	alice := e.person(t, "alice", "up-people")
	bob := e.person(t, "bob", "up-people")
	e.root(t, "write", "identity/group", "name=owners", "member_entity_ids="+bob.entityID)
	e.root(t, "kv", "put", "kv/app/db", "password=upgrade")
	e.root(t, "write", mount+"/roles/flow", "resources=kv/app/db", "approval=required", "approvers=group:owners", "ttl=10m")
	e.root(t, "write", mount+"/roles/direct", "resources=kv/app/db", "ttl=10m")

	ask := func() string {
		return e.jsonOut(t, alice.token, "write", "-f", mount+"/requests/flow")["data"].(map[string]interface{})["request_id"].(string)
	}
	approve := func(id string) {
		e.jsonOut(t, bob.token, "write", "-f", mount+"/requests/"+id+"/approve")
	}
	pickUp := func(id string) grant { return e.grantAs(t, alice.token, mount+"/requests/"+id+"/grant") }
	r1 := ask()
	approve(r1)
	r2 := ask()
	r3 := ask()
	e.jsonOut(t, alice.token, "write", "-f", mount+"/requests/"+r3+"/cancel")
	r4 := ask()
	approve(r4)
	g4 := pickUp(r4)
	g0 := e.grantAs(t, "", mount+"/grants/direct", "requester=svc@example.com")

	e.upgradeInPlace(t, mount)

	list := func(token string, args ...string) []string { return e.requestIDs(t, token, args...) }
	if got, want := strings.Join(list("", mount+"/audit/requests"), ","), strings.Join([]string{r4, r3, r2, r1}, ","); got != want {
		t.Fatalf("requests after the upgrade (newest first):\n got %s\nwant %s", got, want)
	}
	if got := list(alice.token, mount+"/requests", "mine=true"); len(got) != 4 {
		t.Fatalf("alice's requests after the upgrade: %v", got)
	}
	if got := list(bob.token, mount+"/requests", "can_approve=true"); len(got) != 1 || got[0] != r2 {
		t.Fatalf("bob can approve %v, want only %s", got, r2)
	}
	if got := list("", mount+"/audit/requests", "status=cancelled"); len(got) != 1 || got[0] != r3 {
		t.Fatalf("cancelled after the upgrade: %v", got)
	}
	idx := e.jsonOut(t, "", "read", mount+"/indexes")["data"].(map[string]interface{})
	if idx["ready"] != true || idx["requests"].(float64) != 4 || idx["grants"].(float64) != 2 {
		t.Fatalf("indexes after the upgrade: %v", idx)
	}

	approve(r2)
	g1, g2 := pickUp(r1), pickUp(r2)
	if got := strings.TrimSpace(e.s.MustCLI(t, e.mustLogin(t, g1), "kv", "get", "-field=password", "kv/app/db")); got != "upgrade" {
		t.Fatalf("a grant picked up after the upgrade read %q", got)
	}
	grants := e.listAll(t, mount+"/grants")
	if len(grants) != 4 {
		t.Fatalf("grants after the upgrade: %v", grants)
	}
	for _, g := range []grant{g0, g4, g1, g2} {
		e.root(t, "lease", "revoke", "-sync", g.LeaseID)
		if e.hasUser(t, g.Username) || e.hasPolicy(t, g.Policy) {
			t.Fatalf("grant %s left its user or policy after revoke", g.GrantID)
		}
	}
	if keys := e.listAll(t, mount+"/grants"); len(keys) != 0 {
		t.Fatalf("grants left after revoking all: %v", keys)
	}
}

// A crash between a new request's index entries and its record leaves entries without a
// record: the next list skips them and removes them (indexes says how many), and the
// plugin goes on.
func TestCrashBetweenIndexAndRecordIsRepaired(t *testing.T) {
	t.Parallel()
	flag := filepath.Join(t.TempDir(), "crash-once")
	e := ownVault(t, testvault.Options{PluginEnv: []string{"APONO_TEST_CRASH_POINT=request-after-index:" + flag}})
	e.writePolicy(t, "crash-people", requesterPolicy(t, "apono")+"\n"+approverPolicy(t, "apono"))
	alice := e.person(t, "alice", "crash-people")
	e.root(t, "kv", "put", "kv/app/db", "v=1")
	e.root(t, "write", "apono/roles/flow", "resources=kv/app/db", "approval=required", "approvers=group:owners")
	e.root(t, "write", "identity/group", "name=owners")
	ask := func() (string, error) {
		out, _, err := e.s.CLI(alice.token, "write", "-f", "-field=id", "apono/requests/flow")
		return strings.TrimSpace(out), err
	}
	first, err := ask()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(flag, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// The request at the crash point fails, or, when Vault's plugin wrapper sees the
	// process exit as a plugin shutdown, Vault reloads the plugin and runs the request
	// again (seen on Vault 1.14.2): then the retry is a request of its own, and the crashed
	// attempt's entries are still left without a record either way.
	live := []string{first}
	if id, err := ask(); err == nil {
		t.Logf("Vault ran the request at the crash point again on the new plugin process: %s", id)
		live = []string{id, first}
	}
	if _, err := os.Stat(flag); !os.IsNotExist(err) {
		t.Fatalf("the plugin did not reach the crash point: %v", err)
	}
	mine := func() []string {
		deadline := time.Now().Add(30 * time.Second)
		for {
			out, _, err := e.s.CLI(alice.token, "read", "-format=json", "apono/requests", "mine=true")
			if err == nil {
				return requestIDsOf(t, out)
			}
			if time.Now().After(deadline) {
				t.Fatalf("listing after the crash: %v", err)
			}
			time.Sleep(500 * time.Millisecond) // Vault starts the plugin again
		}
	}
	if got := mine(); fmt.Sprint(got) != fmt.Sprint(live) {
		t.Fatalf("alice's requests after the crash: %v, want only %v", got, live)
	}
	repaired := 0.0
	deadline := time.Now().Add(10 * time.Second)
	for repaired < 1 && time.Now().Before(deadline) {
		repaired = e.jsonOut(t, "", "read", "apono/indexes")["data"].(map[string]interface{})["entries_repaired"].(float64)
		time.Sleep(200 * time.Millisecond)
	}
	if repaired < 1 {
		t.Fatal("indexes reports no stale entry removed after the list met one")
	}
	second, err := ask()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := mine(), append([]string{second}, live...); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("alice's requests: %v, want %v", got, want)
	}
	// The other indexes the crashed request's entries were in are repaired as they are
	// read: the operator's list, and the pending one.
	if keys := e.listAll(t, "apono/audit/requests"); len(keys) != len(live)+1 {
		t.Fatalf("audit/requests after the crash: %v, want %d", keys, len(live)+1)
	}
}
