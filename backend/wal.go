package backend

import (
	"context"
	"fmt"

	"github.com/hashicorp/vault/sdk/logical"
)

const walKindGrant = "grant"

// walRollback undoes a grant whose issue died before it finished: the same idempotent
// removal that revocation uses.
func (b *aponoBackend) walRollback(ctx context.Context, req *logical.Request, kind string, data interface{}) error {
	if kind != walKindGrant {
		return fmt.Errorf("unknown WAL kind %q", kind)
	}
	objs, err := decodeGrantObjects(data)
	if err != nil {
		return err
	}
	// The record is stored only once every object exists, and the WAL entry is deleted
	// after the response: a record means the issue finished, and the entry is only left over.
	if rec, err := getGrant(ctx, req.Storage, objs.GrantID); err != nil {
		return err
	} else if rec != nil {
		return nil
	}
	client, err := b.getClient(ctx, req.Storage)
	if err != nil {
		return err
	}
	b.Logger().Info("rolling back an unfinished grant", "grant_id", objs.GrantID, "username", objs.Username)
	return b.removeGrantObjects(ctx, client, req.Storage, objs)
}
