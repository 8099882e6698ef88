package backend

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/apono-io/vault-plugin-apono/backend/notify"
	"github.com/apono-io/vault-plugin-apono/backend/store"
	"github.com/apono-io/vault-plugin-apono/backend/vaultapi/vaultfake"
	"github.com/hashicorp/vault/sdk/logical"
)

// doAs sends a request as the entity with the given ID ("" for a token without one).
func (e *testEnv) doAs(t *testing.T, entityID string, op logical.Operation, path string, data map[string]interface{}) (*logical.Response, error) {
	t.Helper()
	name := strings.TrimPrefix(entityID, "id-")
	return e.b.HandleRequest(e.ctx, &logical.Request{
		Operation: op, Path: path, Data: data, Storage: e.storage, MountPoint: "apono/",
		EntityID: entityID, DisplayName: "userpass-" + name,
	})
}

func (e *testEnv) mustAs(t *testing.T, entityID string, op logical.Operation, path string, data map[string]interface{}) *logical.Response {
	t.Helper()
	resp, err := e.doAs(t, entityID, op, path, data)
	if err != nil || (resp != nil && resp.IsError()) {
		t.Fatalf("%s %s as %s: err=%v resp=%#v", op, path, entityID, err, resp)
	}
	return resp
}

// mustForbiddenAs expects a 403 whose message contains want.
func (e *testEnv) mustForbiddenAs(t *testing.T, entityID string, path string, want string) {
	t.Helper()
	e.mustForbiddenAsWith(t, entityID, path, nil, want)
}

// mustForbiddenAsWith is mustForbiddenAs for a write with data.
func (e *testEnv) mustForbiddenAsWith(t *testing.T, entityID string, path string, data map[string]interface{}, want string) {
	t.Helper()
	resp, err := e.doAs(t, entityID, logical.UpdateOperation, path, data)
	var coded logical.HTTPCodedError
	if !errors.As(err, &coded) || coded.Code() != http.StatusForbidden {
		t.Fatalf("%s as %s: want a 403, got err=%v resp=%#v", path, entityID, err, resp)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("%s as %s: 403 %q does not say %q", path, entityID, err, want)
	}
}

func (e *testEnv) mustBadRequestAs(t *testing.T, entityID string, op logical.Operation, path string, data map[string]interface{}, want string) {
	t.Helper()
	resp, err := e.doAs(t, entityID, op, path, data)
	if err != nil || resp == nil || !resp.IsError() {
		t.Fatalf("%s %s as %s: want a 400, got err=%v resp=%#v", op, path, entityID, err, resp)
	}
	if !containsFold(resp.Error().Error(), want) {
		t.Fatalf("%s %s: 400 %q does not say %q", op, path, resp.Error(), want)
	}
}

// flowEnv is a configured backend with alice (requester), bob and dave (kv-owners),
// carol (no group) and erin (security, the integration owner).
type flowEnv struct {
	*testEnv
	alice, bob, carol, dave, erin string
}

func newFlowEnv(t *testing.T) *flowEnv {
	return newFlowEnvOn(t, &logical.InmemStorage{})
}

// newFlowEnvOn is newFlowEnv on storage st.
func newFlowEnvOn(t *testing.T, st logical.Storage) *flowEnv {
	e := newTestEnvOn(t, st)
	e.configure(t)
	e.mustOK(t, logical.UpdateOperation, "config", map[string]interface{}{
		"owner_metadata_key": "owner", "integration_owner": "security",
	})
	f := &flowEnv{testEnv: e,
		alice: e.ids.addEntity("alice"), bob: e.ids.addEntity("bob", "kv-owners"),
		carol: e.ids.addEntity("carol"), dave: e.ids.addEntity("dave", "kv-owners"),
		erin: e.ids.addEntity("erin", "security"),
	}
	e.vault.Tree = vaultfake.NewTree().
		Put("kv", "app/db", vaultfake.Secret{Meta: map[string]string{"owner": "kv-owners"}}).
		Put("kv", "app/other", vaultfake.Secret{Meta: map[string]string{"owner": "group:pay-owners"}}).
		Put("kv", "app/plain", vaultfake.Secret{})
	return f
}

