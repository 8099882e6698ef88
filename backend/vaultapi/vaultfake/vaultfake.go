// Package vaultfake is a stateful stand-in for Vault's API behind vaultapi.Client, for
// unit tests only: it keeps policies, users, entities and a tree of KV v2 secrets,
// Transit keys and database, PKI and SSH roles, answers capabilities from an ACL the test sets, counts calls, and can be
// told to fail a named operation. The end-to-end tests run against real servers; this is
// for the failure paths a real server cannot be made to take on cue.
package vaultfake

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

	"github.com/apono-io/vault-plugin-apono/backend/vaultapi"
	"github.com/hashicorp/vault/api"
)

// Vault is a stateful stand-in for Vault's API: it keeps policies and users, and
// can be told to fail a named operation, so unit tests can inject faults.
type Vault struct {
	Mu         sync.Mutex
	MountTable map[string]vaultapi.MountInfo
	Policies   map[string]string
	Users      map[string]vaultapi.UserSpec // key: mount + "/" + name
	// failures maps an operation name ("WritePolicy", "WriteUser", "DeletePolicy", ...)
	// to the error it returns until cleared.
	failures map[string]error
	calls    map[string]int
	Logins   int
	// LoginErr makes building a client fail, like a bad secret_id.
	LoginErr error
	// CapRules, when set, is the management token's ACL: path -> capabilities, a trailing
	// "*" being a prefix glob as in Vault. CapabilitiesSelf answers from it, and LIST
	// sys/policies/acl and revoke-prefix are refused (403) without it. Nil: a root token.
	CapRules map[string][]string
	// RevokedLogins records RevokeLoginTokens calls as mount + "/" + name.
	RevokedLogins []string
	// Tree, when set, answers List and Read of KV v2 metadata, Transit keys and the
	// roles of database, PKI and SSH mounts, so unit tests can run the discovery walker.
	Tree *Tree
	// Reads answers Read of other paths (a KV secret's metadata with its owner tag).
	Reads map[string]map[string]interface{}
	// Entities are identity entities by name; aliases map an auth mount accessor and
	// login name to an entity ID.
	Entities map[string]Entity
	Aliases  map[string]string
	// Tokens answers LookupTokenAccessor.
	Tokens map[string]*vaultapi.TokenLifetime
	// AliasInfo answers LIST identity/entity-alias/id: alias ID -> key_info entry.
	AliasInfo map[string]interface{}
	// Deleted records DeleteByPath calls.
	Deleted []string
	// PasswordHash makes userpass take password_hash, as Vault 1.17+ and OpenBao do.
	PasswordHash bool
}

// Entity is an identity entity of the fake.
type Entity struct {
	ID       string
	Metadata map[string]string
}

// UserpassAccessor is the accessor AuthMountAccessor reports for every auth mount.
const UserpassAccessor = "auth_userpass_fake"

// New is a fake Vault with the mounts the tests use (kv and secret: KV v2, kv1: KV v1,
// transit) and a root token (no CapRules).
func New() *Vault {
	return &Vault{
		MountTable: map[string]vaultapi.MountInfo{
			"kv/":        {Type: "kv", Version: "2"},
			"kv1/":       {Type: "kv", Version: "1"},
			"transit/":   {Type: "transit"},
			"secret/":    {Type: "kv", Version: "2"},
			"apono/":     {Type: "vault-plugin-apono"},
			"sys/":       {Type: "system"},
			"identity/":  {Type: "identity"},
			"cubbyhole/": {Type: "cubbyhole"},
		},
		Policies: map[string]string{},
		Users:    map[string]vaultapi.UserSpec{},
		Entities: map[string]Entity{},
		Aliases:  map[string]string{},
		Tokens:   map[string]*vaultapi.TokenLifetime{},
		failures: map[string]error{},
		calls:    map[string]int{},
	}
}

// client is what the backend holds; Close is per client, state is shared.
type client struct{ v *Vault }

var _ vaultapi.Client = (*client)(nil)

// Client is a client of the fake that made no login (for a test's own calls).
func (f *Vault) Client() vaultapi.Client { return &client{v: f} }

