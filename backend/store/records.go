// Records in storage: roles, requests (and the marks that count a person's open ones),
// grants; read and written as JSON under their prefixes.

package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/hashicorp/vault/sdk/logical"
)

const GrantStoragePrefix = "grant/"

func GetGrant(ctx context.Context, s logical.Storage, id string) (*access.Grant, error) {
	entry, err := s.Get(ctx, GrantStoragePrefix+id)
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

func PutGrant(ctx context.Context, s logical.Storage, g *access.Grant) error {
	entry, err := logical.StorageEntryJSON(GrantStoragePrefix+g.ID, g)
	if err != nil {
		return err
	}
	return s.Put(ctx, entry)
}

func ListGrantIDs(ctx context.Context, s logical.Storage) ([]string, error) {
	return s.List(ctx, GrantStoragePrefix)
}

const RoleStoragePrefix = "role/"

func GetRole(ctx context.Context, s logical.Storage, name string) (*access.Role, error) {
	entry, err := s.Get(ctx, RoleStoragePrefix+name)
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

const (
	RequestStoragePrefix = "request/"
	RequestIDPattern     = `[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`
	MaxReasonLen         = 1024
)

var RequestIDRe = regexp.MustCompile("^" + RequestIDPattern + "$")

func GetRequest(ctx context.Context, s logical.Storage, id string) (*access.Request, error) {
	entry, err := s.Get(ctx, RequestStoragePrefix+id)
	if err != nil || entry == nil {
		return nil, err
	}
	r := &access.Request{}
	if err := entry.DecodeJSON(r); err != nil {
		return nil, fmt.Errorf("decoding request %q: %w", id, err)
	}
	return r, nil
}

func PutRequest(ctx context.Context, s logical.Storage, r *access.Request) error {
	entry, err := logical.StorageEntryJSON(RequestStoragePrefix+r.ID, r)
	if err != nil {
		return err
	}
	return s.Put(ctx, entry)
}

const OpenRequestPrefix = "open/"

var UuidLikeRe = regexp.MustCompile(`^[0-9a-fA-F-]{1,64}$`)

// OpenKeyPrefix is the folder of one entity's entries. Vault's entity IDs are UUIDs; any
// other shape is hashed, so nothing but hex and dashes goes into the storage key.
func OpenKeyPrefix(entityID string) string {
	if !UuidLikeRe.MatchString(entityID) {
		sum := sha256.Sum256([]byte(entityID))
		entityID = "h" + hex.EncodeToString(sum[:16])
	}
	return OpenRequestPrefix + entityID + "/"
}

func PutOpenRequest(ctx context.Context, s logical.Storage, rec *access.Request) error {
	return s.Put(ctx, &logical.StorageEntry{Key: OpenKeyPrefix(rec.Requester.EntityID) + rec.ID, Value: []byte("{}")})
}

// BreakGlassLivePrefix holds breakglass/<role>/<entity>/<grant_id>: one entry per live
// break-glass grant, written before the grant is issued and removed with it (revoke,
// rollback, sweep), so the limit is one short LIST. An entry whose grant never came to be
// (a crash) is dropped once it is older than an issue can take.
const BreakGlassLivePrefix = "breakglass/"
