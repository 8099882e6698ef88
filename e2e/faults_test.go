package e2e

import (
	"encoding/json"
	"os"
	"reflect"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/apono-io/vault-plugin-apono/internal/testvault"
)

// Each test here injects one fault into a real Vault of its own and shows that the
// grant's access still ends: nothing named apono-* is left behind. They wait on Vault's
// own timers (lease expiry, revocation retries, the rollback manager's one-minute tick),
// so they run in parallel with each other, after the tests of the shared server.

// The management policy's lines that the fault tests take capabilities away from.
const (
	userpassUsersRule = `path "auth/userpass/users/*" { capabilities = ["create","update","read","delete"] }`
	grantPolicyRule   = `path "sys/policies/acl/apono-*" { capabilities = ["create","update","read","delete","list"] }`
)

// Issue fails at its second step, creating the user, because the management policy no
// longer allows it: the policy created in the first step is deleted at once. When
// deleting it is denied too, the WAL entry is all that remembers it; it survives a crash
// of Vault (SIGKILL, file storage) and Vault's rollback manager deletes the policy once
// the ACL allows it again.
func TestIssueFailureRollsBackEvenAcrossACrash(t *testing.T) {
	t.Parallel()
	e := fileVault(t)
	e.root(t, "kv", "put", "kv/app/db", "v=1")
	e.root(t, "write", "apono/roles/crash", "resources=kv/app/db", "ttl=5m")
	seedPolicy := managementPolicy(t)
	noUserCreate := replaceOnce(t, seedPolicy, userpassUsersRule,
		`path "auth/userpass/users/*" { capabilities = ["update","read","delete"] }`)

	// (a) The user cannot be created: an error, and the policy is rolled back at once.
	e.writePolicy(t, testvault.PolicyName, noUserCreate)
	stderr := e.mustFail(t, "", "write", "-f", "apono/grants/crash")
	if !strings.Contains(stderr, "creating user") || strings.Contains(stderr, "rollback pending") {
		t.Fatalf("want a failure creating the user, rolled back at once; got:\n%s", stderr)
	}
	if users, policies := e.aponoObjects(t); len(users)+len(policies) != 0 {
		t.Fatalf("after a failed issue: users %v, policies %v; want none", users, policies)
	}
	if keys := e.grantKeys(t); len(keys) != 0 {
		t.Fatalf("a failed issue left grant records %v", keys)
	}

	// (b) Deleting the policy is denied too: the rollback cannot run, the policy stays.
	e.writePolicy(t, testvault.PolicyName, replaceOnce(t, noUserCreate, grantPolicyRule,
		`path "sys/policies/acl/apono-*" { capabilities = ["create","update","read","list"] }`))
	failedAt := time.Now()
	stderr = e.mustFail(t, "", "write", "-f", "apono/grants/crash")
	if !strings.Contains(stderr, "rollback pending") {
		t.Fatalf("want a failure whose rollback is pending; got:\n%s", stderr)
	}
	users, policies := e.aponoObjects(t)
	if len(users) != 0 || len(policies) != 1 {
		t.Fatalf("after a failed issue and a denied rollback: users %v, policies %v; want one policy", users, policies)
	}
	leftover := policies[0]

	// Vault crashes; the plugin dies with it. The WAL entry is in storage.
	if err := e.s.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := e.s.Restart(); err != nil {
		t.Fatal(err)
	}
	e.writePolicy(t, testvault.PolicyName, seedPolicy)
	if !e.hasPolicy(t, leftover) {
		t.Fatal("the policy went before the rollback manager could have run; this test proves nothing")
	}
	// WALRollbackMinAge is 2 minutes and the rollback manager ticks once a minute.
	g := grant{Username: leftover, Policy: leftover}
	e.waitGone(t, g, 4*time.Minute-time.Since(failedAt))
	t.Logf("policy %s left by a failed rollback was removed by Vault's rollback manager %s after the failed issue (Vault killed and restarted in between)",
		leftover, time.Since(failedAt).Round(time.Second))
	e.waitLogLine(t, 0, 10*time.Second, "rolling back an unfinished grant", leftover)
	if users, policies := e.aponoObjects(t); len(users)+len(policies) != 0 {
		t.Fatalf("after the rollback: users %v, policies %v; want none", users, policies)
	}
	// The plugin works again.
	ok := e.grant(t, "crash")
	e.root(t, "lease", "revoke", ok.LeaseID)
	e.waitGone(t, ok, 30*time.Second)
	e.assertLogHasNone(t, map[string]string{"secret_id": e.setup.SecretID, "grant password": ok.Password})
}

