package backend

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/apono-io/vault-plugin-apono/backend/config"
	"github.com/apono-io/vault-plugin-apono/backend/store"
	"github.com/apono-io/vault-plugin-apono/backend/vaultapi"
	"github.com/apono-io/vault-plugin-apono/backend/vaultapi/vaultfake"
	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"
)

// testEnv is a backend on in-memory storage with a fake Vault behind it.
type testEnv struct {
	b       *aponoBackend
	storage logical.Storage
	vault   *vaultfake.Vault
	ids     *identitySystemView
	ctx     context.Context
}

// identitySystemView is Vault's system view with an identity store: entities by ID and
// the groups each belongs to, as EntityInfo and GroupsForEntity report them.
type identitySystemView struct {
	logical.StaticSystemView
	entities map[string]*logical.Entity
	groups   map[string][]*logical.Group
}

func (v *identitySystemView) EntityInfo(id string) (*logical.Entity, error) {
	return v.entities[id], nil
}

func (v *identitySystemView) GroupsForEntity(id string) ([]*logical.Group, error) {
	return v.groups[id], nil
}

// addEntity makes an entity called name (ID "id-"+name) in the given groups.
func (v *identitySystemView) addEntity(name string, groups ...string) string {
	id := "id-" + name
	v.entities[id] = &logical.Entity{ID: id, Name: name}
	v.groups[id] = nil
	for _, g := range groups {
		v.groups[id] = append(v.groups[id], &logical.Group{ID: "gid-" + g, Name: g})
	}
	return id
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	return newTestEnvOn(t, &logical.InmemStorage{})
}

// newTestEnvOn is newTestEnv on storage: a second backend on the same storage is the
// plugin started again (an upgrade, a reload).
func newTestEnvOn(t *testing.T, storage logical.Storage) *testEnv {
	t.Helper()
	conf := logical.TestBackendConfig()
	conf.StorageView = storage
	conf.BackendUUID = "11111111-2222-3333-4444-555555555555"
	ids := &identitySystemView{
		StaticSystemView: logical.StaticSystemView{DefaultLeaseTTLVal: time.Hour, MaxLeaseTTLVal: 24 * time.Hour},
		entities:         map[string]*logical.Entity{},
		groups:           map[string][]*logical.Group{},
	}
	conf.System = ids
	fv := vaultfake.New()
	b := newBackend(conf)
	b.newClient = fakeFactory(fv)
	if err := b.Setup(context.Background(), conf); err != nil {
		t.Fatal(err)
	}
	// As Vault does once the mount is set up: empty storage makes the indexes ready at once.
	if err := b.Initialize(context.Background(), &logical.InitializationRequest{Storage: conf.StorageView}); err != nil {
		t.Fatal(err)
	}
	if err := b.store.Ready(context.Background(), conf.StorageView); err != nil {
		t.Fatal(err)
	}
	return &testEnv{b: b, storage: conf.StorageView, vault: fv, ids: ids, ctx: context.Background()}
}

func (e *testEnv) do(t *testing.T, op logical.Operation, path string, data map[string]interface{}) (*logical.Response, error) {
	t.Helper()
	return e.b.HandleRequest(e.ctx, &logical.Request{
		Operation:   op,
		Path:        path,
		Data:        data,
		Storage:     e.storage,
		MountPoint:  "apono/",
		DisplayName: "userpass-alice",
	})
}

// mustOK fails the test unless the request succeeded without an error response.
func (e *testEnv) mustOK(t *testing.T, op logical.Operation, path string, data map[string]interface{}) *logical.Response {
	t.Helper()
	resp, err := e.do(t, op, path, data)
	if err != nil || (resp != nil && resp.IsError()) {
		t.Fatalf("%s %s: err=%v resp=%#v", op, path, err, resp)
	}
	return resp
}

