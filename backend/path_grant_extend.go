package backend

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/apono-io/vault-plugin-apono/backend/grants"
	"github.com/apono-io/vault-plugin-apono/backend/notify"
	"github.com/apono-io/vault-plugin-apono/backend/resource"
	"github.com/apono-io/vault-plugin-apono/backend/store"
	uuid "github.com/hashicorp/go-uuid"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// Extensions: the requester of a live grant asks, at grants/<role>/<grant_id>/extend, for
// it to last ttl longer than it may now (its max_ttl, or an earlier extension). That is a
// request like any other (kind extension), approved by the role's approvers, frozen as
// for a request. Once approved, the grant's record says until when it may now last and
// by whose approval, and `vault lease renew` may take it that far, once: up to that end.
// Until then nothing about the grant changes, and it never lapses because an extension
// is pending.

const requestKindExtension = "extension"

func pathExtend(b *aponoBackend) *framework.Path {
	return &framework.Path{
		Pattern: "grants/" + framework.GenericNameRegex("role") + "/(?P<grant_id>" + grants.IDPattern + ")/extend$",
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: "apono",
			OperationVerb:   "extend",
			OperationSuffix: "grant",
		},
		Fields: map[string]*framework.FieldSchema{
			"role":     {Type: framework.TypeLowerCaseString, Required: true, Description: "Role of the grant."},
			"grant_id": {Type: framework.TypeString, Required: true, Description: "ID of the grant."},
			"ttl": {Type: framework.TypeDurationSecond, Required: true,
				Description: "How much longer than it may last now (its max_expires_at) the grant should be able to last."},
			"justification": {Type: framework.TypeString,
				Description: fmt.Sprintf("Why (at most %d characters). Required when the role says so.", maxJustificationLen)},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.UpdateOperation: &framework.PathOperation{
				Callback:                    b.pathGrantExtend,
				ForwardPerformanceStandby:   true,
				ForwardPerformanceSecondary: true,
			},
		},
		HelpSynopsis:    "Ask for a live grant to last longer than its max_ttl.",
		HelpDescription: pathExtendHelp,
	}
}

const pathExtendHelp = `
The requester of a live grant (a person who logged in) asks for it to last ttl past
the end it may be renewed to now. The answer is an access request of kind extension,
waiting for the role's approvers (approve and deny it at requests/<id>/approve and /deny).
Once approved, the grant's record shows the extension, its end and its approvers, and
vault lease renew may take the grant up to that end. Until then nothing changes, and the
grant ends as it would have.
`

func (b *aponoBackend) pathGrantExtend(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	b.rememberMount(req)
	if resp := rejectUnknownFields(req, d.Schema); resp != nil {
		return resp, nil
	}
	roleName, grantID := d.Get("role").(string), d.Get("grant_id").(string)
	caller, msg, err := b.callerIdentity(req)
	if err != nil || msg != "" {
		return errorOrBadRequest(err, msg)
	}
	g, err := store.GetGrant(ctx, req.Storage, grantID)
	if err != nil {
		return nil, err
	}
	if g == nil || g.Role != roleName {
		return logical.ErrorResponse(fmt.Sprintf("grant %s of role %q is not live", grantID, roleName)), nil
	}
	if g.RequesterEntity == nil || g.RequesterKindOrStated() != access.RequesterEntity || g.RequesterEntity.EntityID != caller.EntityID {
		return nil, forbidden("only the requester of grant %s (%s) may ask to extend it", grantID, g.RequesterName())
	}
	role, cfg, msg, err := b.roleAndConfig(ctx, req.Storage, roleName)
	if err != nil || msg != "" {
		return errorOrBadRequest(err, msg)
	}
	if len(role.Approvers) == 0 {
		return logical.ErrorResponse(fmt.Sprintf("role %q names no approvers, so nobody could approve an extension", roleName)), nil
	}
	ttl := time.Duration(d.Get("ttl").(int)) * time.Second
	if ttl <= 0 || ttl > access.MaxFlowTTL {
		return logical.ErrorResponse(fmt.Sprintf("ttl must be more than 0 and at most %s: how much longer the grant should be able to last", access.MaxFlowTTL)), nil
	}
	justification := strings.TrimSpace(d.Get("justification").(string))
	if m := checkFreeText("justification", justification, maxJustificationLen); m != "" {
		return logical.ErrorResponse(m), nil
	}
	if role.RequireJustification && justification == "" {
		return logical.ErrorResponse(fmt.Sprintf("justification is required by role %q", roleName)), nil
	}
	client, err := b.getClient(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	mounts, err := b.grantMounts.Get(ctx, client)
	if err != nil {
		return nil, fmt.Errorf("reading sys/mounts: %w", err)
	}
	var refs []resource.Ref
	for _, r := range g.Resources {
		ref, err := resource.Resolve(r, mounts, b.resourceOptions(cfg))
		if err != nil {
			return logical.ErrorResponse(fmt.Sprintf("grant %s can no longer be extended: %s", grantID, err)), nil
		}
		refs = append(refs, ref)
	}
	sets, notes, msg, err := b.owners.ApproverSets(ctx, cfg, role, refs, client, false)
	if err != nil || msg != "" {
		return errorOrBadRequest(err, msg)
	}
	id, err := uuid.GenerateUUID()
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	rec := &access.Request{
		ID: id, Role: roleName, Status: access.StatusPending, Requester: caller.Ref(), Kind: requestKindExtension,
		ExtendsGrant: grantID, ExtendTo: g.MaxEnd().Add(ttl),
		Resources: g.Resources, Permission: g.Permission, TTL: ttl, Justification: justification,
		Mode: role.ApprovalModeSetting(), Required: role.RequiredApprovalCount(), Sets: sets,
		RequireReason: role.RequireApproverReason, ApproverMaxTokenAge: role.ApproverMaxTokenAge,
		PickupTTL: role.PickupTTLOrDefault(), Notes: notes, CreatedAt: now, ExpiresAt: now.Add(role.RequestTTLOrDefault()),
	}
	if msg, err := b.store.StoreNewRequest(ctx, req.Storage, cfg.OpenRequestsLimit(), rec, now); err != nil || msg != "" {
		return errorOrBadRequest(err, msg)
	}
	b.Logger().Info("grant extension requested", "request_id", id, "grant_id", grantID, "role", roleName, "requester", caller.EntityName,
		"extend_to", access.FormatTime(rec.ExtendTo))
	b.notify.Emit(ctx, cfg, notify.RequestEvent(rec, notify.EventRequestCreated, now, nil, ""))
	resp := &logical.Response{Data: rec.Data(now)}
	for _, n := range notes {
		resp.AddWarning(n)
	}
	return resp, nil
}
