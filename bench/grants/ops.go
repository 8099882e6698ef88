package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"strings"
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

func newBench(ctx context.Context, srv *testvault.Server, setup *testvault.Setup) (*bench, error) {
	client, err := rootClient(srv, opTimeout)
	if err != nil {
		return nil, err
	}
	long, err := rootClient(srv, 30*time.Minute)
	if err != nil {
		return nil, err
	}
	// The plugin is configured exactly as the end-to-end tests do (e2e/env_test.go).
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
	if err := b.plugin.remove(ctx, g); err != nil {
		return nil, err
	}
	b.baseline = &baselineSide{client: client, rules: pol, user: user.Data}
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

// baselineSide does a grant's Vault work directly with the same client: the same JSON
// policy, the same userpass user fields, in the plugin's order (policy, then user), and
// removes them in the plugin's order too (policy, then user).
type baselineSide struct {
	client *api.Client
	rules  string
	user   map[string]interface{} // the fields a grant's user was read back with
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
	return o, policy, time.Since(t1), nil
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
	_, err := bs.client.Logical().DeleteWithContext(ctx, "auth/userpass/users/"+o.user)
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
