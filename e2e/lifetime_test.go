package e2e

import (
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apono-io/vault-plugin-apono/internal/testvault"
)

// Grants last as long as they say, and leave nothing behind in Vault: a lease ends with
// the token that wrote it, and a userpass login makes an identity entity. These tests run
// on Vaults of their own whose management policy has the identity additions of
// testdata/apono-identity.hcl (except the last, which shows the plugin without them).

// identityVault is ownVault with the identity additions in the management policy and the
// orphan sweeper on every rollback tick.
func identityVault(t *testing.T) *env {
	t.Helper()
	return identityVaultWith(t, testvault.Options{})
}

// identityVaultWith is identityVault with more options for its server.
func identityVaultWith(t *testing.T, opts testvault.Options) *env {
	t.Helper()
	opts.PluginEnv = append(opts.PluginEnv, "APONO_SWEEP_INTERVAL=1s")
	e := ownVault(t, opts)
	e.writePolicy(t, testvault.PolicyName, managementPolicy(t)+"\n"+identityAdditions(t))
	health := e.jsonOut(t, "", "read", "apono/health")["data"].(map[string]interface{})
	if health["grant_entities"] != true || health["token_lifetime_check"] != true {
		t.Fatalf("health with the identity additions: %v", health)
	}
	e.root(t, "kv", "put", "kv/app/db", "password=lifetime")
	return e
}

func identityAdditions(t *testing.T) string {
	t.Helper()
	return testdataFile(t, "apono-identity.hcl")
}

// grantWriter is a token of the given lifetime allowed to write grants (as a service or a
// person would hold), made with auth/token/create.
func (e *env) grantWriter(t *testing.T, args ...string) string {
	t.Helper()
	e.writePolicy(t, "grant-writer", `path "apono/grants/+" { capabilities = ["update"] }`)
	v := e.jsonOut(t, "", append([]string{"token", "create", "-policy=grant-writer"}, args...)...)
	tok, _ := v["auth"].(map[string]interface{})["client_token"].(string)
	if tok == "" {
		t.Fatalf("token create: %v", v)
	}
	return tok
}

