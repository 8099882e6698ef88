package backend

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/apono-io/vault-plugin-apono/backend/config"
	"github.com/apono-io/vault-plugin-apono/backend/notify"
	"github.com/apono-io/vault-plugin-apono/backend/owners"
	"github.com/apono-io/vault-plugin-apono/backend/store"
	"github.com/apono-io/vault-plugin-apono/internal/textsafe"
	uuid "github.com/hashicorp/go-uuid"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// Access flows: a person asks at requests/<role>, the role's approvers approve at
// requests/<id>/approve, and the requester picks the grant up at requests/<id>/grant.
// Who is asking and who approves always comes from the caller's identity entity, never
// from a field.

func pathRequests(b *aponoBackend) []*framework.Path {
	idField := &framework.FieldSchema{Type: framework.TypeLowerCaseString, Description: "ID of the request (request_id).", Required: true}
	reasonField := &framework.FieldSchema{Type: framework.TypeString,
		Description: fmt.Sprintf("Why (at most %d characters). Required when the role has require_approver_reason.", store.MaxReasonLen)}
	action := func(verb, suffix, synopsis, help string, cb framework.OperationFunc, withReason bool) *framework.Path {
		fields := map[string]*framework.FieldSchema{"id": idField}
		if withReason {
			fields["reason"] = reasonField
		}
		return &framework.Path{
			Pattern: "requests/" + framework.GenericNameRegex("id") + "/" + suffix + "$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: "apono",
				OperationVerb:   verb,
				OperationSuffix: "request",
			},
			Fields: fields,
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.UpdateOperation: &framework.PathOperation{
					Callback:                    cb,
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
				},
			},
			HelpSynopsis:    synopsis,
			HelpDescription: help,
		}
	}
	return []*framework.Path{
		{
			Pattern: "requests/?$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: "apono",
				OperationSuffix: "requests",
			},
			Fields: withPageFields(map[string]*framework.FieldSchema{
				"status": {Type: framework.TypeString, Query: true,
					Description: "Only requests with this status: " + strings.Join(access.RequestStatuses, ", ") + "."},
				"mine": {Type: framework.TypeBool, Query: true,
					Description: "Only the caller's own requests."},
				"can_approve": {Type: framework.TypeBool, Query: true,
					Description: "Only pending requests the caller could approve now (not their own, not already approved by them)."},
				"role": {Type: framework.TypeLowerCaseString, Query: true,
					Description: "Only requests for this role."},
			}),
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ListOperation: &framework.PathOperation{
					Callback:     b.pathRequestList,
					DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "list"},
				},
				logical.ReadOperation: &framework.PathOperation{
					Callback:     b.pathRequestList,
					DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "read"},
				},
			},
			HelpSynopsis:    "List access requests, filtered by status, mine, can_approve and role.",
			HelpDescription: pathRequestListHelp,
		},
		{
			Pattern: "requests/" + framework.GenericNameRegex("name") + "$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: "apono",
				OperationSuffix: "request",
			},
			Fields: map[string]*framework.FieldSchema{
				"name": {Type: framework.TypeLowerCaseString, Required: true,
					Description: "On write: the role to ask access from. On read: the request_id."},
				"resources": {Type: framework.TypeCommaStringSlice,
					Description: "Resources to ask for: a subset of the role's. Default: all of the role's."},
				"permission": {Type: framework.TypeString,
					Description: "Permission level, one of the role's permissions. Default: the role's first."},
				"ttl": {Type: framework.TypeDurationSecond,
					Description: "How long the access should last once granted: what is approved, and the most the grant can be renewed to (more time is an extension). Default: the role's ttl; capped at its max_ttl."},
				"justification": {Type: framework.TypeString,
					Description: fmt.Sprintf("Why the access is needed (at most %d characters). Required when the role says so.", maxJustificationLen)},
				"for": {Type: framework.TypeString,
					Description: "Ask for someone else: the name of their identity entity (the role's on_behalf_allowed must name the caller). The access is theirs: only they pick it up, and neither of you may approve it. Default: the caller."},
				"start_at": {Type: framework.TypeString,
					Description: "When the access should start (RFC 3339, within the role's max_schedule_ahead): the grant can be picked up from then until then + pickup_ttl, and ends at most ttl after it. Default: now."},
				"wait": {Type: framework.TypeDurationSecond, Query: true,
					Description: fmt.Sprintf("On read: answer as soon as the request's status changes, or at the end of this wait (at most 60s) with it unchanged. At most %d such reads wait at a time per person and %d in all; past that, a 429.", store.MaxWaitersPerPerson, store.MaxWaiters)},
				"dry_run": {Type: framework.TypeBool, Default: false,
					Description: fmt.Sprintf("Check the request and answer with what it would be (status preview: its approver sets, who will be asked to approve) without making it. A folder's owners may come from a read of them made in the last %s (the request itself reads them fresh).", owners.FolderOwnersCacheTTL)},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.UpdateOperation: &framework.PathOperation{
					Callback:                    b.pathRequestCreate,
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
					DisplayAttrs:                &framework.DisplayAttributes{OperationVerb: "create"},
					Summary:                     "Ask for access from a role that requires approval (name is the role).",
				},
				logical.ReadOperation: &framework.PathOperation{
					Callback:     b.pathRequestRead,
					DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "read"},
					Summary:      "Read one request (name is the request_id).",
				},
			},
			HelpSynopsis:    "Ask for access from a role (write requests/<role>), or read a request (read requests/<request_id>).",
			HelpDescription: pathRequestHelp,
		},
		pathBundleRequest(b),
		action("approve", "approve", "Approve a pending request.", pathRequestApproveHelp, b.pathRequestApprove, true),
		action("deny", "deny", "Deny a request; it cannot be approved afterwards.", pathRequestDenyHelp, b.pathRequestDeny, true),
		action("cancel", "cancel", "Cancel your own request.", "Only the requester (or who asked on their behalf, with for) may cancel, while the request is pending or approved and not yet picked up.", b.pathRequestCancel, true),
		action("pick-up", "grant", "Turn your approved request into a grant (a lease, like grants/<role>).", pathRequestGrantHelp, b.pathRequestGrant, false),
	}
}

