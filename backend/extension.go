package backend

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/apono-io/vault-plugin-apono/backend/resource"
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

// extensionRecord is one approved extension, in the grant's record.
type extensionRecord struct {
	RequestID string                  `json:"request_id"`
	Until     time.Time               `json:"until"`
	Approvals []access.ApprovalRecord `json:"approvals,omitempty"`
	At        time.Time               `json:"at"`
}

func pathExtend(b *aponoBackend) *framework.Path {
	return &framework.Path{
		Pattern: "grants/" + framework.GenericNameRegex("role") + "/(?P<grant_id>" + grantIDPattern + ")/extend$",
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
	g, err := getGrant(ctx, req.Storage, grantID)
	if err != nil {
		return nil, err
	}
	if g == nil || g.Role != roleName {
		return logical.ErrorResponse(fmt.Sprintf("grant %s of role %q is not live", grantID, roleName)), nil
	}
	if g.RequesterEntity == nil || g.requesterKind() != requesterEntity || g.RequesterEntity.EntityID != caller.EntityID {
		return nil, forbidden("only the requester of grant %s (%s) may ask to extend it", grantID, g.requesterName())
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
	mounts, err := b.grantMounts.get(ctx, client)
	if err != nil {
		return nil, fmt.Errorf("reading sys/mounts: %w", err)
	}
	var refs []resource.Ref
	for _, r := range g.Resources {
		ref, err := resource.Resolve(r, mounts, b.ownMountPath())
		if err != nil {
			return logical.ErrorResponse(fmt.Sprintf("grant %s can no longer be extended: %s", grantID, err)), nil
		}
		refs = append(refs, ref)
	}
	sets, notes, msg, err := b.resolveApproverSets(ctx, cfg, role, refs, client, false)
	if err != nil || msg != "" {
		return errorOrBadRequest(err, msg)
	}
	id, err := uuid.GenerateUUID()
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	rec := &requestRecord{
		ID: id, Role: roleName, Status: statusPending, Requester: caller.Ref(), Kind: requestKindExtension,
		ExtendsGrant: grantID, ExtendTo: g.maxEnd().Add(ttl),
		Resources: g.Resources, Permission: g.Permission, TTL: ttl, Justification: justification,
		Mode: role.ApprovalModeSetting(), Required: role.RequiredApprovalCount(), Sets: sets,
		RequireReason: role.RequireApproverReason, ApproverMaxTokenAge: role.ApproverMaxTokenAge,
		PickupTTL: role.PickupTTLOrDefault(), Notes: notes, CreatedAt: now, ExpiresAt: now.Add(role.RequestTTLOrDefault()),
	}
	if msg, err := b.storeNewRequest(ctx, req.Storage, cfg, rec, now); err != nil || msg != "" {
		return errorOrBadRequest(err, msg)
	}
	b.Logger().Info("grant extension requested", "request_id", id, "grant_id", grantID, "role", roleName, "requester", caller.EntityName,
		"extend_to", formatTime(rec.ExtendTo))
	b.emit(ctx, cfg, requestEvent(rec, eventRequestCreated, now, nil, ""))
	resp := &logical.Response{Data: rec.data(now)}
	for _, n := range notes {
		resp.AddWarning(n)
	}
	return resp, nil
}

// maxEnd is the latest the grant may be renewed to now: issue plus max_ttl, or an
// approved extension's end.
func (g *grantRecord) maxEnd() time.Time {
	if g.ExtendedUntil.After(g.MaxExpiresAt) {
		return g.ExtendedUntil
	}
	return g.MaxExpiresAt
}

const endReasonWindow = "the end of its access window"

// endReason names what sets end, the most the grant may last now, for a requester.
func (g *grantRecord) endReason(end time.Time) string {
	switch {
	case !g.WindowEnd.IsZero() && !g.WindowEnd.After(end):
		return endReasonWindow
	case g.ExtendedUntil.After(g.MaxExpiresAt):
		return "an approved extension"
	case g.LifetimeApproved:
		return "the lifetime approved for request " + g.RequestID
	}
	return "the role's max_ttl"
}

// renewLimitWarning is the warning of a renewal cut short at end. A grant picked up from a
// request is told how to get more time: an extension, approved as such.
func (g *grantRecord) renewLimitWarning(end time.Time) string {
	reason := g.endReason(end)
	w := fmt.Sprintf("grant reached the most it may last (%s); it ends at %s", reason, end.Format(time.RFC3339))
	if g.RequestID != "" && reason != endReasonWindow {
		w += fmt.Sprintf(": more time needs an extension (grants/%s/%s/extend), approved as such", g.Role, g.ID)
	}
	return w
}

// applyExtension records an approved extension on its grant and ends the request
// (granted): the next renewal may take the grant to rec.ExtendTo.
func (b *aponoBackend) applyExtension(ctx context.Context, s logical.Storage, rec *requestRecord, now time.Time) error {
	defer b.grantLocks.Lock(rec.ExtendsGrant)()
	g, err := getGrant(ctx, s, rec.ExtendsGrant)
	if err != nil {
		return err
	}
	rec.Status, rec.GrantID, rec.EndedAt = statusGranted, rec.ExtendsGrant, now
	if g == nil {
		rec.Notes = append(rec.Notes, "the grant ended before the extension was approved")
		return nil
	}
	before := grantEntries(g)
	if rec.ExtendTo.After(g.ExtendedUntil) {
		g.ExtendedUntil = rec.ExtendTo
	}
	g.Extensions = append(g.Extensions, extensionRecord{RequestID: rec.ID, Until: rec.ExtendTo, Approvals: rec.Approvals, At: now})
	return b.storeGrant(ctx, s, before, g)
}
