package backend

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/config"
	"github.com/apono-io/vault-plugin-apono/backend/grants"
	"github.com/apono-io/vault-plugin-apono/backend/sweep"
	"github.com/apono-io/vault-plugin-apono/backend/vaultapi"
	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/api"
)

// fakeVault is a stateful stand-in for Vault's API: it keeps policies and users, and
// can be told to fail a named operation, so unit tests can inject faults.
type fakeVault struct {
	mu       sync.Mutex
	mounts   map[string]vaultapi.MountInfo
	policies map[string]string
	users    map[string]vaultapi.UserSpec // key: mount + "/" + name
	// failures maps an operation name ("WritePolicy", "WriteUser", "DeletePolicy", ...)
	// to the error it returns until cleared.
	failures map[string]error
	calls    map[string]int
	logins   int
	// loginErr makes building a client fail, like a bad secret_id.
	loginErr error
	// capRules, when set, is the management token's ACL: path -> capabilities, a trailing
	// "*" being a prefix glob as in Vault. CapabilitiesSelf answers from it, and LIST
	// sys/policies/acl and revoke-prefix are refused (403) without it. Nil: a root token.
	capRules map[string][]string
	// revokedLogins records RevokeLoginTokens calls as mount + "/" + name.
	revokedLogins []string
	// tree, when set, answers List and Read of KV v2 metadata and Transit keys, so unit
	// tests can run the discovery walker (fakeTree is in discovery_test.go).
	tree *fakeTree
	// reads answers Read of other paths (a KV secret's metadata with its owner tag).
	reads map[string]map[string]interface{}
	// entities are identity entities by name; aliases map an auth mount accessor and
	// login name to an entity ID.
	entities map[string]fakeEntity
	aliases  map[string]string
	// tokens answers LookupTokenAccessor.
	tokens map[string]*vaultapi.TokenLifetime
	// aliasInfo answers LIST identity/entity-alias/id: alias ID -> key_info entry.
	aliasInfo map[string]interface{}
	// deleted records DeleteByPath calls.
	deleted []string
	// passwordHash makes userpass take password_hash, as Vault 1.17+ and OpenBao do.
	passwordHash bool
}

type fakeEntity struct {
	id       string
	metadata map[string]string
}

// fakeUserpassAccessor is the accessor AuthMountAccessor reports for every auth mount.
const fakeUserpassAccessor = "auth_userpass_fake"

func newFakeVault() *fakeVault {
	return &fakeVault{
		mounts: map[string]vaultapi.MountInfo{
			"kv/":        {Type: "kv", Version: "2"},
			"kv1/":       {Type: "kv", Version: "1"},
			"transit/":   {Type: "transit"},
			"secret/":    {Type: "kv", Version: "2"},
			"apono/":     {Type: "vault-plugin-apono"},
			"sys/":       {Type: "system"},
			"identity/":  {Type: "identity"},
			"cubbyhole/": {Type: "cubbyhole"},
		},
		policies: map[string]string{},
		users:    map[string]vaultapi.UserSpec{},
		entities: map[string]fakeEntity{},
		aliases:  map[string]string{},
		tokens:   map[string]*vaultapi.TokenLifetime{},
		failures: map[string]error{},
		calls:    map[string]int{},
	}
}

// fakeClient is what the backend holds; Close is per client, state is shared.
type fakeClient struct{ v *fakeVault }

var _ vaultapi.Client = (*fakeClient)(nil)

func (f *fakeVault) factory(_ context.Context, _ *config.Config, _ hclog.Logger) (vaultapi.Client, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.logins++
	if f.loginErr != nil {
		return nil, f.loginErr
	}
	return &fakeClient{v: f}, nil
}

func (f *fakeVault) fail(op string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		delete(f.failures, op)
		return
	}
	f.failures[op] = err
}

// enter records a call and returns the injected failure for it, if any. Caller holds mu.
func (f *fakeVault) enter(op string) error {
	f.calls[op]++
	return f.failures[op]
}