// Revocation at expiry fails because the plugin cannot act in Vault: first its AppRole
// secret_id is destroyed and its token revoked (credentials rotated under it), then the
// Vault API it calls is unreachable (its vault_addr is a proxy that goes down). Either
// way the revoke returns an error, Vault keeps the lease and retries, the user and policy
// stay until a retry succeeds, and then nothing is left.
func TestRevokeRetriesUntilThePluginReachesVault(t *testing.T) {
	t.Parallel()
	e := ownVault(t, testvault.Options{})
	e.root(t, "kv", "put", "kv/app/db", "v=1")
	// Long enough for the fault to be in place before expiry on a loaded machine.
	e.root(t, "write", "apono/roles/short", "resources=kv/app/db", "ttl=12s", "max_ttl=12s")
	secrets := map[string]string{"first secret_id": e.setup.SecretID}
	secretID := e.setup.SecretID // the one the config holds

	// failAndRecover issues a grant, breaks the plugin's path to Vault with breakIt,
	// waits for a failed revocation at expiry, checks that the grant is not reported
	// ended while its objects exist, repairs with fix and waits for the retry.
	failAndRecover := func(t *testing.T, breakIt, fix func(t *testing.T)) {
		g := e.grant(t, "short")
		secrets["grant password "+g.GrantID] = g.Password
		_, offset := e.serverLog(t, 0)
		breakIt(t)
		line := e.waitLogLine(t, offset, 60*time.Second, "failed to revoke lease", g.LeaseID)
		t.Logf("Vault: %s", strings.TrimSpace(line))
		if !e.hasUser(t, g.Username) || !e.hasPolicy(t, g.Policy) {
			t.Fatal("user or policy gone although the revoke failed; this test proves nothing")
		}
		if !e.leaseExists(t, g.LeaseID) {
			t.Fatal("Vault dropped the lease although its revocation failed")
		}
		if keys := e.grantKeys(t); !contains(keys, "short/"+g.GrantID) {
			t.Fatalf("grant %s no longer listed (%v) while its policy exists", g.GrantID, keys)
		}
		if _, err := e.login(g.Username, g.Password); err == nil {
			// userpass users have no expiry of their own: until a retry deletes the user,
			// its password still logs in (each token lives at most the grant's TTL).
			t.Log("weakness: while revocation fails, the expired grant's user can still log in")
		}
		fix(t)
		fixed := time.Now()
		// Vault retries 10 to 30 s after the first failure (then 20 to 60 s after the second).
		took := e.waitGone(t, g, 90*time.Second)
		t.Logf("after the repair, Vault's retry removed the user and policy in %s", took.Round(time.Second))
		for e.leaseExists(t, g.LeaseID) {
			if time.Since(fixed) > 90*time.Second {
				t.Fatal("lease still held after its objects were removed")
			}
			time.Sleep(time.Second)
		}
		if keys := e.grantKeys(t); len(keys) != 0 {
			t.Fatalf("grant records left: %v", keys)
		}
		if users, policies := e.aponoObjects(t); len(users)+len(policies) != 0 {
			t.Fatalf("left behind: users %v, policies %v", users, policies)
		}
	}

	t.Run("secret_id rotated and token revoked", func(t *testing.T) {
		failAndRecover(t, func(t *testing.T) {
			e.root(t, "write", "auth/approle/role/"+testvault.AppRoleName+"/secret-id/destroy", "secret_id="+e.setup.SecretID)
			e.root(t, "lease", "revoke", "-prefix", "auth/approle/login")
		}, func(t *testing.T) {
			id := e.newSecretID(t)
			secrets["second secret_id"] = id
			secretID = id
			e.root(t, "write", "apono/config", "secret_id="+id)
		})
	})

	t.Run("Vault API unreachable", func(t *testing.T) {
		proxy, err := testvault.StartProxy(e.s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer proxy.Close()
		// A new vault_addr needs the credentials sent along: the stored ones never go to a new address.
		e.root(t, "write", "apono/config", "vault_addr="+proxy.URL(), "role_id="+e.setup.RoleID, "secret_id="+secretID)
		failAndRecover(t, func(t *testing.T) {
			proxy.Down()
		}, func(t *testing.T) {
			if err := proxy.Up(); err != nil {
				t.Fatal(err)
			}
		})
	})
	e.assertLogHasNone(t, secrets)
}

// The orphan sweeper (run on every rollback tick here: APONO_SWEEP_INTERVAL=1s) deletes
// what this mount created and no grant explains: a user and policy with this mount's
// prefix and no record, and a grant whose lease was force-revoked while its revoke
// failed (what an operator does with an irrevocable lease). It leaves alone another
// mount's apono-* objects, names with this prefix that are not grant names, a person's
// user and policy, and a live grant.
func TestOrphanSweeperDeletesOnlyThisMountsOrphans(t *testing.T) {
	t.Parallel()
	e := ownVault(t, testvault.Options{PluginEnv: []string{"APONO_SWEEP_INTERVAL=1s"}})
	e.root(t, "kv", "put", "kv/app/db", "v=1")
	e.root(t, "write", "apono/roles/live", "resources=kv/app/db", "ttl=1h")
	e.root(t, "write", "apono/roles/short", "resources=kv/app/db", "ttl=5s", "max_ttl=5s")
	live := e.grant(t, "live")
	prefix := strings.TrimSuffix(live.Username, live.GrantID)
	if !regexp.MustCompile(`^apono-[0-9a-f]{8}-$`).MatchString(prefix) {
		t.Fatalf("grant user %q does not look like apono-<mount tag>-<grant id>", live.Username)
	}

	// A grant whose revoke fails (policy delete denied) is force-revoked: its lease is
	// gone, its user, policy and record stay.
	// Issue needs no delete; the policy is restricted first so that even a slow machine
	// cannot let the revoke at expiry succeed.
	seedPolicy := managementPolicy(t)
	e.writePolicy(t, testvault.PolicyName, replaceOnce(t, seedPolicy, grantPolicyRule,
		`path "sys/policies/acl/apono-*" { capabilities = ["create","update","read","list"] }`))
	_, offset := e.serverLog(t, 0)
	stale := e.grant(t, "short")
	e.waitLogLine(t, offset, 60*time.Second, "failed to revoke lease", stale.LeaseID)
	e.root(t, "lease", "revoke", "-force", "-prefix", "apono/grants/short")
	if e.leaseExists(t, stale.LeaseID) {
		t.Fatal("force revoke left the lease")
	}
	e.writePolicy(t, testvault.PolicyName, seedPolicy)
	if !e.hasUser(t, stale.Username) || !e.hasPolicy(t, stale.Policy) {
		t.Fatal("the force-revoked grant's objects are gone already; this test proves nothing")
	}

	// Objects made by hand, as root.
	rules := `path "kv/data/app/db" { capabilities = ["read"] }`
	orphan := prefix + "0123456789abcdef"
	mkUser := func(name string, policy string) {
		e.root(t, "write", "auth/userpass/users/"+name, "password=not-a-grant-"+name, "token_policies="+policy)
	}
	keep := []string{
		"apono-deadbeef-0123456789abcdef", // another mount's grant
		prefix + "not-a-grant-id",         // this prefix, not a grant name
		"alice",                           // a person
	}
	for _, n := range append([]string{orphan}, keep...) {
		e.writePolicy(t, n, rules)
		mkUser(n, n)
	}
	created := time.Now()

	// Record-less objects go on the second sweep that sees them at least 2 minutes after
	// the first; the stale grant once its end plus a minute's grace has passed. Sweeps
	// follow the rollback manager's one-minute tick.
	deadline := created.Add(5 * time.Minute)
	for {
		users, policies := e.listAll(t, "auth/userpass/users"), e.listAll(t, "sys/policies/acl")
		gone := !contains(users, orphan) && !contains(policies, orphan) &&
			!contains(users, stale.Username) && !contains(policies, stale.Policy)
		if gone {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: users %v, policies %v; want %s and %s gone", time.Since(created).Round(time.Second), users, policies, orphan, stale.Username)
		}
		time.Sleep(2 * time.Second)
	}
	t.Logf("sweeper removed the record-less pair and the force-revoked grant %s after they were made", time.Since(created).Round(time.Second))
	e.waitLogLine(t, 0, 10*time.Second, "swept a user and policy with no grant record", orphan)
	e.waitLogLine(t, 0, 10*time.Second, "swept an expired grant", stale.GrantID)

	users, policies := e.listAll(t, "auth/userpass/users"), e.listAll(t, "sys/policies/acl")
	for _, n := range append(keep, live.Username) {
		if !contains(users, n) || !contains(policies, n) {
			t.Errorf("%s was touched: users %v, policies %v", n, users, policies)
		}
	}
	if keys := e.grantKeys(t); len(keys) != 1 || keys[0] != "live/"+live.GrantID {
		t.Errorf("grant records %v, want only the live grant's", keys)
	}
	e.mustLogin(t, live)
	e.root(t, "lease", "revoke", live.LeaseID)
	e.waitGone(t, live, 30*time.Second)
	e.assertLogHasNone(t, map[string]string{"secret_id": e.setup.SecretID,
		"live grant password": live.Password, "stale grant password": stale.Password})
}

// The plugin process is killed (SIGKILL) while a grant is live: Vault starts it again
// for the revocation. Then Vault itself is killed with a grant live, stays down past the
// grant's expiry, and is restarted from its file storage: the grant is revoked shortly
// after, and nothing is left.
func TestGrantsEndAfterPluginKillAndVaultRestart(t *testing.T) {
	t.Parallel()
	e := fileVault(t)
	e.root(t, "kv", "put", "kv/app/db", "v=1")
	e.root(t, "write", "apono/roles/short", "resources=kv/app/db", "ttl=10s", "max_ttl=10s")
	e.root(t, "write", "apono/roles/medium", "resources=kv/app/db", "ttl=15s", "max_ttl=15s")

	t.Run("plugin process killed", func(t *testing.T) {
		g := e.grant(t, "short")
		pids, err := e.s.PluginPIDs()
		if err != nil || len(pids) == 0 {
			t.Fatalf("plugin processes: %v, %v", pids, err)
		}
		for _, pid := range pids {
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
		}
		took := e.waitGone(t, g, 60*time.Second)
		t.Logf("plugin pids %v killed; grant (10 s) gone %s later", pids, took.Round(time.Second))
		if now, err := e.s.PluginPIDs(); err != nil || len(now) == 0 || now[0] == pids[0] {
			t.Fatalf("plugin processes after revocation: %v (%v); want a new one", now, err)
		}
	})

	t.Run("Vault killed and restarted", func(t *testing.T) {
		g := e.grant(t, "medium")
		issued := time.Now()
		if err := e.s.Kill(); err != nil {
			t.Fatal(err)
		}
		// Stay down until the grant has expired.
		time.Sleep(time.Until(issued.Add(17 * time.Second)))
		began := time.Now()
		if err := e.s.Restart(); err != nil {
			t.Fatal(err)
		}
		restarted := time.Since(began)
		took := e.waitGone(t, g, 90*time.Second)
		t.Logf("Vault down %s, restart+unseal %s; expired grant gone %s after the restart (%s after issue)",
			began.Sub(issued).Round(time.Second), restarted.Round(time.Second), took.Round(time.Second), time.Since(issued).Round(time.Second))
		if e.leaseExists(t, g.LeaseID) {
			t.Error("lease still held after its objects were removed")
		}
	})
	if keys := e.grantKeys(t); len(keys) != 0 {
		t.Fatalf("grant records left: %v", keys)
	}
	if users, policies := e.aponoObjects(t); len(users)+len(policies) != 0 {
		t.Fatalf("left behind: users %v, policies %v", users, policies)
	}
}

// The grant's user cannot outlive the grant through its tokens: token_ttl and
// token_max_ttl are at most the grant's TTL. With the optional sudo capability on
// sys/leases/revoke-prefix/auth/userpass/login/*, apono/health says so and revoke also
// revokes the user's tokens; without it, the token survives (policy-less) and health
// says it is missing.
func TestRevokeAlsoRevokesLoginTokensWhenAllowed(t *testing.T) {
	t.Parallel()
	e := ownVault(t, testvault.Options{})
	e.root(t, "kv", "put", "kv/app/db", "v=1")
	e.root(t, "write", "apono/roles/app", "resources=kv/app/db", "ttl=2m", "max_ttl=10m")

	revokeCapability := func(t *testing.T) (bool, map[string]interface{}) {
		t.Helper()
		h := e.jsonOut(t, "", "read", "apono/health")["data"].(map[string]interface{})
		if h["status"] != "ok" {
			t.Fatalf("apono/health status %v: %v", h["status"], h["problems"])
		}
		for _, c := range h["capabilities"].([]interface{}) {
			c := c.(map[string]interface{})
			if strings.HasPrefix(c["path"].(string), "sys/leases/revoke-prefix/auth/userpass/login/") {
				if c["required"] != false {
					t.Errorf("revoke-prefix check is marked required: %v", c)
				}
				return c["status"] == "ok", h
			}
		}
		t.Fatalf("apono/health has no revoke-prefix check: %v", h["capabilities"])
		return false, nil
	}
	// tokenAlive reports whether root can still look the token up.
	tokenAlive := func(t *testing.T, tok string) bool {
		t.Helper()
		_, stderr, err := e.s.CLI("", "token", "lookup", tok)
		if err == nil {
			return true
		}
		if !strings.Contains(stderr, "bad token") {
			t.Fatalf("token lookup: %v", err)
		}
		return false
	}
	issueLoginRevoke := func(t *testing.T, args ...string) (grant, string) {
		t.Helper()
		g := e.grant(t, "app", args...)
		user := e.jsonOut(t, "", "read", "auth/userpass/users/"+g.Username)["data"].(map[string]interface{})
		if ttl, max := user["token_ttl"].(float64), user["token_max_ttl"].(float64); ttl <= 0 || ttl > float64(g.LeaseDuration) || max <= 0 || max > float64(g.LeaseDuration) {
			t.Fatalf("user token_ttl %v, token_max_ttl %v; want both within the grant's %d s", ttl, max, g.LeaseDuration)
		}
		tok := e.mustLogin(t, g)
		var lookup struct {
			Data struct {
				TTL int `json:"ttl"`
			} `json:"data"`
		}
		if err := json.Unmarshal([]byte(e.root(t, "token", "lookup", "-format=json", tok)), &lookup); err != nil {
			t.Fatal(err)
		}
		if lookup.Data.TTL > g.LeaseDuration {
			t.Fatalf("login token ttl %d s outlives the grant's %d s", lookup.Data.TTL, g.LeaseDuration)
		}
		e.root(t, "lease", "revoke", g.LeaseID)
		e.waitGone(t, g, 30*time.Second)
		return g, tok
	}

	t.Run("without the capability", func(t *testing.T) {
		if ok, h := revokeCapability(t); ok || h["revoke_login_tokens"] != false {
			t.Fatalf("health says revoke-prefix is available with the seed's policy: %v", h)
		}
		_, tok := issueLoginRevoke(t, "ttl=90s")
		if !tokenAlive(t, tok) {
			t.Fatal("the token was revoked without the capability; the next subtest would prove nothing")
		}
		if stderr := e.mustFail(t, tok, "read", "kv/data/app/db"); !strings.Contains(stderr, "permission denied") {
			t.Fatalf("the surviving token still reads: %s", stderr)
		}
	})

	t.Run("with the capability", func(t *testing.T) {
		e.writePolicy(t, "apono-revoke-logins",
			`path "sys/leases/revoke-prefix/auth/userpass/login/*" { capabilities = ["sudo","update"] }`)
		e.root(t, "write", "auth/approle/role/"+testvault.AppRoleName, "token_policies="+testvault.PolicyName+",apono-revoke-logins")
		// The plugin's current token has the old policies: a config write logs in anew.
		e.root(t, "write", "apono/config", "role_id="+e.setup.RoleID, "secret_id="+e.setup.SecretID)
		if ok, h := revokeCapability(t); !ok || h["revoke_login_tokens"] != true {
			t.Fatalf("health does not see the revoke-prefix capability: %v", h)
		}
		_, tok := issueLoginRevoke(t)
		if tokenAlive(t, tok) {
			t.Fatal("the grant user's token survived the revoke")
		}
	})
}

// auditEntries returns the audit log's request and response entries for one path.
func auditEntries(t *testing.T, log, path string) (requests, responses []map[string]interface{}) {
	t.Helper()
	for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
		var entry struct {
			Type    string                 `json:"type"`
			Request map[string]interface{} `json:"request"`
		}
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Fatalf("audit line is not JSON: %v\n%s", err, line)
		}
		if entry.Request["path"] != path {
			continue
		}
		var full map[string]interface{}
		_ = json.Unmarshal([]byte(line), &full)
		if entry.Type == "request" {
			requests = append(requests, full)
		} else {
			responses = append(responses, full)
		}
	}
	return requests, responses
}