var pathRequestHelp = fmt.Sprintf(`
Writing requests/<role> asks for access from a role with approval=required. The requester
is the caller's identity entity (log in through an auth method; the root token has none),
or, with for=<entity name> when the role's on_behalf_allowed names the caller, that
person: the request is theirs (only they pick it up), requested_by names the caller, and
neither of them may approve or deny it.
The response gives request_id, status=pending, who can approve (approvers, resolved from
the role: each group:<name> and entity:<name>, and with "owner" each requested resource's
owners, read fresh from the KV secret's owner_metadata_key tag, else integration_owner),
and expires_at (request_ttl). Approvers approve or deny at requests/<id>/approve and
/deny; the requester may cancel at requests/<id>/cancel and, once approved, pick the grant
up at requests/<id>/grant within the role's pickup_ttl.

Reading requests/<request_id> shows the request, its approvals with reasons, and its
status: pending, approved, granted, denied, cancelled or expired. Ended requests stay
readable for request_retention (config). With wait=<duration> (at most 60s) the read
answers as soon as the status changes (it is woken by the change, not by polling), or at
the end of the wait with status_changed=false. At most %d reads wait at a time per person
and %d in all on a node; past that a read with wait is refused at once with HTTP 429.
`, store.MaxWaitersPerPerson, store.MaxWaiters)

const pathRequestListHelp = `
LIST requests (vault list -detailed) returns request IDs as keys and, in key_info, the role,
requester, status, resources, permission, approvals so far out of those needed, and
expires_at (the end of the current wait: for approval, or for pickup). A read of requests
returns the same entries under "requests". Filter with status, role, mine=true (the
caller's own) and can_approve=true (pending requests the caller could approve now).
`

