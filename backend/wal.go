package backend

import (
	"context"
	"fmt"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/apono-io/vault-plugin-apono/backend/grants"
	"github.com/apono-io/vault-plugin-apono/backend/store"
	"github.com/apono-io/vault-plugin-apono/backend/vaultapi"
	"github.com/hashicorp/vault/sdk/logical"
)

// walRollbackMinAge is how old a WAL entry must be before Vault rolls it back: issuing a
// grant takes well under a second, so an entry this old belongs to an issue that died
// (crash, restart), never to one still running.
const walRollbackMinAge = 2 * time.Minute

// walRollback undoes a grant whose issue died before it finished: the same idempotent
// removal that revocation uses.
func (b *aponoBackend) walRollback(ctx context.Context, req *logical.Request, kind string, data interface{}) error {
	if kind != grants.WALKind {
		return fmt.Errorf("unknown WAL kind %q", kind)
	}
	objs, err := grants.DecodeObjects(data)
	if err != nil {
		return err
	}
	client, err := b.getClient(ctx, req.Storage)
	if err != nil {
		return err
	}
	// The WAL entry of an issued grant is deleted after the response; if that never
	// happened, the grant is live: its record and every object exist. Leave it alone, but
	// make sure of its index entries, which the issue writes beside the record: a crash
	// may have stored the one and not the others, and the sweeper finds a grant whose
	// lease Vault never stored through its expiry entry.
	if rec, err := b.issueFinished(ctx, req.Storage, client, objs); err != nil {
		return err
	} else if rec != nil {
		if err := b.idx.Apply(ctx, req.Storage, store.GrantEntries(rec), true); err != nil {
			return fmt.Errorf("indexing grant %s: %w", objs.GrantID, err)
		}
		b.Logger().Debug("dropping the left-over WAL entry of an issued grant", "grant_id", objs.GrantID)
		return nil
	}
	b.Logger().Info("rolling back an unfinished grant", "grant_id", objs.GrantID, "username", objs.Username)
	return b.grants.Remove(ctx, client, req.Storage, objs, "")
}

// issueFinished returns the grant's record if the issue a WAL entry covers got through:
// its record is stored (the last step of one chain) and the user, the policy and the
// entity all exist; nil if not.
func (b *aponoBackend) issueFinished(ctx context.Context, s logical.Storage, client vaultapi.Client, objs grants.Objects) (*access.Grant, error) {
	rec, err := store.GetGrant(ctx, s, objs.GrantID)
	if err != nil || rec == nil {
		return nil, err
	}
	paths := []string{vaultapi.UserPath(objs.UserpassMount, objs.Username), "sys/policies/acl/" + objs.Policy}
	if objs.Entity != "" {
		paths = append(paths, vaultapi.EntityNamePath(objs.Entity))
	}
	for _, p := range paths {
		data, err := client.Read(ctx, p)
		if err != nil {
			return nil, fmt.Errorf("checking %s: %w", p, err)
		}
		if data == nil {
			return nil, nil
		}
	}
	return rec, nil
}