// With the mount tuned as the README says, Vault's audit log shows requester and
// justification of a grant in clear, and the password only as an HMAC. Without the
// tuning the requester is HMAC'd too (Vault's default), which is why the tuning exists.
func TestAuditLogShowsRequesterButNotPassword(t *testing.T) {
	t.Parallel()
	// The file audit device is there from the start: OpenBao takes audit devices only
	// from its configuration (testvault.Options.FileAudit).
	e := ownVault(t, testvault.Options{FileAudit: true})
	e.root(t, "kv", "put", "kv/app/db", "v=1")
	e.root(t, "write", "apono/roles/app", "resources=kv/app/db", "ttl=5m")
	auditPath := e.s.AuditPath

	type seen struct{ requester, justification, password interface{} }
	grantAudited := func(t *testing.T, requester string) seen {
		t.Helper()
		offset := len(readFile(t, auditPath))
		g := e.grant(t, "app", "requester="+requester, "justification=INC-42 db migration")
		var s seen
		for deadline := time.Now().Add(10 * time.Second); ; {
			log := readFile(t, auditPath)
			if strings.Contains(log, g.Password) {
				t.Fatal("the grant's password is in the audit log in clear")
			}
			reqs, resps := auditEntries(t, log[offset:], "apono/grants/app")
			for _, r := range reqs {
				data, _ := r["request"].(map[string]interface{})["data"].(map[string]interface{})
				s.requester, s.justification = data["requester"], data["justification"]
			}
			for _, r := range resps {
				resp, _ := r["response"].(map[string]interface{})
				data, _ := resp["data"].(map[string]interface{})
				s.password = data["password"]
			}
			if s.requester != nil && s.password != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no audited grant request and response in %s", auditPath)
			}
			time.Sleep(200 * time.Millisecond)
		}
		// -sync: a revocation still running when this test's Vault shuts down holds Vault's
		// state lock while the plugin's calls back into Vault wait behind the seal for it
		// (Vault's revocation job, expiration.go), and the shutdown stalls until they time out.
		e.root(t, "lease", "revoke", "-sync", g.LeaseID)
		return s
	}

	before := grantAudited(t, "bob@example.com")
	if before.requester == "bob@example.com" {
		t.Fatal("requester readable without the tuning; the tuning test below proves nothing")
	}
	e.root(t, "secrets", "tune", "-audit-non-hmac-request-keys=requester", "-audit-non-hmac-request-keys=justification", "apono/")
	after := grantAudited(t, "alice@example.com")
	if after.requester != "alice@example.com" || after.justification != "INC-42 db migration" {
		t.Fatalf("audit request data: requester %v, justification %v; want them in clear", after.requester, after.justification)
	}
	if p, _ := after.password.(string); !strings.HasPrefix(p, "hmac-sha256:") {
		t.Fatalf("audit response password %v; want an hmac-sha256: value", after.password)
	}
}

