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
	client, err := b.getClient(ctx, req.Storage)
	if err != nil {
		return err
	}
	b.Logger().Info("rolling back an unfinished grant", "grant_id", objs.GrantID, "username", objs.Username)
	return b.removeGrantObjects(ctx, client, req.Storage, objs)
}
