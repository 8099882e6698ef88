package backend

import (
	"reflect"
	"strings"
	"testing"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/apono-io/vault-plugin-apono/backend/discovery"
	"github.com/apono-io/vault-plugin-apono/backend/owners"
	"github.com/apono-io/vault-plugin-apono/backend/vaultapi"
	"github.com/apono-io/vault-plugin-apono/backend/vaultapi/vaultfake"
	"github.com/hashicorp/vault/sdk/logical"
)

func TestOwnersTableCRUD(t *testing.T) {
	e := newTestEnv(t)
	e.mustOK(t, logical.CreateOperation, "owners/database/creds/readonly", map[string]interface{}{
		"approvers": "group:dba,entity:erin", "description": "the DBAs",
	})
	e.mustOK(t, logical.CreateOperation, "owners/kv/team-a/*", map[string]interface{}{"approvers": []string{"group:team-a"}})

	d := e.mustOK(t, logical.ReadOperation, "owners/database/creds/readonly", nil).Data
	want := map[string]interface{}{"pattern": "database/creds/readonly", "approvers": []string{"group:dba", "entity:erin"}, "description": "the DBAs"}
	if !reflect.DeepEqual(d, want) {
		t.Fatalf("read\n got %#v\nwant %#v", d, want)
	}
	keys := e.mustOK(t, logical.ListOperation, "owners/", nil).Data["keys"].([]string)
	if strings.Join(keys, ",") != "database/creds/readonly,kv/team-a/*" {
		t.Fatalf("list: %v", keys)
	}

	// An update changes only what it sends.
	e.mustOK(t, logical.UpdateOperation, "owners/database/creds/readonly", map[string]interface{}{"approvers": "group:dba2"})
	d = e.mustOK(t, logical.ReadOperation, "owners/database/creds/readonly", nil).Data
	if !reflect.DeepEqual(d["approvers"], []string{"group:dba2"}) || d["description"] != "the DBAs" {
		t.Fatalf("after an update: %#v", d)
	}

	e.mustOK(t, logical.DeleteOperation, "owners/database/creds/readonly", nil)
	if resp, err := e.do(t, logical.ReadOperation, "owners/database/creds/readonly", nil); err != nil || resp != nil {
		t.Fatalf("read after delete: %#v %v", resp, err)
	}
	keys = e.mustOK(t, logical.ListOperation, "owners/", nil).Data["keys"].([]string)
	if strings.Join(keys, ",") != "kv/team-a/*" {
		t.Fatalf("list after delete: %v", keys)
	}
}

func TestOwnersTableRefusesBadInput(t *testing.T) {
	e := newTestEnv(t)
	bad := []struct {
		path string
		data map[string]interface{}
		want string
	}{
		{"owners/sys/policy/x", map[string]interface{}{"approvers": "group:dba"}, "pattern: "},
		{"owners/auth/*", map[string]interface{}{"approvers": "group:dba"}, "nothing under auth/"},
		{"owners/identity/entity/*", map[string]interface{}{"approvers": "group:dba"}, "nothing under identity/"},
		{"owners/kv/*/db", map[string]interface{}{"approvers": "group:dba"}, "only once, as the last character"},
		{"owners/kv*", map[string]interface{}{"approvers": "group:dba"}, "must name a mount and a path"},
		{"owners/kv/a b", map[string]interface{}{"approvers": "group:dba"}, "not allowed"},
		{"owners/database/*", map[string]interface{}{"approvers": "owner"}, "approvers: "},
		{"owners/database/*", map[string]interface{}{"approvers": "dba"}, "allowed: group:<identity group name>, entity:<entity name>"},
		{"owners/database/*", map[string]interface{}{"approvers": "group:"}, "approvers: "},
		{"owners/database/*", map[string]interface{}{}, "approvers is required"},
		{"owners/database/*", map[string]interface{}{"approvers": ""}, "approvers is required"},
		{"owners/database/*", map[string]interface{}{"approvers": "group:dba", "description": "a\nb"}, "description must not contain control characters"},
		{"owners/database/*", map[string]interface{}{"approvers": "group:dba", "owner": "x"}, "unknown field(s) owner"},
	}
	for _, c := range bad {
		e.mustBadRequest(t, logical.CreateOperation, c.path, c.data, c.want)
	}
	if keys, _ := e.storage.List(e.ctx, owners.TableStoragePrefix); len(keys) != 0 {
		t.Fatalf("refused writes stored %v", keys)
	}
	if resp := e.mustOK(t, logical.ListOperation, "owners/", nil); len(resp.Data) != 0 && len(resp.Data["keys"].([]string)) != 0 {
		t.Fatalf("list after refused writes: %#v", resp.Data)
	}
}