// mustBadRequest fails unless the request got a 400 error response containing want.
func (e *testEnv) mustBadRequest(t *testing.T, op logical.Operation, path string, data map[string]interface{}, want string) {
	t.Helper()
	resp, err := e.do(t, op, path, data)
	if err != nil {
		t.Fatalf("%s %s: want a 400, got internal error %v", op, path, err)
	}
	if resp == nil || !resp.IsError() {
		t.Fatalf("%s %s: want a 400, got %#v", op, path, resp)
	}
	if msg := resp.Error().Error(); !containsFold(msg, want) {
		t.Fatalf("%s %s: error %q does not mention %q", op, path, msg, want)
	}
}

func (e *testEnv) configure(t *testing.T) {
	t.Helper()
	e.mustOK(t, logical.UpdateOperation, "config", map[string]interface{}{
		"vault_addr": "http://127.0.0.1:8200",
		"role_id":    "role-id-1",
		"secret_id":  "s3cret-id-value",
	})
}

func (e *testEnv) revoke(t *testing.T, secret *logical.Secret) (*logical.Response, error) {
	t.Helper()
	return e.b.HandleRequest(e.ctx, &logical.Request{
		Operation: logical.RevokeOperation,
		Storage:   e.storage,
		Secret:    secret,
	})
}

func (e *testEnv) rollback(t *testing.T) {
	t.Helper()
	_, err := e.b.HandleRequest(e.ctx, &logical.Request{
		Operation: logical.RollbackOperation,
		Storage:   e.storage,
		Data:      map[string]interface{}{"immediate": true},
	})
	if err != nil {
		t.Fatalf("rollback: %v", err)
	}
}

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}

// Roles are served from memory after the first read; a write, a delete and Vault's
// Invalidate (another node changed it) all reach grant issue.
func TestRoleCacheFollowsWritesDeletesAndInvalidate(t *testing.T) {
	e := newTestEnv(t)
	e.grantEnv(t)
	e.mustOK(t, logical.UpdateOperation, "grants/app", nil)
	if r, _ := e.b.store.Roles.Get(e.ctx, e.storage, "app"); r == nil || r.TTL != time.Hour {
		t.Fatalf("cached role: %+v", r)
	}
	e.mustOK(t, logical.UpdateOperation, "roles/app", map[string]interface{}{"ttl": "30m"})
	if resp := e.mustOK(t, logical.UpdateOperation, "grants/app", nil); resp.Secret.TTL != 30*time.Minute {
		t.Fatalf("grant after a role write: ttl %s", resp.Secret.TTL)
	}
	// Another node writes the role: storage changes under this node, then Invalidate.
	changed := &access.Role{Resources: []string{"kv/app/db"}, Permissions: []string{"read"}, TTL: 10 * time.Minute, MaxTTL: time.Hour}
	entry, _ := logical.StorageEntryJSON(store.RoleStoragePrefix+"app", changed)
	if err := e.storage.Put(e.ctx, entry); err != nil {
		t.Fatal(err)
	}
	if resp := e.mustOK(t, logical.UpdateOperation, "grants/app", nil); resp.Secret.TTL != 30*time.Minute {
		t.Fatalf("before Invalidate the node still uses its copy; got ttl %s", resp.Secret.TTL)
	}
	e.b.invalidate(e.ctx, store.RoleStoragePrefix+"app")
	if resp := e.mustOK(t, logical.UpdateOperation, "grants/app", nil); resp.Secret.TTL != 10*time.Minute {
		t.Fatalf("grant after Invalidate: ttl %s", resp.Secret.TTL)
	}
	e.mustOK(t, logical.DeleteOperation, "roles/app", nil)
	e.mustBadRequest(t, logical.UpdateOperation, "grants/app", nil, "does not exist")
}

// fakeFactory builds the backend's Vault clients from fv, as vaultapi.New would log in.
func fakeFactory(fv *vaultfake.Vault) func(context.Context, *config.Config, hclog.Logger) (vaultapi.Client, error) {
	return func(context.Context, *config.Config, hclog.Logger) (vaultapi.Client, error) { return fv.Login() }
}
