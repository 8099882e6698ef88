package backend

import (
	"strings"
	"testing"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/apono-io/vault-plugin-apono/backend/vaultapi/vaultfake"
	"github.com/hashicorp/vault/sdk/logical"
)

// What the access portal asks: the roles, a role's resources, a preview of who will be
// asked, and people by the names they log in with.
func TestPeoplePaths(t *testing.T) {
	f := newFlowEnv(t)
	f.mustOK(t, logical.CreateOperation, "roles/app", map[string]interface{}{
		"resources": "kv/app/db,kv/app/plain", "approval": "required", "approvers": "owner", "require_justification": true,
	})
	f.mustOK(t, logical.CreateOperation, "roles/direct", map[string]interface{}{"resources": "kv/app/other"})
	roles := f.mustAs(t, f.alice, logical.ReadOperation, "my/roles", nil).Data["roles"].([]map[string]interface{})
	if len(roles) != 2 || roles[0]["name"] != "app" || roles[0]["approval"] != access.ApprovalRequired || roles[0]["require_justification"] != true || roles[1]["approval"] != access.ApprovalNone {
		t.Fatalf("my/roles: %v", roles)
	}

	// A preview says who will be asked and stores nothing.
	resp := f.mustAs(t, f.alice, logical.UpdateOperation, "requests/app", map[string]interface{}{"dry_run": true, "justification": "look"})
	if resp.Data["status"] != "preview" || resp.Data["request_id"] != "" || strings.Join(resp.Data["approvers"].([]string), ",") != "group:kv-owners,group:security" {
		t.Fatalf("preview: %v", resp.Data)
	}
	if keys, _ := f.mustAs(t, "", logical.ListOperation, "audit/requests/", nil).Data["keys"].([]string); len(keys) != 0 {
		t.Fatalf("a preview was stored: %v", keys)
	}
	f.mustBadRequestAs(t, f.alice, logical.UpdateOperation, "requests/app", map[string]interface{}{"dry_run": true}, "justification is required")

	// Names: an entity Vault named entity_xxxxxxxx shows as the login's alias name.
	f.ids.entities["id-gen"] = &logical.Entity{ID: "id-gen", Name: "entity_1a2b3c4d", Aliases: []*logical.Alias{{Name: "gina", MountAccessor: "auth_userpass_x"}}}
	id := f.mustAs(t, "id-gen", logical.UpdateOperation, "requests/app", map[string]interface{}{"justification": "x", "resources": "kv/app/db"}).Data["request_id"].(string)
	read := f.mustAs(t, f.bob, logical.ReadOperation, "requests/"+id, nil).Data
	if read["requester_name"] != "gina" || read["requester"] != "entity_1a2b3c4d" {
		t.Fatalf("requester names: %v / %v", read["requester_name"], read["requester"])
	}
	f.mustAs(t, f.bob, logical.UpdateOperation, "requests/"+id+"/approve", nil)
	list := f.mustAs(t, f.bob, logical.ReadOperation, "requests", nil).Data["requests"].([]map[string]interface{})
	if len(list) != 1 || list[0]["requester_name"] != "gina" || strings.Join(list[0]["approved_by"].([]string), ",") != "bob" || list[0]["justification"] != "x" {
		t.Fatalf("summary for people: %v", list)
	}
}

func TestResourcesOfARole(t *testing.T) {
	f := newFlowEnv(t)
	f.vault.Tree.Put("kv", "app/sub/deep", vaultfake.Secret{}).Put("kv", "apple/x", vaultfake.Secret{}).Put("kv", "other/y", vaultfake.Secret{})
	f.mustOK(t, logical.UpdateOperation, "config", map[string]interface{}{"resource_types": "kv"})
	f.mustOK(t, logical.CreateOperation, "roles/app", map[string]interface{}{"resources": "kv/app/sub/*,kv/app/db"})
	names := func(data map[string]interface{}) []string {
		resp := f.mustAs(t, f.alice, logical.ReadOperation, "resources", data)
		var out []string
		for _, e := range resp.Data["resources"].([]map[string]interface{}) {
			out = append(out, e["name"].(string))
		}
		return out
	}
	if got := strings.Join(names(map[string]interface{}{"role": "app"}), ","); got != "kv/app/db,kv/app/sub/*,kv/app/sub/deep" {
		t.Fatalf("resources of role app: %s", got)
	}
	if got := strings.Join(names(map[string]interface{}{"role": "app", "limit": 2}), ","); got != "kv/app/db,kv/app/sub/*" {
		t.Fatalf("first page of 2: %s", got)
	}
	if got := strings.Join(names(map[string]interface{}{"role": "app", "prefix": "kv/app/sub/"}), ","); got != "kv/app/sub/*,kv/app/sub/deep" {
		t.Fatalf("with a prefix: %s", got)
	}
	f.mustBadRequestAs(t, f.alice, logical.ReadOperation, "resources", map[string]interface{}{"role": "nope"}, `role "nope" does not exist`)
}

// A read with wait= answers when the status changes, or unchanged at the end of the wait.
func TestRequestReadWaitsForAChange(t *testing.T) {
	f := newFlowEnv(t)
	f.mustOK(t, logical.CreateOperation, "roles/app", map[string]interface{}{"resources": "kv/app/db", "approval": "required", "approvers": "owner"})
	id := f.request(t, "app", nil)
	unchanged := f.mustAs(t, f.alice, logical.ReadOperation, "requests/"+id, map[string]interface{}{"wait": 1})
	if unchanged.Data["status_changed"] != false || unchanged.Data["status"] != access.StatusPending {
		t.Fatalf("a wait with no change: %v / %v", unchanged.Data["status_changed"], unchanged.Data["status"])
	}
	done := make(chan *logical.Response, 1)
	go func() {
		resp, _ := f.doAs(t, f.alice, logical.ReadOperation, "requests/"+id, map[string]interface{}{"wait": 30})
		done <- resp
	}()
	time.Sleep(200 * time.Millisecond)
	f.mustAs(t, f.bob, logical.UpdateOperation, "requests/"+id+"/approve", nil)
	select {
	case resp := <-done:
		if resp == nil || resp.Data["status"] != access.StatusApproved || resp.Data["status_changed"] != true {
			t.Fatalf("the waiting read answered %#v", resp)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting read did not answer the approval")
	}
	f.mustBadRequestAs(t, f.alice, logical.ReadOperation, "requests/"+id, map[string]interface{}{"wait": 61}, "wait must be between 0 and 1m0s")
}
