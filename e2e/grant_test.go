package e2e

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
)

// A read grant's user logs in with the CLI, reads exactly what was granted, is denied
// everything else and every higher permission; `vault lease revoke` then ends the login
// and cuts the token it already had.
func TestGrantKVReadThenRevoke(t *testing.T) {
	e := shared
	role := uniqueName(t)
	e.root(t, "kv", "put", "kv/"+role+"/db", "password=db-secret")
	e.root(t, "kv", "put", "kv/"+role+"/other", "x=1")
	// A folder of the same name as the granted secret: a read of one secret must not list it.
	e.root(t, "kv", "put", "kv/"+role+"/db/child-secret-name", "x=1")
	e.root(t, "write", "apono/roles/"+role, "resources=kv/"+role+"/db", "permissions=read,read-write", "ttl=5m", "max_ttl=10m")

	g := e.grant(t, role, "requester=alice@example.com", "justification=INC-1")
	if !g.Renewable || g.LeaseDuration != 300 || !strings.HasPrefix(g.LeaseID, "apono/grants/"+role+"/") {
		t.Fatalf("lease: %+v", g)
	}
	if g.Data["permission"] != "read" || g.Data["login_path"] != "auth/userpass/login/"+g.Username {
		t.Fatalf("grant data: %v", g.Data)
	}

	// The user has exactly the grant's policy, and token limits no longer than the grant.
	user := e.jsonOut(t, "", "read", "auth/userpass/users/"+g.Username)["data"].(map[string]interface{})
	if pols := user["token_policies"].([]interface{}); len(pols) != 1 || pols[0] != g.Policy {
		t.Fatalf("user policies: %v", pols)
	}
	if user["token_ttl"].(float64) > 300 || user["token_max_ttl"].(float64) > 300 || user["token_no_default_policy"] != true {
		t.Fatalf("user token limits: %v", user)
	}

	tok := e.mustLogin(t, g)
	if got := strings.TrimSpace(e.s.MustCLI(t, tok, "kv", "get", "-field=password", "kv/"+role+"/db")); got != "db-secret" {
		t.Fatalf("granted read returned %q", got)
	}
	denied := [][]string{
		{"kv", "get", "kv/" + role + "/other"},                      // another secret
		{"list", "kv/metadata/" + role + "/db"},                     // the keys below a folder named like the secret
		{"kv", "get", "kv/" + role + "/db/child-secret-name"},       // a secret in that folder
		{"kv", "put", "kv/" + role + "/db", "password=overwritten"}, // higher permission
		{"kv", "metadata", "delete", "kv/" + role + "/db"},          // admin
		{"kv", "destroy", "-versions=1", "kv/" + role + "/db"},      // admin
		{"read", "sys/mounts"},
		{"policy", "read", g.Policy},
		{"write", "-f", "apono/grants/" + role},
	}
	for _, args := range denied {
		if stderr := e.mustFail(t, tok, args...); !strings.Contains(stderr, "permission denied") {
			t.Fatalf("vault %v: want permission denied, got %s", args, stderr)
		}
	}

	// -sync: without it the CLI only queues the revocation, and the check below would race it.
	e.root(t, "lease", "revoke", "-sync", g.LeaseID)
	if _, err := e.login(g.Username, g.Password); err == nil {
		t.Fatal("login still works after revoke")
	}
	// The raw API path: the kv helper's preflight would hide which check denied it.
	if stderr := e.mustFail(t, tok, "read", "kv/data/"+role+"/db"); !strings.Contains(stderr, "permission denied") {
		t.Fatalf("issued token still reads after revoke: %s", stderr)
	}
	if e.hasUser(t, g.Username) || e.hasPolicy(t, g.Policy) {
		t.Fatal("user or policy left after revoke")
	}
	var list map[string]interface{}
	if out, _, err := e.s.CLI("", "list", "-format=json", "apono/grants"); err == nil {
		_ = json.Unmarshal([]byte(out), &list)
		if strings.Contains(out, g.GrantID) {
			t.Fatalf("revoked grant still listed: %s", out)
		}
	}
}

