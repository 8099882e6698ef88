package backend

import (
	"context"
	"fmt"
	"regexp"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/hashicorp/vault/sdk/logical"
)

// An access request as stored, its statuses, and how it reads in responses and events.
// The paths that act on requests are in path_requests.go.

const (
	requestStoragePrefix = "request/"
	requestIDPattern     = `[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`
	maxReasonLen         = 1024
)

var requestIDRe = regexp.MustCompile("^" + requestIDPattern + "$")

// Request statuses. pending and approved are open; the others have ended.
const (
	statusPending   = "pending"
	statusApproved  = "approved"
	statusGranted   = "granted"
	statusDenied    = "denied"
	statusCancelled = "cancelled"
	statusExpired   = "expired"
)

var requestStatuses = []string{statusPending, statusApproved, statusGranted, statusDenied, statusCancelled, statusExpired}

// requestRecord is a request as stored. The approval rule (mode, count, approver sets) is
// frozen when the request is made; membership is checked when each approval is given.
type requestRecord struct {
	ID            string               `json:"id"`
	Role          string               `json:"role"`
	Status        string               `json:"status"`
	Requester     access.IdentityRef   `json:"requester"`
	Resources     []string             `json:"resources"`
	Permission    string               `json:"permission"`
	TTL           time.Duration        `json:"ttl"`
	Justification string               `json:"justification,omitempty"`
	Mode          string               `json:"approval_mode"`
	Required      int                  `json:"required_approvals"`
	Sets          []access.ApproverSet `json:"approver_sets"`
	RequireReason bool                 `json:"require_approver_reason,omitempty"`
	// ApproverMaxTokenAge is the role's approver_max_token_age, frozen with the rule.
	ApproverMaxTokenAge time.Duration           `json:"approver_max_token_age,omitempty"`
	PickupTTL           time.Duration           `json:"pickup_ttl"`
	Approvals           []access.ApprovalRecord `json:"approvals,omitempty"`
	// Decision is the denial or cancellation that ended the request.
	Decision *decisionRecord `json:"decision,omitempty"`
	// Notes say where an owner could not be read and integration_owner stood in.
	Notes      []string  `json:"notes,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	ExpiresAt  time.Time `json:"expires_at"` // the end of waiting for approval
	ApprovedAt time.Time `json:"approved_at,omitempty"`
	PickupBy   time.Time `json:"pickup_by,omitempty"`
	EndedAt    time.Time `json:"ended_at,omitempty"`
	GrantID    string    `json:"grant_id,omitempty"`
	// StartAt is when a scheduled request's access starts (zero: at pickup).
	StartAt time.Time `json:"start_at,omitempty"`
	// AutoApprovedBy names the auto_approve rule that approved the request.
	AutoApprovedBy string `json:"auto_approved_by,omitempty"`
	// Kind is "" for access, requestKindExtension for an extension of grant ExtendsGrant
	// to ExtendTo (extension.go).
	Kind         string    `json:"kind,omitempty"`
	ExtendsGrant string    `json:"extends_grant,omitempty"`
	ExtendTo     time.Time `json:"extend_to,omitempty"`
}

func (r *requestRecord) kind() string {
	if r.Kind == "" {
		return "access"
	}
	return r.Kind
}

// pickupFrom is when the pickup window opens: at approval, or at start_at if later.
func (r *requestRecord) pickupFrom() time.Time {
	from := r.ApprovedAt
	if r.StartAt.After(from) {
		from = r.StartAt
	}
	return from
}

// firstNonZero is a unless it is zero, else b.
func firstNonZero(a, b time.Time) time.Time {
	if a.IsZero() {
		return b
	}
	return a
}

// progress is the approvals so far, or the rule that approved the request.
func (r *requestRecord) progress() string {
	if r.AutoApprovedBy != "" {
		return "approved by rule " + r.AutoApprovedBy
	}
	return r.rule().Evaluate(r.Approvals).String()
}

type decisionRecord struct {
	By     access.IdentityRef `json:"by"`
	Reason string             `json:"reason,omitempty"`
	At     time.Time          `json:"at"`
}

func (r *requestRecord) rule() access.ApprovalRule {
	return access.ApprovalRule{Mode: r.Mode, Required: r.Required, Sets: r.Sets}
}

// status is the request's status at now: an open request past its deadline has expired,
// whether or not the periodic job has recorded it yet.
func (r *requestRecord) status(now time.Time) string {
	switch {
	case r.Status == statusPending && !now.Before(r.ExpiresAt):
		return statusExpired
	case r.Status == statusApproved && !now.Before(r.PickupBy):
		return statusExpired
	}
	return r.Status
}

// deadline is when the request's current open phase ends (zero once it has ended).
func (r *requestRecord) deadline() time.Time {
	switch r.Status {
	case statusPending:
		return r.ExpiresAt
	case statusApproved:
		return r.PickupBy
	}
	return time.Time{}
}

// endedAt is when the request ended, or zero while it is open.
func (r *requestRecord) endedAt(now time.Time) time.Time {
	if s := r.status(now); s == statusPending || s == statusApproved {
		return time.Time{}
	}
	if r.EndedAt.IsZero() {
		return r.deadline() // expired and not yet recorded
	}
	return r.EndedAt
}

// visibleTo reports whether a person may see the request: its requester, a member of one
// of its approver sets now, or someone who approved or decided it. Everyone else needs
// the operator's audit/requests paths.
func (r *requestRecord) visibleTo(id *access.Identity) bool {
	switch {
	case id == nil:
		return false
	case r.Requester.EntityID == id.EntityID, r.approvedBy(id.EntityID), r.Decision != nil && r.Decision.By.EntityID == id.EntityID:
		return true
	}
	return len(access.QualifyingSets(id, r.Sets)) > 0
}

func (r *requestRecord) approvedBy(entityID string) bool {
	for _, a := range r.Approvals {
		if a.Approver.EntityID == entityID {
			return true
		}
	}
	return false
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// summary is a list entry: who, what, where it stands and until when.
func (r *requestRecord) summary(now time.Time) map[string]interface{} {
	status := r.status(now)
	deadline := ""
	if status == statusPending || status == statusApproved {
		deadline = formatTime(r.deadline())
	}
	var approvedBy []string
	for _, a := range r.Approvals {
		approvedBy = append(approvedBy, a.Approver.Person())
	}
	return map[string]interface{}{
		"request_id":             r.ID,
		"role":                   r.Role,
		"requester":              r.Requester.EntityName,
		"requester_name":         r.Requester.Person(),
		"requester_display_name": r.Requester.DisplayName,
		"ttl":                    int64(r.TTL.Seconds()),
		"justification":          r.Justification,
		"approvers":              access.ApproverNames(r.Sets),
		"approved_by":            access.NonNil(approvedBy),
		"status":                 status,
		"resources":              r.Resources,
		"permission":             r.Permission,
		"approvals":              r.progress(),
		"start_at":               formatTime(r.StartAt),
		"auto_approved_by":       r.AutoApprovedBy,
		"kind":                   r.kind(),
		"extends_grant":          r.ExtendsGrant,
		"expires_at":             deadline,
		"created_at":             formatTime(r.CreatedAt),
	}
}

// data is everything a read shows.
func (r *requestRecord) data(now time.Time) map[string]interface{} {
	progress := r.rule().Evaluate(r.Approvals)
	covered := map[int]bool{}
	for _, a := range r.Approvals {
		for _, i := range a.Sets {
			covered[i] = true
		}
	}
	sets := make([]map[string]interface{}, 0, len(r.Sets))
	for i, s := range r.Sets {
		names := make([]string, 0, len(s.Principals))
		for _, p := range s.Principals {
			names = append(names, p.String())
		}
		sets = append(sets, map[string]interface{}{
			"label": s.Label, "approvers": names, "source": s.Source, "approved": covered[i],
			"must_approve": s.MustApprove(r.Mode), "resources": access.NonNil(s.Resources), "resource_count": s.ResourceCount,
		})
	}
	out := map[string]interface{}{
		"request_id":               r.ID,
		"id":                       r.ID, // vault write -field=request_id prints Vault's own request ID
		"role":                     r.Role,
		"status":                   r.status(now),
		"requester":                r.Requester.EntityName,
		"requester_name":           r.Requester.Person(),
		"requester_entity_id":      r.Requester.EntityID,
		"requester_display_name":   r.Requester.DisplayName,
		"resources":                r.Resources,
		"permission":               r.Permission,
		"ttl":                      int64(r.TTL.Seconds()),
		"justification":            r.Justification,
		"approval_mode":            r.Mode,
		"required_approvals":       progress.Needed,
		"approvers":                access.ApproverNames(r.Sets),
		"approver_sets":            sets,
		"approvals":                approvalsData(r.Approvals),
		"approvals_count":          progress.Distinct,
		"approval_progress":        r.progress(),
		"start_at":                 formatTime(r.StartAt),
		"auto_approved_by":         r.AutoApprovedBy,
		"kind":                     r.kind(),
		"extends_grant":            r.ExtendsGrant,
		"extend_to":                formatTime(r.ExtendTo),
		"require_approver_reason":  r.RequireReason,
		"approver_max_token_age":   int64(r.ApproverMaxTokenAge.Seconds()),
		"created_at":               formatTime(r.CreatedAt),
		"expires_at":               formatTime(r.ExpiresAt),
		"approved_at":              formatTime(r.ApprovedAt),
		"pickup_by":                formatTime(r.PickupBy),
		"ended_at":                 formatTime(r.endedAt(now)),
		"grant_id":                 r.GrantID,
		"notes":                    access.NonNil(r.Notes),
		"decided_by":               "",
		"decided_by_name":          "",
		"decision_reason":          "",
		"pickup_ttl":               int64(r.PickupTTL.Seconds()),
		"approver_sets_still_open": access.NonNil(progress.Missing),
		"approvals_still_needed":   max(0, progress.Needed-progress.Distinct),
	}
	if r.Decision != nil {
		out["decided_by"] = r.Decision.By.EntityName
		out["decided_by_name"] = r.Decision.By.Person()
		out["decision_reason"] = r.Decision.Reason
	}
	return out
}

// requestEvent describes the request for notify_url.
func requestEvent(r *requestRecord, typ string, now time.Time, actor *access.IdentityRef, reason string) event {
	return event{
		Type: typ, RequestID: r.ID, Role: r.Role, Status: r.status(now), GrantID: r.GrantID,
		Requester: r.Requester.EntityName, RequesterEntity: &r.Requester, RequesterKind: requesterEntity, Actor: actor, Reason: reason,
		Justification: r.Justification, Resources: r.Resources, Permission: r.Permission,
		Approvers: access.ApproverNames(r.Sets), Approvals: r.progress(),
		ExpiresAt: formatTime(r.deadline()), RequesterName: r.Requester.Person(), TTL: int64(r.TTL.Seconds()),
		PickupBy: formatTime(r.PickupBy),
	}
}

func getRequest(ctx context.Context, s logical.Storage, id string) (*requestRecord, error) {
	entry, err := s.Get(ctx, requestStoragePrefix+id)
	if err != nil || entry == nil {
		return nil, err
	}
	r := &requestRecord{}
	if err := entry.DecodeJSON(r); err != nil {
		return nil, fmt.Errorf("decoding request %q: %w", id, err)
	}
	return r, nil
}

func putRequest(ctx context.Context, s logical.Storage, r *requestRecord) error {
	entry, err := logical.StorageEntryJSON(requestStoragePrefix+r.ID, r)
	if err != nil {
		return err
	}
	return s.Put(ctx, entry)
}

// endedMessage explains why an ended request accepts no more actions.
func endedMessage(rec *requestRecord, status string) string {
	switch status {
	case statusGranted:
		return fmt.Sprintf("request %s was already picked up as grant %s", rec.ID, rec.GrantID)
	case statusDenied:
		by := ""
		if rec.Decision != nil {
			by = " by " + rec.Decision.By.EntityName
		}
		return fmt.Sprintf("request %s was denied%s", rec.ID, by)
	case statusCancelled:
		return fmt.Sprintf("request %s was cancelled by its requester", rec.ID)
	case statusExpired:
		if rec.Status == statusApproved || !rec.PickupBy.IsZero() {
			return fmt.Sprintf("request %s expired: it was approved but not picked up by %s (pickup_ttl)", rec.ID, formatTime(rec.PickupBy))
		}
		return fmt.Sprintf("request %s expired unapproved at %s (request_ttl)", rec.ID, formatTime(rec.ExpiresAt))
	}
	return fmt.Sprintf("request %s is %s", rec.ID, status)
}