// entityExists reads identity/entity/name/<name> as root.
func (e *env) entityExists(t *testing.T, name string) bool {
	t.Helper()
	s, err := e.s.Client.Logical().Read("identity/entity/name/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return s != nil
}

// grantEntities lists the entities named like grants (apono-*); the plugin's own AppRole
// login has an entity too.
func (e *env) grantEntities(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, n := range e.listAll(t, "identity/entity/name") {
		if strings.HasPrefix(n, "apono-") {
			out = append(out, n)
		}
	}
	return out
}

// waitAllGone polls until the grant's user, policy and entity are gone.
func (e *env) waitAllGone(t *testing.T, g grant, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		user, policy, entity := e.hasUser(t, g.Username), e.hasPolicy(t, g.Policy), e.entityExists(t, g.Username)
		if !user && !policy && !entity {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("grant %s after %s: user %v policy %v entity %v", g.Username, timeout, user, policy, entity)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// A token with 20 s left asks for 10 minutes: the answer says when access will really
// end, and it ends then, with nothing left.
func TestGrantFromShortLivedTokenSaysWhenItReallyEnds(t *testing.T) {
	t.Parallel()
	e := identityVault(t)
	e.root(t, "write", "apono/roles/app", "resources=kv/app/db", "ttl=10m", "max_ttl=1h")
	tok := e.grantWriter(t, "-ttl=20s")
	asked := time.Now()
	g := e.grantAs(t, tok, "apono/grants/app", "ttl=10m")
	if g.LeaseDuration > 20 || g.LeaseDuration < 15 {
		t.Fatalf("lease_duration %d for a token with 20 s left", g.LeaseDuration)
	}
	expires, err := time.Parse(time.RFC3339, g.Data["expires_at"].(string))
	if err != nil || expires.Sub(asked) > 21*time.Second {
		t.Fatalf("expires_at %v is past the token's end (asked at %s)", g.Data["expires_at"], asked.Format(time.RFC3339))
	}
	if w := jsonString(t, g.Warnings); !strings.Contains(w, "the token that asked for this grant ends at") || !strings.Contains(w, "periodic token") {
		t.Fatalf("warnings: %s", w)
	}
	e.mustLogin(t, g)
	took := e.waitAllGone(t, g, 60*time.Second)
	ended := time.Since(asked)
	t.Logf("asked for 10m with a 20 s token: lease %ds, expires_at %s after asking; user, policy and entity gone %s after asking",
		g.LeaseDuration, expires.Sub(asked).Round(time.Second), ended.Round(time.Second))
	_ = took
	if ended > 50*time.Second {
		t.Fatalf("access ended %s after asking; the token ended after 20 s", ended)
	}
	if _, err := e.login(g.Username, g.Password); err == nil {
		t.Fatal("login works after the token's end")
	}
}

// A periodic token (the setup a service that brokers grants should use) asks for 10
// minutes: the grant outlives many of the token's 20 s periods and renewals, then ends on
// time.
func TestGrantFromPeriodicTokenOutlivesItsPeriods(t *testing.T) {
	t.Parallel()
	e := identityVault(t)
	e.root(t, "write", "apono/roles/app", "resources=kv/app/db", "ttl=1m", "max_ttl=1h")
	const period = 20 * time.Second
	tok := e.grantWriter(t, "-period=20s")
	asked := time.Now()
	g := e.grantAs(t, tok, "apono/grants/app", "ttl=10m")
	if g.LeaseDuration != 600 || len(g.Warnings) != 0 {
		t.Fatalf("periodic token: lease_duration %d (want 600), warnings %v", g.LeaseDuration, g.Warnings)
	}
	// The service renews its token, as the api client's LifetimeWatcher would.
	var renewals atomic.Int32
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(period / 3):
				if _, _, err := e.s.CLI(tok, "token", "renew"); err == nil {
					renewals.Add(1)
				}
			}
		}
	}()
	defer func() { close(stop); <-done }()

	// Five periods in, and again a little before the end, the grant is live and usable.
	for _, at := range []time.Duration{5*period + 2*time.Second, 9*time.Minute + 30*time.Second} {
		time.Sleep(time.Until(asked.Add(at)))
		tk := e.mustLogin(t, g)
		e.s.MustCLI(t, tk, "kv", "get", "kv/app/db")
		t.Logf("%s after asking (%.0f periods of the token), the grant works; token renewed %d times", at.Round(time.Second), at.Seconds()/period.Seconds(), renewals.Load())
	}
	if n := renewals.Load(); n < 25 {
		t.Fatalf("the token was renewed only %d times", n)
	}
	e.waitAllGone(t, g, 3*time.Minute)
	ended := time.Since(asked)
	t.Logf("grant of 10m from a token with a 20 s period (renewed %d times) ended %s after asking", renewals.Load(), ended.Round(time.Second))
	if ended < 595*time.Second || ended > 10*time.Minute+30*time.Second {
		t.Fatalf("the grant ended %s after asking; want about 10m", ended)
	}
}

// A grant used three times (three logins) has one entity, the plugin's, while live, and
// none after revoke or expiry; the audit log entry of a request made with the grant's
// token names that entity.
func TestGrantEntityOneWhileLiveNoneAfter(t *testing.T) {
	t.Parallel()
	e := identityVaultWith(t, testvault.Options{FileAudit: true}) // OpenBao: only in its config
	e.root(t, "write", "apono/roles/app", "resources=kv/app/db", "ttl=10m")
	e.root(t, "write", "apono/roles/short", "resources=kv/app/db", "ttl=5s", "max_ttl=5s")
	auditPath := e.s.AuditPath
	entitiesBefore := e.listAll(t, "identity/entity/id")

	g := e.grant(t, "app", "requester=alice@example.com", "justification=INC-5")
	entityID, _ := g.Data["entity_id"].(string)
	if entityID == "" || g.Data["entity_name"] != g.Username {
		t.Fatalf("grant response names no entity: %v", g.Data)
	}
	ent := e.jsonOut(t, "", "read", "identity/entity/name/"+g.Username)["data"].(map[string]interface{})
	meta, _ := ent["metadata"].(map[string]interface{})
	if meta["grant_id"] != g.GrantID || meta["requester"] != "alice@example.com" || meta["role"] != "app" {
		t.Fatalf("entity metadata: %v", meta)
	}
	var tokens []string
	for i := 0; i < 3; i++ {
		out := e.root(t, "write", "-format=json", "auth/userpass/login/"+g.Username, "password="+g.Password)
		var login struct {
			Auth struct {
				ClientToken string `json:"client_token"`
				EntityID    string `json:"entity_id"`
			} `json:"auth"`
		}
		if err := json.Unmarshal([]byte(out), &login); err != nil || login.Auth.EntityID != entityID {
			t.Fatalf("login %d: entity %q, want the grant's %q (%v)", i+1, login.Auth.EntityID, entityID, err)
		}
		tokens = append(tokens, login.Auth.ClientToken)
	}
	entitiesLive := e.listAll(t, "identity/entity/id")
	if len(entitiesLive) != len(entitiesBefore)+1 || !contains(entitiesLive, entityID) {
		t.Fatalf("entities after three logins: %d before, %v now; want exactly the grant's added", len(entitiesBefore), entitiesLive)
	}

	// The audit log entry of a request made with the grant's token names the entity.
	e.s.MustCLI(t, tokens[0], "read", "kv/data/app/db")
	var audited string
	for deadline := time.Now().Add(10 * time.Second); audited == "" && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		reqs, _ := auditEntries(t, readFile(t, auditPath), "kv/data/app/db")
		for _, r := range reqs {
			if auth, _ := r["auth"].(map[string]interface{}); auth != nil {
				audited, _ = auth["entity_id"].(string)
			}
		}
	}
	if audited != entityID {
		t.Fatalf("audit entry of the grant's read names entity %q, want %q", audited, entityID)
	}

	e.root(t, "lease", "revoke", g.LeaseID)
	e.waitAllGone(t, g, 30*time.Second)
	if after := e.listAll(t, "identity/entity/id"); len(after) != len(entitiesBefore) {
		t.Fatalf("entities after revoke: %v, before the grant: %v", after, entitiesBefore)
	}

	short := e.grant(t, "short")
	e.mustLogin(t, short)
	if !e.entityExists(t, short.Username) {
		t.Fatal("the short grant has no entity")
	}
	e.waitAllGone(t, short, 60*time.Second)
	if after := e.listAll(t, "identity/entity/id"); len(after) != len(entitiesBefore) {
		t.Fatalf("entities after expiry: %v, before: %v", after, entitiesBefore)
	}
}

