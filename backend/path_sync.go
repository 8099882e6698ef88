package backend

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/config"
	"github.com/apono-io/vault-plugin-apono/backend/discovery"
	"github.com/apono-io/vault-plugin-apono/backend/vaultapi"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

func pathSync(b *aponoBackend) *framework.Path {
	return &framework.Path{
		Pattern: "sync$",
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: "apono",
			OperationVerb:   "sync",
			OperationSuffix: "resources",
		},
		Fields: map[string]*framework.FieldSchema{
			"timeout": {
				Type: framework.TypeDurationSecond,
				Description: fmt.Sprintf("How long this sync may run before it stops and keeps the old snapshot (1s to %s). Default: %s, under Vault's default max_request_duration of 90s; "+
					"raise both together for a longer on-demand sync.", periodicSyncTimeout, defaultRequestSyncTimeout),
			},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.UpdateOperation: &framework.PathOperation{
				Callback: b.pathSyncWrite,
				// The snapshot is written to storage: only the active node may do that.
				ForwardPerformanceStandby:   true,
				ForwardPerformanceSecondary: true,
			},
		},
		HelpSynopsis:    "Discover every KV v2 secret and folder, Transit key and database, PKI and SSH role this plugin can grant.",
		HelpDescription: pathSyncHelp,
	}
}

const pathSyncHelp = `
Writing sync walks Vault now with the management AppRole: every KV v2 mount (one entry
per secret, kv/app/db, and per folder, kv/app/*, with custom_metadata), every Transit
mount (one entry per key, transit/payments, with its type), and every database, PKI and
SSH mount (one entry per role and endpoint: database/creds/<role> and
database/static-creds/<role>, pki/issue/<role> and pki/sign/<role>, ssh/sign/<role> of
a CA role and ssh/creds/<role> of an OTP one). config's resource_types chooses which;
a role list the management policy may not LIST, or that fails, is reported in skipped
and the sync goes on. Each entry says who owns it: a KV secret's owner tag, else its
entry in the owners table (apono/owners), else integration_owner. The result replaces
the snapshot that resources returns; names are in the form roles and grants accept. The
response gives counts per type, kind and mount, the mounts or folders the policy did not
allow listing (skipped), names that exist but cannot be granted (ungrantable; the first
100 of each, with exact counts), the number of calls made and how long it took.

The walk makes up to sync_concurrency calls at once: one LIST per folder or role list
and one metadata read per secret (for custom_metadata, owner and deleted), which is most
of its cost. It stops with an error past max_resources, or after timeout (80s by
default, under Vault's default max_request_duration of 90s), and then keeps the old
snapshot. The active node also syncs in the background, for up to 30 minutes, every
sync_interval (0 turns that off); the first background sync runs within a minute of
configuration.
`

func snapshotSummary(h *discovery.SnapshotHeader) map[string]interface{} {
	return map[string]interface{}{
		"synced_at":         h.SyncedAt.UTC().Format(time.RFC3339Nano),
		"duration":          h.Duration.Round(time.Millisecond).String(),
		"duration_ms":       h.Duration.Milliseconds(),
		"total":             h.Total,
		"counts":            h.Counts,
		"kinds":             h.Kinds,
		"mounts":            h.Mounts,
		"skipped":           skippedData(h.Skipped),
		"skipped_count":     h.SkippedCount,
		"ungrantable":       ungrantableData(h.Ungrantable),
		"ungrantable_count": h.UngrantableCount,
		"list_calls":        h.ListCalls,
		"read_calls":        h.ReadCalls,
	}
}

func skippedData(in []discovery.SkippedPath) []map[string]interface{} {
	out := make([]map[string]interface{}, 0, len(in))
	for _, p := range in {
		out = append(out, map[string]interface{}{"mount": p.Mount, "path": p.Path, "reason": p.Reason})
	}
	return out
}

func ungrantableData(in []discovery.UngrantableName) []map[string]interface{} {
	out := make([]map[string]interface{}, 0, len(in))
	for _, u := range in {
		out = append(out, map[string]interface{}{"name": u.Name, "reason": u.Reason})
	}
	return out
}

func (b *aponoBackend) pathSyncWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	b.rememberMount(req)
	timeout := defaultRequestSyncTimeout
	if v, ok := d.GetOk("timeout"); ok {
		timeout = time.Duration(v.(int)) * time.Second
		if timeout < time.Second || timeout > periodicSyncTimeout {
			return logical.ErrorResponse(fmt.Sprintf("timeout must be between 1s and %s, got %ds", periodicSyncTimeout, v.(int))), nil
		}
	}
	ctx, cancel := requestSyncContext(ctx, timeout)
	defer cancel()
	if err := b.lockSync(ctx); err != nil {
		return nil, err
	}
	defer b.syncMu.Unlock()
	return b.syncResponse(ctx, req.Storage, timeout)
}

// requestSyncContext bounds a request's sync by timeout and, should the request carry a
// deadline, ends it a little before, so the caller gets the reason instead of Vault's
// bare "context canceled" (a 500 an API client would retry).
func requestSyncContext(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Add(-requestDeadlineMargin).Before(deadline) {
		deadline = d.Add(-requestDeadlineMargin)
	}
	return context.WithDeadline(ctx, deadline)
}

