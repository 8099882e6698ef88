package backend

import (
	"strings"
	"testing"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/apono-io/vault-plugin-apono/backend/store"
	"github.com/apono-io/vault-plugin-apono/backend/vaultapi/vaultfake"
	"github.com/hashicorp/vault/sdk/logical"
)

// bundleEnv has two roles owned by different people: app-db (kv/app/db, owner tag
// kv-owners) and pay-keys (transit/payments, integration_owner security: erin).
func bundleEnv(t *testing.T) *flowEnv {
	t.Helper()
	f := newFlowEnv(t)
	f.mustOK(t, logical.CreateOperation, "roles/app-db", map[string]interface{}{
		"resources": "kv/app/*", "permissions": "read,read-write", "approval": "required", "approvers": "owner", "ttl": "30m", "max_ttl": "2h",
	})
	f.mustOK(t, logical.CreateOperation, "roles/pay-keys", map[string]interface{}{
		"resources": "transit/payments", "permissions": "encrypt", "approval": "required", "approvers": "owner", "ttl": "1h", "max_ttl": "1h",
		"require_justification": true,
	})
	return f
}

func TestBundleWriteRefusesWhatItCannotGrant(t *testing.T) {
	f := bundleEnv(t)
	f.mustOK(t, logical.CreateOperation, "roles/open", map[string]interface{}{"resources": "kv/app/plain"})
	good := `[{"role":"app-db","resources":["kv/app/db"],"permission":"read"},{"role":"pay-keys"}]`
	for _, tc := range []struct {
		data map[string]interface{}
		want string
	}{
		{map[string]interface{}{"parts": `[{"role":"nope"}]`}, `parts[0] (role "nope"): no such role`},
		{map[string]interface{}{"parts": `[{"role":"app-db","resources":["kv/other/x"]}]`}, `parts[0] (role "app-db"): resources: "kv/other/x" is not among role "app-db"'s resources`},
		{map[string]interface{}{"parts": `[{"role":"app-db","permission":"encrypt"}]`}, `parts[0] (role "app-db"): permission "encrypt" is not allowed by the role`},
		{map[string]interface{}{"parts": `[{"role":"open"}]`}, `parts[0] (role "open"): the role grants without approval`},
		{map[string]interface{}{"parts": good, "ttl": "90m"}, `ttl 1h30m0s is longer than parts[1] (role "pay-keys") allows (max_ttl 1h0m0s)`},
		{map[string]interface{}{"parts": `[{"role":"app-db","colour":"red"}]`}, `parts[0]: unknown key "colour"`},
		{map[string]interface{}{"parts": "app-db:read,app-db:read"}, `the same role and permission as parts[0]`},
		{map[string]interface{}{"parts": "app-db,app-db:read"}, `the same role and permission as parts[0]`}, // read is app-db's first
		{map[string]interface{}{"parts": good, "escalate_after": "2h"}, "escalate_after and escalate_to go together"},
		{map[string]interface{}{"parts": good, "escalate_after": "25h", "escalate_to": "entity:carol"}, "must be shorter than request_ttl"},
		{map[string]interface{}{}, "parts: a bundle needs at least one role entry"},
	} {
		f.mustBadRequest(t, logical.CreateOperation, "bundles/bad", tc.data, tc.want)
	}
	if b, _ := store.GetBundle(f.ctx, f.storage, "bad"); b != nil {
		t.Fatalf("a refused bundle was stored: %+v", b)
	}
	f.mustOK(t, logical.CreateOperation, "bundles/oncall", map[string]interface{}{"parts": good, "description": "payments on-call"})
	d := f.mustOK(t, logical.ReadOperation, "bundles/oncall", nil).Data
	if d["ttl"] != int64(1800) || len(d["parts"].([]map[string]interface{})) != 2 {
		t.Fatalf("bundle read (ttl defaults to the shortest role ttl, 30m): %v", d)
	}
	// An update keeps what it does not name: the ttl set before stays.
	f.mustOK(t, logical.UpdateOperation, "bundles/oncall", map[string]interface{}{"ttl": "20m"})
	f.mustOK(t, logical.UpdateOperation, "bundles/oncall", map[string]interface{}{"description": "payments on-call, 2nd line"})
	if d := f.mustOK(t, logical.ReadOperation, "bundles/oncall", nil).Data; d["ttl"] != int64(1200) || d["description"] != "payments on-call, 2nd line" {
		t.Fatalf("after two updates: %v", d)
	}
	if keys := f.mustOK(t, logical.ListOperation, "bundles/", nil).Data["keys"].([]string); len(keys) != 1 || keys[0] != "oncall" {
		t.Fatalf("bundle list: %v", keys)
	}
	// A request's ttl past the bundle's is refused, and so is a missing justification a part's
	// role requires; nothing is stored.
	f.mustBadRequestAs(t, f.alice, logical.UpdateOperation, "requests/bundle/oncall", map[string]interface{}{"justification": "x", "ttl": "1h"}, "longer than bundle \"oncall\" allows")
	f.mustBadRequestAs(t, f.alice, logical.UpdateOperation, "requests/bundle/oncall", nil, `parts[1] (role "pay-keys"): justification is required`)
	f.mustBadRequestAs(t, f.alice, logical.UpdateOperation, "requests/bundle/oncall", map[string]interface{}{"justification": "x", "for": "bob"}, "for")
	f.mustBadRequestAs(t, f.alice, logical.UpdateOperation, "requests/bundle/none", map[string]interface{}{"justification": "x"}, `bundle "none" does not exist`)
	if ids, _ := f.storage.List(f.ctx, store.RequestStoragePrefix); len(ids) != 0 {
		t.Fatalf("refused bundle requests were stored: %v", ids)
	}
}

