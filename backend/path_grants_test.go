package backend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/grants"
	"github.com/apono-io/vault-plugin-apono/backend/resource"
	"github.com/apono-io/vault-plugin-apono/backend/store"
	"github.com/apono-io/vault-plugin-apono/backend/vaultapi"
	"github.com/apono-io/vault-plugin-apono/backend/vaultapi/vaultfake"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

func (e *testEnv) grantEnv(t *testing.T) {
	t.Helper()
	e.configure(t)
	e.mustOK(t, logical.CreateOperation, "roles/app", map[string]interface{}{
		"resources":   "kv/app/db,kv/team/*",
		"permissions": "read,read-write,admin",
		"ttl":         "1h",
		"max_ttl":     "3h",
	})
}

func TestGrantIssueCreatesScopedUserAndPolicy(t *testing.T) {
	e := newTestEnv(t)
	e.grantEnv(t)
	e.mustOK(t, logical.UpdateOperation, "config", map[string]interface{}{"access_details": "vault login -method=userpass"})

	resp := e.mustOK(t, logical.UpdateOperation, "grants/app", map[string]interface{}{
		"resources":     "kv/team/billing",
		"permission":    "read-write",
		"ttl":           "10m",
		"requester":     "alice@example.com",
		"justification": "INC-42",
	})
	if resp.Secret == nil || !resp.Secret.Renewable || resp.Secret.TTL != 10*time.Minute || resp.Secret.MaxTTL != 3*time.Hour {
		t.Fatalf("lease: %#v", resp.Secret)
	}
	name := resp.Data["username"].(string)
	if !strings.HasPrefix(name, e.b.namePrefix) || resp.Data["policy"] != name {
		t.Fatalf("names: user %q policy %q prefix %q", name, resp.Data["policy"], e.b.namePrefix)
	}
	if resp.Data["login_path"] != "auth/userpass/login/"+name || resp.Data["access_details"] != "vault login -method=userpass" {
		t.Fatalf("response: %#v", resp.Data)
	}
	if pw, _ := resp.Data["password"].(string); len(pw) < 32 {
		t.Fatalf("password too short: %d", len(pw))
	}

	u, ok := e.vault.User("userpass", name)
	if !ok {
		t.Fatal("user not created")
	}
	if !reflect.DeepEqual(u.Policies, []string{name}) || u.TTL != 10*time.Minute || u.MaxTTL != 10*time.Minute {
		t.Fatalf("user spec: %+v", u)
	}
	rules, ok := e.vault.Policy(name)
	if !ok {
		t.Fatal("policy not created")
	}
	var got resource.ACLPolicy
	if err := json.Unmarshal([]byte(rules), &got); err != nil {
		t.Fatalf("policy is not JSON: %v", err)
	}
	want := map[string][]string{
		"kv/data/team/billing":     {"create", "delete", "patch", "read", "update"},
		"kv/metadata/team/billing": {"read"}, // one secret: no list
		"kv/delete/team/billing":   {"update"},
		"kv/undelete/team/billing": {"update"},
	}
	if len(got.Path) != len(want) {
		t.Fatalf("policy paths: %s", rules)
	}
	for p, caps := range want {
		if got.Path[p] == nil || !reflect.DeepEqual(got.Path[p].Capabilities, caps) {
			t.Fatalf("policy path %s: got %v want %v (%s)", p, got.Path[p], caps, rules)
		}
	}

	// The record is listed and readable, and never holds the password.
	list := e.mustOK(t, logical.ListOperation, "grants/", nil)
	keys := list.Data["keys"].([]string)
	if len(keys) != 1 || !strings.HasPrefix(keys[0], "app/") {
		t.Fatalf("grant list keys: %v", keys)
	}
	info := list.Data["key_info"].(map[string]interface{})[keys[0]].(map[string]interface{})
	if info["requester"] != "alice@example.com" || info["permission"] != "read-write" {
		t.Fatalf("key_info: %#v", info)
	}
	rec := e.mustOK(t, logical.ReadOperation, "grants/"+keys[0], nil)
	if _, ok := rec.Data["password"]; ok {
		t.Fatal("grant read returns the password")
	}
	raw, _ := e.storage.Get(e.ctx, store.GrantStoragePrefix+resp.Data["grant_id"].(string))
	if strings.Contains(string(raw.Value), resp.Data["password"].(string)) {
		t.Fatal("password stored in the grant record")
	}
	e.b.background.Wait() // the WAL entry is deleted after the response
	if wals, _ := framework.ListWAL(e.ctx, e.storage); len(wals) != 0 {
		t.Fatalf("WAL left after a successful grant: %v", wals)
	}

	// Revoke removes the user, the policy and the record; a second revoke is still fine.
	if _, err := e.revoke(t, resp.Secret); err != nil {
		t.Fatal(err)
	}
	if len(e.vault.UserNames()) != 0 || len(e.vault.PolicyNames()) != 0 {
		t.Fatalf("left after revoke: users %v policies %v", e.vault.UserNames(), e.vault.PolicyNames())
	}
	if _, err := e.revoke(t, resp.Secret); err != nil {
		t.Fatalf("second revoke: %v", err)
	}
	list = e.mustOK(t, logical.ListOperation, "grants/", nil)
	if k, _ := list.Data["keys"].([]string); len(k) != 0 {
		t.Fatalf("grant still listed after revoke: %v", k)
	}
}