const pathRequestApproveHelp = `
Approves a pending request as the caller's identity entity. The caller must belong to one
of the request's approver sets now, as Vault's identity store knows it (group membership
includes external groups that OIDC or LDAP logins bring). The requester can never approve
their own request; a second approval by the same entity counts once. With any_of, the
request is approved once required_approvals distinct approvers have approved; with
all_of, also once every approver set has at least one approval. A denied, cancelled,
expired or already granted request cannot be approved.
`

const pathRequestDenyHelp = `
Denies a request as the caller's identity entity, who must be one of its approvers and not
the requester. A denied request is final: no later approval or pickup is accepted.
`

const pathRequestGrantHelp = `
Only the requester (for a request made with for=, the person it is for), only once, only
while the request is approved and within the role's pickup_ttl: issues the grant exactly as grants/<role> does (a lease with a userpass user
and an apono-* policy) and returns it with request_id. The grant's record shows the
request, each approver and their reason.
`

func (b *aponoBackend) pathRequestCreate(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	b.rememberMount(req)
	if resp := rejectUnknownFields(req, d.Schema); resp != nil {
		return resp, nil
	}
	roleName := d.Get("name").(string)
	role, cfg, msg, err := b.roleAndConfig(ctx, req.Storage, roleName)
	if err != nil || msg != "" {
		return errorOrBadRequest(err, msg)
	}
	if !role.ApprovalRequired() {
		return logical.ErrorResponse(fmt.Sprintf("role %q does not require approval: write %sgrants/%s to get access at once", roleName, req.MountPoint, roleName)), nil
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
	forRaw, forSent := d.GetOk("for")
	grantee, msg, err := b.grantee(ctx, client, roleName, role, caller, forRaw, forSent)
	if err != nil || msg != "" {
		return errorOrBadRequest(err, msg)
	}
	requester, requestedBy := caller, (*access.IdentityRef)(nil)
	if grantee != nil {
		ref := caller.Ref()
		requester, requestedBy = grantee, &ref
	}
	gr, warnings, msg, err := b.grants.Resolve(ctx, cfg, roleName, role, in, client)
	if err != nil || msg != "" {
		return errorOrBadRequest(err, msg)
	}
	now := time.Now().UTC()
	startAt, msg := parseStartAt(roleName, role, d.Get("start_at").(string), now)
	if msg != "" {
		return logical.ErrorResponse(msg), nil
	}
	if _, msg := role.WindowCheck(roleName, access.FirstNonZero(startAt, now)); msg != "" {
		return logical.ErrorResponse(msg), nil
	}
	if msg := b.notify.RefuseNewFlows(ctx, req.Storage); msg != "" {
		return nil, logical.CodedError(http.StatusServiceUnavailable, msg)
	}
	dryRun := d.Get("dry_run").(bool)
	sets, notes, msg, err := b.owners.ApproverSets(ctx, cfg, role, gr.Resources, client, dryRun)
	if err != nil || msg != "" {
		return errorOrBadRequest(err, msg)
	}

	id, err := uuid.GenerateUUID()
	if err != nil {
		return nil, err
	}
	if dryRun {
		id = "00000000-0000-0000-0000-000000000000"
	}
	rec := &access.Request{
		ID: id, Role: roleName, Status: access.StatusPending, Requester: requester.Ref(), RequestedBy: requestedBy,
		Permission: gr.Permission, TTL: gr.TTL, Justification: gr.Justification,
		Mode: role.ApprovalModeSetting(), Required: role.RequiredApprovalCount(), Sets: sets,
		RequireReason: role.RequireApproverReason, ApproverMaxTokenAge: role.ApproverMaxTokenAge,
		PickupTTL: role.PickupTTLOrDefault(), Notes: notes,
		CreatedAt: now, ExpiresAt: now.Add(role.RequestTTLOrDefault()), StartAt: startAt,
	}
	for _, r := range gr.Resources {
		rec.Resources = append(rec.Resources, r.Name)
	}
	rec.FreezeEscalation(role)
	// A rule matches the person the access is for; who asked on their behalf must not be
	// able to approve it either.
	if rule := access.MatchAutoApprove(role.AutoApprove, access.AutoApproval{Requester: requester, Resources: rec.Resources,
		Permission: rec.Permission, Ttl: rec.TTL, At: access.FirstNonZero(startAt, now), Sets: sets}); rule != nil &&
		(grantee == nil || len(access.QualifyingSets(caller, sets)) == 0) {
		rec.Status, rec.AutoApprovedBy, rec.ApprovedAt = access.StatusApproved, rule.Name, now
		rec.PickupBy = rec.PickupFrom().Add(rec.PickupTTL)
	}
	return b.submitRequest(ctx, req, cfg, rec, caller, append(warnings, notes...), dryRun, now)
}

// submitRequest answers a dry run with rec as it would be, or stores the new request rec
// (made by caller), tells its approvers and answers with it.
func (b *aponoBackend) submitRequest(ctx context.Context, req *logical.Request, cfg *config.Config, rec *access.Request,
	caller *access.Identity, warnings []string, dryRun bool, now time.Time,
) (*logical.Response, error) {
	if dryRun {
		data := rec.Data(now)
		data["status"], data["request_id"], data["id"] = "preview", "", ""
		resp := &logical.Response{Data: data}
		for _, w := range warnings {
			resp.AddWarning(w)
		}
		return resp, nil
	}
	if msg, err := b.store.StoreNewRequest(ctx, req.Storage, cfg.OpenRequestsLimit(), rec, now); err != nil || msg != "" {
		return errorOrBadRequest(err, msg)
	}
	b.Logger().Info("access requested", "request_id", rec.ID, "role", rec.Role, "requester", rec.Requester.EntityName,
		"requester_entity_id", rec.Requester.EntityID, "requested_by", caller.EntityName, "requested_by_entity_id", caller.EntityID, "resources", rec.Resources, "permission", rec.Permission,
		"approvers", access.ApproverNames(rec.Sets), "start_at", access.FormatTime(rec.StartAt), "auto_approved_by", rec.AutoApprovedBy)
	b.notify.Emit(ctx, cfg, notify.RequestEvent(rec, notify.EventRequestCreated, now, nil, ""))
	if rec.AutoApprovedBy != "" {
		b.notify.Emit(ctx, cfg, notify.RequestEvent(rec, access.EventRequestAutoApproved, now, nil, "approved by rule "+rec.AutoApprovedBy))
	}

	resp := &logical.Response{Data: rec.Data(now)}
	for _, w := range warnings {
		resp.AddWarning(w)
	}
	return resp, nil
}

func (b *aponoBackend) pathRequestRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	b.rememberMount(req)
	id := d.Get("name").(string)
	if !store.RequestIDRe.MatchString(id) {
		return nil, nil // a role name, or nothing that could be a request
	}
	caller, msg, err := b.callerIdentity(req)
	if err != nil || msg != "" {
		return errorOrBadRequest(err, msg+"; an operator reads every request at "+req.MountPoint+"audit/requests/"+id)
	}
	rec, err := store.GetRequest(ctx, req.Storage, id)
	if err != nil || rec == nil {
		return nil, err
	}
	if !rec.VisibleTo(caller) {
		return nil, notVisible(caller, rec.ID, req.MountPoint)
	}
	wait := time.Duration(d.Get("wait").(int)) * time.Second
	if wait < 0 || wait > maxRequestWait {
		return logical.ErrorResponse(fmt.Sprintf("wait must be between 0 and %s, got %s", maxRequestWait, wait)), nil
	}
	changed := false
	if wait > 0 {
		if rec, changed, err = b.waitForChange(ctx, req.Storage, rec, caller.EntityID, wait); err != nil {
			return nil, err
		}
	}
	data := rec.Data(time.Now())
	if wait > 0 {
		data["status_changed"] = changed
	}
	return &logical.Response{Data: data}, nil
}

