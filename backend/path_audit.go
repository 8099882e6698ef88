package backend

import (
	"context"
	"strings"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/apono-io/vault-plugin-apono/backend/store"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// The operator's view of access flows. requests and requests/<id> show a person only
// what is theirs (what they asked for, may decide or decided); audit/requests shows every
// request to whoever Vault's ACL lets read it, with or without an identity entity. The
// README's operator policy grants it; the requester and approver policies do not.

func pathAudit(b *aponoBackend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern: "audit/requests/?$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: "apono",
				OperationSuffix: "audit-requests",
			},
			Fields: withPageFields(map[string]*framework.FieldSchema{
				"status": {Type: framework.TypeString, Query: true,
					Description: "Only requests with this status: " + strings.Join(access.RequestStatuses, ", ") + "."},
				"role": {Type: framework.TypeLowerCaseString, Query: true,
					Description: "Only requests for this role."},
			}),
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ListOperation: &framework.PathOperation{
					Callback:     b.pathAuditRequestList,
					DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "list"},
				},
				logical.ReadOperation: &framework.PathOperation{
					Callback:     b.pathAuditRequestList,
					DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "read"},
				},
			},
			HelpSynopsis:    "Every access request of the mount, for operators and auditors.",
			HelpDescription: pathAuditHelp,
		},
		{
			Pattern: "audit/requests/" + framework.GenericNameRegex("id") + "$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: "apono",
				OperationSuffix: "audit-request",
			},
			Fields: map[string]*framework.FieldSchema{
				"id": {Type: framework.TypeLowerCaseString, Required: true, Description: "ID of the request (request_id)."},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback:     b.pathAuditRequestRead,
					DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "read"},
				},
			},
			HelpSynopsis:    "Read any access request, for operators and auditors.",
			HelpDescription: pathAuditHelp,
		},
	}
}

const pathAuditHelp = `
audit/requests lists (vault list -detailed) or reads every access request of the mount,
filtered by status and role; audit/requests/<id> reads one. They show what
requests/<id> shows, to whoever may read these paths, which is an operator's right:
people see only their own requests and the ones they may decide at requests/.
`

func (b *aponoBackend) pathAuditRequestList(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	b.rememberMount(req)
	return b.listRequests(ctx, req, d, &store.RequestQuery{
		Status: strings.ToLower(strings.TrimSpace(d.Get("status").(string))),
		Role:   d.Get("role").(string),
	})
}

func (b *aponoBackend) pathAuditRequestRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	b.rememberMount(req)
	rec, resp, err := loadRequestForAction(ctx, req.Storage, "id", d.Get("id").(string))
	if err != nil || resp != nil {
		return resp, err
	}
	return &logical.Response{Data: rec.Data(time.Now())}, nil
}
