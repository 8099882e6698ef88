package backend

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/sweep"
	"github.com/apono-io/vault-plugin-apono/backend/vaultapi"
	"github.com/apono-io/vault-plugin-apono/backend/vaultapi/vaultfake"
	"github.com/hashicorp/vault/sdk/logical"
)

// anyRuleRe reads the path rules of a policy file, one-line or block form.
var anyRuleRe = regexp.MustCompile(`(?s)path "([^"]+)" \{\s*capabilities = \[([^\]]*)\]`)

// identityPolicyRules is the seed policy plus testdata/apono-identity.hcl, as capRules.
func identityPolicyRules(t *testing.T) map[string][]string {
	t.Helper()
	rules := seedPolicyRules(t, "userpass")
	raw, err := os.ReadFile("../testdata/apono-identity.hcl")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range anyRuleRe.FindAllStringSubmatch(string(raw), -1) {
		var caps []string
		for _, c := range strings.Split(m[2], ",") {
			caps = append(caps, strings.Trim(strings.TrimSpace(c), `"`))
		}
		rules[m[1]] = caps
		n++
	}
	if n != 6 {
		t.Fatalf("parsed %d rules from apono-identity.hcl, want 6", n)
	}
	return rules
}

// grantAs issues grants/app with the caller's token accessor set.
func (e *testEnv) grantAs(t *testing.T, accessor string, data map[string]interface{}) *logical.Response {
	t.Helper()
	resp, err := e.b.HandleRequest(e.ctx, &logical.Request{
		Operation: logical.UpdateOperation, Path: "grants/app", Data: data, Storage: e.storage,
		MountPoint: "apono/", DisplayName: "approle", ClientTokenAccessor: accessor,
	})
	if err != nil || resp == nil || resp.IsError() {
		t.Fatalf("grant: %v %#v", err, resp)
	}
	return resp
}

func TestGrantEntityIsMadeAndRemovedWithTheUser(t *testing.T) {
	e := newTestEnv(t)
	e.grantEnv(t)
	e.vault.CapRules = identityPolicyRules(t)
	resp := e.mustOK(t, logical.UpdateOperation, "grants/app", map[string]interface{}{"requester": "alice@example.com"})
	name := resp.Data["username"].(string)
	ent, ok := e.vault.Entities[name]
	if !ok || resp.Data["entity_id"] != ent.ID || resp.Data["entity_name"] != name {
		t.Fatalf("entity of the grant: %v, response %v", e.vault.Entities, resp.Data)
	}
	if ent.Metadata["grant_id"] != resp.Data["grant_id"] || ent.Metadata["requester"] != "alice@example.com" || ent.Metadata["role"] != "app" {
		t.Fatalf("entity metadata: %v", ent.Metadata)
	}
	if e.vault.Aliases[vaultfake.UserpassAccessor+"/"+name] != ent.ID {
		t.Fatalf("no alias maps the user onto the entity: %v", e.vault.Aliases)
	}
	if _, err := e.revoke(t, resp.Secret); err != nil {
		t.Fatal(err)
	}
	if len(e.vault.EntityNames()) != 0 || len(e.vault.Aliases) != 0 {
		t.Fatalf("after revoke: entities %v aliases %v", e.vault.EntityNames(), e.vault.Aliases)
	}
}

func TestGrantEntityFailureRollsBackEverything(t *testing.T) {
	e := newTestEnv(t)
	e.grantEnv(t)
	e.vault.CapRules = identityPolicyRules(t)
	e.vault.Fail("WriteEntityAlias", vaultfake.ErrDown)
	resp, err := e.do(t, logical.UpdateOperation, "grants/app", nil)
	if err == nil || !strings.Contains(err.Error(), "creating identity entity") {
		t.Fatalf("want an error creating the entity, got %v %#v", err, resp)
	}
	if len(e.vault.EntityNames())+len(e.vault.UserNames())+len(e.vault.PolicyNames()) != 0 {
		t.Fatalf("left after a failed issue: entities %v users %v policies %v", e.vault.EntityNames(), e.vault.UserNames(), e.vault.PolicyNames())
	}
}