// Login is a client's login: it counts, and fails with LoginErr when that is set (a bad
// secret_id).
func (f *Vault) Login() (vaultapi.Client, error) {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	f.Logins++
	if f.LoginErr != nil {
		return nil, f.LoginErr
	}
	return &client{v: f}, nil
}

// Fail makes operation op (a Client method name) return err until Fail(op, nil).
func (f *Vault) Fail(op string, err error) {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	if err == nil {
		delete(f.failures, op)
		return
	}
	f.failures[op] = err
}

// enter records a call and returns the injected failure for it, if any. Caller holds mu.
func (f *Vault) enter(op string) error {
	f.calls[op]++
	return f.failures[op]
}

// PolicyNames are the ACL policies, sorted.
func (f *Vault) PolicyNames() []string {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	var out []string
	for n := range f.Policies {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// UserNames are the userpass users as mount/name, sorted.
func (f *Vault) UserNames() []string {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	var out []string
	for n := range f.Users {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// User is userpass user name of mount.
func (f *Vault) User(mount, name string) (vaultapi.UserSpec, bool) {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	u, ok := f.Users[mount+"/"+name]
	return u, ok
}

// Policy is the rules of ACL policy name.
func (f *Vault) Policy(name string) (string, bool) {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	p, ok := f.Policies[name]
	return p, ok
}

var ErrForbidden = &api.ResponseError{StatusCode: http.StatusForbidden, Errors: []string{"permission denied"}}

// capsLocked answers like sys/capabilities-self: the exact rule, else the longest glob.
// Caller holds mu.
func (f *Vault) capsLocked(path string) []string {
	if f.CapRules == nil {
		return []string{"root"}
	}
	if caps, ok := f.CapRules[path]; ok {
		return caps
	}
	var best string
	for rule := range f.CapRules {
		if prefix, glob := strings.CutSuffix(rule, "*"); glob && strings.HasPrefix(path, prefix) && len(rule) > len(best) {
			best = rule
		}
	}
	if best == "" {
		return []string{"deny"}
	}
	return f.CapRules[best]
}

// allowedLocked reports whether the token may do all of caps on path. Caller holds mu.
func (f *Vault) allowedLocked(path string, caps ...string) bool {
	return len(vaultapi.MissingCapabilities(f.capsLocked(path), caps)) == 0
}

var ErrDown = &api.ResponseError{StatusCode: http.StatusServiceUnavailable, Errors: []string{"Vault is sealed"}}

func (c *client) Mounts(context.Context) (map[string]vaultapi.MountInfo, error) {
	c.v.Mu.Lock()
	defer c.v.Mu.Unlock()
	if err := c.v.enter("Mounts"); err != nil {
		return nil, err
	}
	out := make(map[string]vaultapi.MountInfo, len(c.v.MountTable))
	for k, v := range c.v.MountTable {
		out[k] = v
	}
	return out, nil
}

func (c *client) WritePolicy(_ context.Context, name, rules string) error {
	c.v.Mu.Lock()
	defer c.v.Mu.Unlock()
	if err := c.v.enter("WritePolicy"); err != nil {
		return err
	}
	c.v.Policies[name] = rules
	return nil
}

func (c *client) DeletePolicy(_ context.Context, name string) error {
	c.v.Mu.Lock()
	defer c.v.Mu.Unlock()
	if err := c.v.enter("DeletePolicy"); err != nil {
		return err
	}
	delete(c.v.Policies, name)
	return nil
}

func (c *client) WriteUser(_ context.Context, mount, name string, u vaultapi.UserSpec) error {
	c.v.Mu.Lock()
	defer c.v.Mu.Unlock()
	if err := c.v.enter("WriteUser"); err != nil {
		return err
	}
	if u.PasswordHash != "" && !c.v.PasswordHash {
		// As userpass before Vault 1.17: password_hash is unknown, and a user needs a password.
		return &api.ResponseError{HTTPMethod: "PUT", URL: vaultapi.UserPath(mount, name), StatusCode: http.StatusBadRequest, Errors: []string{"missing password"}}
	}
	c.v.Users[mount+"/"+name] = u
	return nil
}

func (c *client) UpdateUserTTL(_ context.Context, mount, name string, ttl, maxTTL time.Duration) error {
	c.v.Mu.Lock()
	defer c.v.Mu.Unlock()
	if err := c.v.enter("UpdateUserTTL"); err != nil {
		return err
	}
	u, ok := c.v.Users[mount+"/"+name]
	if !ok {
		return &api.ResponseError{StatusCode: http.StatusNotFound}
	}
	u.TTL, u.MaxTTL = ttl, maxTTL
	c.v.Users[mount+"/"+name] = u
	return nil
}

func (c *client) DeleteUser(_ context.Context, mount, name string) error {
	c.v.Mu.Lock()
	defer c.v.Mu.Unlock()
	if err := c.v.enter("DeleteUser"); err != nil {
		return err
	}
	delete(c.v.Users, mount+"/"+name)
	return nil
}

func (c *client) ListUsers(_ context.Context, mount string) ([]string, error) {
	c.v.Mu.Lock()
	defer c.v.Mu.Unlock()
	if err := c.v.enter("ListUsers"); err != nil {
		return nil, err
	}
	var out []string
	for k := range c.v.Users {
		if strings.HasPrefix(k, mount+"/") {
			out = append(out, strings.TrimPrefix(k, mount+"/"))
		}
	}
	sort.Strings(out)
	return out, nil
}

func (c *client) RevokeLoginTokens(_ context.Context, mount, name string) error {
	c.v.Mu.Lock()
	defer c.v.Mu.Unlock()
	if err := c.v.enter("RevokeLoginTokens"); err != nil {
		return err
	}
	if !c.v.allowedLocked("sys/leases/revoke-prefix/auth/"+mount+"/login/"+name, "sudo", "update") {
		return ErrForbidden
	}
	c.v.RevokedLogins = append(c.v.RevokedLogins, mount+"/"+name)
	return nil
}

func (c *client) List(ctx context.Context, path string) ([]string, map[string]interface{}, error) {
	if keys, info, handled, err := c.v.treeList(ctx, path); handled {
		return keys, info, err
	}
	c.v.Mu.Lock()
	defer c.v.Mu.Unlock()
	if err := c.v.enter("List"); err != nil {
		return nil, nil, err
	}
	if path == "sys/policies/acl" {
		if !c.v.allowedLocked(path, "list") {
			return nil, nil, ErrForbidden
		}
		return slices.Sorted(maps.Keys(c.v.Policies)), nil, nil
	}
	if path == "identity/entity-alias/id" {
		if !c.v.allowedLocked(path, "list") {
			return nil, nil, ErrForbidden
		}
		return slices.Sorted(maps.Keys(c.v.AliasInfo)), c.v.AliasInfo, nil
	}
	if path == "identity/entity/name" {
		if !c.v.allowedLocked(path, "list") {
			return nil, nil, ErrForbidden
		}
		return slices.Sorted(maps.Keys(c.v.Entities)), nil, nil
	}
	return nil, nil, fmt.Errorf("fake: List %s not modelled", path)
}

func (c *client) Read(ctx context.Context, path string) (map[string]interface{}, error) {
	if data, handled, err := c.v.treeRead(ctx, path); handled {
		return data, err
	}
	c.v.Mu.Lock()
	defer c.v.Mu.Unlock()
	if err := c.v.enter("Read"); err != nil {
		return nil, err
	}
	if data, ok := c.v.Reads[path]; ok {
		return data, nil
	}
	// Users, policies and entities read back as Vault would: nil when missing.
	if rest, ok := strings.CutPrefix(path, "sys/policies/acl/"); ok {
		if _, ok := c.v.Policies[rest]; ok {
			return map[string]interface{}{"name": rest}, nil
		}
		return nil, nil
	}
	if rest, ok := strings.CutPrefix(path, "identity/entity/name/"); ok {
		if e, ok := c.v.Entities[rest]; ok {
			return map[string]interface{}{"name": rest, "id": e.ID}, nil
		}
		return nil, nil
	}
	if rest, ok := strings.CutPrefix(path, "auth/"); ok {
		if mount, name, ok := strings.Cut(rest, "/users/"); ok {
			if _, ok := c.v.Users[mount+"/"+name]; ok {
				return map[string]interface{}{"token_policies": []string{name}}, nil
			}
			return nil, nil
		}
	}
	return nil, fmt.Errorf("fake: Read %s not modelled", path)
}

func (c *client) CapabilitiesSelf(_ context.Context, paths []string) (map[string][]string, error) {
	c.v.Mu.Lock()
	defer c.v.Mu.Unlock()
	if err := c.v.enter("CapabilitiesSelf"); err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, p := range paths {
		out[p] = c.v.capsLocked(p)
	}
	return out, nil
}

func (c *client) Health(context.Context) (*api.HealthResponse, error) {
	c.v.Mu.Lock()
	defer c.v.Mu.Unlock()
	if err := c.v.enter("Health"); err != nil {
		return nil, err
	}
	return &api.HealthResponse{Initialized: true}, nil
}

func (c *client) Close() {}

func (c *client) WriteEntity(_ context.Context, name string, metadata map[string]string) (string, error) {
	c.v.Mu.Lock()
	defer c.v.Mu.Unlock()
	if err := c.v.enter("WriteEntity"); err != nil {
		return "", err
	}
	e, ok := c.v.Entities[name]
	if !ok {
		e.ID = fmt.Sprintf("entity-id-%d", len(c.v.Entities)+c.v.calls["WriteEntity"])
	}
	e.Metadata = metadata
	c.v.Entities[name] = e
	return e.ID, nil
}

func (c *client) WriteEntityAlias(_ context.Context, name, canonicalID, mountAccessor string) error {
	c.v.Mu.Lock()
	defer c.v.Mu.Unlock()
	if err := c.v.enter("WriteEntityAlias"); err != nil {
		return err
	}
	c.v.Aliases[mountAccessor+"/"+name] = canonicalID
	return nil
}

func (c *client) DeleteEntity(_ context.Context, name string) error {
	c.v.Mu.Lock()
	defer c.v.Mu.Unlock()
	if err := c.v.enter("DeleteEntity"); err != nil {
		return err
	}
	if e, ok := c.v.Entities[name]; ok {
		for k, id := range c.v.Aliases {
			if id == e.ID {
				delete(c.v.Aliases, k)
			}
		}
	}
	delete(c.v.Entities, name)
	return nil
}

func (c *client) AuthMountAccessor(_ context.Context, _ string) (string, error) {
	c.v.Mu.Lock()
	defer c.v.Mu.Unlock()
	if err := c.v.enter("AuthMountAccessor"); err != nil {
		return "", err
	}
	return UserpassAccessor, nil
}

func (c *client) LookupTokenAccessor(_ context.Context, accessor string) (*vaultapi.TokenLifetime, error) {
	c.v.Mu.Lock()
	defer c.v.Mu.Unlock()
	if err := c.v.enter("LookupTokenAccessor"); err != nil {
		return nil, err
	}
	l, ok := c.v.Tokens[accessor]
	if !ok {
		return nil, &api.ResponseError{HTTPMethod: "PUT", URL: "auth/token/lookup-accessor", StatusCode: http.StatusBadRequest, Errors: []string{"invalid accessor"}}
	}
	cp := *l
	return &cp, nil
}

// EntityNames are the identity entities, sorted.
func (f *Vault) EntityNames() []string {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	return slices.Sorted(maps.Keys(f.Entities))
}

func (c *client) DeleteByPath(_ context.Context, path string) error {
	c.v.Mu.Lock()
	defer c.v.Mu.Unlock()
	if err := c.v.enter("DeleteByPath"); err != nil {
		return err
	}
	c.v.Deleted = append(c.v.Deleted, path)
	delete(c.v.Reads, path)
	return nil
}

// AddUser makes a userpass user, as something other than the plugin would.
func (f *Vault) AddUser(mount, name string) {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	f.Users[mount+"/"+name] = vaultapi.UserSpec{Policies: []string{name}}
}

// AddPolicy makes an ACL policy, as something other than the plugin would.
func (f *Vault) AddPolicy(name string) {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	f.Policies[name] = `{"path":{}}`
}

// CallCount is how many times operation op was called.
func (f *Vault) CallCount(op string) int {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	return f.calls[op]
}
