package grants

import (
	"context"
	"fmt"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/apono-io/vault-plugin-apono/backend/store"
	"github.com/hashicorp/vault/sdk/logical"
)

// Store stores rec with the entries it gains over before (nil for a new grant).
func (g *Grants) Store(ctx context.Context, s logical.Storage, before []store.Entry, rec *access.Grant) error {
	adds, removes := store.DiffEntries(before, store.GrantEntries(rec))
	if err := g.Index.Apply(ctx, s, adds, true); err != nil {
		return err
	}
	if err := store.PutGrant(ctx, s, rec); err != nil {
		return err
	}
	if err := g.Index.Apply(ctx, s, removes, false); err != nil {
		g.logger().Warn("removing a grant's old index entries; they are skipped and repaired when read", "grant_id", rec.ID, "error", err)
	}
	return nil
}

// DeleteRecord deletes grant id's record, then its entries; a grant that ended
// (ending says how; "" for an issue rolled back) leaves its history first.
func (g *Grants) DeleteRecord(ctx context.Context, s logical.Storage, id, ending string) error {
	rec, err := store.GetGrant(ctx, s, id)
	if err != nil {
		return err
	}
	if rec != nil && ending != "" {
		if err := store.PutHistory(ctx, s, g.Index, rec, ending, time.Now().UTC()); err != nil {
			return fmt.Errorf("recording the history of grant %s: %w", id, err)
		}
	}
	if err := s.Delete(ctx, store.GrantStoragePrefix+id); err != nil {
		return fmt.Errorf("deleting grant record: %w", err)
	}
	if rec != nil {
		if err := g.Index.Apply(ctx, s, store.GrantEntries(rec), false); err != nil {
			g.logger().Warn("removing a removed grant's index entries; they are skipped and repaired when read", "grant_id", id, "error", err)
		}
	}
	return nil
}

// ApplyExtension records an approved extension on its grant and ends the request
// (granted): the next renewal may take the grant to rec.ExtendTo.
func (g *Grants) ApplyExtension(ctx context.Context, s logical.Storage, rec *access.Request, now time.Time) error {
	defer g.Locks.Lock(rec.ExtendsGrant)()
	grant, err := store.GetGrant(ctx, s, rec.ExtendsGrant)
	if err != nil {
		return err
	}
	rec.Status, rec.GrantID, rec.EndedAt = access.StatusGranted, rec.ExtendsGrant, now
	if grant == nil {
		rec.Notes = append(rec.Notes, "the grant ended before the extension was approved")
		return nil
	}
	before := store.GrantEntries(grant)
	if rec.ExtendTo.After(grant.ExtendedUntil) {
		grant.ExtendedUntil = rec.ExtendTo
	}
	grant.Extensions = append(grant.Extensions, access.Extension{RequestID: rec.ID, Until: rec.ExtendTo, Approvals: rec.Approvals, At: now})
	return g.Store(ctx, s, before, grant)
}
