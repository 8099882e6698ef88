package backend

import (
	"context"
	"fmt"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/apono-io/vault-plugin-apono/backend/config"
	"github.com/apono-io/vault-plugin-apono/backend/store"
	"github.com/hashicorp/vault/sdk/logical"
)

// Each person's open requests (pending, or approved and not picked up), kept as
// open/<entity>/<request_id> so that max_open_requests is checked with one short LIST
// instead of reading every request. An entry is written before the request it names and
// removed after the request ends, so a crash leaves at most an entry too many, never one
// too few; entries are checked against their requests only when a person reaches the
// limit, and the stale ones dropped then.

// requestClosed drops rec from its requester's open requests once its stored status has
// ended; a failure leaves an entry too many, which the limit check removes.
func (b *aponoBackend) requestClosed(ctx context.Context, s logical.Storage, rec *access.Request) {
	if rec.Status == access.StatusPending || rec.Status == access.StatusApproved {
		return
	}
	if err := s.Delete(ctx, store.OpenKeyPrefix(rec.Requester.EntityID)+rec.ID); err != nil {
		b.Logger().Warn("removing an ended request from its requester's open requests", "request_id", rec.ID, "error", err)
	}
}

// storeNewRequest stores a new request unless its requester is at max_open_requests (msg
// is that 400). One requester's requests are counted and made one at a time.
func (b *aponoBackend) storeNewRequest(ctx context.Context, s logical.Storage, cfg *config.Config, rec *access.Request, now time.Time) (string, error) {
	defer b.grantLocks.Lock("open:" + rec.Requester.EntityID)()
	if msg, err := b.checkOpenRequests(ctx, s, cfg, rec.Requester.EntityID, now); err != nil || msg != "" {
		return msg, err
	}
	if err := store.PutOpenRequest(ctx, s, rec); err != nil {
		return "", err
	}
	return "", b.saveRequest(ctx, s, nil, rec)
}

// checkOpenRequests is the 400 for a requester at max_open_requests. The caller holds the
// requester's open-requests lock, so an entry without its request is left over from a
// crash, not a request being made.
func (b *aponoBackend) checkOpenRequests(ctx context.Context, s logical.Storage, cfg *config.Config, entityID string, now time.Time) (string, error) {
	limit := cfg.OpenRequestsLimit()
	prefix := store.OpenKeyPrefix(entityID)
	ids, err := s.List(ctx, prefix)
	if err != nil || len(ids) < limit {
		return "", err
	}
	open := 0
	for _, id := range ids {
		rec, err := store.GetRequest(ctx, s, id)
		if err != nil {
			return "", err
		}
		if rec != nil && rec.Requester.EntityID == entityID {
			if st := rec.StatusAt(now); st == access.StatusPending || st == access.StatusApproved {
				open++
				continue
			}
		}
		if err := s.Delete(ctx, prefix+id); err != nil {
			return "", err
		}
	}
	if open >= limit {
		return fmt.Sprintf("you have %d open requests (pending, or approved and not picked up); at most %d are allowed at a time (max_open_requests): cancel one or wait for them to end", open, limit), nil
	}
	return "", nil
}
