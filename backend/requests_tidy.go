package backend

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/apono-io/vault-plugin-apono/backend/config"
	"github.com/apono-io/vault-plugin-apono/backend/notify"
	"github.com/apono-io/vault-plugin-apono/backend/store"
	"github.com/hashicorp/vault/sdk/logical"
)

// tidyRequests is the periodic job of access flows, run on the active node about once a
// minute: it records the expiry of open requests past their deadline (and sends the
// request.expired event), so they expire on time whether or not anyone looks, and it
// removes ended requests older than request_retention. It reads only what is due, from
// the req/deadline and req/ended indexes: at rest it reads the first segment of each
// (from memory once cached), whatever is stored.
func (b *aponoBackend) tidyRequests(ctx context.Context, s logical.Storage) error {
	select {
	case <-b.idx.Ready:
	default:
		b.store.StartBuild(s, false) // after an upgrade: the next run tidies
		return nil
	}
	cfg, err := b.config(ctx, s)
	if err != nil {
		return err
	}
	retention := config.DefaultRequestRetention
	if cfg != nil {
		retention = cfg.KeepRequestsFor()
	}
	now := time.Now().UTC()
	var errs []error
	for _, due := range []struct {
		set   string
		until time.Time
	}{
		{"req/deadline", now},
		{"req/ended", now.Add(-retention)},
	} {
		for {
			keys, err := b.dueKeys(ctx, s, due.set, due.until)
			if err != nil {
				return errors.Join(append(errs, err)...)
			}
			progressed := false
			for _, k := range keys {
				changed, err := b.tidyRequest(ctx, s, cfg, store.KeyID(k), retention, now, store.Entry{Set: due.set, Key: k})
				if err != nil {
					errs = append(errs, err)
					continue
				}
				progressed = progressed || changed
			}
			if len(keys) < tidyBatch || !progressed || ctx.Err() != nil {
				break
			}
		}
	}
	return errors.Join(errs...)
}

// tidyBatch is how many due entries the job takes at a time.
const tidyBatch = 256

// dueKeys is up to tidyBatch keys of set before until.
func (b *aponoBackend) dueKeys(ctx context.Context, s logical.Storage, set string, until time.Time) ([]string, error) {
	var keys []string
	err := b.idx.Set(set).ScanRange(ctx, s, "", store.TimeBound(until), func(k string) bool {
		keys = append(keys, k)
		return len(keys) < tidyBatch
	})
	return keys, err
}

// tidyRequest acts on the request behind a due entry: records its expiry, or removes it
// past its retention. An entry its request no longer has is removed; changed says the
// entry is gone either way.
func (b *aponoBackend) tidyRequest(ctx context.Context, s logical.Storage, cfg *config.Config, id string, retention time.Duration, now time.Time, due store.Entry,
) (changed bool, err error) {
	lock := b.requestLock(id)
	lock.Lock()
	defer lock.Unlock()
	rec, err := store.GetRequest(ctx, s, id)
	if err != nil {
		return false, err
	}
	if rec == nil || !store.ContainsEntry(store.RequestEntries(rec), due) {
		if err := b.idx.Set(due.Set).Remove(ctx, s, due.Key); err != nil {
			return false, err
		}
		b.idx.Repaired.Add(1)
		return true, nil
	}
	if status := rec.StatusAt(now); status == access.StatusExpired && rec.Status != access.StatusExpired {
		before := store.RequestEntries(rec)
		ev := notify.RequestEvent(rec, notify.EventRequestExpired, now, nil, endedMessage(rec, status))
		rec.EndedAt = rec.Deadline()
		rec.Status = access.StatusExpired
		if err := b.store.SaveRequest(ctx, s, before, rec); err != nil {
			return false, fmt.Errorf("recording the expiry of request %s: %w", id, err)
		}
		b.store.RequestClosed(ctx, s, rec)
		b.Logger().Info("access request expired", "request_id", id, "role", rec.Role, "requester", rec.Requester.EntityName)
		ev.Status = access.StatusExpired
		b.emit(ctx, cfg, ev)
		changed = true
	}
	if ended := rec.EndedAtOrNow(now); !ended.IsZero() && now.Sub(ended) > retention {
		if err := b.store.DeleteRequest(ctx, s, rec); err != nil {
			return false, fmt.Errorf("removing request %s past its retention: %w", id, err)
		}
		b.Logger().Debug("removed an ended request past its retention", "request_id", id, "ended_at", access.FormatTime(ended))
		changed = true
	}
	return changed, nil
}
