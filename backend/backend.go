// Package backend is the vault-plugin-apono secrets engine: what Vault calls. It grants
// just-in-time access to KV v2 secrets and Transit keys as lease-bound userpass users with
// apono-* policies, and runs the access flows that approve them. Its files are the paths
// (path_*.go: parse fields, check the caller, call the package that owns the rule, shape
// the answer), the fields they share (fields.go, config_fields.go, role_fields.go,
// query_fields.go), the caller checks (identity.go), the secret type (secret_grant.go),
// the WAL rollback (wal.go), the periodic job (periodic.go) and the wiring (factory.go),
// which builds one of each package below and hands them what must stay single. The
// rules, records and calls into Vault live below: sweep, grants, discovery, owners,
// notify, store, access, config, resource and vaultapi.
package backend

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/apono-io/vault-plugin-apono/backend/config"
	"github.com/apono-io/vault-plugin-apono/backend/grants"
	"github.com/apono-io/vault-plugin-apono/backend/metrics"
	"github.com/apono-io/vault-plugin-apono/backend/notify"
	"github.com/apono-io/vault-plugin-apono/backend/owners"
	"github.com/apono-io/vault-plugin-apono/backend/resource"
	"github.com/apono-io/vault-plugin-apono/backend/store"
	"github.com/apono-io/vault-plugin-apono/backend/sweep"
	"github.com/apono-io/vault-plugin-apono/backend/vaultapi"
	"github.com/apono-io/vault-plugin-apono/internal/keylock"
	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/logical"
)

const backendHelp = `
The apono secrets engine grants just-in-time access to KV v2 secrets, Transit keys, database
credentials, PKI and SSH certificates, and other Vault paths an operator allows.

Configure it with "config" (an AppRole holding the apono-management policy), define what
may be granted with "roles/<name>", and write "grants/<role>" to get a leased userpass
user and apono-* policy. When the lease ends, the user and the policy are deleted.
`

// errNotConfigured is returned by calls that need the Vault client before config exists.
var errNotConfigured = errors.New("the plugin is not configured: write apono/config first")

type aponoBackend struct {
	*framework.Backend

	// clientMu guards client: read lock to use it, write lock to build or drop it.
	clientMu sync.RWMutex
	client   vaultapi.Client
	// newClient builds the Vault client from config; unit tests swap in a fake.
	newClient func(ctx context.Context, cfg *config.Config, logger hclog.Logger) (vaultapi.Client, error)

	// cfgMu guards cfg, the stored config as last read or written on this node; nil
	// means "read storage". Invalidate and config writes drop it.
	cfgMu  sync.RWMutex
	cfg    *config.Config
	cfgGen uint64 // bumped by every change, so a read that raced a write is not cached

	// grants issues and removes grants' Vault objects and records (package grants).
	grants *grants.Grants
	// store writes and pages the records of requests and grants, with their indexes, the
	// role cache and the watchers of requests (package store).
	store *store.Store
	// idx holds the indexes of requests and grants (package store).
	idx *store.Indexes
	// crashPoint is APONO_TEST_CRASH_POINT: where the fault tests make the plugin exit.
	crashPoint string

	roleLocks    []*locksutil.LockEntry
	grantLocks   keylock.Set
	requestLocks []*locksutil.LockEntry

	// notify delivers access-flow events to notify_url and the named notification targets
	// (package notify).
	notify *notify.Dispatcher

	// namePrefix is "apono-<mount tag>-": every user and policy this mount creates starts
	// with it, and it differs between mounts so two mounts never touch each other's.
	namePrefix string
	// ownMount is the mount path of this plugin ("apono/"), learned from requests.
	ownMount atomic.Value // string

	// metrics counts what this process did, for apono/metrics (package metrics).
	metrics *metrics.Metrics
	// sweeper is the orphan sweeper and its memory (package sweep).
	sweeper *sweep.Sweeper
	// owners reads the owners of requested resources into approver sets, and holds the
	// owners table (package owners).
	owners *owners.Resolver
	// grantMounts caches sys/mounts for grant issue.
	grantMounts *vaultapi.MountsCache
	// caps caches optional capabilities of the management token (vaultapi).
	caps *vaultapi.CapabilityCache
	// authAccessors and tokenLifetimes serve grant identities and honest end times
	// (package grants).
	authAccessors  *vaultapi.AuthAccessorCache
	tokenLifetimes *vaultapi.TokenLifetimeCache
	// healthProbe reads sys/health without a token; unit tests swap in a fake.
	healthProbe func(ctx context.Context, cfg *config.Config) (*api.HealthResponse, error)
	// syncMu lets one sync run at a time (path_sync.go): they would delete each other's
	// snapshot chunks.
	syncMu sync.Mutex
	// lifetime is cancelled by Clean (unmount, seal, plugin reload): background work that
	// outlives a request derives its context from it.
	lifetime     context.Context
	stopLifetime context.CancelFunc
	// background counts work a request left running (the WAL delete after an issue);
	// tests wait on it.
	background sync.WaitGroup
}