func (f *flowEnv) request(t *testing.T, role string, data map[string]interface{}) string {
	t.Helper()
	resp := f.mustAs(t, f.alice, logical.UpdateOperation, "requests/"+role, data)
	if resp.Data["status"] != access.StatusPending {
		t.Fatalf("new request: %#v", resp.Data)
	}
	return resp.Data["request_id"].(string)
}

// status reads the request as an operator does: at audit/requests/<id>.
func (f *flowEnv) status(t *testing.T, id string) string {
	t.Helper()
	return f.mustAs(t, "", logical.ReadOperation, "audit/requests/"+id, nil).Data["status"].(string)
}

func TestRequestLifecycleAnyOfOwner(t *testing.T) {
	f := newFlowEnv(t)
	f.mustOK(t, logical.CreateOperation, "roles/app", map[string]interface{}{
		"resources": "kv/app/*", "approval": "required", "approvers": "owner", "ttl": "10m",
	})
	// A direct grant on an approval role is a 400 that names requests/<role>.
	f.mustBadRequestAs(t, f.alice, logical.UpdateOperation, "grants/app", nil, "apono/requests/app")
	// The root token (no entity) cannot ask.
	f.mustBadRequestAs(t, "", logical.UpdateOperation, "requests/app", map[string]interface{}{"resources": "kv/app/db"}, "log in through an auth method")

	id := f.request(t, "app", map[string]interface{}{"resources": "kv/app/db", "justification": "INC-7"})
	read := f.mustAs(t, f.bob, logical.ReadOperation, "requests/"+id, nil).Data
	if got := read["approvers"].([]string); len(got) != 1 || got[0] != "group:kv-owners" {
		t.Fatalf("approvers resolved from the owner tag: %v", got)
	}
	if read["requester"] != "alice" || read["requester_entity_id"] != f.alice {
		t.Fatalf("requester: %v", read)
	}

	f.mustForbiddenAs(t, f.alice, "requests/"+id+"/approve", "self-approval never counts")
	f.mustForbiddenAs(t, f.carol, "requests/"+id+"/approve", "carol (userpass-carol) is not an approver")
	f.mustForbiddenAs(t, f.erin, "requests/"+id+"/approve", "erin (userpass-erin) is not an approver") // an owner tag beats integration_owner
	f.mustForbiddenAs(t, f.carol, "requests/"+id+"/grant", "only the requester")
	f.mustBadRequestAs(t, f.alice, logical.UpdateOperation, "requests/"+id+"/grant", nil, "not approved yet")

	f.mustAs(t, f.bob, logical.UpdateOperation, "requests/"+id+"/approve", map[string]interface{}{"reason": "ok for INC-7"})
	if s := f.status(t, id); s != access.StatusApproved {
		t.Fatalf("status after bob's approval: %s", s)
	}
	f.mustForbiddenAs(t, f.carol, "requests/"+id+"/grant", "only the requester")
	resp := f.mustAs(t, f.alice, logical.UpdateOperation, "requests/"+id+"/grant", nil)
	if resp.Secret == nil || resp.Data["request_id"] != id || resp.Data["password"] == "" {
		t.Fatalf("pickup: %#v", resp)
	}
	grantID := resp.Data["grant_id"].(string)
	f.mustBadRequestAs(t, f.alice, logical.UpdateOperation, "requests/"+id+"/grant", nil, "already picked up as grant "+grantID)

	rec := f.mustOK(t, logical.ReadOperation, "grants/app/"+grantID, nil).Data
	approvals := rec["approvals"].([]map[string]interface{})
	if rec["request_id"] != id || rec["requester"] != "alice" || len(approvals) != 1 ||
		approvals[0]["approver"] != "bob" || approvals[0]["reason"] != "ok for INC-7" {
		t.Fatalf("grant record: %#v", rec)
	}
	if s := f.status(t, id); s != access.StatusGranted {
		t.Fatalf("status after pickup: %s", s)
	}
}

