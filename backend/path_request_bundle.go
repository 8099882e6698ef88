package backend

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/apono-io/vault-plugin-apono/backend/config"
	"github.com/apono-io/vault-plugin-apono/backend/grants"
	"github.com/apono-io/vault-plugin-apono/backend/store"
	"github.com/apono-io/vault-plugin-apono/backend/vaultapi"
	uuid "github.com/hashicorp/go-uuid"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// Asking for a bundle: requests/bundle/<name> makes one request with a part per role
// entry; it is approved, picked up (requests/<id>/grant) and ended like any other.

func pathBundleRequest(b *aponoBackend) *framework.Path {
	return &framework.Path{
		Pattern: "requests/bundle/" + framework.GenericNameRegex("name") + "$",
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: "apono",
			OperationVerb:   "request",
			OperationSuffix: "bundle",
		},
		Fields: map[string]*framework.FieldSchema{
			"name": {Type: framework.TypeLowerCaseString, Required: true, Description: "The bundle to ask for."},
			"ttl": {Type: framework.TypeDurationSecond,
				Description: "How long the access should last once granted. Default: the bundle's ttl, which is also the most."},
			"justification": {Type: framework.TypeString,
				Description: fmt.Sprintf("Why the access is needed (at most %d characters). Required when any part's role says so.", maxJustificationLen)},
			"start_at": {Type: framework.TypeString,
				Description: "When the access should start (RFC 3339, within every part's role's max_schedule_ahead). Default: now."},
			"dry_run": {Type: framework.TypeBool, Default: false,
				Description: "Check the request and answer with what it would be (each part and who will be asked to approve it) without making it."},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.UpdateOperation: &framework.PathOperation{
				Callback:                    b.pathBundleRequestCreate,
				ForwardPerformanceStandby:   true,
				ForwardPerformanceSecondary: true,
				Summary:                     "Ask for a bundle: every part's access, approved by each part's approvers, picked up as one login.",
			},
		},
		HelpSynopsis: "Ask for a bundle's access (several roles at once).",
		HelpDescription: `
Writing requests/bundle/<name> asks for every part of the bundle at once. The request has
one part per role entry, each with its role's approvers (for approvers=owner, the owners
of each resource), and is approved once every part is; who approves one part does not
approve another unless they are among its approvers too. The requester picks the access
up at requests/<id>/grant: one login (user, policy, lease) for all of it, ending together.
Reads of the request show each part, its approver sets and whether it is approved.
Bundles are not auto-approved and cannot be asked for on someone's behalf (for=).
`,
	}
}

