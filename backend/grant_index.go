package backend

import (
	"context"
	"fmt"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/access"
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

func grantEntries(g *access.Grant) []indexEntry {
	k := newestFirstKey(g.IssuedAt, g.ID)
	return []indexEntry{
		{"grant/all", k},
		{"grant/role/" + g.Role, k},
		{"grant/requester/" + grantRequesterKey(g), k},
		{"grant/expiry", timeKey(g.ExpiresAt, g.ID)},
	}
}

// grantRequesterKey is the requester's part of a grant's set name.
func grantRequesterKey(g *access.Grant) string {
	if g.RequesterEntity != nil && g.RequesterEntity.EntityID != "" && g.RequesterKindOrStated() == access.RequesterEntity {
		return "e" + entityKey(g.RequesterEntity.EntityID)
	}
	return "s" + hashedName(g.Requester)
}

// storeGrant stores g with the entries it gains over before (nil for a new grant).
func (b *aponoBackend) storeGrant(ctx context.Context, s logical.Storage, before []indexEntry, g *access.Grant) error {
	adds, removes := diffEntries(before, grantEntries(g))
	if err := b.idx.apply(ctx, s, adds, true); err != nil {
		return err
	}
	if err := putGrant(ctx, s, g); err != nil {
		return err
	}
	if err := b.idx.apply(ctx, s, removes, false); err != nil {
		b.Logger().Warn("removing a grant's old index entries; they are skipped and repaired when read", "grant_id", g.ID, "error", err)
	}
	return nil
}

// deleteGrantRecord deletes grant id's record, then its entries; a grant that ended
// (ending says how; "" for an issue rolled back) leaves its history first.
func (b *aponoBackend) deleteGrantRecord(ctx context.Context, s logical.Storage, id, ending string) error {
	g, err := getGrant(ctx, s, id)
	if err != nil {
		return err
	}
	if g != nil && ending != "" {
		if err := b.recordHistory(ctx, s, g, ending, time.Now().UTC()); err != nil {
			return fmt.Errorf("recording the history of grant %s: %w", id, err)
		}
	}
	if err := s.Delete(ctx, grantStoragePrefix+id); err != nil {
		return fmt.Errorf("deleting grant record: %w", err)
	}
	if g != nil {
		if err := b.idx.apply(ctx, s, grantEntries(g), false); err != nil {
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
		func(ctx context.Context, id string) (*access.Grant, error) { return getGrant(ctx, s, id) },
		grantEntries, match)
	if err != nil {
		return nil, "", fmt.Errorf("listing grants: %w", err)
	}
	return recs, next, nil
}