func TestWithoutIdentityAdditionsNoEntityAndHealthSays(t *testing.T) {
	e := newTestEnv(t)
	e.grantEnv(t)
	e.vault.CapRules = seedPolicyRules(t, "userpass")
	resp := e.grantAs(t, "acc-1", nil)
	if len(e.vault.EntityNames()) != 0 || resp.Data["entity_id"] != nil {
		t.Fatalf("entities made without the capability: %v", e.vault.EntityNames())
	}
	if len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "was not checked against the lifetime") {
		t.Fatalf("warnings: %v", resp.Warnings)
	}
	d := e.health(t)
	if d["grant_entities"] != false || d["token_lifetime_check"] != false || !strings.Contains(strings.Join(d["warnings"].([]string), "\n"), "entities pile up") {
		t.Fatalf("health: %v", d)
	}
	e.vault.CapRules = identityPolicyRules(t)
	d = e.health(t)
	if d["grant_entities"] != true || d["token_lifetime_check"] != true || d["status"] != healthOK {
		t.Fatalf("health with the additions: %v %v", d, d["warnings"])
	}
}

// A grant never promises more than the token that asked for it can deliver.
func TestGrantEndsNoLaterThanTheCallersToken(t *testing.T) {
	e := newTestEnv(t)
	e.grantEnv(t)
	e.vault.CapRules = identityPolicyRules(t)
	now := time.Now()
	e.vault.Tokens["short"] = &vaultapi.TokenLifetime{TTL: 20 * time.Second, ExpireTime: now.Add(20 * time.Second), Renewable: true}
	e.vault.Tokens["periodic"] = &vaultapi.TokenLifetime{TTL: 15 * time.Second, ExpireTime: now.Add(15 * time.Second), Period: 15 * time.Second, Renewable: true}
	e.vault.Tokens["periodic-capped"] = &vaultapi.TokenLifetime{TTL: 15 * time.Second, ExpireTime: now.Add(15 * time.Second), Period: 15 * time.Second,
		ExplicitMaxTTL: 5 * time.Minute, CreationTime: now}
	e.vault.Tokens["root"] = &vaultapi.TokenLifetime{}

	resp := e.grantAs(t, "short", map[string]interface{}{"ttl": "10m"})
	if resp.Secret.TTL > 20*time.Second || resp.Secret.TTL < 18*time.Second {
		t.Fatalf("lease ttl %s for a token with 20s left", resp.Secret.TTL)
	}
	if len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "periodic token") {
		t.Fatalf("warnings: %v", resp.Warnings)
	}
	expires, _ := time.Parse(time.RFC3339, resp.Data["expires_at"].(string))
	if d := expires.Sub(now); d > 21*time.Second {
		t.Fatalf("expires_at %s is %s away", expires, d)
	}
	user, _ := e.vault.User("userpass", resp.Data["username"].(string))
	if user.TTL > 20*time.Second || user.MaxTTL > 20*time.Second {
		t.Fatalf("user token limits %s/%s outlive the grant", user.TTL, user.MaxTTL)
	}

	for accessor, want := range map[string]time.Duration{"periodic": 10 * time.Minute, "root": 10 * time.Minute, "periodic-capped": 5 * time.Minute} {
		resp := e.grantAs(t, accessor, map[string]interface{}{"ttl": "10m"})
		if d := want - resp.Secret.TTL; d < 0 || d > 2*time.Second {
			t.Errorf("%s token: lease ttl %s, want %s", accessor, resp.Secret.TTL, want)
		}
	}

	// Renewal checks the token that wrote the lease again.
	short := e.grantAs(t, "short", map[string]interface{}{"ttl": "10m"})
	short.Secret.Increment = time.Hour
	short.Secret.IssueTime = time.Now()
	r, err := e.b.HandleRequest(e.ctx, &logical.Request{Operation: logical.RenewOperation, Storage: e.storage, Secret: short.Secret})
	if err != nil || r == nil || r.Secret == nil || r.Secret.TTL > 20*time.Second {
		t.Fatalf("renew past the token's end: %v %#v", err, r)
	}
}

