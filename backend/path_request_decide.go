package backend

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/apono-io/vault-plugin-apono/backend/notify"
	"github.com/apono-io/vault-plugin-apono/backend/store"
	"github.com/apono-io/vault-plugin-apono/internal/textsafe"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/logical"
)

func (b *aponoBackend) requestLock(id string) *locksutil.LockEntry {
	return locksutil.LockForKey(b.requestLocks, id)
}

// loadRequestForAction validates id, sent as field, and reads the request; resp is a 400
// or 404.
func loadRequestForAction(ctx context.Context, s logical.Storage, field, id string) (*access.Request, *logical.Response, error) {
	if !store.RequestIDRe.MatchString(id) {
		return nil, logical.ErrorResponse(fmt.Sprintf("%s %q is not a request ID (a UUID such as 0f8fad5b-d9cb-469f-a165-70867728950e)", field, textsafe.Truncate(id))), nil
	}
	rec, err := store.GetRequest(ctx, s, id)
	if err != nil {
		return nil, nil, err
	}
	if rec == nil {
		return nil, nil, logical.CodedError(http.StatusNotFound, fmt.Sprintf("request %s does not exist (or ended longer ago than request_retention)", id))
	}
	return rec, nil, nil
}

// withRequest checks the fields, finds the caller's identity and runs fn on the request
// named by the path's id, under that request's lock.
func (b *aponoBackend) withRequest(ctx context.Context, req *logical.Request, d *framework.FieldData,
	fn func(rec *access.Request, caller *access.Identity) (*logical.Response, error),
) (*logical.Response, error) {
	b.rememberMount(req)
	if resp := rejectUnknownFields(req, d.Schema); resp != nil {
		return resp, nil
	}
	return b.withRequestID(ctx, req, "id", d.Get("id").(string), fn)
}

// withRequestID finds the caller's identity and runs fn on request id (sent as field),
// under its lock.
func (b *aponoBackend) withRequestID(ctx context.Context, req *logical.Request, field, id string,
	fn func(rec *access.Request, caller *access.Identity) (*logical.Response, error),
) (*logical.Response, error) {
	caller, msg, err := b.callerIdentity(req)
	if err != nil || msg != "" {
		return errorOrBadRequest(err, msg)
	}
	lock := b.requestLock(id)
	lock.Lock()
	defer lock.Unlock()
	rec, resp, err := loadRequestForAction(ctx, req.Storage, field, id)
	if err != nil || resp != nil {
		return resp, err
	}
	return fn(rec, caller)
}

// actOnRequest runs fn on the request (withRequest); fn changes rec and returns the
// event to send, or a 400/403 to stop without saving.
func (b *aponoBackend) actOnRequest(ctx context.Context, req *logical.Request, d *framework.FieldData,
	fn func(rec *access.Request, caller *access.Identity, now time.Time) (ev *notify.Event, warning string, resp *logical.Response, err error),
) (*logical.Response, error) {
	return b.withRequest(ctx, req, d, func(rec *access.Request, caller *access.Identity) (*logical.Response, error) {
		now := time.Now().UTC()
		before := store.RequestEntries(rec)
		ev, warning, resp, err := fn(rec, caller, now)
		if err != nil || resp != nil {
			return resp, err
		}
		out := &logical.Response{Data: rec.Data(now)}
		if warning != "" {
			out.AddWarning(warning)
		}
		if ev == nil {
			return out, nil // nothing changed
		}
		if err := b.store.SaveRequest(ctx, req.Storage, before, rec); err != nil {
			return nil, err
		}
		b.store.RequestClosed(ctx, req.Storage, rec)
		cfg, err := b.config(ctx, req.Storage)
		if err != nil {
			b.Logger().Warn("reading config for an event", "error", err)
		}
		b.notify.Emit(ctx, cfg, *ev)
		return out, nil
	})
}

// checkReason validates an approver's reason against the request's rule.
func checkReason(rec *access.Request, d *framework.FieldData) (string, string) {
	reason := strings.TrimSpace(d.Get("reason").(string))
	if m := checkFreeText("reason", reason, store.MaxReasonLen); m != "" {
		return "", m
	}
	if rec.RequireReason && reason == "" {
		return "", fmt.Sprintf("reason is required: role %q has require_approver_reason", rec.Role)
	}
	return reason, ""
}

