package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/apono-io/vault-plugin-apono/internal/testpg"
	"github.com/apono-io/vault-plugin-apono/internal/testsshd"
	"github.com/apono-io/vault-plugin-apono/internal/testvault"
)

// The rest of Vault, granted like a secret and ended with the grant, with the real parts a
// user runs: PostgreSQL behind Vault's database engine (psql connects as the user Vault
// made), Vault's PKI (openssl reads the certificate) and Vault's SSH CA (sshd trusts it,
// ssh logs in with the signed key).
//
// One Vault for the whole test: its plugin can be made to exit in the middle of a grant's
// removal (APONO_TEST_CRASH_POINT), and the sweeper runs on every rollback tick.

type enginesFixture struct {
	*env
	pg        *testpg.Server
	sshd      *testsshd.Server
	requester *person
	dbOwner   *person
	crashFlag string
}

func newEnginesFixture(t *testing.T) *enginesFixture {
	t.Helper()
	flag := filepath.Join(t.TempDir(), "crash")
	e := ownVault(t, testvault.Options{PluginEnv: []string{
		"APONO_SWEEP_INTERVAL=1s", "APONO_TEST_CRASH_POINT=remove-after-policy:" + flag,
	}})
	f := &enginesFixture{env: e, crashFlag: flag}

	f.startDatabase(t)

	// PKI: a root CA and a role for example.test names, certificates up to 72h.
	e.root(t, "secrets", "enable", "pki")
	e.root(t, "secrets", "tune", "-max-lease-ttl=87600h", "pki")
	e.root(t, "write", "pki/root/generate/internal", "common_name=apono-test-ca", "ttl=8760h")
	e.root(t, "write", "pki/roles/web", "allowed_domains=example.test", "allow_subdomains=true", "max_ttl=72h")

	// SSH: Vault's CA, trusted by a real sshd, and a role that signs user keys for its account.
	e.root(t, "secrets", "enable", "ssh")
	e.root(t, "write", "ssh/config/ca", "generate_signing_key=true")
	caKey := strings.TrimSpace(e.root(t, "read", "-field=public_key", "ssh/config/ca"))
	f.sshd = testsshd.Start(t, caKey)
	e.root(t, "write", "ssh/roles/login", "key_type=ca", "allow_user_certificates=true",
		"allowed_users="+f.sshd.User, "default_user="+f.sshd.User, "ttl=30m", "max_ttl=1h")

	// The approver of database credentials comes from the owners table; everything else
	// falls back to the integration owner.
	e.root(t, "write", "apono/config", "integration_owner=security")
	e.writePolicy(t, "eng-requester", requesterPolicy(t, "apono"))
	e.writePolicy(t, "eng-approver", approverPolicy(t, "apono"))
	f.requester = e.person(t, "eng-alice", "eng-requester")
	f.dbOwner = e.person(t, "eng-dba", "eng-approver")
	e.root(t, "write", "apono/owners/database/*", "approvers=entity:eng-dba", "description=the DBAs own every database role")
	return f
}

// startDatabase starts PostgreSQL behind Vault's database engine: a dynamic role,
// readonly, that can read one table (orders, holding 42).
func (f *enginesFixture) startDatabase(t *testing.T) {
	t.Helper()
	f.pg = testpg.Start(t)
	f.pg.AdminSQL(t, "CREATE TABLE orders (id int); INSERT INTO orders VALUES (42)")
	f.root(t, "secrets", "enable", "database")
	f.root(t, "write", "database/config/pg", "plugin_name=postgresql-database-plugin",
		"connection_url="+f.pg.ConnectionURL(), "username="+f.pg.AdminUser, "password="+f.pg.AdminPassword,
		"allowed_roles=readonly", "verify_connection=true")
	f.root(t, "write", "database/roles/readonly", "db_name=pg", "default_ttl=1h", "max_ttl=24h",
		`creation_statements=CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'; GRANT SELECT ON orders TO "{{name}}";`)
}

