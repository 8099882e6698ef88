package backend

import (
	"context"
	"fmt"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/hashicorp/vault/sdk/logical"
)

const roleStoragePrefix = "role/"

func getRole(ctx context.Context, s logical.Storage, name string) (*access.Role, error) {
	entry, err := s.Get(ctx, roleStoragePrefix+name)
	if err != nil {
		return nil, err
	}
	if entry == nil {
		return nil, nil
	}
	role := &access.Role{}
	if err := entry.DecodeJSON(role); err != nil {
		return nil, fmt.Errorf("decoding role %q: %w", name, err)
	}
	if err := role.ParseTime(); err != nil {
		return nil, fmt.Errorf("role %q: %w", name, err)
	}
	return role, nil
}