func TestGrantDefaultsAndNamesAreUnique(t *testing.T) {
	e := newTestEnv(t)
	e.grantEnv(t)
	seen := map[string]bool{}
	for i := 0; i < 20; i++ {
		resp := e.mustOK(t, logical.UpdateOperation, "grants/app", nil)
		if resp.Data["permission"] != "read" || resp.Data["requester"] != "userpass-alice" {
			t.Fatalf("defaults: %#v", resp.Data)
		}
		if !reflect.DeepEqual(resp.Data["resources"], []string{"kv/app/db", "kv/team/*"}) {
			t.Fatalf("default resources: %#v", resp.Data["resources"])
		}
		if resp.Secret.TTL != time.Hour {
			t.Fatalf("default ttl: %s", resp.Secret.TTL)
		}
		name := resp.Data["username"].(string)
		if seen[name] {
			t.Fatalf("name reused: %s", name)
		}
		seen[name] = true
	}
}

func TestGrantTTLCappedAtRoleMax(t *testing.T) {
	e := newTestEnv(t)
	e.grantEnv(t)
	resp := e.mustOK(t, logical.UpdateOperation, "grants/app", map[string]interface{}{"ttl": "10h"})
	if resp.Secret.TTL != 3*time.Hour {
		t.Fatalf("ttl not capped: %s", resp.Secret.TTL)
	}
	if len(resp.Warnings) == 0 {
		t.Fatal("capping gave no warning")
	}
}

func TestGrantsOfTwoMountsNeverShareNames(t *testing.T) {
	a, b := newTestEnv(t), newTestEnv(t)
	b.b.namePrefix = "apono-" + mountTag("another-mount-uuid") + "-"
	if a.b.namePrefix == b.b.namePrefix {
		t.Fatal("two mounts share a name prefix")
	}
}

