package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/apono-io/vault-plugin-apono/internal/testvault"
	"github.com/hashicorp/vault/api"
)

const (
	// Roles: one for latency and throughput, one whose leases expire in the storm, one
	// that revoke-prefix clears; separate so each prefix holds only its own leases.
	roleLatency = "bench"
	roleStorm   = "bench-storm"
	rolePrefix  = "bench-prefix"
	// baselinePrefix has the length of the plugin's "apono-<8 hex>-" so names weigh the
	// same, and is no mount's prefix, so no sweeper ever touches it.
	baselinePrefix = "apono-baseline-"
	kvSecret       = "kv/bench/db"
	opTimeout      = 2 * time.Minute
)

// object is what one create made: a grant (lease, user, policy) or a baseline pair.
type object struct {
	leaseID string
	user    string
	policy  string
	entity  string    // grants and baseline pairs alike: the user's identity entity
	expires time.Time // grants: when Vault's lease ends (response time + lease duration)
}

// side is one way of doing a grant's Vault work: through the plugin or directly.
type side interface {
	name() string
	create(ctx context.Context) (object, error)
	remove(ctx context.Context, o object) error
}

type bench struct {
	srv    *testvault.Server
	setup  *testvault.Setup
	client *api.Client // root token, pooled connections, no retries: one op is one request
	long   *api.Client // the same with a long timeout, for synchronous revoke-prefix

	plugin   *pluginSide
	baseline *baselineSide
	procs    *procWatcher
}

func newBench(ctx context.Context, srv *testvault.Server, setup *testvault.Setup, identity bool) (*bench, error) {
	client, err := rootClient(srv, opTimeout)
	if err != nil {
		return nil, err
	}
	long, err := rootClient(srv, 30*time.Minute)
	if err != nil {
		return nil, err
	}
	// The management policy gets the identity additions the README recommends (honest end
	// times, grant entities): their Vault calls are part of a grant, and the baseline makes
	// the same ones.
	root, err := testvault.RepoRoot()
	if err != nil {
		return nil, err
	}
	var policy strings.Builder
	files := []string{"apono-management.hcl"}
	if identity {
		files = append(files, "apono-identity.hcl")
	}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(root, "testdata", f))
		if err != nil {
			return nil, err
		}
		policy.Write(b)
		policy.WriteString("\n")
	}
	if _, _, err := srv.CLIWithStdin("", policy.String(), "policy", "write", testvault.PolicyName, "-"); err != nil {
		return nil, err
	}
	if identity {
		// As the README recommends with the additions: no default policy on the plugin's
		// token, which Vault would parse again (it is templated) on every call.
		if _, _, err := srv.CLI("", "write", "auth/approle/role/"+testvault.AppRoleName, "token_no_default_policy=true"); err != nil {
			return nil, err
		}
	}
	// The plugin is configured as the end-to-end tests do (e2e/env_test.go).
	if _, _, err := srv.CLI("", "write", "apono/config",
		"vault_addr="+srv.URL(), "role_id="+setup.RoleID, "secret_id="+setup.SecretID); err != nil {
		return nil, err
	}
	if _, _, err := srv.CLI("", "kv", "put", kvSecret, "password=bench"); err != nil {
		return nil, err
	}
	for _, role := range []string{roleLatency, roleStorm, rolePrefix} {
		if _, _, err := srv.CLI("", "write", "apono/roles/"+role, "resources="+kvSecret,
			"permissions=read", "ttl=1h", "max_ttl=24h"); err != nil {
			return nil, err
		}
	}
	procs, err := watchProcesses(srv)
	if err != nil {
		return nil, err
	}
	b := &bench{srv: srv, setup: setup, client: client, long: long, procs: procs}
	b.plugin = &pluginSide{client: client, role: roleLatency}

	// The baseline writes the very policy text and user fields a real grant got.
	g, err := b.plugin.create(ctx)
	if err != nil {
		return nil, fmt.Errorf("first grant: %w", err)
	}
	pol, err := client.Sys().GetPolicyWithContext(ctx, g.policy)
	if err != nil {
		return nil, fmt.Errorf("reading the grant's policy: %w", err)
	}
	user, err := client.Logical().ReadWithContext(ctx, "auth/userpass/users/"+g.user)
	if err != nil || user == nil {
		return nil, fmt.Errorf("reading the grant's user: %v", err)
	}
	if (g.entity != "") != identity {
		return nil, fmt.Errorf("the first grant's entity is %q with the identity additions %v", g.entity, identity)
	}
	var entityMeta interface{}
	if identity {
		ent, err := client.Logical().ReadWithContext(ctx, "identity/entity/name/"+g.entity)
		if err != nil || ent == nil {
			return nil, fmt.Errorf("reading the grant's entity: %v", err)
		}
		entityMeta = ent.Data["metadata"]
	}
	if err := b.plugin.remove(ctx, g); err != nil {
		return nil, err
	}
	mounts, err := client.Logical().ReadWithContext(ctx, "sys/internal/ui/mounts/auth/userpass")
	if err != nil || mounts == nil {
		return nil, fmt.Errorf("reading the userpass accessor: %v", err)
	}
	accessor, _ := mounts.Data["accessor"].(string)
	self, err := client.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		return nil, err
	}
	tokenAccessor, _ := self.Data["accessor"].(string)
	b.baseline = &baselineSide{client: client, rules: pol, user: user.Data, identity: identity, entityMeta: entityMeta,
		userpassAccessor: accessor, tokenAccessor: tokenAccessor}
	return b, nil
}