// An issue that fails after the entity was made (its alias is denied) rolls the entity
// back with the user and the policy; a grant whose lease was force-revoked while its
// revoke failed is swept, entity included.
func TestGrantEntityGoesOnRollbackAndSweep(t *testing.T) {
	t.Parallel()
	e := identityVault(t)
	withAdditions := managementPolicy(t) + "\n" + identityAdditions(t)
	e.root(t, "write", "apono/roles/app", "resources=kv/app/db", "ttl=10m")
	e.root(t, "write", "apono/roles/short", "resources=kv/app/db", "ttl=5s", "max_ttl=5s")
	warm := e.grant(t, "app") // the plugin now knows it may make entities and aliases
	e.root(t, "lease", "revoke", warm.LeaseID)
	e.waitAllGone(t, warm, 30*time.Second)

	noAlias := replaceOnce(t, withAdditions, `capabilities = ["create", "update"]
  # Only aliases`, `capabilities = ["read"]
  # Only aliases`)
	e.writePolicy(t, testvault.PolicyName, noAlias)
	stderr := e.mustFail(t, "", "write", "-f", "apono/grants/app")
	if !strings.Contains(stderr, "creating identity entity") || strings.Contains(stderr, "rollback pending") {
		t.Fatalf("want a failure making the entity's alias, rolled back at once; got:\n%s", stderr)
	}
	users, policies := e.aponoObjects(t)
	if entities := e.grantEntities(t); len(users)+len(policies) != 0 || len(entities) != 0 {
		t.Fatalf("after a failed issue: users %v policies %v entities %v", users, policies, entities)
	}
	e.writePolicy(t, testvault.PolicyName, withAdditions)

	// A revoke that fails (policy delete denied), then an operator's force revoke.
	noDelete := replaceOnce(t, withAdditions, grantPolicyRule,
		`path "sys/policies/acl/apono-*" { capabilities = ["create","update","read","list"] }`)
	e.writePolicy(t, testvault.PolicyName, noDelete)
	_, offset := e.serverLog(t, 0)
	stale := e.grant(t, "short")
	e.mustLogin(t, stale)
	e.waitLogLine(t, offset, 60*time.Second, "failed to revoke lease", stale.LeaseID)
	e.root(t, "lease", "revoke", "-force", "-prefix", "apono/grants/short")
	e.writePolicy(t, testvault.PolicyName, withAdditions)
	if !e.entityExists(t, stale.Username) {
		t.Fatal("the force-revoked grant's entity is gone already; this test proves nothing")
	}
	took := e.waitAllGone(t, stale, 4*time.Minute)
	t.Logf("the sweeper removed the force-revoked grant's user, policy and entity %s after the force revoke", took.Round(time.Second))
	e.waitLogLine(t, 0, 10*time.Second, "swept an expired grant", stale.GrantID)
}