func (f *fakeVault) policyNames() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for n := range f.policies {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func (f *fakeVault) userNames() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for n := range f.users {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func (f *fakeVault) user(mount, name string) (vaultapi.UserSpec, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u, ok := f.users[mount+"/"+name]
	return u, ok
}

func (f *fakeVault) policy(name string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.policies[name]
	return p, ok
}

var errFakeForbidden = &api.ResponseError{StatusCode: http.StatusForbidden, Errors: []string{"permission denied"}}

// capsLocked answers like sys/capabilities-self: the exact rule, else the longest glob.
// Caller holds mu.
func (f *fakeVault) capsLocked(path string) []string {
	if f.capRules == nil {
		return []string{"root"}
	}
	if caps, ok := f.capRules[path]; ok {
		return caps
	}
	var best string
	for rule := range f.capRules {
		if prefix, glob := strings.CutSuffix(rule, "*"); glob && strings.HasPrefix(path, prefix) && len(rule) > len(best) {
			best = rule
		}
	}
	if best == "" {
		return []string{"deny"}
	}
	return f.capRules[best]
}

// allowedLocked reports whether the token may do all of caps on path. Caller holds mu.
func (f *fakeVault) allowedLocked(path string, caps ...string) bool {
	return len(vaultapi.MissingCapabilities(f.capsLocked(path), caps)) == 0
}

var errFakeDown = &api.ResponseError{StatusCode: http.StatusServiceUnavailable, Errors: []string{"Vault is sealed"}}

func (c *fakeClient) Mounts(context.Context) (map[string]vaultapi.MountInfo, error) {
	c.v.mu.Lock()
	defer c.v.mu.Unlock()
	if err := c.v.enter("Mounts"); err != nil {
		return nil, err
	}
	out := make(map[string]vaultapi.MountInfo, len(c.v.mounts))
	for k, v := range c.v.mounts {
		out[k] = v
	}
	return out, nil
}

func (c *fakeClient) WritePolicy(_ context.Context, name, rules string) error {
	c.v.mu.Lock()
	defer c.v.mu.Unlock()
	if err := c.v.enter("WritePolicy"); err != nil {
		return err
	}
	c.v.policies[name] = rules
	return nil
}

func (c *fakeClient) DeletePolicy(_ context.Context, name string) error {
	c.v.mu.Lock()
	defer c.v.mu.Unlock()
	if err := c.v.enter("DeletePolicy"); err != nil {
		return err
	}
	delete(c.v.policies, name)
	return nil
}

func (c *fakeClient) WriteUser(_ context.Context, mount, name string, u vaultapi.UserSpec) error {
	c.v.mu.Lock()
	defer c.v.mu.Unlock()
	if err := c.v.enter("WriteUser"); err != nil {
		return err
	}
	if u.PasswordHash != "" && !c.v.passwordHash {
		// As userpass before Vault 1.17: password_hash is unknown, and a user needs a password.
		return &api.ResponseError{HTTPMethod: "PUT", URL: vaultapi.UserPath(mount, name), StatusCode: http.StatusBadRequest, Errors: []string{"missing password"}}
	}
	c.v.users[mount+"/"+name] = u
	return nil
}

func (c *fakeClient) UpdateUserTTL(_ context.Context, mount, name string, ttl, maxTTL time.Duration) error {
	c.v.mu.Lock()
	defer c.v.mu.Unlock()
	if err := c.v.enter("UpdateUserTTL"); err != nil {
		return err
	}
	u, ok := c.v.users[mount+"/"+name]
	if !ok {
		return &api.ResponseError{StatusCode: http.StatusNotFound}
	}
	u.TTL, u.MaxTTL = ttl, maxTTL
	c.v.users[mount+"/"+name] = u
	return nil
}

func (c *fakeClient) DeleteUser(_ context.Context, mount, name string) error {
	c.v.mu.Lock()
	defer c.v.mu.Unlock()
	if err := c.v.enter("DeleteUser"); err != nil {
		return err
	}
	delete(c.v.users, mount+"/"+name)
	return nil
}

func (c *fakeClient) ListUsers(_ context.Context, mount string) ([]string, error) {
	c.v.mu.Lock()
	defer c.v.mu.Unlock()
	if err := c.v.enter("ListUsers"); err != nil {
		return nil, err
	}
	var out []string
	for k := range c.v.users {
		if strings.HasPrefix(k, mount+"/") {
			out = append(out, strings.TrimPrefix(k, mount+"/"))
		}
	}
	sort.Strings(out)
	return out, nil
}

func (c *fakeClient) RevokeLoginTokens(_ context.Context, mount, name string) error {
	c.v.mu.Lock()
	defer c.v.mu.Unlock()
	if err := c.v.enter("RevokeLoginTokens"); err != nil {
		return err
	}
	if !c.v.allowedLocked(grants.RevokeLoginsCheckPath(mount, name), "sudo", "update") {
		return errFakeForbidden
	}
	c.v.revokedLogins = append(c.v.revokedLogins, mount+"/"+name)
	return nil
}

func (c *fakeClient) List(ctx context.Context, path string) ([]string, map[string]interface{}, error) {
	if keys, info, handled, err := c.v.treeList(ctx, path); handled {
		return keys, info, err
	}
	c.v.mu.Lock()
	defer c.v.mu.Unlock()
	if err := c.v.enter("List"); err != nil {
		return nil, nil, err
	}
	if path == grants.PolicyListPath {
		if !c.v.allowedLocked(path, "list") {
			return nil, nil, errFakeForbidden
		}
		return slices.Sorted(maps.Keys(c.v.policies)), nil, nil
	}
	if path == sweep.AliasListPath {
		if !c.v.allowedLocked(path, "list") {
			return nil, nil, errFakeForbidden
		}
		return slices.Sorted(maps.Keys(c.v.aliasInfo)), c.v.aliasInfo, nil
	}
	if path == grants.EntityListPath {
		if !c.v.allowedLocked(path, "list") {
			return nil, nil, errFakeForbidden
		}
		return slices.Sorted(maps.Keys(c.v.entities)), nil, nil
	}
	return nil, nil, fmt.Errorf("fake: List %s not modelled", path)
}

func (c *fakeClient) Read(ctx context.Context, path string) (map[string]interface{}, error) {
	if data, handled, err := c.v.treeRead(ctx, path); handled {
		return data, err
	}
	c.v.mu.Lock()
	defer c.v.mu.Unlock()
	if err := c.v.enter("Read"); err != nil {
		return nil, err
	}
	if data, ok := c.v.reads[path]; ok {
		return data, nil
	}
	// Users, policies and entities read back as Vault would: nil when missing.
	if rest, ok := strings.CutPrefix(path, "sys/policies/acl/"); ok {
		if _, ok := c.v.policies[rest]; ok {
			return map[string]interface{}{"name": rest}, nil
		}
		return nil, nil
	}
	if rest, ok := strings.CutPrefix(path, "identity/entity/name/"); ok {
		if e, ok := c.v.entities[rest]; ok {
			return map[string]interface{}{"name": rest, "id": e.id}, nil
		}
		return nil, nil
	}
	if rest, ok := strings.CutPrefix(path, "auth/"); ok {
		if mount, name, ok := strings.Cut(rest, "/users/"); ok {
			if _, ok := c.v.users[mount+"/"+name]; ok {
				return map[string]interface{}{"token_policies": []string{name}}, nil
			}
			return nil, nil
		}
	}
	return nil, fmt.Errorf("fake: Read %s not modelled", path)
}

func (c *fakeClient) CapabilitiesSelf(_ context.Context, paths []string) (map[string][]string, error) {
	c.v.mu.Lock()
	defer c.v.mu.Unlock()
	if err := c.v.enter("CapabilitiesSelf"); err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, p := range paths {
		out[p] = c.v.capsLocked(p)
	}
	return out, nil
}

func (c *fakeClient) Health(context.Context) (*api.HealthResponse, error) {
	c.v.mu.Lock()
	defer c.v.mu.Unlock()
	if err := c.v.enter("Health"); err != nil {
		return nil, err
	}
	return &api.HealthResponse{Initialized: true}, nil
}

func (c *fakeClient) Close() {}

func (c *fakeClient) WriteEntity(_ context.Context, name string, metadata map[string]string) (string, error) {
	c.v.mu.Lock()
	defer c.v.mu.Unlock()
	if err := c.v.enter("WriteEntity"); err != nil {
		return "", err
	}
	e, ok := c.v.entities[name]
	if !ok {
		e.id = fmt.Sprintf("entity-id-%d", len(c.v.entities)+c.v.calls["WriteEntity"])
	}
	e.metadata = metadata
	c.v.entities[name] = e
	return e.id, nil
}

func (c *fakeClient) WriteEntityAlias(_ context.Context, name, canonicalID, mountAccessor string) error {
	c.v.mu.Lock()
	defer c.v.mu.Unlock()
	if err := c.v.enter("WriteEntityAlias"); err != nil {
		return err
	}
	c.v.aliases[mountAccessor+"/"+name] = canonicalID
	return nil
}

func (c *fakeClient) DeleteEntity(_ context.Context, name string) error {
	c.v.mu.Lock()
	defer c.v.mu.Unlock()
	if err := c.v.enter("DeleteEntity"); err != nil {
		return err
	}
	if e, ok := c.v.entities[name]; ok {
		for k, id := range c.v.aliases {
			if id == e.id {
				delete(c.v.aliases, k)
			}
		}
	}
	delete(c.v.entities, name)
	return nil
}

func (c *fakeClient) AuthMountAccessor(_ context.Context, _ string) (string, error) {
	c.v.mu.Lock()
	defer c.v.mu.Unlock()
	if err := c.v.enter("AuthMountAccessor"); err != nil {
		return "", err
	}
	return fakeUserpassAccessor, nil
}

func (c *fakeClient) LookupTokenAccessor(_ context.Context, accessor string) (*vaultapi.TokenLifetime, error) {
	c.v.mu.Lock()
	defer c.v.mu.Unlock()
	if err := c.v.enter("LookupTokenAccessor"); err != nil {
		return nil, err
	}
	l, ok := c.v.tokens[accessor]
	if !ok {
		return nil, &api.ResponseError{HTTPMethod: "PUT", URL: grants.TokenLookupPath, StatusCode: http.StatusBadRequest, Errors: []string{"invalid accessor"}}
	}
	cp := *l
	return &cp, nil
}

func (f *fakeVault) entityNames() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Sorted(maps.Keys(f.entities))
}

func (c *fakeClient) DeleteByPath(_ context.Context, path string) error {
	c.v.mu.Lock()
	defer c.v.mu.Unlock()
	if err := c.v.enter("DeleteByPath"); err != nil {
		return err
	}
	c.v.deleted = append(c.v.deleted, path)
	delete(c.v.reads, path)
	return nil
}