// notVisible is the 403 for a person reading a request that is not theirs to see.
func notVisible(caller *access.Identity, id, mount string) error {
	return forbidden("request %s is not yours to see: only its requester and its approvers may read it, and %s is neither "+
		"(every request can be read at %saudit/requests/%s, which an operator's policy grants)", id, caller.Label(), mount, id)
}

func (b *aponoBackend) pathRequestList(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	b.rememberMount(req)
	f := store.RequestQuery{
		Status:     strings.ToLower(strings.TrimSpace(d.Get("status").(string))),
		Role:       d.Get("role").(string),
		Mine:       d.Get("mine").(bool),
		CanApprove: d.Get("can_approve").(bool),
	}
	caller, msg, err := b.callerIdentity(req)
	if err != nil || msg != "" {
		return errorOrBadRequest(err, msg+"; an operator lists every request at "+req.MountPoint+"audit/requests")
	}
	f.Caller = caller
	return b.listRequests(ctx, req, d, &f)
}

// listRequests answers a list or read of requests with one page of the entries f lets
// through, newest first.
func (b *aponoBackend) listRequests(ctx context.Context, req *logical.Request, d *framework.FieldData, f *store.RequestQuery) (*logical.Response, error) {
	if f.Status != "" && !slices.Contains(access.RequestStatuses, f.Status) {
		return logical.ErrorResponse(fmt.Sprintf("status %q is not a request status (allowed: %s)", textsafe.Truncate(f.Status), strings.Join(access.RequestStatuses, ", "))), nil
	}
	limit, msg := store.CheckLimit(d.Get("limit").(int))
	if msg != "" {
		return logical.ErrorResponse(msg), nil
	}
	after, msg := store.DecodeCursor("requests", d.Get("after").(string))
	if msg != "" {
		return logical.ErrorResponse(msg), nil
	}
	now := time.Now()
	recs, next, err := b.store.Requests(ctx, req.Storage, f, after, limit, now)
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(recs))
	info := make(map[string]interface{}, len(recs))
	entries := make([]map[string]interface{}, 0, len(recs))
	for _, r := range recs {
		s := r.Summary(now)
		keys = append(keys, r.ID)
		info[r.ID] = s
		entries = append(entries, s)
	}
	var resp *logical.Response
	if req.Operation == logical.ListOperation {
		resp = logical.ListResponseWithInfo(keys, info)
	} else {
		resp = &logical.Response{Data: map[string]interface{}{"requests": entries}}
	}
	addNextPage(resp, "requests", next)
	return resp, nil
}

// addNextPage says where the next page starts, when there may be one.
func addNextPage(resp *logical.Response, kind, next string) {
	if next == "" {
		return
	}
	cursor := store.EncodeCursor(kind, next)
	resp.Data["next_after"] = cursor
	resp.AddWarning("this page is not everything: ask again with after=" + cursor + " for the next")
}

// withPageFields adds the paging fields of every list to fields.
func withPageFields(fields map[string]*framework.FieldSchema) map[string]*framework.FieldSchema {
	for k, v := range map[string]*framework.FieldSchema{
		"limit": {Type: framework.TypeInt, Query: true,
			Description: fmt.Sprintf("Most entries in one page (1 to %d). Default: %d.", store.MaxPageLimit, store.DefaultPageLimit)},
		"after": {Type: framework.TypeString, Query: true,
			Description: "Where the page starts: the next_after of the previous page (an opaque cursor). Default: the first page."},
	} {
		fields[k] = v
	}
	return fields
}
