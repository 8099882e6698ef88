package backend

import (
	"context"
	"fmt"

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
// The entries are added before the record is stored (grants.Issue) and removed after it
// is deleted (grants.Remove); a renewal moves the expiry entry the same way.

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