func TestGrantBadInputIsRejectedAndCreatesNothing(t *testing.T) {
	e := newTestEnv(t)
	e.grantEnv(t)
	e.mustOK(t, logical.CreateOperation, "roles/strict", map[string]interface{}{"resources": "kv/app/db", "require_justification": true})

	cases := []struct {
		name string
		path string
		data map[string]interface{}
		want string
	}{
		{"unknown role", "grants/nope", nil, "does not exist"},
		{"resource outside role", "grants/app", map[string]interface{}{"resources": "kv/other/db"}, "not among role"},
		{"secret named like the folder", "grants/app", map[string]interface{}{"resources": "kv/team"}, "not among role"},
		{"sys resource", "grants/app", map[string]interface{}{"resources": "sys/mounts"}, "sys/"},
		{"traversal", "grants/app", map[string]interface{}{"resources": "kv/team/../../sys/x"}, ".."},
		{"glob injection", "grants/app", map[string]interface{}{"resources": "kv/team/+/x"}, "not allowed"},
		{"permission not in role", "grants/app", map[string]interface{}{"permission": "encrypt"}, "not allowed by role"},
		{"permission not in role 2", "grants/strict", map[string]interface{}{"permission": "admin", "justification": "x"}, "not allowed by role"},
		{"requester newline", "grants/app", map[string]interface{}{"requester": "alice\ntoken_policies=root"}, "control characters"},
		{"requester too long", "grants/app", map[string]interface{}{"requester": strings.Repeat("a", 257)}, "at most 256"},
		{"justification too long", "grants/app", map[string]interface{}{"justification": strings.Repeat("a", 1025)}, "at most 1024"},
		{"justification required", "grants/strict", nil, "justification is required"},
		{"negative ttl", "grants/app", map[string]interface{}{"ttl": "-5"}, "ttl"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e.mustBadRequest(t, logical.UpdateOperation, tc.path, tc.data, tc.want)
			if u, p := e.vault.UserNames(), e.vault.PolicyNames(); len(u) != 0 || len(p) != 0 {
				t.Fatalf("a rejected grant created users %v policies %v", u, p)
			}
		})
	}
}

func TestGrantFailureRollsBackAtOnce(t *testing.T) {
	for _, step := range []string{"WritePolicy", "WriteUser"} {
		t.Run(step, func(t *testing.T) {
			e := newTestEnv(t)
			e.grantEnv(t)
			e.vault.Fail(step, vaultfake.ErrDown)
			resp, err := e.do(t, logical.UpdateOperation, "grants/app", nil)
			if err == nil {
				t.Fatalf("want an error, got %#v", resp)
			}
			if u, p := e.vault.UserNames(), e.vault.PolicyNames(); len(u) != 0 || len(p) != 0 {
				t.Fatalf("left behind: users %v policies %v", u, p)
			}
			if wals, _ := framework.ListWAL(e.ctx, e.storage); len(wals) != 0 {
				t.Fatalf("WAL left: %v", wals)
			}
			if ids, _ := store.ListGrantIDs(e.ctx, e.storage); len(ids) != 0 {
				t.Fatalf("grant record left: %v", ids)
			}
		})
	}
}

// The WAL entry of an issued grant is deleted after the response; if that never happens,
// Vault's rollback finds the grant's record and drops only the entry: a live grant is
// never rolled back.
func TestRollbackLeavesAnIssuedGrantAlone(t *testing.T) {
	e := newTestEnv(t)
	e.grantEnv(t)
	name := e.issueWithLeftoverWAL(t, nil)
	e.rollback(t)
	if _, ok := e.vault.User("userpass", name); !ok || len(e.vault.PolicyNames()) != 1 || len(e.vault.EntityNames()) != 1 {
		t.Fatalf("rollback touched a live grant: users %v policies %v entities %v", e.vault.UserNames(), e.vault.PolicyNames(), e.vault.EntityNames())
	}
	if wals, _ := framework.ListWAL(e.ctx, e.storage); len(wals) != 0 {
		t.Fatalf("the left-over WAL entry was not dropped: %v", wals)
	}
}