func TestRequestOwnerFallbackAndAllOf(t *testing.T) {
	f := newFlowEnv(t)
	f.mustOK(t, logical.CreateOperation, "roles/app", map[string]interface{}{
		"resources": "kv/app/*,transit/payments", "permissions": "read", "approval": "required", "approvers": "owner",
	})
	// No owner tag: integration_owner (security) approves, bob does not.
	id := f.request(t, "app", map[string]interface{}{"resources": "kv/app/plain"})
	f.mustForbiddenAs(t, f.bob, "requests/"+id+"/approve", "group:security")
	f.mustAs(t, f.erin, logical.UpdateOperation, "requests/"+id+"/approve", nil)
	if s := f.status(t, id); s != access.StatusApproved {
		t.Fatalf("status: %s", s)
	}
	// A folder's owners are those of every secret below it, and integration_owner for
	// the ones that name none.
	id = f.request(t, "app", map[string]interface{}{"resources": "kv/app/*"})
	if got := f.mustAs(t, f.alice, logical.ReadOperation, "requests/"+id, nil).Data["approvers"].([]string); strings.Join(got, ",") != "group:kv-owners,group:pay-owners,group:security" {
		t.Fatalf("folder approvers: %v", got)
	}

	// all_of over two secrets with different owners needs one of each.
	f.mustOK(t, logical.UpdateOperation, "roles/app", map[string]interface{}{"approval_mode": "all_of"})
	f.ids.addEntity("pat", "pay-owners")
	id = f.request(t, "app", map[string]interface{}{"resources": "kv/app/db,kv/app/other"})
	f.mustAs(t, f.bob, logical.UpdateOperation, "requests/"+id+"/approve", nil)
	data := f.mustAs(t, f.alice, logical.ReadOperation, "requests/"+id, nil).Data
	if data["status"] != access.StatusPending || !strings.Contains(data["approval_progress"].(string), "1/2 approver sets") {
		t.Fatalf("after one owner: %v %v", data["status"], data["approval_progress"])
	}
	f.mustAs(t, "id-pat", logical.UpdateOperation, "requests/"+id+"/approve", nil)
	if s := f.status(t, id); s != access.StatusApproved {
		t.Fatalf("after both owners: %s", s)
	}
}

func TestRequestRequiredApprovalsDenyCancelAndExpiry(t *testing.T) {
	f := newFlowEnv(t)
	f.mustOK(t, logical.CreateOperation, "roles/two", map[string]interface{}{
		"resources": "kv/app/db", "approval": "required", "approvers": "group:kv-owners",
		"required_approvals": 2, "require_approver_reason": true, "pickup_ttl": "1h", "request_ttl": "1h",
	})
	id := f.request(t, "two", nil)
	f.mustBadRequestAs(t, f.bob, logical.UpdateOperation, "requests/"+id+"/approve", nil, "reason is required")
	f.mustAs(t, f.bob, logical.UpdateOperation, "requests/"+id+"/approve", map[string]interface{}{"reason": "r1"})
	resp := f.mustAs(t, f.bob, logical.UpdateOperation, "requests/"+id+"/approve", map[string]interface{}{"reason": "again"})
	if len(resp.Warnings) == 0 || !strings.Contains(resp.Warnings[0], "counts once") || f.status(t, id) != access.StatusPending {
		t.Fatalf("bob twice: %v, status %s", resp.Warnings, f.status(t, id))
	}
	f.mustAs(t, f.dave, logical.UpdateOperation, "requests/"+id+"/approve", map[string]interface{}{"reason": "r2"})
	if s := f.status(t, id); s != access.StatusApproved {
		t.Fatalf("bob and dave: %s", s)
	}

	// A denial is final.
	id = f.request(t, "two", nil)
	f.mustForbiddenAs(t, f.alice, "requests/"+id+"/deny", "cancel the request")
	f.mustAs(t, f.dave, logical.UpdateOperation, "requests/"+id+"/deny", map[string]interface{}{"reason": "not now"})
	f.mustBadRequestAs(t, f.bob, logical.UpdateOperation, "requests/"+id+"/approve", map[string]interface{}{"reason": "x"}, "was denied by dave")
	f.mustBadRequestAs(t, f.alice, logical.UpdateOperation, "requests/"+id+"/grant", nil, "denied")

	// Only the requester cancels; a cancelled request cannot be approved.
	id = f.request(t, "two", nil)
	f.mustForbiddenAs(t, f.bob, "requests/"+id+"/cancel", "only the requester")
	f.mustAs(t, f.alice, logical.UpdateOperation, "requests/"+id+"/cancel", nil)
	f.mustBadRequestAs(t, f.bob, logical.UpdateOperation, "requests/"+id+"/approve", map[string]interface{}{"reason": "x"}, "cancelled")

	// Past request_ttl a request is expired on read, and the periodic job records it.
	id = f.request(t, "two", nil)
	f.moveDeadlines(t, id, -2*time.Hour)
	if s := f.status(t, id); s != access.StatusExpired {
		t.Fatalf("past request_ttl: %s", s)
	}
	f.mustBadRequestAs(t, f.bob, logical.UpdateOperation, "requests/"+id+"/approve", map[string]interface{}{"reason": "x"}, "expired unapproved")
	if err := f.b.sweeper.TidyRequests(f.ctx, f.storage); err != nil {
		t.Fatal(err)
	}
	if rec, _ := store.GetRequest(f.ctx, f.storage, id); rec.Status != access.StatusExpired || rec.EndedAt.IsZero() {
		t.Fatalf("periodic job did not record the expiry: %+v", rec)
	}
}