// allowEngines gives the plugin's AppRole the engine additions of docs/operations.md.
func (f *enginesFixture) allowEngines(t *testing.T) {
	t.Helper()
	f.writePolicy(t, "plugin-engines", testdataFile(t, "apono-engines.hcl"))
	f.root(t, "write", "auth/approle/role/"+testvault.AppRoleName, "token_policies="+testvault.PolicyName+",plugin-engines")
	// The plugin's current token has the old policies: a config write logs in anew.
	f.root(t, "write", "apono/config", "role_id="+f.setup.RoleID, "secret_id="+f.setup.SecretID)
}

// pgRoles are the roles Vault's database engine made (Vault names them v-...).
func (f *enginesFixture) pgRoles(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, r := range f.pg.Roles(t) {
		if strings.HasPrefix(r, "v-") {
			out = append(out, r)
		}
	}
	return out
}

// waitNoPGRole waits until PostgreSQL has no role named name and returns how long that took.
func (f *enginesFixture) waitNoPGRole(t *testing.T, name string, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for f.pg.RoleExists(t, name) {
		if time.Since(start) > timeout {
			t.Fatalf("PostgreSQL role %s still exists %s after the grant ended (roles: %v)", name, timeout, f.pgRoles(t))
		}
		time.Sleep(500 * time.Millisecond)
	}
	return time.Since(start)
}

// dbCreds reads database/creds/readonly with token and checks that psql gets in with them.
func (f *enginesFixture) dbCreds(t *testing.T, token string) (user, password string) {
	t.Helper()
	creds := f.jsonOut(t, token, "read", "database/creds/readonly")["data"].(map[string]interface{})
	user, _ = creds["username"].(string)
	password, _ = creds["password"].(string)
	if user == "" || password == "" {
		t.Fatalf("database/creds/readonly: %v", creds)
	}
	out, err := f.pg.Psql(t, user, password, "SELECT id FROM orders")
	if err != nil || out != "42" {
		t.Fatalf("psql as the database user the grant gave: %q, %v", out, err)
	}
	return user, password
}

// warningValue finds name=<value> in a grant's warnings.
func warningValue(t *testing.T, g grant, name string) string {
	t.Helper()
	re := regexp.MustCompile(regexp.QuoteMeta(name) + `=([^\s;,()]+)`)
	for _, w := range g.Warnings {
		if m := re.FindStringSubmatch(w.(string)); m != nil {
			return m[1]
		}
	}
	t.Fatalf("no %s= in the grant's warnings: %v", name, g.Warnings)
	return ""
}

func grantEnd(t *testing.T, g grant) time.Time {
	t.Helper()
	end, err := time.Parse(time.RFC3339, g.Data["expires_at"].(string))
	if err != nil {
		t.Fatalf("expires_at: %v", err)
	}
	return end
}

func refusedWith(t *testing.T, what, stderr string, want ...string) {
	t.Helper()
	for _, w := range want {
		if strings.Contains(stderr, w) {
			return
		}
	}
	t.Fatalf("%s: want a refusal (%v), got:\n%s", what, want, stderr)
}

