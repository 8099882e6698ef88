package backend

import (
	"reflect"
	"testing"

	"github.com/apono-io/vault-plugin-apono/backend/store"
	"github.com/hashicorp/vault/sdk/logical"
)

func TestRoleCRUD(t *testing.T) {
	e := newTestEnv(t)
	e.configure(t)
	e.mustOK(t, logical.CreateOperation, "roles/app", map[string]interface{}{
		"resources":             "kv/app/db,kv/app/*",
		"permissions":           "read,read-write",
		"ttl":                   "30m",
		"max_ttl":               "2h",
		"token_bound_cidrs":     "10.0.0.0/8,127.0.0.1",
		"require_justification": true,
	})
	resp := e.mustOK(t, logical.ReadOperation, "roles/app", nil)
	want := map[string]interface{}{
		"resources":             []string{"kv/app/db", "kv/app/*"},
		"permissions":           []string{"read", "read-write"},
		"ttl":                   int64(1800),
		"max_ttl":               int64(7200),
		"token_bound_cidrs":     []string{"10.0.0.0/8", "127.0.0.1"},
		"require_justification": true,
		// Access-flow defaults: a role that says nothing of approval grants directly.
		"approval":                "none",
		"approvers":               []string{},
		"approval_mode":           "any_of",
		"required_approvals":      1,
		"request_ttl":             int64(86400),
		"pickup_ttl":              int64(3600),
		"require_approver_reason": false,
		"break_glass":             false,
		"break_glass_max_ttl":     int64(3600),
		// Bounds and checks of access flows: one live break-glass grant per person, no
		// limit on the age of approvers' tokens.
		"break_glass_allowed":         []string{},
		"break_glass_max_live_grants": 1,
		"approver_max_token_age":      int64(0),
		// Time and rules: any time, grants capped at their window, a week ahead, no rules.
		"access_windows":     []string{},
		"windows_cap_grants": true,
		"max_schedule_ahead": int64(7 * 24 * 3600),
		"auto_approve":       []map[string]interface{}{},
		// Nobody asks for someone else unless the role says who may.
		"on_behalf_allowed":               []string{},
		"remind_after":                    int64(0),
		"escalate_after":                  int64(0),
		"escalate_to":                     []string{},
		"escalation_stands_in_for_owners": false,
	}
	if !reflect.DeepEqual(resp.Data, want) {
		t.Fatalf("role read:\n got %#v\nwant %#v", resp.Data, want)
	}

	// An update changes only what it sends.
	e.mustOK(t, logical.UpdateOperation, "roles/app", map[string]interface{}{"ttl": "10m"})
	resp = e.mustOK(t, logical.ReadOperation, "roles/app", nil)
	if resp.Data["ttl"] != int64(600) || !reflect.DeepEqual(resp.Data["permissions"], []string{"read", "read-write"}) {
		t.Fatalf("partial update: %#v", resp.Data)
	}

	e.mustOK(t, logical.CreateOperation, "roles/keys", map[string]interface{}{"resources": "transit/payments"})
	resp = e.mustOK(t, logical.ReadOperation, "roles/keys", nil)
	if !reflect.DeepEqual(resp.Data["permissions"], []string{"encrypt-decrypt"}) {
		t.Fatalf("transit default permission: %#v", resp.Data["permissions"])
	}

	resp = e.mustOK(t, logical.ListOperation, "roles/", nil)
	if !reflect.DeepEqual(resp.Data["keys"], []string{"app", "keys"}) {
		t.Fatalf("list: %#v", resp.Data["keys"])
	}
	e.mustOK(t, logical.DeleteOperation, "roles/app", nil)
	if resp := e.mustOK(t, logical.ReadOperation, "roles/app", nil); resp != nil {
		t.Fatalf("deleted role still readable: %#v", resp)
	}
}

func TestRoleBadInputIsRejectedAndChangesNothing(t *testing.T) {
	e := newTestEnv(t)
	e.configure(t)
	e.mustOK(t, logical.CreateOperation, "roles/existing", map[string]interface{}{"resources": "kv/app/db"})

	cases := []struct {
		name       string
		data       map[string]interface{}
		want       string
		createOnly bool // valid as an update of a role that already has resources and permissions
	}{
		{"no resources", map[string]interface{}{}, "resources is required", true},
		{"sys path", map[string]interface{}{"resources": "sys/policies/acl/root"}, "sys/", false},
		{"auth path", map[string]interface{}{"resources": "auth/userpass/users/x"}, "auth/", false},
		{"identity path", map[string]interface{}{"resources": "identity/entity"}, "identity/", false},
		{"own mount", map[string]interface{}{"resources": "apono/config"}, "own mount", false},
		{"traversal", map[string]interface{}{"resources": "kv/app/../../sys"}, "..", false},
		{"empty segment", map[string]interface{}{"resources": "kv//app"}, "empty path segment", false},
		{"quote", map[string]interface{}{"resources": `kv/app"db`}, "not allowed", false},
		{"brace", map[string]interface{}{"resources": "kv/app/{x}"}, "not allowed", false},
		{"template", map[string]interface{}{"resources": "kv/{{identity.entity.id}}"}, "not allowed", false},
		{"plus segment", map[string]interface{}{"resources": "kv/+/db"}, "not allowed", false},
		{"star in middle", map[string]interface{}{"resources": "kv/*/db"}, "not allowed", false},
		{"control char", map[string]interface{}{"resources": "kv/app\ndb"}, "not allowed", false},
		{"unicode look-alike", map[string]interface{}{"resources": "kv/аpp/db"}, "not allowed", false},
		{"kv v1 mount", map[string]interface{}{"resources": "kv1/app"}, "kv version 1", false},
		{"no such mount", map[string]interface{}{"resources": "nomount/app"}, "not under any mounted", false},
		{"transit folder", map[string]interface{}{"resources": "transit/*"}, "one key", false},
		{"mount only", map[string]interface{}{"resources": "kv"}, "mount and a path", false},
		{"unknown permission", map[string]interface{}{"resources": "kv/app/db", "permissions": "superuser"}, "not a permission level", false},
		{"permission of other type", map[string]interface{}{"resources": "kv/app/db", "permissions": "encrypt"}, "applies to transit", false},
		{"mixed needs permissions", map[string]interface{}{"resources": "kv/app/db,transit/payments"}, "permissions is required", true},
		{"ttl over max", map[string]interface{}{"resources": "kv/app/db", "ttl": "2h", "max_ttl": "1h"}, "max_ttl", false},
		{"bad cidr", map[string]interface{}{"resources": "kv/app/db", "token_bound_cidrs": "10.0.0.0/99"}, "token_bound_cidrs", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e.mustBadRequest(t, logical.CreateOperation, "roles/newrole", tc.data, tc.want)
			if r, _ := store.GetRole(e.ctx, e.storage, "newrole"); r != nil {
				t.Fatal("rejected role was stored")
			}
			if tc.createOnly {
				return
			}
			e.mustBadRequest(t, logical.UpdateOperation, "roles/existing", tc.data, tc.want)
			if r, _ := store.GetRole(e.ctx, e.storage, "existing"); !reflect.DeepEqual(r.Resources, []string{"kv/app/db"}) {
				t.Fatalf("rejected update changed the role: %+v", r)
			}
		})
	}
}

func TestRoleNameRule(t *testing.T) {
	e := newTestEnv(t)
	e.configure(t)
	e.mustBadRequest(t, logical.CreateOperation, "roles/a.b", map[string]interface{}{"resources": "kv/app/db"}, "not a valid role name")
}