// rootClient is a root client with no retries (one op is one request) that keeps the
// connections of up to 16 requests at once instead of redialling.
func rootClient(srv *testvault.Server, timeout time.Duration) (*api.Client, error) {
	c, err := srv.RootClient(timeout, 128)
	if err != nil {
		return nil, err
	}
	c.SetMaxRetries(0)
	return c, nil
}

// pluginSide issues grants with `vault write apono/grants/<role>` and removes them by
// revoking the lease (synchronous: the plugin's Revoke has run when it returns).
type pluginSide struct {
	client *api.Client
	role   string
}

func (p *pluginSide) name() string { return "plugin" }

func (p *pluginSide) create(ctx context.Context) (object, error) {
	return p.issue(ctx, p.role, 0)
}

// issue writes apono/grants/<role>, with the given TTL in seconds when positive.
func (p *pluginSide) issue(ctx context.Context, role string, ttlSeconds int) (object, error) {
	data := map[string]interface{}{"requester": "bench@example.com", "justification": "benchmark"}
	if ttlSeconds > 0 {
		data["ttl"] = ttlSeconds
	}
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	s, err := p.client.Logical().WriteWithContext(ctx, "apono/grants/"+role, data)
	if err != nil {
		return object{}, err
	}
	received := time.Now()
	if s == nil || s.LeaseID == "" {
		return object{}, errors.New("grant returned no lease")
	}
	o := object{leaseID: s.LeaseID, expires: received.Add(time.Duration(s.LeaseDuration) * time.Second)}
	o.user, _ = s.Data["username"].(string)
	o.policy, _ = s.Data["policy"].(string)
	o.entity, _ = s.Data["entity_name"].(string)
	if o.user == "" || o.policy == "" {
		return object{}, fmt.Errorf("grant returned no username or policy: %v", s.Data)
	}
	return o, nil
}

func (p *pluginSide) remove(ctx context.Context, o object) error {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	return p.client.Sys().RevokeWithContext(ctx, o.leaseID)
}

// baselineSide does a grant's Vault work directly with the same client, one call after
// the other: the same JSON policy, the same userpass user fields, the same identity entity
// (metadata included) and its alias, and a lookup of its token's accessor once per 5 s as
// the plugin caches it; it removes them as revoke does (policy, user, entity).
type baselineSide struct {
	client           *api.Client
	rules            string
	user             map[string]interface{} // the fields a grant's user was read back with
	identity         bool                   // also the entity, its alias and the token lookup
	entityMeta       interface{}            // the metadata a grant's entity was read back with
	userpassAccessor string
	tokenAccessor    string

	mu         sync.Mutex
	lookedUpAt time.Time
}

func (bs *baselineSide) name() string { return "baseline" }

func (bs *baselineSide) create(ctx context.Context) (object, error) {
	o, _, _, err := bs.createParts(ctx)
	return o, err
}