// Smuggling fields and hostile values into every write the plugin serves: each is a
// 400, and Vault's users and policies, the roles and the config are unchanged.
func TestHostileInputIsRejectedAndChangesNothing(t *testing.T) {
	e := shared
	role := uniqueName(t)
	e.root(t, "kv", "put", "kv/"+role+"/db", "v=1")
	e.root(t, "write", "apono/roles/"+role, "resources=kv/"+role+"/db", "ttl=5m")
	before := e.snapshot(t)

	grantPath, rolePath := "apono/grants/"+role, "apono/roles/"+role
	cases := []struct {
		want string
		args []string
	}{
		{"unknown field", []string{"write", grantPath, "token_policies=root"}},
		{"unknown field", []string{"write", grantPath, "policies=root"}},
		{"unknown field", []string{"write", grantPath, "token_no_default_policy=false", "requester=alice"}},
		{"unknown field", []string{"write", grantPath, "username=root"}},
		{"unknown field", []string{"write", grantPath, "password=chosen-by-me"}},
		{"unknown field", []string{"write", grantPath, "max_ttl=87600h"}},
		{"unknown field", []string{"write", rolePath, "resources=kv/" + role + "/db", "token_policies=root"}},
		{"unknown field", []string{"write", rolePath, "resources=kv/" + role + "/db", "allowed_policies=root"}},
		{"unknown field", []string{"write", rolePath + "-new", "resources=kv/" + role + "/db", "token_type=batch"}},
		{"unknown field", []string{"write", "apono/config", "token_policies=root"}},
		{"unknown field", []string{"write", "apono/config", "policies=root"}},
		{"must name a mount and a path", []string{"write", grantPath, "resources=kv/" + role + "/db,token_policies=root"}},
		{"is not allowed", []string{"write", grantPath, "requester=alice\"bob"}},
		{"is not allowed", []string{"write", grantPath, "requester=alice'bob"}},
		{"is not allowed", []string{"write", grantPath, "requester={\"token_policies\":[\"root\"]}"}},
		{"is not allowed", []string{"write", grantPath, "requester={{identity.entity.id}}"}},
		{"is not allowed", []string{"write", grantPath, "requester=alice,token_policies=root"}},
		{"is not allowed", []string{"write", grantPath, "requester=alice;root"}},
		{"is not allowed", []string{"write", grantPath, "requester=\u0430lice@example.com"}}, // Cyrillic a
		{"is not allowed", []string{"write", grantPath, "requester=<script>"}},
		{"is not allowed", []string{"write", grantPath, "requester=a/../../sys"}},
		{"is not allowed", []string{"write", grantPath, "requester=*"}},
		{"control characters", []string{"write", grantPath, "justification=ok\n[INFO] forged audit line"}},
		{"at most 1024", []string{"write", grantPath, "justification=" + strings.Repeat("j", 1025)}},
		{"not a valid role name", []string{"write", "apono/roles/" + strings.Repeat("r", 65), "resources=kv/" + role + "/db"}},
		{"not a valid role name", []string{"write", "apono/roles/" + strings.Repeat("r", 5000), "resources=kv/" + role + "/db"}},
		{"does not exist", []string{"write", "-f", "apono/grants/" + strings.Repeat("g", 300)}},
		{"does not exist", []string{"write", "-f", "apono/grants/" + strings.Repeat("g", 5000)}},
		{"not a permission level", []string{"write", rolePath + "-new", "resources=kv/" + role + "/db", "permissions=read,{{identity.entity.id}}"}},
		{"is not allowed", []string{"write", rolePath + "-new", "resources=kv/" + role + "/{{identity.entity.name}}"}},
		{"nothing under sys/", []string{"write", rolePath + "-new", "resources=sys/leases/revoke-prefix/auth"}},
	}
	for _, tc := range cases {
		e.mustBadRequest(t, tc.want, tc.args...)
	}
	if after := e.snapshot(t); !reflect.DeepEqual(before, after) {
		t.Fatalf("hostile input changed state:\nbefore %+v\nafter  %+v", before, after)
	}
	// A long name reads as absent, not as an error.
	if out, stderr, err := e.s.CLI("", "read", "apono/roles/"+strings.Repeat("r", 5000)); err == nil || !strings.Contains(stderr, "No value found") {
		t.Fatalf("reading a 5000-character role name: %v %s %s", err, out, stderr)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