// Each part needs its own owners: one part's owner approving does not approve the other,
// and the pickup gives one user with one policy covering both parts' permissions.
func TestBundleNeedsEveryPartsOwnersAndIsOneLogin(t *testing.T) {
	f := bundleEnv(t)
	f.mustOK(t, logical.CreateOperation, "bundles/oncall", map[string]interface{}{
		"parts": `[{"role":"app-db","resources":["kv/app/db"],"permission":"read"},{"role":"pay-keys"}]`,
	})
	resp := f.mustAs(t, f.alice, logical.UpdateOperation, "requests/bundle/oncall", map[string]interface{}{"justification": "INC-9"})
	id := resp.Data["request_id"].(string)
	if resp.Data["role"] != "bundle:oncall" || resp.Data["bundle"] != "oncall" || resp.Data["status"] != access.StatusPending {
		t.Fatalf("new bundle request: %v", resp.Data)
	}
	parts := resp.Data["parts"].([]map[string]interface{})
	if len(parts) != 2 || parts[0]["role"] != "app-db" || parts[1]["role"] != "pay-keys" || parts[0]["approved"] != false {
		t.Fatalf("parts: %v", parts)
	}
	if got := strings.Join(parts[0]["approvers"].([]string), ","); got != "group:kv-owners" {
		t.Fatalf("part 0 approvers: %s", got)
	}
	if got := strings.Join(parts[1]["approvers"].([]string), ","); got != "group:security" {
		t.Fatalf("part 1 approvers: %s", got)
	}

	f.mustForbiddenAs(t, f.carol, "requests/"+id+"/approve", "not an approver")
	f.mustAs(t, f.bob, logical.UpdateOperation, "requests/"+id+"/approve", nil)
	d := f.requestData(t, id)
	if d["status"] != access.StatusPending || d["parts"].([]map[string]interface{})[0]["approved"] != true || d["parts"].([]map[string]interface{})[1]["approved"] != false {
		t.Fatalf("after the KV owner alone: %v %v", d["status"], d["parts"])
	}
	f.mustBadRequestAs(t, f.alice, logical.UpdateOperation, "requests/"+id+"/grant", nil, "not approved yet")
	// A second KV owner adds nothing to the Transit part.
	f.mustAs(t, f.dave, logical.UpdateOperation, "requests/"+id+"/approve", nil)
	if s := f.status(t, id); s != access.StatusPending {
		t.Fatalf("after both KV owners: %s", s)
	}
	f.mustAs(t, f.erin, logical.UpdateOperation, "requests/"+id+"/approve", nil)
	if s := f.status(t, id); s != access.StatusApproved {
		t.Fatalf("after every part's owners: %s", s)
	}
	// The pickup at a role's grants path is refused: it names where to pick it up.
	f.mustBadRequestAs(t, f.alice, logical.UpdateOperation, "grants/app-db", map[string]interface{}{"request_id": id}, "is for bundle \"oncall\"")
	grant := f.mustAs(t, f.alice, logical.UpdateOperation, "requests/"+id+"/grant", nil)
	if grant.Secret == nil || grant.Data["bundle"] != "oncall" || grant.Data["role"] != "bundle:oncall" {
		t.Fatalf("bundle pickup: %v", grant.Data)
	}
	if users := f.vault.UserNames(); len(users) != 1 {
		t.Fatalf("one login for the bundle, got users %v", users)
	}
	policy, ok := f.vault.Policy(grant.Data["policy"].(string))
	if !ok {
		t.Fatal("the bundle's policy was not written")
	}
	for _, want := range []string{`"kv/data/app/db"`, `"transit/encrypt/payments"`} {
		if !strings.Contains(policy, want) {
			t.Fatalf("policy lacks %s:\n%s", want, policy)
		}
	}
	if strings.Contains(policy, `"kv/data/app/other"`) || strings.Contains(policy, `"update"`) && strings.Contains(policy, `"kv/data/app/db":{"capabilities":["create"`) {
		t.Fatalf("policy grants more than the parts asked:\n%s", policy)
	}
	g, _ := store.GetGrant(f.ctx, f.storage, grant.Data["grant_id"].(string))
	if g == nil || g.Bundle != "oncall" || len(g.Parts) != 2 || g.Parts[1].Permission != "encrypt" {
		t.Fatalf("grant record: %+v", g)
	}
}