// Without the identity additions (the vendor's policy alone), apono/health says entities
// will pile up and end times are not checked, every grant says so, and grants work as
// before.
func TestWithoutIdentityAdditionsHealthSaysSoAndGrantsWork(t *testing.T) {
	e := shared
	role := uniqueName(t)
	health := e.jsonOut(t, "", "read", "apono/health")["data"].(map[string]interface{})
	if health["grant_entities"] != false || health["token_lifetime_check"] != false ||
		!strings.Contains(jsonString(t, health["warnings"]), "entities pile up") || health["status"] != "ok" {
		t.Fatalf("health with the vendor policy alone: %v", health)
	}
	e.root(t, "kv", "put", "kv/"+role+"/db", "v=1")
	e.root(t, "write", "apono/roles/"+role, "resources=kv/"+role+"/db", "ttl=5m")
	g := e.grant(t, role)
	if g.Data["entity_id"] != nil || !strings.Contains(jsonString(t, g.Warnings), "was not checked against the lifetime") {
		t.Fatalf("grant without the additions: data %v warnings %v", g.Data, g.Warnings)
	}
	tok := e.mustLogin(t, g)
	e.s.MustCLI(t, tok, "kv", "get", "kv/"+role+"/db")
	e.root(t, "lease", "revoke", g.LeaseID)
	e.waitGone(t, g, 30*time.Second)
}

// Entities that earlier versions left (a used grant's login made entity_xxxxxxxx with an
// alias named after the grant user, and revoke removed only the user) are removed by the
// sweeper when the legacy additions allow it; a person's entity is left alone.
func TestSweeperRemovesEntitiesEarlierVersionsLeft(t *testing.T) {
	t.Parallel()
	e := identityVault(t)
	e.writePolicy(t, testvault.PolicyName, managementPolicy(t)+"\n"+identityAdditions(t)+"\n"+testdataFile(t, "apono-identity-legacy.hcl"))
	// A health read makes the plugin see a policy change at once (else within 5 minutes).
	legacyChecks := 0
	for _, c := range e.jsonOut(t, "", "read", "apono/health")["data"].(map[string]interface{})["capabilities"].([]interface{}) {
		if m := c.(map[string]interface{}); strings.Contains(m["purpose"].(string), "earlier versions") {
			legacyChecks++
			if m["status"] != "ok" {
				t.Fatalf("legacy capability after adding the legacy policy: %v", m)
			}
		}
	}
	if legacyChecks != 2 {
		t.Fatalf("health reports %d legacy capabilities, want 2", legacyChecks)
	}
	e.root(t, "write", "apono/roles/app", "resources=kv/app/db", "ttl=10m")
	live := e.grant(t, "app")
	prefix := strings.TrimSuffix(live.Username, live.GrantID)

	// What an earlier version left: a grant user who logged in, then was deleted.
	loginEntity := func(name string) string {
		e.root(t, "write", "auth/userpass/users/"+name, "password=pw-"+name, "token_policies=default")
		out := e.root(t, "write", "-format=json", "auth/userpass/login/"+name, "password=pw-"+name)
		var login struct {
			Auth struct {
				EntityID string `json:"entity_id"`
			} `json:"auth"`
		}
		if err := json.Unmarshal([]byte(out), &login); err != nil || login.Auth.EntityID == "" {
			t.Fatalf("login of %s: %v %s", name, err, out)
		}
		return login.Auth.EntityID
	}
	oldGrant := prefix + "00000000000abc01"
	leftover := loginEntity(oldGrant)
	e.root(t, "delete", "auth/userpass/users/"+oldGrant)
	person := loginEntity("alice")
	liveLogin := e.mustLogin(t, live)
	_ = liveLogin

	start := time.Now()
	for {
		if !contains(e.listAll(t, "identity/entity/id"), leftover) {
			break
		}
		if time.Since(start) > 5*time.Minute {
			t.Fatalf("the leftover entity %s of %s is still there after %s", leftover, oldGrant, time.Since(start))
		}
		time.Sleep(2 * time.Second)
	}
	t.Logf("the sweeper removed the entity an earlier version left %s after it was left", time.Since(start).Round(time.Second))
	e.waitLogLine(t, 0, 10*time.Second, "swept an identity entity an earlier version left behind", oldGrant)
	ids := e.listAll(t, "identity/entity/id")
	if !contains(ids, person) || !contains(ids, live.Data["entity_id"].(string)) {
		t.Fatalf("entities after the sweep %v; alice's %s and the live grant's %v must stay", ids, person, live.Data["entity_id"])
	}
	e.root(t, "lease", "revoke", live.LeaseID)
	e.waitAllGone(t, live, 30*time.Second)
}
