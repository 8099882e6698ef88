package backend

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/config"
	"github.com/apono-io/vault-plugin-apono/backend/grants"
	"github.com/apono-io/vault-plugin-apono/backend/metrics"
	"github.com/apono-io/vault-plugin-apono/backend/notify"
	"github.com/apono-io/vault-plugin-apono/backend/owners"
	"github.com/apono-io/vault-plugin-apono/backend/store"
	"github.com/apono-io/vault-plugin-apono/backend/sweep"
	"github.com/apono-io/vault-plugin-apono/backend/vaultapi"
	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/logical"
)

// Version is the plugin's version, set at build time with
// -ldflags "-X github.com/apono-io/vault-plugin-apono/backend.Version=v0.1.0".
var Version = "v0.0.0-dev"

// Factory is the plugin's entry point.
func Factory(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
	b := newBackend(conf)
	if err := b.Setup(ctx, conf); err != nil {
		return nil, err
	}
	b.sweeper.Interval = sweepIntervalFromEnv(os.Getenv(sweepIntervalEnv), b.Logger())
	if b.crashPoint = os.Getenv(crashPointEnv); b.crashPoint != "" {
		b.Logger().Warn("the plugin will exit at a test crash point ("+crashPointEnv+"); never set it outside tests", "point", b.crashPoint)
	}
	if n := eventStoreMaxFromEnv(os.Getenv(eventStoreMaxEnv), b.Logger()); n > 0 {
		b.notify.Events.MaxPending = n
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
// sweeper more often than sweep.DefaultInterval; the end-to-end tests use it. Vault's rollback
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
		roleLocks:      locksutil.CreateLocks(),
		requestLocks:   locksutil.CreateLocks(),
		idx:            store.NewIndexes(),
		caps:           &vaultapi.CapabilityCache{},
		grantMounts:    &vaultapi.MountsCache{},
		authAccessors:  &vaultapi.AuthAccessorCache{},
		tokenLifetimes: &vaultapi.TokenLifetimeCache{},
		namePrefix:     "apono-" + mountTag(conf.BackendUUID) + "-",
		newClient: func(ctx context.Context, cfg *config.Config, logger hclog.Logger) (vaultapi.Client, error) {
			return vaultapi.New(ctx, cfg.VaultSettings(), logger)
		},
		healthProbe: func(ctx context.Context, cfg *config.Config) (*api.HealthResponse, error) {
			return vaultapi.UnauthenticatedHealth(ctx, cfg.VaultSettings())
		},
	}
	b.lifetime, b.stopLifetime = context.WithCancel(context.Background())
	b.metrics = metrics.New()
	b.notify = &notify.Dispatcher{
		Events: notify.NewNotifier(b.lifetime, func() hclog.Logger { return b.Logger() }, conf.StorageView,
			func(ctx context.Context) (*config.Config, error) { return b.config(ctx, conf.StorageView) }),
		Storage:  conf.StorageView,
		Lifetime: b.lifetime,
		Logger:   func() hclog.Logger { return b.Logger() },
		Config:   b.config,
		OwnMount: b.ownMountPath,
		Metrics:  b.metrics,
	}
	b.notify.Events.Metrics = b.metrics
	b.store = store.New(store.Deps{
		Index:      b.idx,
		Logger:     func() hclog.Logger { return b.Logger() },
		Locks:      &b.grantLocks,
		Lifetime:   b.lifetime,
		Background: &b.background,
		CrashAt:    func(point string) { b.crashAt(point) },
	})
	b.owners = &owners.Resolver{Logger: func() hclog.Logger { return b.Logger() }, Locks: &b.grantLocks,
		Table: &owners.Table{}, Storage: conf.StorageView}
	b.grants = grants.New(grants.Deps{
		Prefix:         b.namePrefix,
		Logger:         func() hclog.Logger { return b.Logger() },
		Locks:          &b.grantLocks,
		Index:          b.idx,
		Caps:           b.caps,
		Mounts:         b.grantMounts,
		AuthAccessors:  b.authAccessors,
		TokenLifetimes: b.tokenLifetimes,
		Lifetime:       b.lifetime,
		Background:     &b.background,
		Emit:           b.notify.Emit,
		System:         func() logical.SystemView { return b.System() },
		OwnMount:       b.ownMountPath,
		CrashAt:        func(point string) { b.crashAt(point) },
		Metrics:        b.metrics,
	})
	b.sweeper = sweep.New(sweep.Deps{
		Logger:           func() hclog.Logger { return b.Logger() },
		Grants:           b.grants,
		Locks:            &b.grantLocks,
		Index:            b.idx,
		Caps:             b.caps,
		AuthAccessors:    b.authAccessors,
		Client:           b.getClient,
		Revoked:          b.revokedSender,
		Store:            b.store,
		RequestLock:      func(id string) sync.Locker { return b.requestLock(id) },
		Config:           b.config,
		Emit:             b.notify.Emit,
		RecordlessMinAge: walRollbackMinAge,
	})
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
			pathBundles(b),
			pathGrants(b),
			[]*framework.Path{pathBreakGlass(b)},
			pathRequests(b),
			pathAudit(b),
			[]*framework.Path{pathHealth(b), pathMetrics(b)},
			pathNotify(b),
			pathOwners(b),
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
			// Only a node that writes delivers (an OpenBao standby initializes its mounts
			// too; notify skips any pass whose storage refuses writes).
			if b.WriteSafeReplicationState() {
				b.notify.BeginQueues(ctx, req.Storage)
				b.store.StartBuild(req.Storage, false)
			}
			return nil
		},
		RunningVersion: Version,
	}
	guardQueryFields(b.Backend.Paths)
	return b
}

// mountTag is a short, stable tag of the mount's UUID.
func mountTag(backendUUID string) string {
	if backendUUID == "" {
		backendUUID = "unset"
	}
	sum := sha256.Sum256([]byte(backendUUID))
	return hex.EncodeToString(sum[:])[:8]
}

// crashPointEnv, in the plugin's catalog entry, makes the plugin exit at a named point,
// once (the end-to-end fault tests): "<point>:<file>" exits there when file exists,
// removing it first. "request-after-index" is after a new request's index entries are
// written and before its record; "remove-after-policy" is in a grant's removal, after its
// policy is deleted and before its user, entity, login tokens and record.
const crashPointEnv = "APONO_TEST_CRASH_POINT"

// crashAt exits the plugin process at point when the fault tests ask for it.
func (b *aponoBackend) crashAt(point string) {
	at, flag, ok := strings.Cut(b.crashPoint, ":")
	if !ok || at != point || flag == "" {
		return
	}
	if err := os.Remove(flag); err != nil {
		return // not armed
	}
	b.Logger().Warn("exiting at a test crash point ("+crashPointEnv+")", "point", point)
	os.Exit(3)
}
