package e2e

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apono-io/vault-plugin-apono/internal/testvault"
)

// A bundle of a KV secret, a Transit key and database credentials, each owned by someone
// else: every owner must approve their part, the pickup is one login that reads the
// secret, encrypts with the key and gets PostgreSQL credentials, and one lease revoke ends
// all of it (the userpass user, the policy and the database user).
func TestBundleKVTransitDatabaseOneLogin(t *testing.T) {
	t.Parallel()
	f := &enginesFixture{env: ownVault(t, testvault.Options{})}
	f.startDatabase(t)
	f.allowEngines(t)

	f.root(t, "kv", "put", "kv/app/db", "password=bundle-s3cret")
	f.root(t, "kv", "metadata", "put", "-custom-metadata=owner=entity:bun-kvo", "kv/app/db")
	f.root(t, "kv", "put", "kv/app/other", "password=not-in-the-bundle")
	f.root(t, "write", "-f", "transit/keys/payments")
	f.root(t, "write", "apono/config", "owner_metadata_key=owner", "integration_owner=security")
	f.root(t, "write", "apono/owners/database/*", "approvers=entity:bun-dba")
	f.writePolicy(t, "bun-requester", requesterPolicy(t, "apono"))
	f.writePolicy(t, "bun-approver", approverPolicy(t, "apono"))
	alice := f.person(t, "bun-alice", "bun-requester", "bun-approver")
	kvOwner := f.person(t, "bun-kvo", "bun-approver")
	keyOwner := f.person(t, "bun-sec", "bun-approver")
	dba := f.person(t, "bun-dba", "bun-approver")
	f.root(t, "write", "identity/group", "name=security", "member_entity_ids="+keyOwner.entityID)

	f.root(t, "write", "apono/roles/app-secrets", "resources=kv/app/*", "permissions=read", "approval=required", "approvers=owner", "ttl=10m", "max_ttl=1h")
	f.root(t, "write", "apono/roles/app-keys", "resources=transit/payments", "permissions=encrypt", "approval=required", "approvers=owner", "ttl=10m", "max_ttl=1h")
	f.root(t, "write", "apono/roles/app-db", "resources=database/creds/readonly", "approval=required", "approvers=owner", "ttl=10m", "max_ttl=30m",
		"require_justification=true")
	parts := `[{"role":"app-secrets","resources":["kv/app/db"],"permission":"read"},{"role":"app-keys"},{"role":"app-db"}]`

	// Bad input is a 400 that names what is wrong, and nothing is stored.
	f.mustBadRequest(t, `parts[1] (role "nope"): no such role`, "write", "apono/bundles/bad", `parts=[{"role":"app-keys"},{"role":"nope"}]`)
	f.mustBadRequest(t, `"kv/other/x" is not among role "app-secrets"'s resources`, "write", "apono/bundles/bad", `parts=[{"role":"app-secrets","resources":["kv/other/x"]}]`)
	f.mustBadRequest(t, `ttl 45m0s is longer than parts[2] (role "app-db") allows (max_ttl 30m0s)`, "write", "apono/bundles/bad", "parts="+parts, "ttl=45m")
	// The short form, parts=<role>[:<permission>],...: app-keys' default permission is encrypt.
	f.mustBadRequest(t, `parts[1] (role "app-keys"): the same role and permission as parts[0]`, "write", "apono/bundles/bad", "parts=app-keys,app-keys:encrypt")
	if out, _, err := f.s.CLI("", "read", "apono/bundles/bad"); err == nil && strings.TrimSpace(out) != "" {
		t.Fatalf("a refused bundle was stored: %s", out)
	}
	// The parts from a file, as docs/access-flows.md shows (parts=@parts.json).
	partsFile := filepath.Join(t.TempDir(), "parts.json")
	if err := os.WriteFile(partsFile, []byte(parts), 0o600); err != nil {
		t.Fatal(err)
	}
	f.root(t, "write", "apono/bundles/app-oncall", "parts=@"+partsFile, "ttl=10m", "description=Payments on-call: the app's secret, its key and its database")
	if got := jsonString(t, f.jsonOut(t, "", "read", "apono/bundles/app-oncall")["data"].(map[string]interface{})["parts"]); !strings.Contains(got, `"role":"app-db"`) || strings.Count(got, `"role"`) != 3 {
		t.Fatalf("bundle read: parts %s", got)
	}

	// The requester sees the bundle and who approves each part.
	mine := f.jsonOut(t, alice.token, "read", "apono/my/bundles")["data"].(map[string]interface{})["bundles"].([]interface{})
	if len(mine) != 1 || mine[0].(map[string]interface{})["name"] != "app-oncall" || mine[0].(map[string]interface{})["require_justification"] != true {
		t.Fatalf("my/bundles: %v", mine)
	}
	if stderr := f.mustFail(t, alice.token, "write", "-f", "apono/requests/bundle/app-oncall"); !strings.Contains(stderr, "Code: 400") ||
		!strings.Contains(stderr, `parts[2] (role \"app-db\"): justification is required`) && !strings.Contains(stderr, `parts[2] (role "app-db"): justification is required`) {
		t.Fatalf("a bundle request without the justification a part's role requires: %s", stderr)
	}
	req := f.jsonOut(t, alice.token, "write", "apono/requests/bundle/app-oncall", "justification=INC-77 payments down")["data"].(map[string]interface{})
	id, _ := req["request_id"].(string)
	if req["bundle"] != "app-oncall" || req["role"] != "bundle:app-oncall" || id == "" {
		t.Fatalf("bundle request: %v", req)
	}
	wantApprovers := []string{`["entity:bun-kvo"]`, `["group:security"]`, `["entity:bun-dba"]`}
	for i, p := range req["parts"].([]interface{}) {
		if got := jsonString(t, p.(map[string]interface{})["approvers"]); got != wantApprovers[i] {
			t.Fatalf("part %d approvers %s, want %s", i, got, wantApprovers[i])
		}
	}

	// The requester approves nothing; one owner approves only their own part.
	if stderr := f.mustFail(t, alice.token, "write", "-f", "apono/requests/"+id+"/approve"); !strings.Contains(stderr, "Code: 403") {
		t.Fatalf("self-approval: %s", stderr)
	}
	f.jsonOut(t, kvOwner.token, "write", "-f", "apono/requests/"+id+"/approve", "reason=secret ok")
	read := f.jsonOut(t, alice.token, "read", "apono/requests/"+id)["data"].(map[string]interface{})
	approved := []bool{}
	for _, p := range read["parts"].([]interface{}) {
		approved = append(approved, p.(map[string]interface{})["approved"].(bool))
	}
	if read["status"] != "pending" || !approved[0] || approved[1] || approved[2] {
		t.Fatalf("after the KV owner: status %v, parts approved %v", read["status"], approved)
	}
	if stderr := f.mustFail(t, alice.token, "write", "-f", "apono/requests/"+id+"/grant"); !strings.Contains(stderr, "not approved yet") {
		t.Fatalf("pickup before every part is approved: %s", stderr)
	}
	f.jsonOut(t, keyOwner.token, "write", "-f", "apono/requests/"+id+"/approve", "reason=key ok")
	f.jsonOut(t, dba.token, "write", "-f", "apono/requests/"+id+"/approve", "reason=read-only ok")
	if s := f.jsonOut(t, "", "read", "apono/audit/requests/"+id)["data"].(map[string]interface{})["status"]; s != "approved" {
		t.Fatalf("after every part's owner: %v", s)
	}

	// One login does all three.
	g := f.grantAs(t, alice.token, "apono/requests/"+id+"/grant")
	if g.Data["bundle"] != "app-oncall" || len(g.Data["parts"].([]interface{})) != 3 {
		t.Fatalf("bundle grant: %v", g.Data)
	}
	tok := f.mustLogin(t, g)
	if got := strings.TrimSpace(f.s.MustCLI(t, tok, "kv", "get", "-field=password", "kv/app/db")); got != "bundle-s3cret" {
		t.Fatalf("kv read through the bundle: %q", got)
	}
	plain := base64.StdEncoding.EncodeToString([]byte("card 4242"))
	if ct := strings.TrimSpace(f.s.MustCLI(t, tok, "write", "-field=ciphertext", "transit/encrypt/payments", "plaintext="+plain)); !strings.HasPrefix(ct, "vault:v1:") {
		t.Fatalf("transit encrypt through the bundle: %q", ct)
	}
	dbUser, _ := f.dbCreds(t, tok)
	// Nothing beyond the parts: another secret of the role, decryption.
	refusedWith(t, "a secret outside the bundle", f.mustFail(t, tok, "kv", "get", "kv/app/other"), "permission denied", "Code: 403")
	refusedWith(t, "decrypt", f.mustFail(t, tok, "write", "transit/decrypt/payments", "ciphertext=vault:v1:abc"), "permission denied", "Code: 403")
	users, policies := f.aponoObjects(t)
	if len(users) != 1 || len(policies) != 1 {
		t.Fatalf("one login for the bundle: users %v, policies %v", users, policies)
	}

	// One revoke ends it all.
	start := time.Now()
	f.root(t, "lease", "revoke", g.LeaseID)
	f.waitGone(t, g, 30*time.Second)
	f.waitNoPGRole(t, dbUser, 30*time.Second)
	t.Logf("revoke: user, policy and PostgreSQL role %s gone %s after the lease revoke", dbUser, time.Since(start).Round(100*time.Millisecond))
	if _, err := f.login(g.Data["username"].(string), g.Data["password"].(string)); err == nil {
		t.Fatal("the bundle's login still works after the revoke")
	}

	// History names the bundle and each resource.
	hist := f.jsonOut(t, "", "read", "apono/history", "role=bundle:app-oncall")["data"].(map[string]interface{})["history"].([]interface{})
	if len(hist) != 1 {
		t.Fatalf("history of the bundle: %v", hist)
	}
	h := hist[0].(map[string]interface{})
	if h["bundle"] != "app-oncall" || jsonString(t, h["resources"]) != `["kv/app/db","transit/payments","database/creds/readonly"]` || len(h["parts"].([]interface{})) != 3 {
		t.Fatalf("history entry: %v", h)
	}
}
