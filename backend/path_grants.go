package backend

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/apono-io/vault-plugin-apono/backend/config"
	"github.com/apono-io/vault-plugin-apono/backend/grants"
	"github.com/apono-io/vault-plugin-apono/backend/store"
	"github.com/apono-io/vault-plugin-apono/backend/vaultapi"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

func pathGrants(b *aponoBackend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern: "grants/" + framework.GenericNameRegex("role") + "$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: "apono",
				OperationVerb:   "grant",
				OperationSuffix: "access",
			},
			Fields: map[string]*framework.FieldSchema{
				"role": {
					Type:        framework.TypeLowerCaseString,
					Description: "Role to grant from.",
					Required:    true,
				},
				"resources": {
					Type:        framework.TypeCommaStringSlice,
					Description: "Resources to grant: a subset of the role's (a role folder kv/app/* also covers kv/app/db). Default: all of the role's.",
				},
				"permission": {
					Type:        framework.TypeString,
					Description: "Permission level, one of the role's permissions. Default: the role's first.",
				},
				"ttl": {
					Type:        framework.TypeDurationSecond,
					Description: "How long the access lasts. Default: the role's ttl; capped at its max_ttl.",
				},
				"requester": {
					Type: framework.TypeString,
					Description: fmt.Sprintf("Only for a token without an identity entity (a service such as an access broker): who the access is for, "+
						"e.g. an email (at most %d characters), recorded as stated by that token. A caller with an entity is always the requester itself. "+
						"Default: the token's display name.", maxRequesterLen),
				},
				"justification": {
					Type:        framework.TypeString,
					Description: fmt.Sprintf("Why the access is needed (at most %d characters). Required when the role says so, and for break-glass.", maxJustificationLen),
				},
				"request_id": {
					Type: framework.TypeString,
					Description: "Pick up the grant of an approved access request of this role (only its requester, once). The request fixes " +
						"resources, permission and ttl. The same as writing requests/<id>/grant, but the lease is under grants/<role>/, " +
						"so vault lease revoke -prefix <mount>/grants/<role> ends it with the role's other grants.",
					DisplayAttrs: &framework.DisplayAttributes{Name: "Request ID"},
				},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.UpdateOperation: &framework.PathOperation{
					Callback:                    b.pathGrantIssue,
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
				},
			},
			HelpSynopsis:    "Grant just-in-time access from a role.",
			HelpDescription: pathGrantIssueHelp,
		},
		{
			Pattern: "grants/" + framework.GenericNameRegex("role") + "/(?P<grant_id>" + grants.IDPattern + ")$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: "apono",
				OperationSuffix: "grant",
			},
			Fields: map[string]*framework.FieldSchema{
				"role":     {Type: framework.TypeLowerCaseString, Description: "Role the grant was issued from.", Required: true},
				"grant_id": {Type: framework.TypeString, Description: "ID of the grant.", Required: true},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{Callback: b.pathGrantRead},
			},
			HelpSynopsis:    "Read one active grant (never its password).",
			HelpDescription: "Who a grant is for, what it gives, and until when. The password is never stored.",
		},
		pathExtend(b),
		{
			Pattern: "grants/?$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: "apono",
				OperationSuffix: "grants",
			},
			Fields: withPageFields(map[string]*framework.FieldSchema{
				"role": {Type: framework.TypeLowerCaseString, Query: true, Description: "Only grants of this role."},
				"requester": {Type: framework.TypeString, Query: true,
					Description: "Only grants of this requester: the entity ID of a person, or the requester a service stated."},
			}),
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ListOperation: &framework.PathOperation{Callback: b.pathGrantList},
			},
			HelpSynopsis:    "List active grants, newest first, a page at a time.",
			HelpDescription: "Keys are <role>/<grant_id> (read them at grants/<key>); key_info says who, what, which role and until when. Filter with role and requester; page with limit and after (next_after).",
		},
		{
			Pattern: "my/grants/?$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: "apono",
				OperationSuffix: "my-grants",
			},
			Fields: withPageFields(map[string]*framework.FieldSchema{}),
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ListOperation: &framework.PathOperation{Callback: b.pathMyGrants,
					DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "list"}},
				logical.ReadOperation: &framework.PathOperation{Callback: b.pathMyGrants,
					DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "read"}},
			},
			HelpSynopsis:    "The caller's own live grants, newest first.",
			HelpDescription: "A person (a token with an identity entity) lists the grants they are the requester of: picked up, break-glass or direct, with when each ends. Page with limit and after (next_after).",
		},
	}
}