// moveDeadlines shifts a stored request's times by d, as if it had been made d earlier.
func (f *flowEnv) moveDeadlines(t *testing.T, id string, d time.Duration) {
	t.Helper()
	rec, err := store.GetRequest(f.ctx, f.storage, id)
	if err != nil || rec == nil {
		t.Fatal(rec, err)
	}
	before := store.RequestEntries(rec)
	for _, tp := range []*time.Time{&rec.CreatedAt, &rec.ExpiresAt, &rec.ApprovedAt, &rec.PickupBy, &rec.EndedAt} {
		if !tp.IsZero() {
			*tp = tp.Add(d)
		}
	}
	// As if the request had been made d earlier: its index entries move with it.
	if err := f.b.store.SaveRequest(f.ctx, f.storage, before, rec); err != nil {
		t.Fatal(err)
	}
}

func TestRequestPickupWindowAndRetention(t *testing.T) {
	f := newFlowEnv(t)
	f.mustOK(t, logical.CreateOperation, "roles/app", map[string]interface{}{
		"resources": "kv/app/db", "approval": "required", "approvers": "entity:erin", "pickup_ttl": "1h",
	})
	id := f.request(t, "app", nil)
	f.mustAs(t, f.erin, logical.UpdateOperation, "requests/"+id+"/approve", nil)
	f.moveDeadlines(t, id, -2*time.Hour)
	f.mustBadRequestAs(t, f.alice, logical.UpdateOperation, "requests/"+id+"/grant", nil, "not picked up by")
	if users := f.vault.UserNames(); len(users) != 0 {
		t.Fatalf("a refused pickup created users: %v", users)
	}

	// Ended requests go once request_retention has passed since they ended.
	f.mustOK(t, logical.UpdateOperation, "config", map[string]interface{}{"request_retention": "2h"})
	if err := f.b.sweeper.TidyRequests(f.ctx, f.storage); err != nil {
		t.Fatal(err)
	}
	if rec, _ := store.GetRequest(f.ctx, f.storage, id); rec == nil {
		t.Fatal("removed before its retention passed")
	}
	f.moveDeadlines(t, id, -2*time.Hour)
	if err := f.b.sweeper.TidyRequests(f.ctx, f.storage); err != nil {
		t.Fatal(err)
	}
	if rec, _ := store.GetRequest(f.ctx, f.storage, id); rec != nil {
		t.Fatalf("still there past its retention: %+v", rec)
	}
}

