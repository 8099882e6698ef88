package backend

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// tidyRequests is the periodic job of access flows, run on the active node about once a
// minute: it records the expiry of open requests past their deadline (and sends the
// request.expired event), so they expire on time whether or not anyone looks, and it
// removes ended requests older than request_retention.
func (b *aponoBackend) tidyRequests(ctx context.Context, s logical.Storage) error {
	ids, err := s.List(ctx, requestStoragePrefix)
	if err != nil || len(ids) == 0 {
		return err
	}
	cfg, err := b.config(ctx, s)
	if err != nil {
		return err
	}
	retention := defaultRequestRetention
	if cfg != nil {
		retention = cfg.requestRetention()
	}
	var errs []error
	for _, id := range ids {
		if err := b.tidyRequest(ctx, s, cfg, id, retention, time.Now().UTC()); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (b *aponoBackend) tidyRequest(ctx context.Context, s logical.Storage, cfg *pluginConfig, id string, retention time.Duration, now time.Time) error {
	lock := b.requestLock(id)
	lock.Lock()
	defer lock.Unlock()
	rec, err := getRequest(ctx, s, id)
	if err != nil || rec == nil {
		return err
	}
	if status := rec.status(now); status == statusExpired && rec.Status != statusExpired {
		ev := rec.event(eventRequestExpired, now, nil, endedMessage(rec, status))
		rec.EndedAt = rec.deadline()
		rec.Status = statusExpired
		if err := putRequest(ctx, s, rec); err != nil {
			return fmt.Errorf("recording the expiry of request %s: %w", id, err)
		}
		b.requestClosed(ctx, s, rec)
		b.Logger().Info("access request expired", "request_id", id, "role", rec.Role, "requester", rec.Requester.EntityName)
		ev.Status = statusExpired
		b.emit(ctx, cfg, ev)
	}
	if ended := rec.endedAt(now); !ended.IsZero() && now.Sub(ended) > retention {
		if err := s.Delete(ctx, requestStoragePrefix+id); err != nil {
			return fmt.Errorf("removing request %s past its retention: %w", id, err)
		}
		b.Logger().Debug("removed an ended request past its retention", "request_id", id, "ended_at", formatTime(ended))
	}
	return nil
}
