package owners

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/apono-io/vault-plugin-apono/backend/config"
	"github.com/apono-io/vault-plugin-apono/backend/resource"
	"github.com/apono-io/vault-plugin-apono/backend/vaultapi"
	"github.com/apono-io/vault-plugin-apono/internal/keylock"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"
)

// Approver sets of a request, resolved when it is made. Each role approver that names a
// group or entity is one set. "owner" adds one set per distinct list of owners among the
// requested resources: a KV secret's owners are what its owner_metadata_key tag names
// (read fresh now); a folder's are the owners of the folder itself (the tag of the secret
// named like it, kv/app for kv/app/*, where there is one) and of every secret below it;
// whatever carries no tag (a database, PKI or SSH role, a Transit key, a path, a secret
// without the tag, an empty folder) is owned by its entry in the owners table (table.go:
// exact name, else longest prefix), and a path folder also by every entry inside it;
// what no entry names, or whose tag could not be read, is owned by integration_owner.
// Every owner set must approve (access/approval.go), so no owner approves for another's
// resource and the integration owner approves only what has none.

// Resolver reads the owners of requested resources into approver sets. One per backend,
// built in backend/factory.go.
type Resolver struct {
	Logger func() hclog.Logger
	// Locks are the backend's per-key locks; concurrent previews of one folder wait on
	// "folder-owners:<folder>".
	Locks *keylock.Set
	// Now is the clock previews read the folder cache with; nil means time.Now (tests move it).
	Now func() time.Time
	// Table is the owners table, read from Storage (the mount's storage view); nil means
	// no table.
	Table   *Table
	Storage logical.Storage
	cache   folderOwnersCache
}

// tableIndex is the owners table as it stands now (nil: none).
func (r *Resolver) tableIndex(ctx context.Context) (*TableIndex, error) {
	if r.Table == nil || r.Storage == nil {
		return nil, nil
	}
	return r.Table.Index(ctx, r.Storage)
}

// ApproverSets returns the request's approver sets; notes say where an owner could
// not be read and integration_owner stood in; msg is a 400.
// A preview (dry_run) may use a folder's owners read in the last FolderOwnersCacheTTL.
func (r *Resolver) ApproverSets(ctx context.Context, cfg *config.Config, role *access.Role, resources []resource.Ref, client vaultapi.Client, preview bool,
) (sets []access.ApproverSet, notes []string, msg string, err error) {
	for _, a := range role.Approvers {
		if a == access.ApproverOwner {
			continue
		}
		p, perr := access.ParsePrincipal(a)
		if perr != nil {
			return nil, nil, "role approvers: " + perr.Error(), nil
		}
		sets = append(sets, access.ApproverSet{Label: p.String(), Principals: []access.Principal{p}, Source: access.SetSourceRole})
	}
	if slices.Contains(role.Approvers, access.ApproverOwner) {
		found, ownerNotes, msg, err := r.ResourceOwnerSets(ctx, cfg, resources, client, preview)
		if err != nil || msg != "" {
			return nil, nil, msg, err
		}
		sets = append(sets, found...)
		notes = ownerNotes
	}
	if len(sets) == 0 {
		return nil, nil, "the role names no approvers", nil
	}
	return sets, notes, "", nil
}

// ResourceOwnerSets reads the owners of every resource (see the top of this file) and
// returns one set per distinct list of owners (and source: a tag, the owners table,
// integration_owner).
func (r *Resolver) ResourceOwnerSets(ctx context.Context, cfg *config.Config, resources []resource.Ref, client vaultapi.Client, preview bool,
) (sets []access.ApproverSet, notes []string, msg string, err error) {
	table, err := r.tableIndex(ctx)
	if err != nil {
		return nil, nil, "", err
	}
	col := NewCollector(cfg.OwnerMetadataKey, cfg.IntegrationOwner).WithTable(table)
	for _, ref := range resources {
		switch {
		case ref.Type != resource.TypeKV:
			col.Untagged(ref.Name)
			if ref.Folder {
				// A grant of the folder reaches what the entries inside it own.
				for _, e := range table.Below(strings.TrimSuffix(ref.Name, "*")) {
					col.Untagged(e.Pattern)
				}
			}
		case cfg.OwnerMetadataKey == "" && (!ref.Folder || table.Len() == 0):
			// No tags to read: a secret is the table's or integration_owner's, and so
			// is a whole folder while the table is empty.
			col.Untagged(ref.Name)
		case !ref.Folder:
			tag, note, err := ReadOwnerTag(ctx, client, cfg.OwnerMetadataKey, ref.Mount, ref.Path, ref.Name)
			if err != nil {
				return nil, nil, "", err
			}
			col.Claim(ref.Name, tag, note)
		default:
			msg, err := r.folderOwners(ctx, client, cfg, col, ref, preview)
			if err != nil || msg != "" {
				return nil, nil, msg, err
			}
		}
	}
	return col.Result()
}

// CheckUnchanged is the 403 for a pickup whose resources have owners now that did
// not approve: a secret added below a requested folder since, or a tag an operator
// changed. The grant's policy would cover what they own, so they are asked again.
func (r *Resolver) CheckUnchanged(ctx context.Context, cfg *config.Config, rec *access.Request, resources []resource.Ref, client vaultapi.Client) error {
	approvedOwners := map[string]bool{}
	hasOwners := false
	covered := map[int]bool{}
	for _, a := range rec.Approvals {
		for _, i := range a.Sets {
			covered[i] = true
			// An escalation approver who may stand in for owners approved for them all.
			if i >= 0 && i < len(rec.Sets) && rec.Sets[i].Escalation && rec.Sets[i].ForOwners {
				for j := range rec.Sets {
					covered[j] = true
				}
			}
		}
	}
	for i, s := range rec.Sets {
		if s.Source == access.SetSourceRole || s.Escalation {
			continue
		}
		hasOwners = true
		// A rule's approval stands for every owner set the request had.
		if covered[i] || rec.AutoApprovedBy != "" {
			approvedOwners[s.Source+"|"+CanonicalPrincipals(s.Principals)] = true
		}
	}
	if !hasOwners {
		return nil
	}
	now, _, msg, err := r.ResourceOwnerSets(ctx, cfg, resources, client, false)
	if err != nil {
		return err
	}
	if msg != "" {
		return logical.CodedError(http.StatusForbidden, fmt.Sprintf("request %s cannot be picked up: %s", rec.ID, msg))
	}
	for _, s := range now {
		if !approvedOwners[s.Source+"|"+CanonicalPrincipals(s.Principals)] {
			return logical.CodedError(http.StatusForbidden, fmt.Sprintf("request %s cannot be picked up: the owners of what it grants changed since it was approved, and %s (%s) did not approve it; ask for the access again",
				rec.ID, s.Label, strings.Join(access.ApproverNames([]access.ApproverSet{s}), ", ")))
		}
	}
	return nil
}
