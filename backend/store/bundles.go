package store

import (
	"context"
	"fmt"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/hashicorp/vault/sdk/logical"
)

// BundleStoragePrefix holds one access.Bundle per bundle name.
const BundleStoragePrefix = "bundle/"

// GetBundle returns the stored bundle, or nil when there is none.
func GetBundle(ctx context.Context, s logical.Storage, name string) (*access.Bundle, error) {
	entry, err := s.Get(ctx, BundleStoragePrefix+name)
	if err != nil || entry == nil {
		return nil, err
	}
	b := &access.Bundle{}
	if err := entry.DecodeJSON(b); err != nil {
		return nil, fmt.Errorf("decoding bundle %q: %w", name, err)
	}
	return b, nil
}

// PutBundle stores bundle name.
func PutBundle(ctx context.Context, s logical.Storage, name string, b *access.Bundle) error {
	entry, err := logical.StorageEntryJSON(BundleStoragePrefix+name, b)
	if err != nil {
		return err
	}
	return s.Put(ctx, entry)
}

// DeleteBundle deletes bundle name; gone already is fine.
func DeleteBundle(ctx context.Context, s logical.Storage, name string) error {
	return s.Delete(ctx, BundleStoragePrefix+name)
}

// ListBundles lists the bundles' names.
func ListBundles(ctx context.Context, s logical.Storage) ([]string, error) {
	return s.List(ctx, BundleStoragePrefix)
}