func TestSweeperRemovesRecordlessGrantEntity(t *testing.T) {
	e := newSweepEnv(t)
	e.vault.CapRules = identityPolicyRules(t)
	orphan := e.b.grants.ObjectName("00000000000000ee")
	e.vault.Entities[orphan] = vaultfake.Entity{ID: "orphan-id"}
	e.vault.Entities["apono-deadbeef-00000000000000ee"] = vaultfake.Entity{ID: "other-mount"}
	e.vault.Entities["alice"] = vaultfake.Entity{ID: "a-person"}
	e.mustSweep(t)
	e.clock = e.clock.Add(sweep.DefaultInterval + walRollbackMinAge)
	e.mustSweep(t)
	got := e.vault.EntityNames()
	if strings.Join(got, ",") != "alice,apono-deadbeef-00000000000000ee" {
		t.Fatalf("entities after two sweeps: %v", got)
	}
}

func TestSweeperRemovesOnlyEntitiesEarlierVersionsLeft(t *testing.T) {
	e := newSweepEnv(t)
	rules := identityPolicyRules(t)
	rules["identity/entity-alias/id"] = []string{"list"}
	rules["identity/entity/id/*"] = []string{"read", "delete"}
	e.vault.CapRules = rules

	ours := func(id string) string { return e.b.grants.ObjectName(id) }
	alias := func(name, entityID string) map[string]interface{} {
		return map[string]interface{}{"name": name, "mount_accessor": vaultfake.UserpassAccessor, "canonical_id": entityID}
	}
	entity := func(name string, aliases ...string) map[string]interface{} {
		var as []interface{}
		for _, a := range aliases {
			as = append(as, map[string]interface{}{"name": a})
		}
		return map[string]interface{}{"name": name, "aliases": as, "direct_group_ids": []interface{}{}, "policies": []interface{}{}}
	}
	const (
		leftover  = "11111111-1111-1111-1111-111111111111"
		twoAlias  = "22222222-2222-2222-2222-222222222222"
		named     = "33333333-3333-3333-3333-333333333333"
		userLives = "44444444-4444-4444-4444-444444444444"
		otherMnt  = "55555555-5555-5555-5555-555555555555"
	)
	e.vault.AddUser("userpass", ours("00000000000000d4"))
	e.vault.AliasInfo = map[string]interface{}{
		"a1": alias(ours("00000000000000d1"), leftover),
		"a2": alias(ours("00000000000000d2"), twoAlias),
		"a3": alias(ours("00000000000000d3"), named),
		"a4": alias(ours("00000000000000d4"), userLives),
		"a5": alias("apono-deadbeef-00000000000000d5", otherMnt),
	}
	e.vault.Reads = map[string]map[string]interface{}{
		"identity/entity/id/" + leftover:  entity("entity_0a1b2c3d", ours("00000000000000d1")),
		"identity/entity/id/" + twoAlias:  entity("entity_0a1b2c3e", ours("00000000000000d2"), "alice"),
		"identity/entity/id/" + named:     entity("alice", ours("00000000000000d3")),
		"identity/entity/id/" + userLives: entity("entity_0a1b2c3f", ours("00000000000000d4")),
		"identity/entity/id/" + otherMnt:  entity("entity_0a1b2c40", "apono-deadbeef-00000000000000d5"),
	}
	e.mustSweep(t)
	if len(e.vault.Deleted) != 0 {
		t.Fatalf("deleted on the first sighting: %v", e.vault.Deleted)
	}
	e.clock = e.clock.Add(sweep.DefaultInterval + walRollbackMinAge)
	e.mustSweep(t)
	if strings.Join(e.vault.Deleted, ",") != "identity/entity/id/"+leftover {
		t.Fatalf("deleted %v, want only the leftover entity", e.vault.Deleted)
	}
}