// A read-write grant on a folder lets the user write below it, but not destroy
// (admin) and not read outside it.
func TestGrantKVFolderReadWrite(t *testing.T) {
	e := shared
	role := uniqueName(t)
	e.root(t, "kv", "put", "kv/"+role+"/team/a", "v=1")
	e.root(t, "kv", "put", "kv/"+role+"/elsewhere", "v=1")
	e.root(t, "write", "apono/roles/"+role, "resources=kv/"+role+"/team/*", "permissions=read,read-write,admin", "ttl=5m")

	g := e.grant(t, role, "permission=read-write")
	tok := e.mustLogin(t, g)
	e.s.MustCLI(t, tok, "kv", "put", "kv/"+role+"/team/new", "v=2")
	e.s.MustCLI(t, tok, "kv", "get", "kv/"+role+"/team/a")
	e.s.MustCLI(t, tok, "kv", "list", "kv/"+role+"/team")
	e.s.MustCLI(t, tok, "kv", "delete", "kv/"+role+"/team/new")
	for _, args := range [][]string{
		{"kv", "destroy", "-versions=1", "kv/" + role + "/team/a"},
		{"kv", "metadata", "delete", "kv/" + role + "/team/a"},
		{"kv", "get", "kv/" + role + "/elsewhere"},
	} {
		if stderr := e.mustFail(t, tok, args...); !strings.Contains(stderr, "permission denied") {
			t.Fatalf("vault %v: want permission denied, got %s", args, stderr)
		}
	}
	e.root(t, "lease", "revoke", g.LeaseID)

	// A narrower grant from the same folder role gives only the one secret.
	g = e.grant(t, role, "resources=kv/"+role+"/team/a")
	tok = e.mustLogin(t, g)
	e.s.MustCLI(t, tok, "kv", "get", "kv/"+role+"/team/a")
	e.mustFail(t, tok, "kv", "get", "kv/"+role+"/team/new")
	e.root(t, "lease", "revoke", g.LeaseID)
}

// Transit permissions give exactly the operations named.
func TestGrantTransitPermissions(t *testing.T) {
	e := shared
	role := uniqueName(t)
	key, other, signing := role+"-pay", role+"-other", role+"-sign"
	e.root(t, "write", "-f", "transit/keys/"+key)
	e.root(t, "write", "-f", "transit/keys/"+other)
	e.root(t, "write", "transit/keys/"+signing, "type=ed25519")
	e.root(t, "write", "apono/roles/"+role, "resources=transit/"+key+",transit/"+signing, "permissions=encrypt,encrypt-decrypt,sign-verify", "ttl=5m")

	ct := e.jsonOut(t, "", "write", "transit/encrypt/"+key, "plaintext=aGVsbG8=")["data"].(map[string]interface{})["ciphertext"].(string)

	g := e.grant(t, role, "resources=transit/"+key, "permission=encrypt")
	tok := e.mustLogin(t, g)
	e.s.MustCLI(t, tok, "write", "transit/encrypt/"+key, "plaintext=aGVsbG8=")
	for _, args := range [][]string{
		{"write", "transit/decrypt/" + key, "ciphertext=" + ct},
		{"write", "transit/encrypt/" + other, "plaintext=aGVsbG8="},
		{"read", "transit/keys/" + key},
	} {
		if stderr := e.mustFail(t, tok, args...); !strings.Contains(stderr, "permission denied") {
			t.Fatalf("vault %v: want permission denied, got %s", args, stderr)
		}
	}
	e.root(t, "lease", "revoke", g.LeaseID)

	g = e.grant(t, role, "resources=transit/"+key, "permission=encrypt-decrypt")
	tok = e.mustLogin(t, g)
	out := e.s.MustCLI(t, tok, "write", "-field=plaintext", "transit/decrypt/"+key, "ciphertext="+ct)
	if strings.TrimSpace(out) != "aGVsbG8=" {
		t.Fatalf("decrypt returned %q", out)
	}
	e.root(t, "lease", "revoke", g.LeaseID)

	g = e.grant(t, role, "resources=transit/"+signing, "permission=sign-verify")
	tok = e.mustLogin(t, g)
	sig := strings.TrimSpace(e.s.MustCLI(t, tok, "write", "-field=signature", "transit/sign/"+signing, "input=aGVsbG8="))
	if v := strings.TrimSpace(e.s.MustCLI(t, tok, "write", "-field=valid", "transit/verify/"+signing, "input=aGVsbG8=", "signature="+sig)); v != "true" {
		t.Fatalf("verify returned %q", v)
	}
	e.mustFail(t, tok, "write", "transit/encrypt/"+signing, "plaintext=aGVsbG8=")
	e.root(t, "lease", "revoke", g.LeaseID)
}