func (b *aponoBackend) pathBundleRequestCreate(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	b.rememberMount(req)
	if resp := rejectUnknownFields(req, d.Schema); resp != nil {
		return resp, nil
	}
	name := d.Get("name").(string)
	bundle, err := store.GetBundle(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if bundle == nil {
		return logical.ErrorResponse(fmt.Sprintf("bundle %q does not exist (list them at %smy/bundles)", name, req.MountPoint)), nil
	}
	roles, cfg, msg, err := b.bundleRoles(ctx, req.Storage, bundle)
	if err != nil || msg != "" {
		return errorOrBadRequest(err, msg)
	}
	caller, msg, err := b.callerIdentity(req)
	if err != nil || msg != "" {
		return errorOrBadRequest(err, msg)
	}
	in, msg := grantInputFromFields(d)
	if msg != "" {
		return logical.ErrorResponse(msg), nil
	}
	client, err := b.getClient(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	gr, parts, warnings, msg, err := b.grants.ResolveBundle(ctx, cfg, name, bundle, roles, in.TTL, in.Justification, client)
	if err != nil || msg != "" {
		return errorOrBadRequest(err, msg)
	}
	strict, _ := access.StrictestOf(roles) // ResolveBundle refused what does not combine
	now := time.Now().UTC()
	startAt, msg := parseStartAt(access.BundleRoleName(name), &access.Role{MaxScheduleAhead: strict.MaxScheduleAhead}, d.Get("start_at").(string), now)
	if msg != "" {
		return logical.ErrorResponse(msg), nil
	}
	if _, _, msg := access.BundleWindowCheck(bundle.Parts, roles, access.FirstNonZero(startAt, now)); msg != "" {
		return logical.ErrorResponse(msg), nil
	}
	if msg := b.notify.RefuseNewFlows(ctx, req.Storage); msg != "" {
		return nil, logical.CodedError(http.StatusServiceUnavailable, msg)
	}
	dryRun := d.Get("dry_run").(bool)

	id, err := uuid.GenerateUUID()
	if err != nil {
		return nil, err
	}
	if dryRun {
		id = "00000000-0000-0000-0000-000000000000"
	}
	rec := &access.Request{
		ID: id, Role: gr.Role, Bundle: name, Status: access.StatusPending, Requester: caller.Ref(),
		Permission: gr.Permission, TTL: gr.TTL, Justification: gr.Justification,
		RequireReason: strict.RequireApproverReason, ApproverMaxTokenAge: strict.ApproverMaxTokenAge,
		PickupTTL: strict.PickupTTL, CreatedAt: now, ExpiresAt: now.Add(strict.RequestTTL), StartAt: startAt,
	}
	for i, part := range parts {
		sets, notes, msg, err := b.owners.ApproverSets(ctx, cfg, roles[i], part.Resources, client, dryRun)
		if err != nil || msg != "" {
			return errorOrBadRequest(err, fmt.Sprintf("parts[%d] (role %q): %s", i, part.Role, msg))
		}
		names := make([]string, 0, len(part.Resources))
		for _, r := range part.Resources {
			names = append(names, r.Name)
		}
		rec.AddPart(part.Role, roles[i], names, part.Permission, sets, notes)
	}
	rec.FreezeEscalation(bundle.FlowRole(strict.RequestTTL))
	return b.submitRequest(ctx, req, cfg, rec, caller, append(warnings, rec.Notes...), dryRun, now)
}

// bundlePickup checks an approved bundle request again at its pickup, as pickUpGrant does
// a role's: the bundle and every part's role still exist and still grant what was asked,
// each part's owners are those who approved, and the access windows of every role are
// open. It returns the grant to issue; msg is a 400, err a refusal or a failure.
func (b *aponoBackend) bundlePickup(ctx context.Context, s logical.Storage, rec *access.Request, now time.Time,
) (gr *grants.Request, cfg *config.Config, client vaultapi.Client, warnings []string, msg string, err error) {
	current, err := store.GetBundle(ctx, s, rec.Bundle)
	if err != nil {
		return nil, nil, nil, nil, "", err
	}
	if current == nil {
		return nil, nil, nil, nil, fmt.Sprintf("bundle %q no longer exists; request %s cannot be granted", rec.Bundle, rec.ID), nil
	}
	frozen := access.BundleFromRequest(rec)
	roles, cfg, msg, err := b.bundleRoles(ctx, s, frozen)
	if err != nil || msg != "" {
		return nil, nil, nil, nil, msg, err
	}
	windowEnd, windows, msg := access.BundleWindowCheck(frozen.Parts, roles, now)
	if msg != "" {
		return nil, nil, nil, nil, msg + "; pick the grant up then", nil
	}
	if client, err = b.getClient(ctx, s); err != nil {
		return nil, nil, nil, nil, "", err
	}
	gr, parts, warnings, msg, err := b.grants.ResolveBundle(ctx, cfg, rec.Bundle, frozen, roles, rec.TTL, rec.Justification, client)
	if err != nil {
		return nil, nil, nil, nil, "", err
	}
	if msg != "" {
		return nil, nil, nil, nil, fmt.Sprintf("bundle %q changed since request %s was approved: %s", rec.Bundle, rec.ID, msg), nil
	}
	for i, part := range parts {
		if err := b.owners.CheckUnchanged(ctx, cfg, rec.Part(i), part.Resources, client); err != nil {
			return nil, nil, nil, nil, "", err
		}
	}
	gr.WindowEnd, gr.Windows = windowEnd, windows
	return gr, cfg, client, warnings, "", nil
}
