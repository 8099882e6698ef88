package backend

import (
	"strings"
	"testing"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/apono-io/vault-plugin-apono/backend/store"
	"github.com/apono-io/vault-plugin-apono/backend/vaultapi"
	"github.com/apono-io/vault-plugin-apono/backend/vaultapi/vaultfake"
	"github.com/hashicorp/vault/sdk/logical"
)

// The rules an auditor relies on, each tried as an attacker would (the end-to-end tests
// in e2e/attacks_test.go do the same against a real Vault).

// requestData reads a request as its requester.
func (f *flowEnv) requestData(t *testing.T, id string) map[string]interface{} {
	t.Helper()
	return f.mustAs(t, f.alice, logical.ReadOperation, "requests/"+id, nil).Data
}

// Each owner approves only its own resources; the integration owner only what has none.
func TestOwnerOfOneResourceNeverApprovesAnother(t *testing.T) {
	f := newFlowEnv(t)
	f.mustOK(t, logical.CreateOperation, "roles/app", map[string]interface{}{
		"resources": "kv/app/*", "approval": "required", "approvers": "owner",
	})
	id := f.request(t, "app", map[string]interface{}{"resources": "kv/app/db,kv/app/plain"})
	f.mustAs(t, f.erin, logical.UpdateOperation, "requests/"+id+"/approve", nil)
	data := f.requestData(t, id)
	if data["status"] != access.StatusPending || data["approval_progress"] != "1/1 approvals, 1/2 owner sets" {
		t.Fatalf("after the integration owner alone: %v (%v)", data["status"], data["approval_progress"])
	}
	if open := data["approver_sets_still_open"].([]string); len(open) != 1 || open[0] != "owners of kv/app/db" {
		t.Fatalf("still open: %v", open)
	}
	f.mustBadRequestAs(t, f.alice, logical.UpdateOperation, "requests/"+id+"/grant", nil, "not approved yet")
	if users := f.vault.UserNames(); len(users) != 0 {
		t.Fatalf("a refused pickup made users: %v", users)
	}
	f.mustAs(t, f.bob, logical.UpdateOperation, "requests/"+id+"/approve", nil)
	if s := f.status(t, id); s != access.StatusApproved {
		t.Fatalf("after both owners: %s", s)
	}
	f.mustAs(t, f.alice, logical.UpdateOperation, "requests/"+id+"/grant", nil)
}

// A folder's owners are its own tag's and those of every secret below it; the pickup asks
// whoever owns what was added since.
func TestFolderOwnersAndOwnersAddedBeforePickup(t *testing.T) {
	f := newFlowEnv(t)
	f.vault.Tree.Put("kv", "app", vaultfake.Secret{Meta: map[string]string{"owner": "entity:carol"}})
	f.mustOK(t, logical.CreateOperation, "roles/app", map[string]interface{}{
		"resources": "kv/app/*", "approval": "required", "approvers": "owner",
	})
	id := f.request(t, "app", map[string]interface{}{"resources": "kv/app/*"})
	var labels []string
	for _, s := range f.requestData(t, id)["approver_sets"].([]map[string]interface{}) {
		labels = append(labels, s["label"].(string)+" = "+strings.Join(s["approvers"].([]string), "|"))
	}
	want := []string{
		"owners of kv/app/* (its own tag, on kv/app) = entity:carol",
		"owners of kv/app/db = group:kv-owners",
		"owners of kv/app/other = group:pay-owners",
		"integration owner of kv/app/plain = group:security",
	}
	if strings.Join(labels, "\n") != strings.Join(want, "\n") {
		t.Fatalf("folder owner sets:\n%s\nwant\n%s", strings.Join(labels, "\n"), strings.Join(want, "\n"))
	}
	f.ids.addEntity("pat", "pay-owners")
	for _, who := range []string{f.erin, f.bob, "id-pat"} {
		f.mustAs(t, who, logical.UpdateOperation, "requests/"+id+"/approve", nil)
		if s := f.status(t, id); s != access.StatusPending {
			t.Fatalf("approved before carol, who owns the folder itself: %s", s)
		}
	}
	f.mustAs(t, f.carol, logical.UpdateOperation, "requests/"+id+"/approve", nil)
	if s := f.status(t, id); s != access.StatusApproved {
		t.Fatalf("after every owner: %s", s)
	}

	// A secret with an owner nobody asked is added below the folder: the grant's glob would
	// cover it, so the pickup is refused until that owner approves a new request.
	f.vault.Tree.Put("kv", "app/new/key", vaultfake.Secret{Meta: map[string]string{"owner": "new-owners"}})
	f.mustForbiddenAs(t, f.alice, "requests/"+id+"/grant", "owners of kv/app/new/key (group:new-owners) did not approve it")
	if users := f.vault.UserNames(); len(users) != 0 {
		t.Fatalf("a refused pickup made users: %v", users)
	}
	if s := f.status(t, id); s != access.StatusApproved {
		t.Fatalf("a refused pickup changed the request: %s", s)
	}
	// A secret added with an owner who did approve changes nothing.
	delete(f.vault.Tree.Secrets["kv"], "app/new/key")
	f.vault.Tree.Put("kv", "app/more", vaultfake.Secret{Meta: map[string]string{"owner": "kv-owners"}})
	f.mustAs(t, f.alice, logical.UpdateOperation, "requests/"+id+"/grant", nil)
}