// A grant with a 5-second TTL is cleaned up by Vault's expiry alone.
func TestGrantExpiresByItself(t *testing.T) {
	e := shared
	role := uniqueName(t)
	e.root(t, "kv", "put", "kv/"+role+"/db", "v=1")
	e.root(t, "write", "apono/roles/"+role, "resources=kv/"+role+"/db", "ttl=5s", "max_ttl=5s")
	g := e.grant(t, role)
	if g.LeaseDuration != 5 {
		t.Fatalf("lease_duration %d, want 5", g.LeaseDuration)
	}
	tok := e.mustLogin(t, g)
	took := e.waitGone(t, g, 45*time.Second)
	t.Logf("user and policy gone %s after the check started (lease 5 s)", took)
	if _, err := e.login(g.Username, g.Password); err == nil {
		t.Fatal("login works after expiry")
	}
	if stderr := e.mustFail(t, tok, "read", "kv/data/"+role+"/db"); !strings.Contains(stderr, "permission denied") {
		t.Fatalf("token still reads after expiry: %s", stderr)
	}
}

// Renewal extends a grant up to the role's max_ttl and no further, and raises the
// user's token limits with it.
func TestGrantRenewUpToMaxTTL(t *testing.T) {
	e := shared
	role := uniqueName(t)
	e.root(t, "kv", "put", "kv/"+role+"/db", "v=1")
	e.root(t, "write", "apono/roles/"+role, "resources=kv/"+role+"/db", "ttl=5s", "max_ttl=20s")
	g := e.grant(t, role)
	issued := time.Now()

	r := e.jsonOut(t, "", "lease", "renew", "-increment=12s", g.LeaseID)
	if d := int(r["lease_duration"].(float64)); d < 10 || d > 12 {
		t.Fatalf("renewed lease_duration %d, want about 12", d)
	}
	user := e.jsonOut(t, "", "read", "auth/userpass/users/"+g.Username)["data"].(map[string]interface{})
	if m := user["token_max_ttl"].(float64); m < 10 || m > 12 {
		t.Fatalf("user token_max_ttl %v after renew, want about 12", m)
	}

	r = e.jsonOut(t, "", "lease", "renew", "-increment=1h", g.LeaseID)
	remaining := 20*time.Second - time.Since(issued)
	if d := time.Duration(r["lease_duration"].(float64)) * time.Second; d > remaining+time.Second {
		t.Fatalf("renewal past max_ttl: lease_duration %s, at most %s remain", d, remaining)
	}
	took := e.waitGone(t, g, 60*time.Second)
	if total := time.Since(issued); total > 20*time.Second+30*time.Second {
		t.Fatalf("grant lived %s, max_ttl is 20s", total)
	}
	t.Logf("grant ended %s after issue (max_ttl 20s), cleanup seen after %s of polling", time.Since(issued), took)
	if stderr := e.mustFail(t, "", "lease", "renew", g.LeaseID); !strings.Contains(stderr, "lease not found") && !strings.Contains(stderr, "invalid lease") {
		t.Logf("renew after end: %s", stderr)
	}
}

// `vault lease revoke -prefix` ends every grant of a role.
func TestRevokePrefixEndsEveryGrant(t *testing.T) {
	e := shared
	role := uniqueName(t)
	e.root(t, "kv", "put", "kv/"+role+"/db", "v=1")
	e.root(t, "write", "apono/roles/"+role, "resources=kv/"+role+"/db", "ttl=5m")
	var grants []grant
	for i := 0; i < 3; i++ {
		grants = append(grants, e.grant(t, role))
	}
	e.root(t, "lease", "revoke", "-prefix", "apono/grants/"+role)
	for _, g := range grants {
		e.waitGone(t, g, 30*time.Second)
	}
}