// A crash in the middle of an issue can leave the record (stored in parallel with the
// objects) with an object missing: the rollback removes everything, record included.
func TestRollbackRemovesAnUnfinishedIssueThatHasARecord(t *testing.T) {
	e := newTestEnv(t)
	e.grantEnv(t)
	e.issueWithLeftoverWAL(t, func(name string) {
		if err := e.vault.Client().DeletePolicy(e.ctx, name); err != nil { // the policy was never made
			t.Fatal(err)
		}
	})
	e.rollback(t)
	if len(e.vault.UserNames())+len(e.vault.PolicyNames())+len(e.vault.EntityNames()) != 0 {
		t.Fatalf("left: users %v policies %v entities %v", e.vault.UserNames(), e.vault.PolicyNames(), e.vault.EntityNames())
	}
	if ids, _ := store.ListGrantIDs(e.ctx, e.storage); len(ids) != 0 {
		t.Fatalf("record left: %v", ids)
	}
}

// The user and the entity are made while the WAL entry is written; if that write fails,
// they are removed and nothing is left, not even a policy.
func TestGrantWALFailureRemovesWhatWasMadeMeanwhile(t *testing.T) {
	e := newTestEnv(t)
	e.grantEnv(t)
	failing := &failingPutStorage{Storage: e.storage, prefix: "wal/"}
	resp, err := e.b.HandleRequest(e.ctx, &logical.Request{Operation: logical.UpdateOperation, Path: "grants/app",
		Storage: failing, MountPoint: "apono/"})
	if err == nil || !strings.Contains(err.Error(), "writing WAL") {
		t.Fatalf("want a WAL write error, got %v %#v", err, resp)
	}
	if len(e.vault.UserNames())+len(e.vault.PolicyNames())+len(e.vault.EntityNames()) != 0 {
		t.Fatalf("left: users %v policies %v entities %v", e.vault.UserNames(), e.vault.PolicyNames(), e.vault.EntityNames())
	}
}

// issueWithLeftoverWAL issues a grant, lets change alter what it made, and puts back the
// grant's WAL entry, as if its delete after the response never happened.
func (e *testEnv) issueWithLeftoverWAL(t *testing.T, change func(name string)) string {
	t.Helper()
	resp := e.mustOK(t, logical.UpdateOperation, "grants/app", nil)
	e.b.background.Wait()
	name := resp.Data["username"].(string)
	if change != nil {
		change(name)
	}
	objs := grants.Objects{GrantID: resp.Data["grant_id"].(string), Username: name, Policy: name, UserpassMount: "userpass", Entity: name}
	if _, err := framework.PutWAL(e.ctx, e.storage, grants.WALKind, &objs); err != nil {
		t.Fatal(err)
	}
	return name
}

// failingPutStorage refuses every Put under prefix.
type failingPutStorage struct {
	logical.Storage
	prefix string
}

func (f *failingPutStorage) Put(ctx context.Context, entry *logical.StorageEntry) error {
	if strings.HasPrefix(entry.Key, f.prefix) {
		return vaultfake.ErrDown
	}
	return f.Storage.Put(ctx, entry)
}

// When the rollback itself cannot reach Vault, the WAL stays and the rollback manager
// finishes the job later.
func TestGrantFailedRollbackIsFinishedByWAL(t *testing.T) {
	e := newTestEnv(t)
	e.grantEnv(t)
	e.vault.Fail("WriteUser", vaultfake.ErrDown)
	e.vault.Fail("DeletePolicy", vaultfake.ErrDown)
	if _, err := e.do(t, logical.UpdateOperation, "grants/app", nil); err == nil {
		t.Fatal("want an error")
	}
	if len(e.vault.PolicyNames()) != 1 {
		t.Fatalf("setup: want the policy stuck, got %v", e.vault.PolicyNames())
	}
	wals, _ := framework.ListWAL(e.ctx, e.storage)
	if len(wals) != 1 {
		t.Fatalf("want one WAL, got %v", wals)
	}
	e.vault.Fail("WriteUser", nil)
	e.vault.Fail("DeletePolicy", nil)
	e.rollback(t)
	if u, p := e.vault.UserNames(), e.vault.PolicyNames(); len(u) != 0 || len(p) != 0 {
		t.Fatalf("left after rollback: users %v policies %v", u, p)
	}
	if wals, _ := framework.ListWAL(e.ctx, e.storage); len(wals) != 0 {
		t.Fatalf("WAL left after rollback: %v", wals)
	}
}