const pathGrantIssueHelp = `
Writing grants/<role> creates a userpass user whose only policy is a new apono-* ACL
policy giving the requested permission on the requested resources, and returns its
username and password as a lease. Renewing the lease extends the access up to the role's
max_ttl. When the lease expires or is revoked, the user and the policy are deleted, which
also cuts every token the user logged in with.

A caller with an identity entity (a person who logged in) is always the requester; only a
token without one (a service such as an access broker) may name a requester, and the grant
records it as stated by that token.

A role with approval=required refuses direct grants: ask at requests/<role> and, once
approved, pick the grant up here with request_id=<id> (or at requests/<id>/grant; here,
the lease is under grants/<role>/ like every other grant of the role, so one
vault lease revoke -prefix ends them all). If the role allows break-glass, write
break-glass/<role> with a justification.
`

func (b *aponoBackend) pathGrantRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	b.rememberMount(req)
	g, err := store.GetGrant(ctx, req.Storage, d.Get("grant_id").(string))
	if err != nil {
		return nil, err
	}
	if g == nil || g.Role != d.Get("role").(string) {
		return nil, nil
	}
	return &logical.Response{Data: g.Summary()}, nil
}

func (b *aponoBackend) pathGrantList(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	b.rememberMount(req)
	sets := []string{"grant/all"}
	role, requester := d.Get("role").(string), strings.TrimSpace(d.Get("requester").(string))
	switch {
	case requester != "":
		// A person's grants are indexed by entity ID, a stated requester's by its name.
		sets = []string{"grant/requester/e" + store.EntityKey(requester), "grant/requester/s" + store.HashedName(requester)}
	case role != "":
		sets = []string{"grant/role/" + role}
	}
	return b.listGrants(ctx, req, d, sets, func(g *access.Grant) bool {
		return (role == "" || g.Role == role) &&
			(requester == "" || g.Requester == requester || (g.RequesterEntity != nil && g.RequesterEntity.EntityID == requester))
	})
}

func (b *aponoBackend) pathMyGrants(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	b.rememberMount(req)
	me, err := b.callerEntity(req)
	if err != nil {
		return nil, err
	}
	if me == nil {
		return logical.ErrorResponse(errNoEntity + "; an operator lists every grant at " + req.MountPoint + "grants"), nil
	}
	return b.listGrants(ctx, req, d, []string{"grant/requester/e" + store.EntityKey(me.EntityID)}, func(g *access.Grant) bool {
		return g.RequesterEntity != nil && g.RequesterEntity.EntityID == me.EntityID && g.RequesterKindOrStated() == access.RequesterEntity
	})
}

// listGrants answers with one page of the grants in sets that match keeps: keys
// <role>/<grant_id> and key_info for LIST, grants for a read.
func (b *aponoBackend) listGrants(ctx context.Context, req *logical.Request, d *framework.FieldData, sets []string, match func(*access.Grant) bool) (*logical.Response, error) {
	limit, msg := store.CheckLimit(d.Get("limit").(int))
	if msg != "" {
		return logical.ErrorResponse(msg), nil
	}
	after, msg := store.DecodeCursor("grants", d.Get("after").(string))
	if msg != "" {
		return logical.ErrorResponse(msg), nil
	}
	recs, next, err := b.store.GrantPage(ctx, req.Storage, sets, after, limit, match)
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(recs))
	info := make(map[string]interface{}, len(recs))
	entries := make([]map[string]interface{}, 0, len(recs))
	for _, g := range recs {
		key := g.Role + "/" + g.ID
		keys = append(keys, key)
		info[key] = g.Summary()
		entries = append(entries, g.Summary())
	}
	resp := logical.ListResponseWithInfo(keys, info)
	if req.Operation == logical.ReadOperation {
		resp = &logical.Response{Data: map[string]interface{}{"grants": entries}}
	}
	addNextPage(resp, "grants", next)
	return resp, nil
}

