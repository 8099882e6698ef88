package backend

import (
	"context"
	"fmt"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/apono-io/vault-plugin-apono/backend/store"
	"github.com/hashicorp/vault/sdk/logical"
)

// The sets a live grant belongs to (index.go):
//
//	grant/all                   every live grant, newest first
//	grant/role/<role>           by role
//	grant/requester/<who>       by requester: e<entity> for a person, s<hash> for a
//	                            requester a service stated
//	grant/expiry                by expires_at, for the orphan sweeper
//
// The entries are added before the record is stored (createGrant) and removed after it
// is deleted (removeGrantObjects); a renewal moves the expiry entry the same way.

// storeGrant stores g with the entries it gains over before (nil for a new grant).
func (b *aponoBackend) storeGrant(ctx context.Context, s logical.Storage, before []store.Entry, g *access.Grant) error {
	adds, removes := store.DiffEntries(before, store.GrantEntries(g))
	if err := b.idx.Apply(ctx, s, adds, true); err != nil {
		return err
	}
	if err := store.PutGrant(ctx, s, g); err != nil {
		return err
	}
	if err := b.idx.Apply(ctx, s, removes, false); err != nil {
		b.Logger().Warn("removing a grant's old index entries; they are skipped and repaired when read", "grant_id", g.ID, "error", err)
	}
	return nil
}

// deleteGrantRecord deletes grant id's record, then its entries; a grant that ended
// (ending says how; "" for an issue rolled back) leaves its history first.
func (b *aponoBackend) deleteGrantRecord(ctx context.Context, s logical.Storage, id, ending string) error {
	g, err := store.GetGrant(ctx, s, id)
	if err != nil {
		return err
	}
	if g != nil && ending != "" {
		if err := b.recordHistory(ctx, s, g, ending, time.Now().UTC()); err != nil {
			return fmt.Errorf("recording the history of grant %s: %w", id, err)
		}
	}
	if err := s.Delete(ctx, store.GrantStoragePrefix+id); err != nil {
		return fmt.Errorf("deleting grant record: %w", err)
	}
	if g != nil {
		if err := b.idx.Apply(ctx, s, store.GrantEntries(g), false); err != nil {
			b.Logger().Warn("removing a removed grant's index entries; they are skipped and repaired when read", "grant_id", id, "error", err)
		}
	}
	return nil
}

// grantPage is one page of the live grants in sets that match keeps, newest first.
func (b *aponoBackend) grantPage(ctx context.Context, s logical.Storage, sets []string, after string, limit int, match func(*access.Grant) bool,
) ([]*access.Grant, string, error) {
	if err := b.indexesReady(ctx, s); err != nil {
		return nil, "", err
	}
	m := b.newMergedStream(ctx, s, sets, after)
	recs, next, _, err := pageOf(b, s, m, limit,
		func(ctx context.Context, id string) (*access.Grant, error) { return store.GetGrant(ctx, s, id) },
		store.GrantEntries, match)
	if err != nil {
		return nil, "", fmt.Errorf("listing grants: %w", err)
	}
	return recs, next, nil
}
