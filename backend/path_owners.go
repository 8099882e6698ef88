package backend

import (
	"context"
	"fmt"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/apono-io/vault-plugin-apono/backend/owners"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// The owners table, owners/<pattern>: who owns what no owner tag names (package owners,
// table.go). A pattern holds "/" and may end in "*", so the path takes everything after
// owners/ and the owners package checks it.

func pathOwners(b *aponoBackend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern: "owners/?$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: "apono",
				OperationSuffix: "owners",
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ListOperation: &framework.PathOperation{
					Callback: b.pathOwnersList,
					Summary:  "List the patterns of the owners table.",
				},
			},
			HelpSynopsis:    "List the patterns of the owners table.",
			HelpDescription: pathOwnersHelp,
		},
		{
			Pattern: "owners/(?P<pattern>.+)",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: "apono",
				OperationSuffix: "owners-entry",
			},
			Fields: map[string]*framework.FieldSchema{
				"pattern": {
					Type: framework.TypeString,
					Description: "A resource name exactly as a role names it (database/creds/readonly, pki/issue/web, kv/app/db) or a prefix " +
						"ending in * (database/*, kv/team-a/*, ssh/sign/*): letters, digits and . _ - @ = : ~ in segments separated by /, " +
						"with one * only as the last character; never under sys/, auth/, identity/ or cubbyhole/.",
					Required: true,
				},
				"approvers": {
					Type: framework.TypeCommaStringSlice,
					Description: fmt.Sprintf("The owners of what the pattern matches: group:<identity group name> (external groups from OIDC or LDAP "+
						"included) or entity:<entity name>, at most %d. Any one of them approves for those resources. Required.", access.MaxApprovers),
					DisplayAttrs: &framework.DisplayAttributes{Name: "Approvers"},
				},
				"description": {
					Type:         framework.TypeString,
					Description:  fmt.Sprintf("What the entry is for, for people (at most %d characters).", owners.MaxTableDescriptionLen),
					DisplayAttrs: &framework.DisplayAttributes{Name: "Description"},
				},
			},
			ExistenceCheck: b.pathOwnersExists,
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback: b.pathOwnersRead,
					Summary:  "Read the owners table's entry of a pattern.",
				},
				logical.CreateOperation: &framework.PathOperation{
					Callback:                    b.pathOwnersWrite,
					Summary:                     "Name (or change) the owners of the resources a pattern matches.",
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
				},
				logical.UpdateOperation: &framework.PathOperation{
					Callback:                    b.pathOwnersWrite,
					Summary:                     "Name (or change) the owners of the resources a pattern matches.",
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
				},
				logical.DeleteOperation: &framework.PathOperation{
					Callback:                    b.pathOwnersDelete,
					Summary:                     "Remove a pattern from the owners table.",
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
				},
			},
			HelpSynopsis:    "Who owns the resources a pattern matches, where no owner tag says.",
			HelpDescription: pathOwnersHelp,
		},
	}
}

const pathOwnersHelp = `
The owners table names the owners of what carries no owner tag: a database role
(database/creds/readonly), a PKI or SSH role (pki/issue/web, ssh/sign/ops), a Transit
key, a path resource, or a KV secret without the owner_metadata_key tag. A role with
approvers=owner asks them to approve. An entry's pattern is a resource name as a role
names it, or a prefix ending in * (database/*, kv/team-a/*); its approvers are
group:<name> or entity:<name>.

A resource takes the entry of its exact name, else the one of the longest prefix that
matches it, else integration_owner (config). A KV secret's own tag always wins over the
table; a secret whose tag cannot be read (the management policy may not read its
metadata) stays with integration_owner. apono/sync reports each resource's owners with
owner_source owners_table. A change applies to requests made after it, and to pickups:
a request whose owners changed since its approval cannot be picked up.
`

func (b *aponoBackend) pathOwnersExists(ctx context.Context, req *logical.Request, d *framework.FieldData) (bool, error) {
	e, err := b.owners.Table.Get(ctx, req.Storage, d.Get("pattern").(string))
	return e != nil, err
}

func (b *aponoBackend) pathOwnersRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	b.rememberMount(req)
	e, err := b.owners.Table.Get(ctx, req.Storage, d.Get("pattern").(string))
	if err != nil || e == nil {
		return nil, err
	}
	return &logical.Response{Data: ownersEntryData(e)}, nil
}

func ownersEntryData(e *owners.TableEntry) map[string]interface{} {
	return map[string]interface{}{
		"pattern":     e.Pattern,
		"approvers":   access.NonNil(e.Approvers),
		"description": e.Description,
	}
}

func (b *aponoBackend) pathOwnersList(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	b.rememberMount(req)
	patterns, err := b.owners.Table.Patterns(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	return logical.ListResponse(patterns), nil
}

func (b *aponoBackend) pathOwnersWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	b.rememberMount(req)
	if resp := rejectUnknownFields(req, d.Schema); resp != nil {
		return resp, nil
	}
	pattern := d.Get("pattern").(string)
	if err := owners.ValidatePattern(pattern); err != nil {
		return logical.ErrorResponse("pattern: " + err.Error()), nil
	}
	e, err := b.owners.Table.Get(ctx, req.Storage, pattern)
	if err != nil {
		return nil, err
	}
	if e == nil {
		if req.Operation == logical.UpdateOperation {
			return logical.ErrorResponse(fmt.Sprintf("the owners table has no entry %q", pattern)), nil
		}
		e = &owners.TableEntry{Pattern: pattern}
	}
	if v, ok := d.GetOk("approvers"); ok {
		e.Approvers = v.([]string)
	}
	if len(e.Approvers) == 0 {
		return logical.ErrorResponse("approvers is required: group:<identity group name> or entity:<entity name>, e.g. approvers=group:dba"), nil
	}
	if v, ok := d.GetOk("description"); ok {
		e.Description = v.(string)
		if m := checkFreeText("description", e.Description, owners.MaxTableDescriptionLen); m != "" {
			return logical.ErrorResponse(m), nil
		}
	}
	msg, err := b.owners.Table.Put(ctx, req.Storage, e)
	if err != nil || msg != "" {
		return errorOrBadRequest(err, msg)
	}
	return nil, nil
}

func (b *aponoBackend) pathOwnersDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	b.rememberMount(req)
	return nil, b.owners.Table.Delete(ctx, req.Storage, d.Get("pattern").(string))
}
