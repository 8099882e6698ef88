package backend

import (
	"context"
	"errors"

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