// createParts is create, with the policy write and the user write timed apart.
func (bs *baselineSide) createParts(ctx context.Context) (o object, policy, user time.Duration, err error) {
	id := make([]byte, 8)
	if _, err := rand.Read(id); err != nil {
		return o, 0, 0, err
	}
	name := baselinePrefix + hex.EncodeToString(id)
	password, err := randomPassword(32)
	if err != nil {
		return o, 0, 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	t0 := time.Now()
	if err := bs.client.Sys().PutPolicyWithContext(ctx, name, bs.rules); err != nil {
		return o, 0, 0, err
	}
	policy = time.Since(t0)
	o.policy = name // a failed user write leaves the policy to remove
	// The fields the plugin's WriteUser sends (backend/client.go), with the grant's values.
	data := map[string]interface{}{
		"password":                password,
		"token_policies":          []string{name},
		"token_no_default_policy": bs.user["token_no_default_policy"],
		"token_type":              bs.user["token_type"],
		"token_ttl":               bs.user["token_ttl"],
		"token_max_ttl":           bs.user["token_max_ttl"],
	}
	if cidrs, ok := bs.user["token_bound_cidrs"].([]interface{}); ok && len(cidrs) > 0 {
		data["token_bound_cidrs"] = cidrs
	}
	t1 := time.Now()
	if _, err := bs.client.Logical().WriteWithContext(ctx, "auth/userpass/users/"+name, data); err != nil {
		return o, 0, 0, err
	}
	o.user = name
	user = time.Since(t1)
	if !bs.identity {
		return o, policy, user, nil
	}
	ent, err := bs.client.Logical().WriteWithContext(ctx, "identity/entity/name/"+name, map[string]interface{}{"metadata": bs.entityMeta})
	if err != nil {
		return o, 0, 0, err
	}
	o.entity = name
	if ent == nil || ent.Data["id"] == nil {
		return o, 0, 0, fmt.Errorf("creating entity %s returned no ID", name)
	}
	if _, err := bs.client.Logical().WriteWithContext(ctx, "identity/entity-alias", map[string]interface{}{
		"name": name, "canonical_id": ent.Data["id"], "mount_accessor": bs.userpassAccessor,
	}); err != nil {
		return o, 0, 0, err
	}
	bs.mu.Lock()
	due := time.Since(bs.lookedUpAt) >= 5*time.Second
	if due {
		bs.lookedUpAt = time.Now()
	}
	bs.mu.Unlock()
	if due {
		if _, err := bs.client.Auth().Token().LookupAccessorWithContext(ctx, bs.tokenAccessor); err != nil {
			return o, 0, 0, err
		}
	}
	return o, policy, user, nil
}

func (bs *baselineSide) remove(ctx context.Context, o object) error {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	if err := bs.client.Sys().DeletePolicyWithContext(ctx, o.policy); err != nil {
		return err
	}
	if o.user == "" {
		return nil
	}
	if _, err := bs.client.Logical().DeleteWithContext(ctx, "auth/userpass/users/"+o.user); err != nil {
		return err
	}
	if o.entity == "" {
		return nil
	}
	_, err := bs.client.Logical().DeleteWithContext(ctx, "identity/entity/name/"+o.entity)
	return err
}

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// randomPassword is what the plugin generates by default: n random base62 characters.
func randomPassword(n int) (string, error) {
	var sb strings.Builder
	max := big.NewInt(int64(len(base62)))
	for i := 0; i < n; i++ {
		v, err := rand.Int(rand.Reader, max)
		if err != nil {
			return "", err
		}
		sb.WriteByte(base62[v.Int64()])
	}
	return sb.String(), nil
}

// presentObjects lists the userpass users and ACL policies that exist now.
func (b *bench) presentObjects(ctx context.Context) (users, policies map[string]bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	users, err = b.listKeys(ctx, "auth/userpass/users")
	if err != nil {
		return nil, nil, err
	}
	policies, err = b.listKeys(ctx, "sys/policies/acl")
	return users, policies, err
}

// listKeys LISTs path; a missing path (Vault's 404 for an empty list) is empty.
func (b *bench) listKeys(ctx context.Context, path string) (map[string]bool, error) {
	s, err := b.client.Logical().ListWithContext(ctx, path)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	if s == nil {
		return out, nil
	}
	keys, _ := s.Data["keys"].([]interface{})
	for _, k := range keys {
		if ks, ok := k.(string); ok {
			out[ks] = true
		}
	}
	return out, nil
}