func (b *aponoBackend) pathGrantIssue(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	b.rememberMount(req)
	roleName := d.Get("role").(string)
	if _, sent := req.Data["break_glass"]; sent {
		return logical.ErrorResponse(fmt.Sprintf("break_glass: break-glass has its own path: write %sbreak-glass/%s with a justification (and resources, permission, ttl)", req.MountPoint, roleName)), nil
	}
	if resp := rejectUnknownFields(req, d.Schema); resp != nil {
		return resp, nil
	}
	if id, ok := d.GetOk("request_id"); ok {
		return b.pickUpAtRole(ctx, req, d, roleName, id.(string))
	}
	role, cfg, msg, err := b.roleAndConfig(ctx, req.Storage, roleName)
	if err != nil || msg != "" {
		return errorOrBadRequest(err, msg)
	}
	in, msg := grantInputFromFields(d)
	if msg != "" {
		return logical.ErrorResponse(msg), nil
	}
	if role.ApprovalRequired() {
		hint := ""
		if role.BreakGlass {
			hint = fmt.Sprintf(", or in an emergency write %sbreak-glass/%s with a justification", req.MountPoint, roleName)
		}
		return logical.ErrorResponse(fmt.Sprintf("role %q requires approval: ask for access with vault write %srequests/%s (resources, permission, ttl, justification), then pick the grant up with vault write %sgrants/%s request_id=<request_id> once approved%s",
			roleName, req.MountPoint, roleName, req.MountPoint, roleName, hint)), nil
	}

	// Who the grant is for: a person is always themselves; only a service names someone.
	entity, err := b.callerEntity(req)
	if err != nil {
		return nil, err
	}
	stated, statedSent := d.GetOk("requester")
	if entity != nil && statedSent {
		return logical.ErrorResponse(fmt.Sprintf("requester: not allowed from a caller with an identity entity: you, %s, are the requester of what you ask for. "+
			"Only a token without an entity (a service such as an access broker) may name a requester", entity.Label())), nil
	}

	client, err := b.getClient(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	gr, warnings, msg, err := b.grants.Resolve(ctx, cfg, roleName, role, in, client)
	if err != nil {
		return nil, err
	}
	if msg != "" {
		return logical.ErrorResponse(msg), nil
	}
	if entity != nil {
		gr.Requester, gr.RequesterEntity, gr.RequesterKind = entity.EntityName, entity, access.RequesterEntity
	} else {
		gr.Requester, gr.RequesterKind, gr.StatedBy = req.DisplayName, access.RequesterStated, req.DisplayName
		if statedSent {
			gr.Requester = stated.(string)
			if m := checkRequester(gr.Requester); m != "" {
				return logical.ErrorResponse(m), nil
			}
		}
	}
	gr.CallerAccessor = req.ClientTokenAccessor
	windowEnd, msg := role.WindowCheck(roleName, time.Now())
	if msg != "" {
		return logical.ErrorResponse(msg), nil
	}
	gr.WindowEnd, gr.Windows = windowEnd, role.AccessWindows
	return b.issueWithWarnings(ctx, req.Storage, client, cfg, gr, warnings)
}

// issueWithWarnings issues gr and adds warnings to its response.
func (b *aponoBackend) issueWithWarnings(ctx context.Context, s logical.Storage, client vaultapi.Client, cfg *config.Config, gr *grants.Request, warnings []string) (*logical.Response, error) {
	resp, err := b.issue(ctx, s, client, cfg, gr)
	if err != nil {
		return nil, err
	}
	for _, w := range warnings {
		resp.AddWarning(w)
	}
	return resp, nil
}