// The plugin's management token can be revoked under it: the next call gets a 403, and
// the plugin logs in again with its AppRole instead of failing.
func TestClientLogsInAgainAfterItsTokenIsRevoked(t *testing.T) {
	e := shared
	role := uniqueName(t)
	e.root(t, "kv", "put", "kv/"+role+"/db", "v=1")
	e.root(t, "write", "apono/roles/"+role, "resources=kv/"+role+"/db", "ttl=5m")
	e.grant(t, role) // the client is logged in
	e.root(t, "lease", "revoke", "-prefix", "auth/approle/login")
	g := e.grant(t, role)
	e.mustLogin(t, g)
	e.root(t, "lease", "revoke", "-sync", g.LeaseID) // done when it returns, not queued
	if user, policy := e.hasUser(t, g.Username), e.hasPolicy(t, g.Policy); user || policy {
		t.Fatalf("left after revoke: user %v, policy %v (%s)", user, policy, g.Username)
	}
}

func TestGrantListAndReadNeverShowPassword(t *testing.T) {
	e := shared
	role := uniqueName(t)
	e.root(t, "kv", "put", "kv/"+role+"/db", "v=1")
	e.root(t, "write", "apono/roles/"+role, "resources=kv/"+role+"/db", "ttl=5m")
	g := e.grant(t, role, "requester=bob@example.com", "justification=on call")

	list := e.jsonOut(t, "", "list", "-detailed", "apono/grants")
	raw, _ := json.Marshal(list)
	if strings.Contains(string(raw), g.Password) {
		t.Fatal("grant list shows the password")
	}
	key := role + "/" + g.GrantID
	rec := e.jsonOut(t, "", "read", "apono/grants/"+key)["data"].(map[string]interface{})
	if rec["requester"] != "bob@example.com" || rec["justification"] != "on call" || rec["username"] != g.Username {
		t.Fatalf("grant record: %v", rec)
	}
	if _, ok := rec["password"]; ok {
		t.Fatal("grant read shows the password")
	}
	e.root(t, "lease", "revoke", g.LeaseID)
}

// Config reads never show secret_id; a write with a bad secret_id is a 400 and the old
// config keeps working; nothing secret reaches Vault's log (where the plugin logs too).
func TestConfigSecretsStayInside(t *testing.T) {
	e := shared
	cfg := e.jsonOut(t, "", "read", "apono/config")["data"].(map[string]interface{})
	if _, ok := cfg["secret_id"]; ok {
		t.Fatal("config read returns secret_id")
	}
	if cfg["secret_id_set"] != true || cfg["role_id"] != e.setup.RoleID {
		t.Fatalf("config read: %v", cfg)
	}
	raw, _ := json.Marshal(cfg)
	if strings.Contains(string(raw), e.setup.SecretID) {
		t.Fatal("config read leaks the secret_id")
	}

	e.mustBadRequest(t, "cannot log in", "write", "apono/config", "secret_id=00000000-0000-0000-0000-000000000000")
	role := uniqueName(t)
	e.root(t, "kv", "put", "kv/"+role+"/db", "v=1")
	e.root(t, "write", "apono/roles/"+role, "resources=kv/"+role+"/db", "ttl=5m")
	g := e.grant(t, role)
	e.root(t, "lease", "revoke", g.LeaseID)

	logBytes, err := os.ReadFile(e.s.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	log := string(logBytes)
	if !strings.Contains(log, "grant issued") {
		t.Fatal("the plugin's log lines are not in the server log; this check would prove nothing")
	}
	for name, secret := range map[string]string{"secret_id": e.setup.SecretID, "grant password": g.Password} {
		if strings.Contains(log, secret) {
			t.Fatalf("%s appears in Vault's log", name)
		}
	}
}

func TestPluginReportsItsVersion(t *testing.T) {
	e := shared
	info := e.jsonOut(t, "", "plugin", "info", "-version="+e.setup.Version, "secret", "vault-plugin-apono")
	if info["version"] != e.setup.Version || info["sha256"] != e.setup.PluginSHA {
		t.Fatalf("plugin info: %v", info)
	}
	mounts := e.jsonOut(t, "", "secrets", "list", "-detailed")
	m := mounts["apono/"].(map[string]interface{})
	if m["running_plugin_version"] != e.setup.Version || m["running_sha256"] != e.setup.PluginSHA {
		t.Fatalf("running version %v, want %s", m["running_plugin_version"], e.setup.Version)
	}
	help := e.root(t, "path-help", "apono/grants/x")
	if !strings.Contains(help, "Grant just-in-time access") {
		t.Fatalf("path-help: %s", help)
	}
}