func TestRequestListFilters(t *testing.T) {
	f := newFlowEnv(t)
	f.mustOK(t, logical.CreateOperation, "roles/app", map[string]interface{}{
		"resources": "kv/app/*", "approval": "required", "approvers": "owner",
	})
	owned := f.request(t, "app", map[string]interface{}{"resources": "kv/app/db"})       // kv-owners
	fallback := f.request(t, "app", map[string]interface{}{"resources": "kv/app/plain"}) // security
	carols := f.mustAs(t, f.carol, logical.UpdateOperation, "requests/app", map[string]interface{}{"resources": "kv/app/db"}).Data["request_id"].(string)
	f.mustAs(t, f.carol, logical.UpdateOperation, "requests/"+carols+"/cancel", nil)

	keys := func(who string, data map[string]interface{}) []string {
		resp := f.mustAs(t, who, logical.ListOperation, "requests/", data)
		k, _ := resp.Data["keys"].([]string)
		return k
	}
	if got := keys(f.bob, map[string]interface{}{"can_approve": true}); len(got) != 1 || got[0] != owned {
		t.Fatalf("bob can_approve: %v", got)
	}
	if got := keys(f.erin, map[string]interface{}{"can_approve": true}); len(got) != 1 || got[0] != fallback {
		t.Fatalf("erin can_approve: %v", got)
	}
	if got := keys(f.alice, map[string]interface{}{"can_approve": true}); len(got) != 0 {
		t.Fatalf("alice can approve her own: %v", got)
	}
	if got := keys(f.alice, map[string]interface{}{"mine": true}); len(got) != 2 {
		t.Fatalf("alice mine: %v", got)
	}
	// A person sees only what they asked for or may decide: bob (kv-owners) sees carol's
	// cancelled request for kv/app/db, alice does not.
	if got := keys(f.bob, map[string]interface{}{"status": "cancelled"}); len(got) != 1 || got[0] != carols {
		t.Fatalf("status=cancelled as bob: %v", got)
	}
	if got := keys(f.alice, map[string]interface{}{"status": "cancelled"}); len(got) != 0 {
		t.Fatalf("status=cancelled as alice shows carol's request: %v", got)
	}
	f.mustBadRequestAs(t, "", logical.ListOperation, "requests/", nil, "an operator lists every request at apono/audit/requests")
	if got := f.mustAs(t, "", logical.ListOperation, "audit/requests/", map[string]interface{}{"status": "cancelled"}).Data["keys"].([]string); len(got) != 1 || got[0] != carols {
		t.Fatalf("audit/requests status=cancelled: %v", got)
	}
	resp := f.mustAs(t, f.alice, logical.ListOperation, "requests/", nil)
	info := resp.Data["key_info"].(map[string]interface{})[owned].(map[string]interface{})
	if info["approvals"] != "0/1 approvals, 0/1 owner sets" || info["requester"] != "alice" || info["status"] != access.StatusPending {
		t.Fatalf("key_info: %v", info)
	}
	f.mustBadRequestAs(t, f.alice, logical.ListOperation, "requests/", map[string]interface{}{"status": "bogus"}, "allowed: pending")
	f.mustBadRequestAs(t, "", logical.ListOperation, "requests/", map[string]interface{}{"mine": true}, "log in")
}

