package store

import (
	"context"
	"fmt"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/hashicorp/vault/sdk/logical"
)

// SaveRequest stores rec, whose entries were before (nil for a new request): the entries
// it gains first, the record, then the removal of the ones it lost.
func (st *Store) SaveRequest(ctx context.Context, s logical.Storage, before []Entry, rec *access.Request) error {
	adds, removes := DiffEntries(before, RequestEntries(rec))
	if err := st.Index.Apply(ctx, s, adds, true); err != nil {
		return err
	}
	if before == nil {
		st.CrashAt("request-after-index")
	}
	if err := PutRequest(ctx, s, rec); err != nil {
		return err
	}
	st.Watchers.Changed(rec.ID)
	if err := st.Index.Apply(ctx, s, removes, false); err != nil {
		// The record is stored: what is left is an entry too many, which its next reader
		// removes.
		st.Logger().Warn("removing a request's old index entries; they are skipped and repaired when read", "request_id", rec.ID, "error", err)
	}
	return nil
}

// DeleteRequest removes rec and then its entries.
func (st *Store) DeleteRequest(ctx context.Context, s logical.Storage, rec *access.Request) error {
	if err := s.Delete(ctx, RequestStoragePrefix+rec.ID); err != nil {
		return err
	}
	if err := st.Index.Apply(ctx, s, RequestEntries(rec), false); err != nil {
		st.Logger().Warn("removing a deleted request's index entries; they are skipped and repaired when read", "request_id", rec.ID, "error", err)
	}
	return nil
}

// Each person's open requests (pending, or approved and not picked up), kept as
// open/<entity>/<request_id> so that max_open_requests is checked with one short LIST
// instead of reading every request. An entry is written before the request it names and
// removed after the request ends, so a crash leaves at most an entry too many, never one
// too few; entries are checked against their requests only when a person reaches the
// limit, and the stale ones dropped then.

// RequestClosed drops rec from its requester's open requests once its stored status has
// ended; a failure leaves an entry too many, which the limit check removes.
func (st *Store) RequestClosed(ctx context.Context, s logical.Storage, rec *access.Request) {
	if rec.Status == access.StatusPending || rec.Status == access.StatusApproved {
		return
	}
	if err := s.Delete(ctx, OpenKeyPrefix(rec.Requester.EntityID)+rec.ID); err != nil {
		st.Logger().Warn("removing an ended request from its requester's open requests", "request_id", rec.ID, "error", err)
	}
}

// StoreNewRequest stores a new request unless its requester is at limit (max_open_requests; msg
// is that 400). One requester's requests are counted and made one at a time.
func (st *Store) StoreNewRequest(ctx context.Context, s logical.Storage, limit int, rec *access.Request, now time.Time) (string, error) {
	defer st.Locks.Lock("open:" + rec.Requester.EntityID)()
	if msg, err := st.checkOpen(ctx, s, limit, rec.Requester.EntityID, now); err != nil || msg != "" {
		return msg, err
	}
	if err := PutOpenRequest(ctx, s, rec); err != nil {
		return "", err
	}
	return "", st.SaveRequest(ctx, s, nil, rec)
}

// checkOpen is the 400 for a requester at max_open_requests. The caller holds the
// requester's open-requests lock, so an entry without its request is left over from a
// crash, not a request being made.
func (st *Store) checkOpen(ctx context.Context, s logical.Storage, limit int, entityID string, now time.Time) (string, error) {
	prefix := OpenKeyPrefix(entityID)
	ids, err := s.List(ctx, prefix)
	if err != nil || len(ids) < limit {
		return "", err
	}
	open := 0
	for _, id := range ids {
		rec, err := GetRequest(ctx, s, id)
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