func TestEnginesDatabasePKISSHAndPaths(t *testing.T) {
	t.Parallel()
	f := newEnginesFixture(t)

	// Without the management token's right to revoke grant users' logins, a database
	// user would outlive its grant: such a role is refused, and nothing is written.
	f.mustBadRequest(t, "sys/leases/revoke-prefix/auth/userpass/login/", "write", "apono/roles/db",
		"resources=database/creds/readonly", "approval=required", "approvers=owner", "ttl=5m")
	if out, _, err := f.s.CLI("", "read", "apono/roles/db"); err == nil && strings.TrimSpace(out) != "" {
		t.Fatalf("a refused role was written: %s", out)
	}
	f.allowEngines(t)

	// A short SSH grant, issued first: its signing must stop before it ends, which the
	// last subtest checks once the plugin's periodic job has had time to act.
	f.root(t, "write", "apono/roles/ssh-short", "resources=ssh/sign/login", "ttl=4m", "max_ttl=4m")
	short := f.grant(t, "ssh-short")
	shortTTL := warningValue(t, short, "ttl")
	if shortTTL != "60s" {
		t.Fatalf("a 4-minute grant pins ttl=%s, want 60s ((4m - 2m margin) / 2)", shortTTL)
	}
	shortToken := f.mustLogin(t, short)
	shortKey := testsshd.NewKeyPair(t)
	f.s.MustCLI(t, shortToken, "write", "-field=signed_key", "ssh/sign/login", "public_key=@"+shortKey.PublicKeyPath,
		"ttl="+shortTTL, "valid_principals="+f.sshd.User)

	t.Run("database credentials approved by the owners table end with the grant", func(t *testing.T) {
		f.root(t, "write", "apono/roles/db", "resources=database/creds/readonly", "approval=required", "approvers=owner", "ttl=5m")
		v := f.jsonOut(t, f.requester.token, "write", "apono/requests/db", "resources=database/creds/readonly", "justification=INC-42 read orders")
		req := v["data"].(map[string]interface{})
		id, _ := req["request_id"].(string)
		if got := jsonString(t, req["approvers"]); got != `["entity:eng-dba"]` {
			t.Fatalf("approvers %s, want the owners table's entity:eng-dba", got)
		}
		// The requester cannot approve; the owner does.
		if stderr := f.mustFail(t, f.requester.token, "write", "-f", "apono/requests/"+id+"/approve"); !strings.Contains(stderr, "Code: 403") {
			t.Fatalf("self-approval: %s", stderr)
		}
		f.jsonOut(t, f.dbOwner.token, "write", "-f", "apono/requests/"+id+"/approve", "reason=read-only is fine")
		g := f.grantAs(t, f.requester.token, "apono/requests/"+id+"/grant")
		tok := f.mustLogin(t, g)
		user, _ := f.dbCreds(t, tok)
		if !f.pg.RoleExists(t, user) {
			t.Fatalf("pg_roles lacks %s while the grant lives", user)
		}
		// The grant user reads nothing else.
		refusedWith(t, "another database role", f.mustFail(t, tok, "read", "database/creds/other"), "permission denied", "Code: 403")

		f.root(t, "lease", "revoke", g.LeaseID)
		took := f.waitNoPGRole(t, user, 20*time.Second)
		t.Logf("revoke: PostgreSQL role %s gone %s after the lease revoke returned", user, took.Round(100*time.Millisecond))
		if _, err := f.pg.Psql(t, user, "x", "SELECT 1"); err == nil {
			t.Fatal("the database user still logs in")
		}
	})

	t.Run("database credentials end when the grant expires", func(t *testing.T) {
		f.root(t, "write", "apono/roles/db-short", "resources=database/creds/readonly", "ttl=20s", "max_ttl=20s")
		g := f.grant(t, "db-short")
		user, _ := f.dbCreds(t, f.mustLogin(t, g))
		end := grantEnd(t, g)
		f.waitNoPGRole(t, user, time.Until(end)+30*time.Second)
		t.Logf("expiry: PostgreSQL role %s gone %s after the grant's end", user, time.Since(end).Round(time.Second))
	})

	t.Run("a crash in the middle of the removal leaves no database user behind", func(t *testing.T) {
		f.root(t, "write", "apono/roles/db-crash", "resources=database/creds/readonly", "ttl=30s", "max_ttl=30s")
		g := f.grant(t, "db-crash")
		user, _ := f.dbCreds(t, f.mustLogin(t, g))
		if err := os.WriteFile(f.crashFlag, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		// The plugin exits after deleting the policy, before the user, the logins and the record.
		// Vault answers the revoke and retries it when the plugin has restarted; the
		// sweeper would remove the grant after its end if it did not.
		if _, stderr, err := f.s.CLI("", "lease", "revoke", g.LeaseID); err != nil {
			t.Logf("lease revoke, cut short by the plugin's exit: %v %s", err, stderr)
		}
		if _, err := os.Stat(f.crashFlag); !os.IsNotExist(err) {
			t.Fatalf("the plugin did not reach the crash point (flag still there: %v)", err)
		}
		end := grantEnd(t, g)
		f.waitNoPGRole(t, user, time.Until(end)+2*time.Minute)
		deadline := time.Now().Add(2 * time.Minute)
		for {
			users, policies := f.aponoObjects(t)
			if !contains(users, g.Username) && !contains(policies, g.Policy) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after the crash, left behind: users %v, policies %v", users, policies)
			}
			time.Sleep(time.Second)
		}
		t.Logf("crash: PostgreSQL role %s and grant user %s gone %s after the grant's end", user, g.Username, time.Since(end).Round(time.Second))
	})

	t.Run("a PKI certificate ends no later than the grant", func(t *testing.T) {
		f.root(t, "write", "apono/roles/certs", "resources=pki/issue/web", "ttl=10m", "max_ttl=10m")
		g := f.grant(t, "certs")
		notAfter := warningValue(t, g, "not_after")
		tok := f.mustLogin(t, g)
		// The policy takes only the pinned not_after: none, another, or a ttl is refused.
		for name, args := range map[string][]string{
			"no not_after":      {"common_name=a.example.test"},
			"a later not_after": {"common_name=a.example.test", "not_after=2099-01-01T00:00:00Z"},
			"a ttl":             {"common_name=a.example.test", "not_after=" + notAfter, "ttl=72h"},
		} {
			refusedWith(t, name, f.mustFail(t, tok, append([]string{"write", "pki/issue/web"}, args...)...), "permission denied", "Code: 403")
		}
		cert := f.jsonOut(t, tok, "write", "pki/issue/web", "common_name=a.example.test", "not_after="+notAfter)["data"].(map[string]interface{})["certificate"].(string)
		path := filepath.Join(t.TempDir(), "cert.pem")
		if err := os.WriteFile(path, []byte(cert), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("openssl", "x509", "-noout", "-enddate", "-in", path).CombinedOutput()
		if err != nil {
			t.Fatalf("openssl x509: %v\n%s", err, out)
		}
		got, err := time.Parse("Jan _2 15:04:05 2006 MST", strings.TrimPrefix(strings.TrimSpace(string(out)), "notAfter="))
		if err != nil {
			t.Fatalf("openssl's notAfter %q: %v", out, err)
		}
		if end := grantEnd(t, g); got.After(end) {
			t.Fatalf("certificate notAfter %s is after the grant's end %s", got, end)
		}
		t.Logf("PKI: notAfter %s, grant ends %s", got.UTC().Format(time.RFC3339), g.Data["expires_at"])
		f.root(t, "lease", "revoke", g.LeaseID)
		f.waitGone(t, g, 30*time.Second)
		refusedWith(t, "issue after the grant", f.mustFail(t, tok, "write", "pki/issue/web", "common_name=b.example.test", "not_after="+notAfter),
			"permission denied", "Code: 403")
		if _, err := f.login(g.Username, g.Password); err == nil {
			t.Fatal("the grant user still logs in")
		}
	})

	t.Run("an SSH certificate logs in and ends no later than the grant", func(t *testing.T) {
		f.root(t, "write", "apono/roles/ssh", "resources=ssh/sign/login", "ttl=10m", "max_ttl=10m")
		g := f.grant(t, "ssh")
		ttl := warningValue(t, g, "ttl")
		if ttl != "240s" {
			t.Fatalf("a 10-minute grant pins ttl=%s, want 240s ((10m - 2m margin) / 2, under the role's 30m)", ttl)
		}
		tok := f.mustLogin(t, g)
		key := testsshd.NewKeyPair(t)
		sign := func(args ...string) (string, string, error) {
			return f.s.CLI(tok, append([]string{"write", "-field=signed_key", "ssh/sign/login", "public_key=@" + key.PublicKeyPath,
				"valid_principals=" + f.sshd.User}, args...)...)
		}
		for name, args := range map[string][]string{"no ttl": nil, "a longer ttl": {"ttl=1h"}} {
			if _, stderr, err := sign(args...); err == nil {
				t.Fatalf("signing with %s succeeded", name)
			} else {
				refusedWith(t, name, stderr, "permission denied", "Code: 403")
			}
		}
		signed, stderr, err := sign("ttl=" + ttl)
		if err != nil {
			t.Fatalf("signing: %v\n%s", err, stderr)
		}
		certPath := key.WriteCertificate(t, strings.TrimSpace(signed))
		out, err := f.sshd.Login(t, key.PrivateKeyPath, certPath, "echo apono-ssh-ok")
		if err != nil || !strings.Contains(out, "apono-ssh-ok") {
			t.Fatalf("ssh with the signed certificate: %q, %v\n%s", out, err, f.sshd.Log())
		}
		validTo := sshCertValidTo(t, certPath)
		if end := grantEnd(t, g); validTo.After(end) {
			t.Fatalf("SSH certificate valid to %s, after the grant's end %s", validTo, end)
		}
		t.Logf("SSH: certificate valid to %s, grant ends %s", validTo.UTC().Format(time.RFC3339), g.Data["expires_at"])
		f.root(t, "lease", "revoke", g.LeaseID)
		f.waitGone(t, g, 30*time.Second)
		if _, stderr, err := sign("ttl=" + ttl); err == nil {
			t.Fatal("signing after the grant ended succeeded")
		} else {
			refusedWith(t, "signing after the grant", stderr, "permission denied", "Code: 403")
		}
	})

	t.Run("path resources only below the allowed prefixes", func(t *testing.T) {
		f.root(t, "secrets", "enable", "-path=legacy", "-version=1", "kv")
		f.root(t, "write", "legacy/team/app", "v=path-secret")
		f.root(t, "write", "legacy/other/app", "v=other")
		f.mustBadRequest(t, "grantable_path_prefixes", "write", "apono/roles/legacy", "resources=legacy/team/app", "permissions=path-read")
		for _, bad := range []string{"sys/", "auth/", "identity/", "apono/"} {
			f.mustBadRequest(t, "grantable_path_prefixes", "write", "apono/config", "grantable_path_prefixes="+bad)
		}
		f.root(t, "write", "apono/config", "grantable_path_prefixes=legacy/team/")
		f.mustBadRequest(t, "grantable_path_prefixes", "write", "apono/roles/legacy", "resources=legacy/other/app", "permissions=path-read")
		f.root(t, "write", "apono/roles/legacy", "resources=legacy/team/app", "permissions=path-read", "ttl=5m")
		g := f.grant(t, "legacy")
		tok := f.mustLogin(t, g)
		if got := strings.TrimSpace(f.s.MustCLI(t, tok, "read", "-field=v", "legacy/team/app")); got != "path-secret" {
			t.Fatalf("the grant user read %q", got)
		}
		refusedWith(t, "a path beside the grant", f.mustFail(t, tok, "read", "legacy/other/app"), "permission denied", "Code: 403")
		refusedWith(t, "a write with path-read", f.mustFail(t, tok, "write", "legacy/team/app", "v=changed"), "permission denied", "Code: 403")
		f.root(t, "lease", "revoke", g.LeaseID)
	})

	t.Run("apono/sync lists the engines' roles with their owners", func(t *testing.T) {
		f.syncNow(t)
		got := byName(f.allResources(t, false, nil, 1000))
		want := map[string]string{
			"database/creds/readonly": `[{"approvers":["entity:eng-dba"],"source":"owners_table"}]`,
			"pki/issue/web":           `[{"approvers":["group:security"],"source":"integration_owner"}]`,
			"pki/sign/web":            `[{"approvers":["group:security"],"source":"integration_owner"}]`,
			"ssh/sign/login":          `[{"approvers":["group:security"],"source":"integration_owner"}]`,
		}
		for name, owners := range want {
			en := got[name]
			if en == nil {
				t.Errorf("%s missing from apono/resources (have %d entries)", name, len(got))
				continue
			}
			if s := jsonString(t, en["owners"]); s != owners {
				t.Errorf("%s owners = %s, want %s", name, s, owners)
			}
		}
	})

	t.Run("SSH signing stops before a short grant ends", func(t *testing.T) {
		// Signing ends at end - ttl - 2m; the periodic job runs about once a minute.
		end := grantEnd(t, short)
		stop := end.Add(-60*time.Second - 2*time.Minute)
		for {
			_, stderr, err := f.s.CLI(shortToken, "write", "-field=signed_key", "ssh/sign/login", "public_key=@"+shortKey.PublicKeyPath,
				"ttl="+shortTTL, "valid_principals="+f.sshd.User)
			if err != nil {
				refusedWith(t, "signing near the grant's end", stderr, "permission denied", "Code: 403")
				break
			}
			if time.Now().After(end.Add(-60 * time.Second)) {
				t.Fatalf("still signing %s-second certificates at %s, the grant ends %s", shortTTL, time.Now().UTC().Format(time.RFC3339), end)
			}
			time.Sleep(3 * time.Second)
		}
		if time.Now().Before(stop) {
			t.Fatalf("signing stopped at %s, before its deadline %s", time.Now().UTC().Format(time.RFC3339), stop)
		}
		// The grant itself lives on: its user still logs in (when the subtests before this
		// one left time to see it).
		if time.Until(end) > 10*time.Second {
			if _, err := f.login(short.Username, short.Password); err != nil {
				t.Fatalf("the grant ended with its signing: %v", err)
			}
		}
		t.Logf("SSH signing stopped %s before the grant's end", time.Until(end).Round(time.Second))
	})

	t.Run("apono/health holds the login revoke required while such roles exist", func(t *testing.T) {
		revokeCheck := func(t *testing.T) (map[string]interface{}, map[string]interface{}) {
			t.Helper()
			h := f.jsonOut(t, "", "read", "apono/health")["data"].(map[string]interface{})
			for _, c := range h["capabilities"].([]interface{}) {
				c := c.(map[string]interface{})
				if strings.HasPrefix(c["path"].(string), "sys/leases/revoke-prefix/auth/userpass/login/") {
					return h, c
				}
			}
			t.Fatalf("apono/health has no revoke-prefix check: %v", h["capabilities"])
			return nil, nil
		}
		h, c := revokeCheck(t)
		if h["status"] != "ok" || c["required"] != true || c["status"] != "ok" || !strings.Contains(jsonString(t, h["roles_needing_login_revoke"]), `"db"`) {
			t.Fatalf("with the capability: status %v, check %v, roles %v", h["status"], c, h["roles_needing_login_revoke"])
		}
		// The capability taken away: health is degraded and says why.
		f.root(t, "write", "auth/approle/role/"+testvault.AppRoleName, "token_policies="+testvault.PolicyName)
		f.root(t, "write", "apono/config", "role_id="+f.setup.RoleID, "secret_id="+f.setup.SecretID)
		h, c = revokeCheck(t)
		if h["status"] != "degraded" || c["status"] != "missing" || !strings.Contains(jsonString(t, h["problems"]), "sys/leases/revoke-prefix") {
			t.Fatalf("without the capability: status %v, check %v, problems %v", h["status"], c, h["problems"])
		}
	})
}

// sshCertValidTo reads a certificate's end with ssh-keygen -L ("Valid: from X to Y", in
// local time).
func sshCertValidTo(t *testing.T, certPath string) time.Time {
	t.Helper()
	out, err := exec.Command("ssh-keygen", "-L", "-f", certPath).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen -L: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Valid: from (\S+) to (\S+)`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("ssh-keygen -L prints no validity:\n%s", out)
	}
	to, err := time.ParseInLocation("2006-01-02T15:04:05", m[2], time.Local)
	if err != nil {
		t.Fatalf("validity end %q: %v", m[2], err)
	}
	return to
}