// An owner change between approval and pickup refuses the pickup, part by part; so does
// deleting the bundle.
func TestBundlePickupRechecksEachPartsOwners(t *testing.T) {
	f := bundleEnv(t)
	f.mustOK(t, logical.CreateOperation, "bundles/oncall", map[string]interface{}{
		"parts": `[{"role":"app-db","resources":["kv/app/db"]},"pay-keys"]`,
	})
	approved := func() string {
		id := f.mustAs(t, f.alice, logical.UpdateOperation, "requests/bundle/oncall", map[string]interface{}{"justification": "x"}).Data["request_id"].(string)
		for _, who := range []string{f.bob, f.erin} {
			f.mustAs(t, who, logical.UpdateOperation, "requests/"+id+"/approve", nil)
		}
		if s := f.status(t, id); s != access.StatusApproved {
			t.Fatalf("after both parts' owners: %s", s)
		}
		return id
	}
	first, second := approved(), approved()
	f.vault.Tree.Put("kv", "app/db", vaultfake.Secret{Meta: map[string]string{"owner": "group:pay-owners"}})
	f.mustForbiddenAs(t, f.alice, "requests/"+first+"/grant", "the owners of what it grants changed")
	f.vault.Tree.Put("kv", "app/db", vaultfake.Secret{Meta: map[string]string{"owner": "kv-owners"}})
	f.mustOK(t, logical.DeleteOperation, "bundles/oncall", nil)
	f.mustBadRequestAs(t, f.alice, logical.UpdateOperation, "requests/"+second+"/grant", nil, `bundle "oncall" no longer exists`)
	if users := f.vault.UserNames(); len(users) != 0 {
		t.Fatalf("refused pickups made users: %v", users)
	}
}