func TestBreakGlass(t *testing.T) {
	f := newFlowEnv(t)
	f.mustOK(t, logical.CreateOperation, "roles/app", map[string]interface{}{
		"resources": "kv/app/db", "approval": "required", "approvers": "owner", "ttl": "4h", "max_ttl": "8h",
	})
	f.mustBadRequestAs(t, f.alice, logical.UpdateOperation, "break-glass/app", map[string]interface{}{"justification": "x"}, "does not allow break-glass")
	f.mustOK(t, logical.UpdateOperation, "roles/app", map[string]interface{}{"break_glass": true, "break_glass_max_ttl": "30m"})
	f.mustBadRequestAs(t, f.alice, logical.UpdateOperation, "break-glass/app", nil, "justification is required")
	f.mustBadRequestAs(t, "", logical.UpdateOperation, "break-glass/app", map[string]interface{}{"justification": "x"}, "log in")
	// The old way is refused with a pointer to the new one.
	f.mustBadRequestAs(t, f.alice, logical.UpdateOperation, "grants/app", map[string]interface{}{"break_glass": true, "justification": "x"}, "apono/break-glass/app")
	resp := f.mustAs(t, f.alice, logical.UpdateOperation, "break-glass/app", map[string]interface{}{"justification": "prod down"})
	if resp.Secret.TTL != 30*time.Minute || resp.Secret.MaxTTL != 30*time.Minute || resp.Data["break_glass"] != true {
		t.Fatalf("break-glass lease: ttl %s max %s data %v", resp.Secret.TTL, resp.Secret.MaxTTL, resp.Data)
	}
	rec := f.mustOK(t, logical.ReadOperation, "grants/app/"+resp.Data["grant_id"].(string), nil).Data
	if rec["break_glass"] != true || rec["requester"] != "alice" || rec["requester_kind"] != access.RequesterEntity {
		t.Fatalf("record: %v", rec)
	}
	// One live break-glass grant per person and role: a second is refused until the first ends.
	users := len(f.vault.UserNames())
	f.mustBadRequestAs(t, f.alice, logical.UpdateOperation, "break-glass/app", map[string]interface{}{"justification": "again"}, "already holds 1 live break-glass grant")
	if got := len(f.vault.UserNames()); got != users {
		t.Fatalf("a refused break-glass made a user: %d, was %d", got, users)
	}
	f.mustAs(t, f.bob, logical.UpdateOperation, "break-glass/app", map[string]interface{}{"justification": "bob's own"})
	if _, err := f.revoke(t, resp.Secret); err != nil {
		t.Fatal(err)
	}
	second := f.mustAs(t, f.alice, logical.UpdateOperation, "break-glass/app", map[string]interface{}{"justification": "again, after the first ended"})
	if _, err := f.revoke(t, second.Secret); err != nil {
		t.Fatal(err)
	}
	// break_glass_max_live_grants=0 lifts the limit; break_glass_allowed narrows who.
	f.mustOK(t, logical.UpdateOperation, "roles/app", map[string]interface{}{"break_glass_max_live_grants": 0, "break_glass_allowed": "group:security,entity:dave"})
	f.mustForbiddenAsWith(t, f.alice, "break-glass/app", map[string]interface{}{"justification": "x"}, "only for group:security, entity:dave")
	f.mustAs(t, f.erin, logical.UpdateOperation, "break-glass/app", map[string]interface{}{"justification": "x"})
	f.mustAs(t, f.erin, logical.UpdateOperation, "break-glass/app", map[string]interface{}{"justification": "x"})
	f.mustAs(t, f.dave, logical.UpdateOperation, "break-glass/app", map[string]interface{}{"justification": "x"})
	f.mustBadRequest(t, logical.UpdateOperation, "roles/app", map[string]interface{}{"break_glass_allowed": "security"}, "is not a principal")
	f.mustBadRequest(t, logical.UpdateOperation, "roles/app", map[string]interface{}{"break_glass_max_live_grants": -1}, "between 0 (no limit) and 100")

	// On a role without approval there is nothing to skip.
	f.mustOK(t, logical.CreateOperation, "roles/direct", map[string]interface{}{"resources": "kv/app/db"})
	f.mustBadRequestAs(t, f.alice, logical.UpdateOperation, "break-glass/direct", map[string]interface{}{"justification": "x"}, "does not require approval")
	f.mustBadRequestAs(t, f.alice, logical.UpdateOperation, "requests/direct", nil, "does not require approval")
}