// A request for a database role owned through the table asks the table's owners; a
// change of the table before the pickup refuses it (403).
func TestOwnersTableApprovesRequests(t *testing.T) {
	f := newFlowEnv(t)
	f.vault.MountTable["database/"] = vaultapi.MountInfo{Type: "database"}
	f.mustOK(t, logical.CreateOperation, "owners/kv/app/*", map[string]interface{}{"approvers": "entity:carol"})
	f.mustOK(t, logical.CreateOperation, "roles/app", map[string]interface{}{
		"resources": "kv/app/*", "approval": "required", "approvers": "owner",
	})
	// kv/app/db's tag wins; kv/app/plain has none: the table's entry owns it, not integration_owner.
	id := f.request(t, "app", map[string]interface{}{"resources": "kv/app/db,kv/app/plain"})
	var sets []string
	for _, s := range f.requestData(t, id)["approver_sets"].([]map[string]interface{}) {
		sets = append(sets, s["label"].(string)+" = "+strings.Join(s["approvers"].([]string), "|"))
	}
	if got := strings.Join(sets, "\n"); got != "owners of kv/app/db = group:kv-owners\nowners of kv/app/plain = entity:carol" {
		t.Fatalf("approver sets:\n%s", got)
	}
	f.mustForbiddenAs(t, f.erin, "requests/"+id+"/approve", "not an approver")
	f.mustAs(t, f.bob, logical.UpdateOperation, "requests/"+id+"/approve", nil)
	f.mustAs(t, f.carol, logical.UpdateOperation, "requests/"+id+"/approve", nil)
	if s := f.status(t, id); s != access.StatusApproved {
		t.Fatalf("after both owners: %s", s)
	}
	// The table names someone else before the pickup: they did not approve.
	f.mustOK(t, logical.UpdateOperation, "owners/kv/app/*", map[string]interface{}{"approvers": "group:security"})
	f.mustForbiddenAs(t, f.alice, "requests/"+id+"/grant", "owners of kv/app/plain (group:security) did not approve it")
	if users := f.vault.UserNames(); len(users) != 0 {
		t.Fatalf("a refused pickup made users: %v", users)
	}
	// Back as it was: the pickup goes through.
	f.mustOK(t, logical.UpdateOperation, "owners/kv/app/*", map[string]interface{}{"approvers": "entity:carol"})
	f.mustAs(t, f.alice, logical.UpdateOperation, "requests/"+id+"/grant", nil)

	// A database role has no tag: the most specific entry owns it, else integration_owner.
	f.mustOK(t, logical.CreateOperation, "owners/database/*", map[string]interface{}{"approvers": "group:platform"})
	f.mustOK(t, logical.CreateOperation, "owners/database/creds/readonly", map[string]interface{}{"approvers": "group:kv-owners"})
	f.mustOK(t, logical.CreateOperation, "roles/db", map[string]interface{}{
		"resources": "database/creds/readonly", "approval": "required", "approvers": "owner",
	})
	id = f.request(t, "db", nil)
	data := f.requestData(t, id)
	if got := data["approvers"].([]string); strings.Join(got, ",") != "group:kv-owners" {
		t.Fatalf("database role approvers: %v", got)
	}
	f.mustForbiddenAs(t, f.erin, "requests/"+id+"/approve", "not an approver")
	f.mustAs(t, f.bob, logical.UpdateOperation, "requests/"+id+"/approve", nil)
	if s := f.status(t, id); s != access.StatusApproved {
		t.Fatalf("after the table's owner: %s", s)
	}
}

// Another node's write reaches this one through Invalidate.
func TestOwnersTableInvalidate(t *testing.T) {
	st := &logical.InmemStorage{}
	active, standby := newTestEnvOn(t, st), newTestEnvOn(t, st)
	if ix, _ := standby.b.owners.Table.Index(standby.ctx, st); ix.Len() != 0 {
		t.Fatal("empty table")
	}
	active.mustOK(t, logical.CreateOperation, "owners/pki/issue/web", map[string]interface{}{"approvers": "group:pki"})
	if ix, _ := standby.b.owners.Table.Index(standby.ctx, st); ix.Len() != 0 {
		t.Fatal("the standby's table was expected to be cached")
	}
	keys, _ := st.List(standby.ctx, owners.TableStoragePrefix)
	standby.b.invalidate(standby.ctx, owners.TableStoragePrefix+keys[0])
	if ix, _ := standby.b.owners.Table.Index(standby.ctx, st); ix.Match("pki/issue/web") == nil {
		t.Fatal("after Invalidate the standby sees the entry")
	}
}

// apono/sync reports the engines' roles with the table's owners.
func TestSyncReportsEngineRolesWithTableOwners(t *testing.T) {
	e := newTestEnv(t)
	e.configure(t)
	e.mustOK(t, logical.UpdateOperation, "config", map[string]interface{}{"integration_owner": "group:security"})
	e.vault.MountTable["database/"] = vaultapi.MountInfo{Type: "database"}
	e.vault.Tree = vaultfake.NewTree().Role("database", "readonly", vaultfake.Role{}).Role("database", "rotate", vaultfake.Role{Static: true})
	e.mustOK(t, logical.CreateOperation, "owners/database/creds/readonly", map[string]interface{}{"approvers": "group:dba"})
	d := e.mustOK(t, logical.UpdateOperation, "sync", nil).Data
	if got := d["counts"].(map[string]int); got["database"] != 2 {
		t.Fatalf("counts: %v", got)
	}
	h, err := discovery.LoadSnapshotHeader(e.ctx, e.storage)
	if err != nil || h == nil {
		t.Fatal(err)
	}
	entries, err := discovery.LoadSnapshotChunk(e.ctx, e.storage, h, 0)
	if err != nil {
		t.Fatal(err)
	}
	owned := map[string]string{}
	for _, en := range entries {
		owned[en.Name] = en.Owner + " (" + en.OwnerSource + ")"
	}
	if owned["database/creds/readonly"] != "group:dba (owners_table)" || owned["database/static-creds/rotate"] != "group:security (integration_owner)" {
		t.Fatalf("owners: %v", owned)
	}
}