func (b *aponoBackend) invalidate(_ context.Context, key string) {
	if b.store.Roles.Invalidate(key) || b.store.RequestInvalidated(key) {
		return
	}
	if strings.HasPrefix(key, notify.NotifyTargetPrefix) {
		b.notify.DropTargetCache()
		return
	}
	if b.owners.Table.Invalidate(key) {
		return
	}
	if strings.HasPrefix(key, store.IndexStoragePrefix) {
		b.idx.Sets.Invalidate(key)
		return
	}
	if key == config.StoragePath {
		b.setCachedConfig(nil)
		b.resetClient()
	}
}

// config returns the stored config (nil when there is none), from memory when this node
// has read or written it since the last change. Callers must not modify it.
func (b *aponoBackend) config(ctx context.Context, s logical.Storage) (*config.Config, error) {
	b.cfgMu.RLock()
	cfg, gen := b.cfg, b.cfgGen
	b.cfgMu.RUnlock()
	if cfg != nil {
		return cfg, nil
	}
	cfg, err := config.Get(ctx, s)
	if err != nil || cfg == nil {
		return cfg, err
	}
	b.cfgMu.Lock()
	if b.cfgGen == gen {
		b.cfg = cfg
	}
	b.cfgMu.Unlock()
	return cfg, nil
}

// setCachedConfig records a change: the config just written, or nil to read it again.
func (b *aponoBackend) setCachedConfig(cfg *config.Config) {
	b.cfgMu.Lock()
	b.cfg = cfg
	b.cfgGen++
	b.cfgMu.Unlock()
}

func (b *aponoBackend) clean(_ context.Context) {
	b.stopLifetime()
	b.resetClient()
	b.setCachedConfig(nil)
}

func (b *aponoBackend) resetClient() {
	b.clientMu.Lock()
	defer b.clientMu.Unlock()
	if b.client != nil {
		b.client.Close()
		b.client = nil
	}
}

// getClient returns the cached Vault client, building it from the stored config when
// there is none (read lock, write lock, look again).
func (b *aponoBackend) getClient(ctx context.Context, s logical.Storage) (vaultapi.Client, error) {
	b.clientMu.RLock()
	c := b.client
	b.clientMu.RUnlock()
	if c != nil {
		return c, nil
	}

	b.clientMu.Lock()
	defer b.clientMu.Unlock()
	if b.client != nil {
		return b.client, nil
	}
	cfg, err := config.Get(ctx, s)
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		return nil, errNotConfigured
	}
	c, err = b.newClient(ctx, cfg, b.Logger())
	if err != nil {
		return nil, err
	}
	b.client = c
	return c, nil
}

// setClient installs a client built and checked by a config write.
func (b *aponoBackend) setClient(c vaultapi.Client) {
	b.clientMu.Lock()
	defer b.clientMu.Unlock()
	if b.client != nil {
		b.client.Close()
	}
	b.client = c
}

// rememberMount records this plugin's own mount path so that it can never be granted.
func (b *aponoBackend) rememberMount(req *logical.Request) {
	if req != nil && req.MountPoint != "" {
		b.ownMount.Store(req.MountPoint)
	}
}

// resourceOptions are what resource.Resolve needs besides the mounts; cfg may be nil.
func (b *aponoBackend) resourceOptions(cfg *config.Config) resource.Options {
	o := resource.Options{OwnMount: b.ownMountPath()}
	if cfg != nil {
		o.PathPrefixes = cfg.GrantablePathPrefixes
	}
	return o
}

func (b *aponoBackend) ownMountPath() string {
	v, _ := b.ownMount.Load().(string)
	return v
}

// roleAndConfig reads what every grant and request needs first: the role and the config;
// msg is a 400 when either is missing.
func (b *aponoBackend) roleAndConfig(ctx context.Context, s logical.Storage, roleName string) (*access.Role, *config.Config, string, error) {
	role, err := b.store.Roles.Get(ctx, s, roleName)
	if err != nil {
		return nil, nil, "", err
	}
	if role == nil {
		return nil, nil, fmt.Sprintf("role %q does not exist", roleName), nil
	}
	cfg, err := b.config(ctx, s)
	if err != nil {
		return nil, nil, "", err
	}
	if cfg == nil {
		return nil, nil, errNotConfigured.Error(), nil
	}
	return role, cfg, "", nil
}