// The folder walk is bounded: past max_folder_secrets a request is a 400, and names the
// plugin would not accept are never read, their folder going to the integration owner.
func TestFolderOwnerReadIsBounded(t *testing.T) {
	f := newFlowEnv(t)
	f.mustOK(t, logical.UpdateOperation, "config", map[string]interface{}{"max_folder_secrets": 2})
	f.mustOK(t, logical.CreateOperation, "roles/app", map[string]interface{}{
		"resources": "kv/app/*,kv/odd/*", "approval": "required", "approvers": "owner",
	})
	f.mustBadRequestAs(t, f.alice, logical.UpdateOperation, "requests/app", map[string]interface{}{"resources": "kv/app/*"},
		"holds more than 2 secrets (max_folder_secrets)")
	f.vault.Tree.Put("kv", "odd/ok", vaultfake.Secret{Meta: map[string]string{"owner": "kv-owners"}}).
		Put("kv", "odd/bad name", vaultfake.Secret{Meta: map[string]string{"owner": "kv-owners"}})
	id := f.request(t, "app", map[string]interface{}{"resources": "kv/odd/*"})
	data := f.requestData(t, id)
	if got := strings.Join(data["approvers"].([]string), ","); got != "group:kv-owners,group:security" {
		t.Fatalf("approvers of a folder holding an unreadable name: %s", got)
	}
	if lists, reads, _ := f.vault.Tree.Counts(); reads > 3 || lists > 3 {
		t.Fatalf("the walk made %d LISTs and %d reads", lists, reads)
	}
	for _, r := range f.vault.Tree.Reads {
		if strings.Contains(r, " ") {
			t.Fatalf("read a name the plugin refuses: %q", r)
		}
	}
}