func TestRoleApprovalFieldsAreValidated(t *testing.T) {
	e := newTestEnv(t)
	e.configure(t)
	for _, tc := range []struct {
		data map[string]interface{}
		want string
	}{
		{map[string]interface{}{"approval": "maybe"}, "approval \"maybe\" is not allowed"},
		{map[string]interface{}{"approval": "required"}, "approvers is required"},
		{map[string]interface{}{"approval": "required", "approvers": "bob"}, "is not an approver"},
		{map[string]interface{}{"approval": "required", "approvers": "owner"}, "needs integration_owner"},
		{map[string]interface{}{"approval_mode": "most_of"}, "approval_mode"},
		{map[string]interface{}{"required_approvals": 0}, "required_approvals must be between 1 and 10"},
		{map[string]interface{}{"request_ttl": "-1s"}, "request_ttl"},
		{map[string]interface{}{"request_ttl": "0"}, "request_ttl must be more than 0"},
		{map[string]interface{}{"pickup_ttl": "10000h"}, "pickup_ttl must be more than 0"},
		{map[string]interface{}{"max_ttl": "1h", "break_glass_max_ttl": "2h"}, "break_glass_max_ttl"},
	} {
		data := map[string]interface{}{"resources": "kv/app/db"}
		for k, v := range tc.data {
			data[k] = v
		}
		e.mustBadRequest(t, logical.CreateOperation, "roles/bad", data, tc.want)
	}
	if r, _ := store.GetRole(e.ctx, e.storage, "bad"); r != nil {
		t.Fatalf("a refused role was stored: %+v", r)
	}
}

// The receiver gets every event, signed, and none holds a password.
func TestEventsAreSignedAndHoldNoSecret(t *testing.T) {
	h := newHookReceiver(t)
	f := newFlowEnv(t)
	f.mustOK(t, logical.UpdateOperation, "config", map[string]interface{}{"notify_url": h.srv.URL + "/hook", "notify_secret": "hook-key"})
	cfg := f.mustOK(t, logical.ReadOperation, "config", nil).Data
	if strings.Contains(cfg["notify_url"].(string), "/hook") || cfg["notify_secret_set"] != true || cfg["notify_secret"] != nil {
		t.Fatalf("config read shows the webhook path or secret: %v", cfg)
	}
	f.mustOK(t, logical.CreateOperation, "roles/app", map[string]interface{}{
		"resources": "kv/app/db", "approval": "required", "approvers": "owner", "break_glass": true,
	})
	id := f.request(t, "app", nil)
	resp := f.mustAs(t, f.bob, logical.UpdateOperation, "requests/"+id+"/approve", map[string]interface{}{"reason": "fine"})
	_ = resp
	grant := f.mustAs(t, f.alice, logical.UpdateOperation, "requests/"+id+"/grant", nil)
	password := grant.Data["password"].(string)
	_, err := f.b.HandleRequest(context.Background(), &logical.Request{
		Operation: logical.RevokeOperation, Path: "grants/app", Storage: f.storage, Secret: grant.Secret, Data: grant.Data,
	})
	if err != nil {
		t.Fatal(err)
	}
	bg := f.mustAs(t, f.alice, logical.UpdateOperation, "break-glass/app", map[string]interface{}{"justification": "outage"})

	want := []string{notify.EventRequestCreated, notify.EventRequestApproved, notify.EventGrantIssued, notify.EventGrantRevoked, notify.EventBreakGlass, notify.EventGrantIssued}
	attempts := h.waitFor(t, "every event", func(a []hookAttempt) bool { return len(a) >= len(want) })
	var types []string
	var got []map[string]interface{}
	for _, a := range attempts {
		if a.signature != notify.SignBody("hook-key", []byte(a.body)) {
			t.Fatalf("event %s: signature %q does not match its body", a.id, a.signature)
		}
		var ev map[string]interface{}
		if err := json.Unmarshal([]byte(a.body), &ev); err != nil || ev["type"] != a.typ || ev["id"] != a.id {
			t.Fatalf("event body %s (%v) does not match its headers %s / %s", a.body, err, a.typ, a.id)
		}
		got = append(got, ev)
		types = append(types, a.typ)
		for _, secret := range []string{password, bg.Data["password"].(string), "s3cret-id-value", "hook-key"} {
			if strings.Contains(a.body, secret) {
				t.Fatalf("an event holds a secret: %s", a.body)
			}
		}
	}
	if strings.Join(types, ",") != strings.Join(want, ",") {
		t.Fatalf("events %v, want %v", types, want)
	}
	if got[1]["actor"].(map[string]interface{})["entity_name"] != "bob" || got[1]["reason"] != "fine" || got[2]["request_id"] != id {
		t.Fatalf("event fields: %v / %v", got[1], got[2])
	}
}

