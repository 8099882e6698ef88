package backend

import (
	"context"
	"errors"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/config"
	"github.com/apono-io/vault-plugin-apono/backend/discovery"
	"github.com/hashicorp/vault/sdk/logical"
)

// periodicJob is background work Vault's rollback manager drives about once a minute.
type periodicJob struct {
	name string
	run  func(ctx context.Context, s logical.Storage) error
}

// periodicJobs lists the background jobs; each decides itself whether it is due.
func (b *aponoBackend) periodicJobs() []periodicJob {
	return []periodicJob{
		b.syncJob(),
		{name: "sweep orphans", run: b.sweeper.IfDue},
		{name: "end SSH signing before grants end", run: b.sweeper.EndSSHSigning},
		{name: "expire and remove requests", run: b.sweeper.TidyRequests},
		{name: "remove history past its retention", run: b.sweeper.TidyHistory},
	}
}

// periodic runs every job, only on a node that may write storage (the active node, not a
// performance standby or secondary), and reports all their errors.
func (b *aponoBackend) periodic(ctx context.Context, req *logical.Request) error {
	if !b.WriteSafeReplicationState() {
		return nil
	}
	var errs []error
	for _, job := range b.periodicJobs() {
		if err := job.run(ctx, req.Storage); err != nil {
			b.Logger().Warn("periodic job failed", "job", job.name, "error", err)
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// syncJob refreshes the snapshot every sync_interval. periodic() runs it only on the
// node that may write storage.
func (b *aponoBackend) syncJob() periodicJob {
	return periodicJob{name: "sync", run: b.periodicSync}
}

// periodicSync starts a background sync when one is due: the snapshot and the periodic
// job's own last attempt are both older than sync_interval. It does not wait for the
// sync: the rollback manager calls periodic functions holding Vault's state lock, and a
// walk of a large Vault must not hold up a seal or a step-down.
func (b *aponoBackend) periodicSync(ctx context.Context, s logical.Storage) error {
	cfg, err := config.Get(ctx, s)
	if err != nil || cfg == nil {
		return err
	}
	interval := cfg.SyncEvery()
	if interval == 0 {
		return nil
	}
	h, err := discovery.LoadSnapshotHeader(ctx, s)
	if err != nil {
		return err
	}
	if h != nil && time.Since(h.SyncedAt) < interval {
		return nil
	}
	st, err := discovery.LoadSyncStatus(ctx, s)
	if err != nil {
		return err
	}
	if st != nil && time.Since(st.BackgroundAttemptedAt) < interval {
		return nil
	}
	if !b.syncMu.TryLock() {
		return nil // a sync is running; it refreshes the snapshot
	}
	go func() {
		defer b.syncMu.Unlock()
		// Derived from the backend's lifetime context, so unmounting or sealing stops it.
		ctx, cancel := context.WithTimeout(b.lifetime, periodicSyncTimeout)
		defer cancel()
		// Errors are logged and kept in sync/status by runSync.
		_, _ = b.runSync(ctx, s, cfg, true)
	}()
	return nil
}
