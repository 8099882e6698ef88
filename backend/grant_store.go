package backend

import (
	"context"
	"fmt"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/hashicorp/vault/sdk/logical"
)

const grantStoragePrefix = "grant/"

func getGrant(ctx context.Context, s logical.Storage, id string) (*access.Grant, error) {
	entry, err := s.Get(ctx, grantStoragePrefix+id)
	if err != nil {
		return nil, err
	}
	if entry == nil {
		return nil, nil
	}
	g := &access.Grant{}
	if err := entry.DecodeJSON(g); err != nil {
		return nil, fmt.Errorf("decoding grant %q: %w", id, err)
	}
	return g, nil
}

func putGrant(ctx context.Context, s logical.Storage, g *access.Grant) error {
	entry, err := logical.StorageEntryJSON(grantStoragePrefix+g.ID, g)
	if err != nil {
		return err
	}
	return s.Put(ctx, entry)
}

func listGrantIDs(ctx context.Context, s logical.Storage) ([]string, error) {
	return s.List(ctx, grantStoragePrefix)
}
