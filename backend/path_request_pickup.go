package backend

import (
	"context"
	"fmt"
	"sort"
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

// pathRequestGrant issues the grant of an approved request. The request is marked granted
// (with the grant ID) before the grant is issued and put back if issuing fails, so one
// approval can never become two grants, even across a crash.
func (b *aponoBackend) pathRequestGrant(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	return b.withRequest(ctx, req, d, func(rec *access.Request, caller *access.Identity) (*logical.Response, error) {
		return b.pickUpGrant(ctx, req, rec, caller)
	})
}

// pickUpAtRole is a pickup written to grants/<role> with request_id. The lease is then
// named after grants/<role>, so `vault lease revoke -prefix <mount>/grants/<role>` ends it
// with the role's other grants.
func (b *aponoBackend) pickUpAtRole(ctx context.Context, req *logical.Request, d *framework.FieldData, roleName, id string) (*logical.Response, error) {
	var sent []string
	for field := range d.Schema {
		if _, set := d.GetOk(field); set && field != "role" && field != "request_id" {
			sent = append(sent, field)
		}
	}
	if len(sent) > 0 {
		sort.Strings(sent)
		return logical.ErrorResponse(fmt.Sprintf("%s: not allowed with request_id; the approved request fixes what is granted", strings.Join(sent, ", "))), nil
	}
	return b.withRequestID(ctx, req, "request_id", id, func(rec *access.Request, caller *access.Identity) (*logical.Response, error) {
		if rec.IsBundle() {
			return logical.ErrorResponse(fmt.Sprintf("request_id: request %s is for bundle %q, not role %q; pick it up at %srequests/%s/grant",
				rec.ID, rec.Bundle, roleName, req.MountPoint, rec.ID)), nil
		}
		if rec.Role != roleName {
			return logical.ErrorResponse(fmt.Sprintf("request_id: request %s is for role %q, not %q; pick it up at %sgrants/%s",
				rec.ID, rec.Role, roleName, req.MountPoint, rec.Role)), nil
		}
		return b.pickUpGrant(ctx, req, rec, caller)
	})
}

func (b *aponoBackend) pickUpGrant(ctx context.Context, req *logical.Request, rec *access.Request, caller *access.Identity) (*logical.Response, error) {
	if caller.EntityID != rec.Requester.EntityID {
		return nil, notPickupPerson(caller, rec)
	}
	now := time.Now().UTC()
	switch status := rec.StatusAt(now); status {
	case access.StatusApproved:
	case access.StatusPending:
		return logical.ErrorResponse(fmt.Sprintf("request %s is not approved yet (%s)", rec.ID, rec.Rule().Evaluate(rec.Approvals))), nil
	default:
		return logical.ErrorResponse(rec.EndedMessage(status) + "; no grant can be picked up"), nil
	}
	if rec.Kind == requestKindExtension {
		return logical.ErrorResponse(fmt.Sprintf("request %s extends grant %s: it takes effect when approved, and vault lease renew of the grant uses it", rec.ID, rec.ExtendsGrant)), nil
	}
	if now.Before(rec.StartAt) {
		return logical.ErrorResponse(fmt.Sprintf("request %s is for access from %s (start_at): it can be picked up from then until %s",
			rec.ID, access.FormatTime(rec.StartAt), access.FormatTime(rec.PickupBy))), nil
	}

	gr, cfg, client, warnings, msg, err := b.pickupGrant(ctx, req.Storage, rec, now)
	if err != nil || msg != "" {
		return errorOrBadRequest(err, msg)
	}
	if err := access.CheckApprovalsStillHold(rec, b.autoApproveRole(ctx, req.Storage, rec), caller, now, b.identityOf); err != nil {
		return nil, forbiddenIfRefused(err)
	}
	// What was approved is what is held: the grant lasts the request's ttl from pickup
	// and renewals stop there (its max_expires_at), not at the role's max_ttl; more time
	// is an extension, approved as such. A scheduled grant ends ttl after start_at,
	// however late it is picked up (grants.Issue caps it with its own clock).
	if rec.TTL > 0 {
		gr.MaxTTL = min(gr.MaxTTL, rec.TTL)
		gr.TTL = min(gr.TTL, gr.MaxTTL)
		gr.LifetimeApproved = true
	}
	if !rec.StartAt.IsZero() {
		gr.ApprovedEnd = rec.StartAt.Add(rec.TTL)
	}
	requester := rec.Requester
	gr.Requester = requester.EntityName
	gr.RequesterEntity, gr.RequesterKind = &requester, access.RequesterEntity
	gr.RequestID = rec.ID
	if rec.OnBehalf() {
		gr.RequestedBy = rec.RequestedBy
	}
	gr.Approvals = rec.Approvals
	gr.AutoApprovedBy = rec.AutoApprovedBy
	gr.CallerAccessor = req.ClientTokenAccessor
	if gr.GrantID, err = grants.NewID(); err != nil {
		return nil, err
	}

	prev := *rec
	rec.Status, rec.GrantID, rec.EndedAt = access.StatusGranted, gr.GrantID, now
	if err := b.store.SaveRequest(ctx, req.Storage, store.RequestEntries(&prev), rec); err != nil {
		return nil, err
	}
	resp, err := b.issue(ctx, req.Storage, client, cfg, gr)
	if err != nil {
		if perr := b.store.SaveRequest(ctx, req.Storage, store.RequestEntries(rec), &prev); perr != nil {
			b.Logger().Error("grant pickup failed and the request could not be reopened", "request_id", rec.ID, "error", perr)
		}
		return nil, err
	}
	b.store.RequestClosed(ctx, req.Storage, rec)
	for _, w := range warnings {
		resp.AddWarning(w)
	}
	return resp, nil
}

// pickupGrant checks an approved request again at its pickup (its role, or its bundle and
// each part's role, still grant what was asked; the owners are those who approved; the
// access windows are open) and returns the grant to issue. msg is a 400.
func (b *aponoBackend) pickupGrant(ctx context.Context, s logical.Storage, rec *access.Request, now time.Time,
) (gr *grants.Request, cfg *config.Config, client vaultapi.Client, warnings []string, msg string, err error) {
	if rec.IsBundle() {
		return b.bundlePickup(ctx, s, rec, now)
	}
	role, cfg, msg, err := b.roleAndConfig(ctx, s, rec.Role)
	if err != nil || msg != "" {
		return nil, nil, nil, nil, msg + "; request " + rec.ID + " cannot be granted", err
	}
	windowEnd, msg := role.WindowCheck(rec.Role, now)
	if msg != "" {
		return nil, nil, nil, nil, msg + "; pick the grant up then", nil
	}
	if client, err = b.getClient(ctx, s); err != nil {
		return nil, nil, nil, nil, "", err
	}
	gr, warnings, msg, err = b.grants.Resolve(ctx, cfg, rec.Role, role, grants.Input{
		Resources: rec.Resources, Permission: rec.Permission, TTL: rec.TTL, Justification: rec.Justification,
	}, client)
	if err != nil {
		return nil, nil, nil, nil, "", err
	}
	if msg != "" {
		return nil, nil, nil, nil, fmt.Sprintf("role %q changed since request %s was approved: %s", rec.Role, rec.ID, msg), nil
	}
	if err := b.owners.CheckUnchanged(ctx, cfg, rec, gr.Resources, client); err != nil {
		return nil, nil, nil, nil, "", err
	}
	gr.WindowEnd, gr.Windows = windowEnd, role.AccessWindows
	return gr, cfg, client, warnings, "", nil
}

// autoApproveRole is the role whose auto_approve rule CheckApprovalsStillHold looks up
// (a bundle has none; a missing role has no rules either, and pickupGrant refused it).
func (b *aponoBackend) autoApproveRole(ctx context.Context, s logical.Storage, rec *access.Request) *access.Role {
	if rec.AutoApprovedBy == "" || rec.IsBundle() {
		return &access.Role{}
	}
	role, err := b.store.Roles.Get(ctx, s, rec.Role)
	if err != nil || role == nil {
		return &access.Role{}
	}
	return role
}