// A person reads only their own requests and those they may decide or decided.
func TestRequestsAreSeenOnlyByTheirPeople(t *testing.T) {
	f := newFlowEnv(t)
	f.mustOK(t, logical.CreateOperation, "roles/app", map[string]interface{}{
		"resources": "kv/app/*", "approval": "required", "approvers": "owner",
	})
	id := f.request(t, "app", map[string]interface{}{"resources": "kv/app/db", "justification": "secret plans"})
	f.mustBadRequestAs(t, "", logical.ReadOperation, "requests/"+id, nil, "apono/audit/requests/"+id)
	for _, who := range []string{f.carol, f.erin} {
		resp, err := f.doAs(t, who, logical.ReadOperation, "requests/"+id, nil)
		if err == nil || !strings.Contains(err.Error(), "is not yours to see") || resp != nil {
			t.Fatalf("%s read alice's request: %v %v", who, resp, err)
		}
		list := f.mustAs(t, who, logical.ListOperation, "requests/", nil)
		if keys, _ := list.Data["keys"].([]string); len(keys) != 0 {
			t.Fatalf("%s lists %v", who, keys)
		}
	}
	if f.mustAs(t, f.bob, logical.ReadOperation, "requests/"+id, nil).Data["justification"] != "secret plans" {
		t.Fatal("an approver cannot read the request")
	}
	// Once bob left kv-owners, his approval still lets him see what he decided.
	f.mustAs(t, f.bob, logical.UpdateOperation, "requests/"+id+"/approve", nil)
	f.ids.groups[f.bob] = nil
	f.mustAs(t, f.bob, logical.ReadOperation, "requests/"+id, nil)
	if f.mustAs(t, "", logical.ReadOperation, "audit/requests/"+id, nil).Data["requester"] != "alice" {
		t.Fatal("the operator's path does not show the request")
	}
}

// A caller with an entity is the requester of its grants; only a token without one (a
// service) may name a requester, and it is recorded as stated by that token.
func TestGrantRequesterIsTheCaller(t *testing.T) {
	f := newFlowEnv(t)
	f.mustOK(t, logical.CreateOperation, "roles/direct", map[string]interface{}{"resources": "kv/app/db"})
	f.mustBadRequestAs(t, f.erin, logical.UpdateOperation, "grants/direct", map[string]interface{}{"requester": "bob@example.com"},
		"requester: not allowed from a caller with an identity entity")
	if users := f.vault.UserNames(); len(users) != 0 {
		t.Fatalf("a refused grant made users: %v", users)
	}
	resp := f.mustAs(t, f.erin, logical.UpdateOperation, "grants/direct", nil)
	rec := f.mustOK(t, logical.ReadOperation, "grants/direct/"+resp.Data["grant_id"].(string), nil).Data
	if rec["requester"] != "erin" || rec["requester_kind"] != access.RequesterEntity || rec["requester_entity"].(map[string]interface{})["entity_id"] != f.erin {
		t.Fatalf("erin's grant: %v", rec)
	}
	resp = f.mustAs(t, "", logical.UpdateOperation, "grants/direct", map[string]interface{}{"requester": "bob@example.com"})
	rec = f.mustOK(t, logical.ReadOperation, "grants/direct/"+resp.Data["grant_id"].(string), nil).Data
	if rec["requester"] != "bob@example.com" || rec["requester_kind"] != access.RequesterStated || rec["requester_stated_by"] != "userpass-" || rec["requester_entity"] != nil {
		t.Fatalf("a service's grant: %v", rec)
	}
}

// approver_max_token_age refuses approvals and denials with old tokens and with tokens
// not made by a login.
func TestApproverMaxTokenAge(t *testing.T) {
	f := newFlowEnv(t)
	f.mustOK(t, logical.CreateOperation, "roles/app", map[string]interface{}{
		"resources": "kv/app/db", "approval": "required", "approvers": "group:kv-owners", "approver_max_token_age": "1h",
	})
	now := time.Now()
	f.vault.Tokens = map[string]*vaultapi.TokenLifetime{
		"old":   {CreationTime: now.Add(-2 * time.Hour), Path: "auth/userpass/login/bob"},
		"child": {CreationTime: now, Path: "auth/token/create"},
		"fresh": {CreationTime: now.Add(-time.Minute), Path: "auth/userpass/login/bob"},
	}
	id := f.request(t, "app", nil)
	as := func(accessor, action string) error {
		_, err := f.b.HandleRequest(f.ctx, &logical.Request{
			Operation: logical.UpdateOperation, Path: "requests/" + id + "/" + action, Storage: f.storage, MountPoint: "apono/",
			EntityID: f.bob, DisplayName: "userpass-bob", ClientTokenAccessor: accessor,
		})
		return err
	}
	for accessor, want := range map[string]string{
		"old":   "this token was made 2h0m0s ago",
		"child": "made by auth/token/create, not by a login",
		"":      "has no accessor",
	} {
		for _, action := range []string{"approve", "deny"} {
			if err := as(accessor, action); err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("%s with token %q: %v, want %q", action, accessor, err, want)
			}
		}
	}
	if s := f.status(t, id); s != access.StatusPending {
		t.Fatalf("refused decisions changed the request: %s", s)
	}
	if err := as("fresh", "approve"); err != nil {
		t.Fatal(err)
	}
	if s := f.status(t, id); s != access.StatusApproved {
		t.Fatalf("after a fresh token: %s", s)
	}
	f.mustBadRequest(t, logical.UpdateOperation, "roles/app", map[string]interface{}{"approver_max_token_age": "-1s"}, "approver_max_token_age")
}