func TestNotifyURLRules(t *testing.T) {
	for raw, ok := range map[string]bool{
		"https://hooks.example.com/services/T/B/X": true,
		"http://127.0.0.1:9999/hook":               true,
		"http://[::1]:9999/hook":                   true,
		"http://localhost/hook":                    true,
		"http://hooks.example.com/x":               false,
		"http://10.0.0.1/x":                        false,
		"ftp://example.com/x":                      false,
		"https://user:pw@example.com/x":            false,
		"https:///nohost":                          false,
	} {
		if got := notify.CheckURL(raw, "notify_url", &notify.Policy{}) == ""; got != ok {
			t.Errorf("checkNotifyURL(%q) ok=%v, want %v", raw, got, ok)
		}
	}
	if got := notify.RedactURL("https://hooks.slack.com/services/T0/B0/secretpart"); got != "https://hooks.slack.com/..." {
		t.Errorf("redactURL: %s", got)
	}
}

// A pickup can also be written to grants/<role> with request_id (its lease is then under
// grants/<role>/): same checks, one grant per request, the role must be the request's,
// and the request alone says what is granted.
func TestRequestPickupAtTheRolePath(t *testing.T) {
	f := newFlowEnv(t)
	for _, role := range []string{"app", "other"} {
		f.mustOK(t, logical.CreateOperation, "roles/"+role, map[string]interface{}{
			"resources": "kv/app/*", "approval": "required", "approvers": "group:kv-owners", "ttl": "10m",
		})
	}
	id := f.request(t, "app", map[string]interface{}{"resources": "kv/app/db"})
	pickup := map[string]interface{}{"request_id": id}
	f.mustBadRequestAs(t, f.alice, logical.UpdateOperation, "grants/app", pickup, "not approved yet")
	f.mustAs(t, f.bob, logical.UpdateOperation, "requests/"+id+"/approve", nil)

	f.mustForbiddenAsWith(t, f.carol, "grants/app", pickup, "only the requester")
	f.mustBadRequestAs(t, f.alice, logical.UpdateOperation, "grants/other", pickup, `is for role "app", not "other"`)
	for field, v := range map[string]interface{}{"resources": "kv/app/other", "permission": "read", "ttl": "1h",
		"requester": "x@example.com", "justification": "more"} {
		f.mustBadRequestAs(t, f.alice, logical.UpdateOperation, "grants/app",
			map[string]interface{}{"request_id": id, field: v}, field+": not allowed with request_id")
	}
	f.mustBadRequestAs(t, f.alice, logical.UpdateOperation, "grants/app", map[string]interface{}{"request_id": "../x"}, `request_id "../x" is not a request ID`)
	if users := f.vault.UserNames(); len(users) != 0 {
		t.Fatalf("refused pickups made users: %v", users)
	}

	resp := f.mustAs(t, f.alice, logical.UpdateOperation, "grants/app", pickup)
	if resp.Secret == nil || resp.Data["request_id"] != id || resp.Data["role"] != "app" ||
		strings.Join(resp.Data["resources"].([]string), ",") != "kv/app/db" {
		t.Fatalf("pickup at grants/app: %#v", resp)
	}
	grantID := resp.Data["grant_id"].(string)
	f.mustBadRequestAs(t, f.alice, logical.UpdateOperation, "grants/app", pickup, "already picked up as grant "+grantID)
	f.mustBadRequestAs(t, f.alice, logical.UpdateOperation, "requests/"+id+"/grant", nil, "already picked up as grant "+grantID)
	if s := f.status(t, id); s != access.StatusGranted {
		t.Fatalf("status after pickup: %s", s)
	}
}