// A call into Vault that gives up (vaultCallTimeout: Vault sealing, stepping down or
// overloaded) ends the issue without more calls that would wait as long: only the
// record is deleted, and the WAL entry's rollback removes every object, including a user
// that Vault created after the plugin stopped waiting.
func TestGrantTimeoutLeavesTheRemovalToTheWAL(t *testing.T) {
	e := newTestEnv(t)
	e.grantEnv(t)
	e.vault.Fail("WriteUser", fmt.Errorf("Put \"http://vault/v1/auth/userpass/users/x\": %w", context.DeadlineExceeded))
	_, err := e.do(t, logical.UpdateOperation, "grants/app", nil)
	if err == nil || !strings.Contains(err.Error(), "rollback pending") {
		t.Fatalf("want a timeout with the rollback pending, got %v", err)
	}
	for _, op := range []string{"DeletePolicy", "DeleteUser", "DeleteEntity"} {
		if n := e.vault.CallCount(op); n != 0 {
			t.Errorf("%s called %d times after the timeout; want none before the WAL rollback", op, n)
		}
	}
	if ids, _ := store.ListGrantIDs(e.ctx, e.storage); len(ids) != 0 {
		t.Fatalf("the record stayed: %v", ids)
	}
	wals, _ := framework.ListWAL(e.ctx, e.storage)
	if len(wals) != 1 {
		t.Fatalf("want the WAL entry kept, got %v", wals)
	}
	if len(e.vault.PolicyNames()) != 1 || len(e.vault.EntityNames()) != 1 {
		t.Fatalf("setup: want the policy and entity made, got %v %v", e.vault.PolicyNames(), e.vault.EntityNames())
	}
	// Vault carries out the timed-out user create after all.
	entry, err := framework.GetWAL(e.ctx, e.storage, wals[0])
	if err != nil || entry == nil {
		t.Fatal(entry, err)
	}
	objs, err := grants.DecodeObjects(entry.Data)
	if err != nil {
		t.Fatal(err)
	}
	e.vault.Fail("WriteUser", nil)
	if err := e.vault.Client().WriteUser(e.ctx, objs.UserpassMount, objs.Username, vaultapi.UserSpec{}); err != nil {
		t.Fatal(err)
	}
	e.rollback(t)
	if len(e.vault.UserNames())+len(e.vault.PolicyNames())+len(e.vault.EntityNames()) != 0 {
		t.Fatalf("left after the rollback: users %v policies %v entities %v", e.vault.UserNames(), e.vault.PolicyNames(), e.vault.EntityNames())
	}
	if wals, _ := framework.ListWAL(e.ctx, e.storage); len(wals) != 0 {
		t.Fatalf("WAL left after the rollback: %v", wals)
	}
}

func TestRevokeFailsWhileVaultIsDownAndSucceedsAfter(t *testing.T) {
	e := newTestEnv(t)
	e.grantEnv(t)
	resp := e.mustOK(t, logical.UpdateOperation, "grants/app", nil)
	e.vault.Fail("DeletePolicy", vaultfake.ErrDown)
	if _, err := e.revoke(t, resp.Secret); err == nil {
		t.Fatal("revoke reported success while the policy still exists")
	}
	if len(e.vault.PolicyNames()) != 1 {
		t.Fatal("policy should still exist")
	}
	e.vault.Fail("DeletePolicy", nil)
	if _, err := e.revoke(t, resp.Secret); err != nil {
		t.Fatal(err)
	}
	if u, p := e.vault.UserNames(), e.vault.PolicyNames(); len(u) != 0 || len(p) != 0 {
		t.Fatalf("left: users %v policies %v", u, p)
	}
}