// At most max_resources_per_request resources in one request or grant, and at most
// max_open_requests open requests per person.
func TestFlowBounds(t *testing.T) {
	f := newFlowEnv(t)
	f.mustOK(t, logical.UpdateOperation, "config", map[string]interface{}{"max_resources_per_request": 2, "max_open_requests": 2})
	f.mustOK(t, logical.CreateOperation, "roles/app", map[string]interface{}{
		"resources": "kv/app/db,kv/app/other,kv/app/plain", "approval": "required", "approvers": "group:kv-owners",
	})
	f.mustOK(t, logical.CreateOperation, "roles/direct", map[string]interface{}{"resources": "kv/app/db,kv/app/other,kv/app/plain"})
	three := map[string]interface{}{"resources": "kv/app/db,kv/app/other,kv/app/plain"}
	f.mustBadRequestAs(t, f.alice, logical.UpdateOperation, "requests/app", three, "at most 2 are allowed in one request or grant (max_resources_per_request)")
	f.mustBadRequestAs(t, f.alice, logical.UpdateOperation, "requests/app", nil, `role "app" has 3, so name the ones you need`)
	f.mustBadRequestAs(t, "", logical.UpdateOperation, "grants/direct", three, "max_resources_per_request")
	if users := f.vault.UserNames(); len(users) != 0 {
		t.Fatalf("a refused grant made users: %v", users)
	}

	one := map[string]interface{}{"resources": "kv/app/db"}
	first := f.request(t, "app", one)
	f.request(t, "app", one)
	f.mustBadRequestAs(t, f.alice, logical.UpdateOperation, "requests/app", one, "you have 2 open requests (pending, or approved and not picked up); at most 2")
	// Others are not held back by alice, and an ended request frees a place.
	f.mustAs(t, f.carol, logical.UpdateOperation, "requests/app", one)
	f.mustAs(t, f.alice, logical.UpdateOperation, "requests/"+first+"/cancel", nil)
	third := f.request(t, "app", one)
	// An approved request is still open until picked up; the pickup frees its place.
	f.mustAs(t, f.bob, logical.UpdateOperation, "requests/"+third+"/approve", nil)
	f.mustBadRequestAs(t, f.alice, logical.UpdateOperation, "requests/app", one, "you have 2 open requests")
	f.mustAs(t, f.alice, logical.UpdateOperation, "requests/"+third+"/grant", nil)
	f.request(t, "app", one)

	// An entry left behind by a crash (no request behind it) is dropped at the limit.
	f.mustOK(t, logical.UpdateOperation, "config", map[string]interface{}{"max_open_requests": 3})
	if err := f.storage.Put(f.ctx, &logical.StorageEntry{Key: store.OpenKeyPrefix(f.alice) + "00000000-0000-0000-0000-000000000000", Value: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	f.request(t, "app", one)
	f.mustBadRequest(t, logical.UpdateOperation, "config", map[string]interface{}{"max_open_requests": 0}, "max_open_requests must be between 1 and 1000")
}