// lockSync takes syncMu for a request, waiting for a running sync to finish while ctx
// allows.
func (b *aponoBackend) lockSync(ctx context.Context) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !b.syncMu.TryLock() {
		select {
		case <-ctx.Done():
			return logical.CodedError(http.StatusConflict, "another sync is still running (the periodic refresh or another request) and did not finish within this request's timeout; its result will be in resources when it does")
		case <-tick.C:
		}
	}
	return nil
}

// requestDeadlineMargin is how long before a request's deadline, when it has one, a
// sync gives up.
const requestDeadlineMargin = 3 * time.Second

// syncResponse runs a sync for a request (the caller holds syncMu) within ctx, which
// requestSyncContext bounded by timeout, and answers with its summary, or with a 400 for
// what the operator must change.
func (b *aponoBackend) syncResponse(ctx context.Context, s logical.Storage, timeout time.Duration) (*logical.Response, error) {
	cfg, err := config.Get(ctx, s)
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		return logical.ErrorResponse(errNotConfigured.Error()), nil
	}
	h, err := b.runSync(ctx, s, cfg, false)
	var tooMany *discovery.ErrTooManyResources
	switch {
	case errors.As(err, &tooMany):
		return logical.ErrorResponse(err.Error()), nil
	case errors.Is(err, context.DeadlineExceeded):
		return logical.ErrorResponse(fmt.Sprintf("the sync did not finish within its timeout (%s) and was stopped: %s. The snapshot is unchanged. "+
			"The periodic sync (config sync_interval) runs in the background for up to %s; for a longer on-demand sync, raise Vault's "+
			"max_request_duration (90s by default) and pass a longer timeout; or narrow config resource_types",
			timeout, err, periodicSyncTimeout)), nil
	case err != nil:
		return nil, err
	}
	resp := &logical.Response{Data: snapshotSummary(h)}
	for _, w := range h.Warnings {
		resp.AddWarning(w)
	}
	return resp, nil
}

// runSync walks Vault, stores the result as the current snapshot and records the
// attempt. The caller holds syncMu. background says the periodic job started it.
func (b *aponoBackend) runSync(ctx context.Context, s logical.Storage, cfg *config.Config, background bool) (*discovery.SnapshotHeader, error) {
	started := time.Now()
	h, err := b.walkAndStore(ctx, s, cfg, started)
	if err != nil {
		b.Logger().Warn("sync failed", "background", background, "error", err)
	} else {
		b.Logger().Info("sync done", "background", background, "resources", h.Total, "skipped", h.SkippedCount,
			"ungrantable", h.UngrantableCount, "list_calls", h.ListCalls, "read_calls", h.ReadCalls, "duration", h.Duration)
	}
	// Record the attempt even when ctx has ended: that is when it matters most.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if serr := recordSyncAttempt(sctx, s, started, err, background); serr != nil {
		b.Logger().Warn("cannot record the sync attempt", "error", serr)
		if err == nil {
			err = serr
		}
	}
	return h, err
}

func recordSyncAttempt(ctx context.Context, s logical.Storage, at time.Time, syncErr error, background bool) error {
	st, err := discovery.LoadSyncStatus(ctx, s)
	if err != nil {
		return err
	}
	if st == nil {
		st = &discovery.SyncStatus{}
	}
	st.AttemptedAt, st.Error = at, ""
	if syncErr != nil {
		st.Error = syncErr.Error()
	}
	if background {
		st.BackgroundAttemptedAt = at
	}
	entry, err := logical.StorageEntryJSON(discovery.SyncStatusPath, st)
	if err != nil {
		return err
	}
	return s.Put(ctx, entry)
}

func (b *aponoBackend) walkAndStore(ctx context.Context, s logical.Storage, cfg *config.Config, started time.Time) (*discovery.SnapshotHeader, error) {
	client, err := b.getClient(ctx, s)
	if err != nil {
		return nil, err
	}
	mounts, err := client.Mounts(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading sys/mounts: %w", vaultapi.Redact(err))
	}
	types := map[string]bool{}
	for _, t := range cfg.TypesToDiscover() {
		types[t] = true
	}
	table, err := b.owners.Table.Index(ctx, s)
	if err != nil {
		return nil, err
	}
	res, err := discovery.Walk(ctx, client, mounts, discovery.Options{
		Types:            types,
		OwnerKey:         cfg.OwnerMetadataKey,
		IntegrationOwner: cfg.IntegrationOwner,
		OwnersTable:      table,
		Concurrency:      cfg.SyncWorkers(),
		MaxResources:     cfg.ResourceLimit(),
		OwnMount:         b.ownMountPath(),
	})
	if err != nil {
		return nil, err
	}
	h := &discovery.SnapshotHeader{
		SyncedAt:         time.Now().UTC(),
		Total:            len(res.Entries),
		Skipped:          res.Skipped,
		SkippedCount:     res.SkippedCount,
		Ungrantable:      res.Ungrantable,
		UngrantableCount: res.UngrantableCount,
		Warnings:         res.Warnings,
		ListCalls:        res.ListCalls,
		ReadCalls:        res.ReadCalls,
		Counts:           map[string]int{},
		Kinds:            map[string]int{},
		Mounts:           map[string]int{},
	}
	for _, t := range cfg.TypesToDiscover() {
		h.Counts[t] = 0
	}
	for i := range res.Entries {
		e := &res.Entries[i]
		h.Counts[e.Type]++
		h.Kinds[e.Kind]++
		h.Mounts[e.Mount]++
	}
	if err := discovery.StoreSnapshot(ctx, s, h, res.Entries, started); err != nil {
		return nil, err
	}
	return h, nil
}
