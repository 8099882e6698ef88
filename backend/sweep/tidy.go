package sweep

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

// TidyRequests is the periodic job of access flows, run on the active node about once a
// minute: it records the expiry of open requests past their deadline (and sends the
// request.expired event), so they expire on time whether or not anyone looks, and it
// removes ended requests older than request_retention. It reads only what is due, from
// the req/deadline and req/ended indexes: at rest it reads the first segment of each
// (from memory once cached), whatever is stored.
func (w *Sweeper) TidyRequests(ctx context.Context, s logical.Storage) error {
	select {
	case <-w.Index.Ready:
	default:
		w.Store.StartBuild(s, false) // after an upgrade: the next run tidies
		return nil
	}
	cfg, err := w.Config(ctx, s)
	if err != nil {
		return err
	}
	retention := config.DefaultRequestRetention
	if cfg != nil {
		retention = cfg.KeepRequestsFor()
	}
	now := w.clock().UTC()
	var errs []error
	for _, due := range []struct {
		set   string
		until time.Time
	}{
		{"req/remind", now},
		{"req/escalate", now},
		{"req/deadline", now},
		{"req/ended", now.Add(-retention)},
	} {
		for {
			keys, err := w.dueKeys(ctx, s, due.set, due.until)
			if err != nil {
				return errors.Join(append(errs, err)...)
			}
			progressed := false
			for _, k := range keys {
				changed, err := w.tidyRequest(ctx, s, cfg, store.KeyID(k), retention, now, store.Entry{Set: due.set, Key: k})
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
func (w *Sweeper) dueKeys(ctx context.Context, s logical.Storage, set string, until time.Time) ([]string, error) {
	var keys []string
	err := w.Index.Set(set).ScanRange(ctx, s, "", store.TimeBound(until), func(k string) bool {
		keys = append(keys, k)
		return len(keys) < tidyBatch
	})
	return keys, err
}

// tidyRequest acts on the request behind a due entry: records its expiry, or removes it
// past its retention. An entry its request no longer has is removed; changed says the
// entry is gone either way.
func (w *Sweeper) tidyRequest(ctx context.Context, s logical.Storage, cfg *config.Config, id string, retention time.Duration, now time.Time, due store.Entry,
) (changed bool, err error) {
	lock := w.RequestLock(id)
	lock.Lock()
	defer lock.Unlock()
	rec, err := store.GetRequest(ctx, s, id)
	if err != nil {
		return false, err
	}
	if rec == nil || !store.ContainsEntry(store.RequestEntries(rec), due) {
		if err := w.Index.Set(due.Set).Remove(ctx, s, due.Key); err != nil {
			return false, err
		}
		w.Index.Repaired.Add(1)
		return true, nil
	}
	switch due.Set {
	case "req/remind", "req/escalate":
		return true, w.flowStep(ctx, s, cfg, rec, due.Set, now)
	}
	if status := rec.StatusAt(now); status == access.StatusExpired && rec.Status != access.StatusExpired {
		before := store.RequestEntries(rec)
		ev := notify.RequestEvent(rec, notify.EventRequestExpired, now, nil, rec.EndedMessage(status))
		rec.EndedAt = rec.Deadline()
		rec.Status = access.StatusExpired
		if err := w.Store.SaveRequest(ctx, s, before, rec); err != nil {
			return false, fmt.Errorf("recording the expiry of request %s: %w", id, err)
		}
		w.Store.RequestClosed(ctx, s, rec)
		w.Logger().Info("access request expired", "request_id", id, "role", rec.Role, "requester", rec.Requester.EntityName)
		ev.Status = access.StatusExpired
		w.Emit(ctx, cfg, ev)
		changed = true
	}
	if ended := rec.EndedAtOrNow(now); !ended.IsZero() && now.Sub(ended) > retention {
		if err := w.Store.DeleteRequest(ctx, s, rec); err != nil {
			return false, fmt.Errorf("removing request %s past its retention: %w", id, err)
		}
		w.Logger().Debug("removed an ended request past its retention", "request_id", id, "ended_at", access.FormatTime(ended))
		changed = true
	}
	return changed, nil
}

// TidyHistory removes what ended longer than history_retention ago.
func (w *Sweeper) TidyHistory(ctx context.Context, s logical.Storage) error {
	select {
	case <-w.Index.Ready:
	default:
		return nil
	}
	cfg, err := w.Config(ctx, s)
	if err != nil || cfg == nil {
		return err
	}
	for {
		keys, err := w.dueKeys(ctx, s, "hist/ended", time.Now().Add(-cfg.KeepHistoryFor()))
		if err != nil || len(keys) == 0 {
			return err
		}
		for _, k := range keys {
			h, err := store.GetHistory(ctx, s, store.KeyID(k))
			if err != nil {
				return err
			}
			if h == nil || !store.ContainsEntry(store.HistoryEntries(h), store.Entry{Set: "hist/ended", Key: k}) {
				if err := w.Index.Set("hist/ended").Remove(ctx, s, k); err != nil {
					return err
				}
				continue
			}
			if err := s.Delete(ctx, store.HistoryStoragePrefix+h.GrantID); err != nil {
				return err
			}
			if err := w.Index.Apply(ctx, s, store.HistoryEntries(h), false); err != nil {
				w.Logger().Warn("removing an expired history record's index entries", "grant_id", h.GrantID, "error", err)
			}
		}
		if len(keys) < tidyBatch || ctx.Err() != nil {
			return nil
		}
	}
}

// flowStep sends a pending request's reminder or carries out its escalation, once: the
// record says it is done (RemindedAt, EscalatedAt) before the event is stored, so a crash
// between the two loses that message rather than sending it twice, and a new active node
// finds nothing left to do. The caller holds the request's lock.
func (w *Sweeper) flowStep(ctx context.Context, s logical.Storage, cfg *config.Config, rec *access.Request, set string, now time.Time) error {
	if rec.StatusAt(now) != access.StatusPending {
		return nil // its deadline entry ends it; SaveRequest drops this entry then
	}
	before := store.RequestEntries(rec)
	typ := notify.EventRequestReminded
	if set == "req/remind" {
		rec.RemindedAt = now
	} else {
		typ = notify.EventRequestEscalated
		if err := rec.Escalate(now); err != nil {
			return err
		}
	}
	if err := w.Store.SaveRequest(ctx, s, before, rec); err != nil {
		return fmt.Errorf("recording the %s of request %s: %w", typ, rec.ID, err)
	}
	ev := notify.RequestEvent(rec, typ, now, nil, "")
	if typ == notify.EventRequestEscalated {
		ev.EscalatedTo = rec.EscalateTo
		w.Logger().Info("access request escalated", "request_id", rec.ID, "role", rec.Role, "escalated_to", rec.EscalateTo)
	} else {
		w.Logger().Info("approvers reminded of an access request", "request_id", rec.ID, "role", rec.Role, "approvers", ev.Approvers)
	}
	w.Emit(ctx, cfg, ev)
	return nil
}
