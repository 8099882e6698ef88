// Package backend is the vault-plugin-apono secrets engine: it grants just-in-time access
// to KV v2 secrets and Transit keys as lease-bound userpass users with apono-* policies.
package backend

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/config"
	"github.com/apono-io/vault-plugin-apono/backend/notify"
	"github.com/apono-io/vault-plugin-apono/backend/vaultapi"
	"github.com/apono-io/vault-plugin-apono/internal/keylock"
	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/logical"
)

// Version is the plugin's version, set at build time with
// -ldflags "-X github.com/apono-io/vault-plugin-apono/backend.Version=v0.1.0".
var Version = "v0.0.0-dev"

const backendHelp = `
The apono secrets engine grants just-in-time access to KV v2 secrets and Transit keys.

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

	// roleCache holds roles for grant issue (role_cache.go).
	roleCache roleCache

	// pwHash remembers whether userpass takes password_hash (password_hash.go).
	pwHash passwordHashSupport
	// watchers wake reads of requests/<id> with wait= (request_wait.go).
	watchers requestWatchers
	// idx holds the indexes of requests and grants (index.go).
	idx *indexes
	// crashPoint is APONO_TEST_CRASH_POINT: where the fault tests make the plugin exit.
	crashPoint string

	roleLocks    []*locksutil.LockEntry
	grantLocks   keylock.Set
	requestLocks []*locksutil.LockEntry

	// events delivers access-flow events to notify_url (notify.go), targets to the named
	// notification targets (notify_targets.go).
	events  *notify.Notifier
	targets targetQueues

	// namePrefix is "apono-<mount tag>-": every user and policy this mount creates starts
	// with it, and it differs between mounts so two mounts never touch each other's.
	namePrefix string
	// ownMount is the mount path of this plugin ("apono/"), learned from requests.
	ownMount atomic.Value // string

	// sweep is the orphan sweeper's in-memory state (sweeper.go).
	sweep sweeperState
	// folderOwnersCache keeps recent folder owner scans for previews (owners_folder.go).
	folderOwnersCache folderOwnersCache
	// grantMounts caches sys/mounts for grant issue (mounts_cache.go).
	grantMounts mountsCache
	// caps caches optional capabilities of the management token (path_health.go).
	caps capabilityCache
	// authAccessors and tokenLifetimes serve grant identities and honest end times
	// (grant_identity.go).
	authAccessors  authAccessorCache
	tokenLifetimes tokenLifetimeCache
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

// Factory is the plugin's entry point.
func Factory(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
	b := newBackend(conf)
	if err := b.Setup(ctx, conf); err != nil {
		return nil, err
	}
	b.sweep.interval = sweepIntervalFromEnv(os.Getenv(sweepIntervalEnv), b.Logger())
	if b.crashPoint = os.Getenv(crashPointEnv); b.crashPoint != "" {
		b.Logger().Warn("the plugin will exit at a test crash point ("+crashPointEnv+"); never set it outside tests", "point", b.crashPoint)
	}
	if n := eventStoreMaxFromEnv(os.Getenv(eventStoreMaxEnv), b.Logger()); n > 0 {
		b.events.MaxPending = n
	}
	return b, nil
}

// eventStoreMaxEnv, set in the plugin's catalog entry like APONO_SWEEP_INTERVAL, makes
// the event store smaller than maxPendingEvents, so the end-to-end tests can fill it.
const eventStoreMaxEnv = "APONO_EVENT_STORE_MAX"

// eventStoreMaxFromEnv parses v as a positive number of events; anything else keeps the
// default (0).
func eventStoreMaxFromEnv(v string, logger hclog.Logger) int64 {
	if v == "" {
		return 0
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		logger.Warn("ignoring "+eventStoreMaxEnv+": not a positive number", "value", v)
		return 0
	}
	logger.Info("event store size set from "+eventStoreMaxEnv, "events", n)
	return n
}

// sweepIntervalEnv, set in the plugin's catalog entry (vault write
// sys/plugins/catalog/secret/<name> ... env=APONO_SWEEP_INTERVAL=10s), runs the orphan
// sweeper more often than sweepInterval; the end-to-end tests use it. Vault's rollback
// manager still calls the sweeper at most once a minute.
const sweepIntervalEnv = "APONO_SWEEP_INTERVAL"

// sweepIntervalFromEnv parses v as a positive Go duration; anything else keeps the default (0).
func sweepIntervalFromEnv(v string, logger hclog.Logger) time.Duration {
	if v == "" {
		return 0
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		logger.Warn("ignoring "+sweepIntervalEnv+": not a positive duration such as 30s", "value", v)
		return 0
	}
	logger.Info("orphan sweeper interval set from "+sweepIntervalEnv, "interval", d)
	return d
}

func newBackend(conf *logical.BackendConfig) *aponoBackend {
	notify.UserAgent = "vault-plugin-apono/" + Version
	b := &aponoBackend{
		roleLocks:    locksutil.CreateLocks(),
		requestLocks: locksutil.CreateLocks(),
		idx:          newIndexes(),
		namePrefix:   "apono-" + mountTag(conf.BackendUUID) + "-",
		newClient: func(ctx context.Context, cfg *config.Config, logger hclog.Logger) (vaultapi.Client, error) {
			return vaultapi.New(ctx, cfg.VaultSettings(), logger)
		},
		healthProbe: func(ctx context.Context, cfg *config.Config) (*api.HealthResponse, error) {
			return vaultapi.UnauthenticatedHealth(ctx, cfg.VaultSettings())
		},
	}
	b.lifetime, b.stopLifetime = context.WithCancel(context.Background())
	b.events = notify.NewNotifier(b.lifetime, func() hclog.Logger { return b.Logger() }, conf.StorageView,
		func(ctx context.Context) (*config.Config, error) { return b.config(ctx, conf.StorageView) })
	b.Backend = &framework.Backend{
		Help:        strings.TrimSpace(backendHelp),
		BackendType: logical.TypeLogical,
		PathsSpecial: &logical.Paths{
			// Config holds the AppRole secret_id or a token.
			SealWrapStorage: []string{"config"},
			Unauthenticated: uiUnauthenticated,
		},
		Paths: framework.PathAppend(
			[]*framework.Path{pathConfig(b)},
			pathRoles(b),
			pathGrants(b),
			[]*framework.Path{pathBreakGlass(b)},
			pathRequests(b),
			pathAudit(b),
			[]*framework.Path{pathHealth(b)},
			pathNotify(b),
			pathHistory(b),
			pathIndexes(b),
			[]*framework.Path{pathSync(b), pathResources(b)},
			pathUI(b),
		),
		Secrets:     []*framework.Secret{secretGrant(b)},
		WALRollback: b.walRollback,
		// Issuing a grant takes well under a second; a WAL this old belongs to an issue
		// that died (crash, restart), never to one still running.
		WALRollbackMinAge: walRollbackMinAge,
		Invalidate:        b.invalidate,
		PeriodicFunc:      b.periodic,
		Clean:             b.clean,
		// Events stored by an earlier instance (reload, restart, another node before a
		// leader change) are delivered by this one.
		// The indexes are built here once after an upgrade from a release without them.
		InitializeFunc: func(ctx context.Context, req *logical.InitializationRequest) error {
			b.beginQueues(ctx, req.Storage)
			if b.WriteSafeReplicationState() {
				b.startIndexBuild(req.Storage, false)
			}
			return nil
		},
		RunningVersion: Version,
	}
	guardQueryFields(b.Backend.Paths)
	return b
}

const walRollbackMinAge = 2 * time.Minute

// mountTag is a short, stable tag of the mount's UUID.
func mountTag(backendUUID string) string {
	if backendUUID == "" {
		backendUUID = "unset"
	}
	sum := sha256.Sum256([]byte(backendUUID))
	return hex.EncodeToString(sum[:])[:8]
}

func (b *aponoBackend) invalidate(_ context.Context, key string) {
	if b.invalidateRole(key) || b.invalidateRequest(key) {
		return
	}
	if strings.HasPrefix(key, notify.NotifyTargetPrefix) {
		b.dropTargetCache()
		return
	}
	if strings.HasPrefix(key, indexStoragePrefix) {
		b.idx.sets.Invalidate(key)
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

func (b *aponoBackend) ownMountPath() string {
	v, _ := b.ownMount.Load().(string)
	return v
}