func TestRevokeWorksAfterRoleDeleted(t *testing.T) {
	e := newTestEnv(t)
	e.grantEnv(t)
	resp := e.mustOK(t, logical.UpdateOperation, "grants/app", nil)
	e.mustOK(t, logical.DeleteOperation, "roles/app", nil)
	// After a restart InternalData is a plain map: simulate that round trip.
	raw, _ := json.Marshal(resp.Secret.InternalData)
	var internal map[string]interface{}
	_ = json.Unmarshal(raw, &internal)
	resp.Secret.InternalData = internal
	if _, err := e.revoke(t, resp.Secret); err != nil {
		t.Fatal(err)
	}
	if u, p := e.vault.UserNames(), e.vault.PolicyNames(); len(u) != 0 || len(p) != 0 {
		t.Fatalf("left: users %v policies %v", u, p)
	}
}

func TestRenewExtendsUpToMaxTTL(t *testing.T) {
	e := newTestEnv(t)
	e.grantEnv(t)
	resp := e.mustOK(t, logical.UpdateOperation, "grants/app", map[string]interface{}{"ttl": "1h"})
	name := resp.Data["username"].(string)
	secret := resp.Secret
	secret.IssueTime = time.Now()

	renew := func(increment time.Duration) (*logical.Response, error) {
		secret.Increment = increment
		return e.b.HandleRequest(e.ctx, &logical.Request{Operation: logical.RenewOperation, Storage: e.storage, Secret: secret})
	}
	r, err := renew(2 * time.Hour)
	if err != nil || r.IsError() {
		t.Fatalf("renew: %v %#v", err, r)
	}
	if r.Secret.TTL != 2*time.Hour {
		t.Fatalf("renewed ttl %s", r.Secret.TTL)
	}
	if u, _ := e.vault.User("userpass", name); u.MaxTTL != 2*time.Hour {
		t.Fatalf("user token limits not raised: %+v", u)
	}
	r, err = renew(10 * time.Hour)
	if err != nil || r.IsError() {
		t.Fatalf("renew: %v %#v", err, r)
	}
	if r.Secret.TTL > 3*time.Hour || r.Secret.TTL < 3*time.Hour-time.Minute || len(r.Warnings) == 0 {
		t.Fatalf("renew past max: ttl %s warnings %v", r.Secret.TTL, r.Warnings)
	}
}

func TestRevokeNeedsConfig(t *testing.T) {
	e := newTestEnv(t)
	e.grantEnv(t)
	resp := e.mustOK(t, logical.UpdateOperation, "grants/app", nil)
	e.b.resetClient()
	e.vault.LoginErr = errors.New("cannot reach vault")
	if _, err := e.revoke(t, resp.Secret); err == nil {
		t.Fatal("revoke succeeded without reaching Vault")
	}
}

func TestSmuggledFieldsAreRejected(t *testing.T) {
	e := newTestEnv(t)
	e.grantEnv(t)
	e.mustBadRequest(t, logical.UpdateOperation, "grants/app", map[string]interface{}{"token_policies": "root"}, "unknown field(s) token_policies")
	e.mustBadRequest(t, logical.UpdateOperation, "roles/app", map[string]interface{}{"policies": "root"}, "unknown field(s) policies")
	e.mustBadRequest(t, logical.UpdateOperation, "config", map[string]interface{}{"token_ttl": "1"}, "unknown field(s) token_ttl")
	e.mustBadRequest(t, logical.UpdateOperation, "grants/app", map[string]interface{}{"requester": `a","token_policies":["root"]`}, "requester")
	e.mustBadRequest(t, logical.UpdateOperation, "grants/app", map[string]interface{}{"requester": "alice{{identity.entity.id}}"}, "requester")
	if u, p := e.vault.UserNames(), e.vault.PolicyNames(); len(u) != 0 || len(p) != 0 {
		t.Fatalf("smuggling created users %v policies %v", u, p)
	}
	e.mustOK(t, logical.UpdateOperation, "grants/app", map[string]interface{}{"requester": "alice+oncall@example.com"})
}