func (b *aponoBackend) pathRequestApprove(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	return b.actOnRequest(ctx, req, d, func(rec *access.Request, caller *access.Identity, now time.Time) (*notify.Event, string, *logical.Response, error) {
		status := rec.StatusAt(now)
		if status == access.StatusApproved {
			return nil, "", logical.ErrorResponse(fmt.Sprintf("request %s is already approved; it waits for its requester to pick it up", rec.ID)), nil
		}
		if status != access.StatusPending {
			return nil, "", logical.ErrorResponse(rec.EndedMessage(status) + "; it can no longer be approved"), nil
		}
		if err := notPartyToDecide(caller, rec, "approve"); err != nil {
			return nil, "", nil, err
		}
		if caller.EntityID == rec.Requester.EntityID {
			return nil, "", nil, forbidden("%s requested this access and cannot approve it: self-approval never counts; one of %s must approve",
				caller.Label(), strings.Join(access.ApproverNames(rec.Sets), ", "))
		}
		sets := access.QualifyingSets(caller, rec.Sets)
		if len(sets) == 0 {
			return nil, "", nil, notApprover(caller, rec)
		}
		if err := b.checkApproverToken(ctx, req, rec, now); err != nil {
			return nil, "", nil, err
		}
		reason, msg := checkReason(rec, d)
		if msg != "" {
			return nil, "", logical.ErrorResponse(msg), nil
		}
		if rec.ApprovedBy(caller.EntityID) {
			return nil, fmt.Sprintf("%s already approved request %s; an approval counts once (%s)", caller.Label(), rec.ID, rec.Rule().Evaluate(rec.Approvals)), nil, nil
		}
		rec.Approvals = append(rec.Approvals, access.ApprovalRecord{Approver: caller.Ref(), Reason: reason, At: now, Sets: sets})
		progress := rec.Rule().Evaluate(rec.Approvals)
		typ := notify.EventRequestApproval
		if progress.Satisfied {
			rec.Status = access.StatusApproved
			rec.ApprovedAt = now
			rec.PickupBy = rec.PickupFrom().Add(rec.PickupTTL)
			typ = notify.EventRequestApproved
			if rec.Kind == requestKindExtension {
				if err := b.grants.ApplyExtension(ctx, req.Storage, rec, now); err != nil {
					return nil, "", nil, err
				}
			}
		}
		b.Logger().Info("access request approved", "request_id", rec.ID, "approver", caller.EntityName,
			"approver_entity_id", caller.EntityID, "reason", reason, "progress", progress.String(), "status", rec.Status)
		ref := caller.Ref()
		ev := notify.RequestEvent(rec, typ, now, &ref, reason)
		return &ev, "", nil, nil
	})
}

func (b *aponoBackend) pathRequestDeny(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	return b.actOnRequest(ctx, req, d, func(rec *access.Request, caller *access.Identity, now time.Time) (*notify.Event, string, *logical.Response, error) {
		status := rec.StatusAt(now)
		if status != access.StatusPending && status != access.StatusApproved {
			return nil, "", logical.ErrorResponse(rec.EndedMessage(status) + "; it can no longer be denied"), nil
		}
		if rec.IsParty(caller.EntityID) {
			return nil, "", nil, forbidden("%s is the requester: cancel the request at requests/%s/cancel instead of denying it", caller.Label(), rec.ID)
		}
		if len(access.QualifyingSets(caller, rec.Sets)) == 0 {
			return nil, "", nil, notApprover(caller, rec)
		}
		if err := b.checkApproverToken(ctx, req, rec, now); err != nil {
			return nil, "", nil, err
		}
		reason, msg := checkReason(rec, d)
		if msg != "" {
			return nil, "", logical.ErrorResponse(msg), nil
		}
		return b.endRequest(rec, caller, now, access.StatusDenied, reason), "", nil, nil
	})
}

func (b *aponoBackend) pathRequestCancel(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	return b.actOnRequest(ctx, req, d, func(rec *access.Request, caller *access.Identity, now time.Time) (*notify.Event, string, *logical.Response, error) {
		if !rec.IsParty(caller.EntityID) {
			return nil, "", nil, forbidden("only the requester, %s, may cancel request %s", rec.Requester.Label(), rec.ID)
		}
		status := rec.StatusAt(now)
		if status != access.StatusPending && status != access.StatusApproved {
			return nil, "", logical.ErrorResponse(rec.EndedMessage(status) + "; it can no longer be cancelled"), nil
		}
		reason, msg := checkReason(&access.Request{Role: rec.Role}, d) // the requester's reason is optional
		if msg != "" {
			return nil, "", logical.ErrorResponse(msg), nil
		}
		return b.endRequest(rec, caller, now, access.StatusCancelled, reason), "", nil, nil
	})
}

// notApprover is the 403 for a caller in none of the request's approver sets.
func notApprover(caller *access.Identity, rec *access.Request) error {
	return forbidden("%s is not an approver of request %s: it needs one of %s (membership as Vault's identity store knows it now)",
		caller.Label(), rec.ID, strings.Join(access.ApproverNames(rec.Sets), ", "))
}

// endRequest records a denial or cancellation by caller and returns its event.
func (b *aponoBackend) endRequest(rec *access.Request, caller *access.Identity, now time.Time, status, reason string) *notify.Event {
	rec.Status = status
	rec.Decision = &access.Decision{By: caller.Ref(), Reason: reason, At: now}
	rec.EndedAt = now
	b.Logger().Info("access request "+status, "request_id", rec.ID, "by", caller.EntityName, "by_entity_id", caller.EntityID, "reason", reason)
	typ := map[string]string{access.StatusDenied: notify.EventRequestDenied, access.StatusCancelled: notify.EventRequestCancelled}[status]
	ref := caller.Ref()
	ev := notify.RequestEvent(rec, typ, now, &ref, reason)
	return &ev
}
