package access

import (
	"fmt"
	"time"
)

// Request statuses. pending and approved are open; the others have ended.
const (
	StatusPending   = "pending"
	StatusApproved  = "approved"
	StatusGranted   = "granted"
	StatusDenied    = "denied"
	StatusCancelled = "cancelled"
	StatusExpired   = "expired"
)

var RequestStatuses = []string{StatusPending, StatusApproved, StatusGranted, StatusDenied, StatusCancelled, StatusExpired}

// Request is a request as stored. The approval rule (mode, count, approver sets) is
// frozen when the request is made; membership is checked when each approval is given.
type Request struct {
	ID            string        `json:"id"`
	Role          string        `json:"role"`
	Status        string        `json:"status"`
	Requester     IdentityRef   `json:"requester"`
	Resources     []string      `json:"resources"`
	Permission    string        `json:"permission"`
	TTL           time.Duration `json:"ttl"`
	Justification string        `json:"justification,omitempty"`
	Mode          string        `json:"approval_mode"`
	Required      int           `json:"required_approvals"`
	Sets          []ApproverSet `json:"approver_sets"`
	RequireReason bool          `json:"require_approver_reason,omitempty"`
	// ApproverMaxTokenAge is the role's approver_max_token_age, frozen with the rule.
	ApproverMaxTokenAge time.Duration    `json:"approver_max_token_age,omitempty"`
	PickupTTL           time.Duration    `json:"pickup_ttl"`
	Approvals           []ApprovalRecord `json:"approvals,omitempty"`
	// Decision is the denial or cancellation that ended the request.
	Decision *Decision `json:"decision,omitempty"`
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
	// to ExtendTo (grants.ApplyExtension).
	Kind         string    `json:"kind,omitempty"`
	ExtendsGrant string    `json:"extends_grant,omitempty"`
	ExtendTo     time.Time `json:"extend_to,omitempty"`

	// RequestedBy is who asked, when they asked on behalf of Requester (on_behalf.go).
	RequestedBy *IdentityRef `json:"requested_by,omitempty"`

	// Reminder and escalation (escalation.go), frozen from the role; RemindedAt and
	// EscalatedAt record that the periodic job carried them out.
	RemindAt            time.Time `json:"remind_at,omitempty"`
	RemindedAt          time.Time `json:"reminded_at,omitempty"`
	EscalateAt          time.Time `json:"escalate_at,omitempty"`
	EscalateTo          []string  `json:"escalate_to,omitempty"`
	EscalationForOwners bool      `json:"escalation_for_owners,omitempty"`
	EscalatedAt         time.Time `json:"escalated_at,omitempty"`

	// Bundle names the bundle a request asks for (bundle.go); Parts are its role entries,
	// each with its role's approval rule. Role is then BundleRoleName(Bundle), Resources
	// every part's and Permission empty.
	Bundle string        `json:"bundle,omitempty"`
	Parts  []RequestPart `json:"parts,omitempty"`
}

func (r *Request) KindOrAccess() string {
	if r.Kind == "" {
		return "access"
	}
	return r.Kind
}

// PickupFrom is when the pickup window opens: at approval, or at start_at if later.
func (r *Request) PickupFrom() time.Time {
	from := r.ApprovedAt
	if r.StartAt.After(from) {
		from = r.StartAt
	}
	return from
}

// FirstNonZero is a unless it is zero, else b.
func FirstNonZero(a, b time.Time) time.Time {
	if a.IsZero() {
		return b
	}
	return a
}

// Progress is the approvals so far, or the rule that approved the request.
func (r *Request) Progress() string {
	if r.AutoApprovedBy != "" {
		return "approved by rule " + r.AutoApprovedBy
	}
	return r.Rule().Evaluate(r.Approvals).String()
}

type Decision struct {
	By     IdentityRef `json:"by"`
	Reason string      `json:"reason,omitempty"`
	At     time.Time   `json:"at"`
}

func (r *Request) Rule() ApprovalRule {
	rule := ApprovalRule{Mode: r.Mode, Required: r.Required, Sets: r.Sets}
	for _, p := range r.Parts {
		rule.Parts = append(rule.Parts, PartRule{Mode: p.Mode, Required: p.Required, Sets: p.Sets})
	}
	return rule
}

// StatusAt is the request's status at now: an open request past its deadline has expired,
// whether or not the periodic job has recorded it yet.
func (r *Request) StatusAt(now time.Time) string {
	switch {
	case r.Status == StatusPending && !now.Before(r.ExpiresAt):
		return StatusExpired
	case r.Status == StatusApproved && !now.Before(r.PickupBy):
		return StatusExpired
	}
	return r.Status
}

// Deadline is when the request's current open phase ends (zero once it has ended).
func (r *Request) Deadline() time.Time {
	switch r.Status {
	case StatusPending:
		return r.ExpiresAt
	case StatusApproved:
		return r.PickupBy
	}
	return time.Time{}
}

// EndedAtOrNow is when the request ended, or zero while it is open.
func (r *Request) EndedAtOrNow(now time.Time) time.Time {
	if s := r.StatusAt(now); s == StatusPending || s == StatusApproved {
		return time.Time{}
	}
	if r.EndedAt.IsZero() {
		return r.Deadline() // expired and not yet recorded
	}
	return r.EndedAt
}

// VisibleTo reports whether a person may see the request: its requester, who asked for it
// on the requester's behalf, a member of one of its approver sets now, or someone who
// approved or decided it. Everyone else needs
// the operator's audit/requests paths.
func (r *Request) VisibleTo(id *Identity) bool {
	switch {
	case id == nil:
		return false
	case r.IsParty(id.EntityID), r.ApprovedBy(id.EntityID), r.Decision != nil && r.Decision.By.EntityID == id.EntityID:
		return true
	}
	return len(QualifyingSets(id, r.Sets)) > 0
}

func (r *Request) ApprovedBy(entityID string) bool {
	for _, a := range r.Approvals {
		if a.Approver.EntityID == entityID {
			return true
		}
	}
	return false
}

func FormatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// Summary is a list entry: who, what, where it stands and until when.
func (r *Request) Summary(now time.Time) map[string]interface{} {
	status := r.StatusAt(now)
	deadline := ""
	if status == StatusPending || status == StatusApproved {
		deadline = FormatTime(r.Deadline())
	}
	var approvedBy []string
	for _, a := range r.Approvals {
		approvedBy = append(approvedBy, a.Approver.Person())
	}
	out := map[string]interface{}{
		"request_id":             r.ID,
		"role":                   r.Role,
		"requester":              r.Requester.EntityName,
		"requester_name":         r.Requester.Person(),
		"requester_display_name": r.Requester.DisplayName,
		"ttl":                    int64(r.TTL.Seconds()),
		"justification":          r.Justification,
		"approvers":              ApproverNames(r.Sets),
		"approved_by":            NonNil(approvedBy),
		"status":                 status,
		"resources":              r.Resources,
		"permission":             r.Permission,
		"approvals":              r.Progress(),
		"start_at":               FormatTime(r.StartAt),
		"auto_approved_by":       r.AutoApprovedBy,
		"kind":                   r.KindOrAccess(),
		"extends_grant":          r.ExtendsGrant,
		"expires_at":             deadline,
		"created_at":             FormatTime(r.CreatedAt),
	}
	r.requestedByData(out)
	out["bundle"] = r.Bundle
	return out
}

// Data is everything a read shows.
func (r *Request) Data(now time.Time) map[string]interface{} {
	progress := r.Rule().Evaluate(r.Approvals)
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
			"must_approve": s.MustApprove(r.modeOfSet(i)), "resources": NonNil(s.Resources), "resource_count": s.ResourceCount,
			"escalation": s.Escalation,
		})
	}
	out := map[string]interface{}{
		"request_id":               r.ID,
		"id":                       r.ID, // vault write -field=request_id prints Vault's own request ID
		"role":                     r.Role,
		"status":                   r.StatusAt(now),
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
		"approvers":                ApproverNames(r.Sets),
		"approver_sets":            sets,
		"approvals":                ApprovalsData(r.Approvals),
		"approvals_count":          progress.Distinct,
		"approval_progress":        r.Progress(),
		"start_at":                 FormatTime(r.StartAt),
		"auto_approved_by":         r.AutoApprovedBy,
		"kind":                     r.KindOrAccess(),
		"extends_grant":            r.ExtendsGrant,
		"extend_to":                FormatTime(r.ExtendTo),
		"require_approver_reason":  r.RequireReason,
		"approver_max_token_age":   int64(r.ApproverMaxTokenAge.Seconds()),
		"created_at":               FormatTime(r.CreatedAt),
		"expires_at":               FormatTime(r.ExpiresAt),
		"approved_at":              FormatTime(r.ApprovedAt),
		"pickup_by":                FormatTime(r.PickupBy),
		"ended_at":                 FormatTime(r.EndedAtOrNow(now)),
		"grant_id":                 r.GrantID,
		"notes":                    NonNil(r.Notes),
		"decided_by":               "",
		"decided_by_name":          "",
		"decision_reason":          "",
		"pickup_ttl":               int64(r.PickupTTL.Seconds()),
		"approver_sets_still_open": NonNil(progress.Missing),
		"approvals_still_needed":   max(0, progress.Needed-progress.Distinct),
	}
	r.requestedByData(out)
	out["remind_at"], out["reminded_at"] = FormatTime(r.RemindAt), FormatTime(r.RemindedAt)
	out["escalate_at"], out["escalated_at"] = FormatTime(r.EscalateAt), FormatTime(r.EscalatedAt)
	out["escalate_to"] = NonNil(r.EscalateTo)
	out["bundle"] = r.Bundle
	if r.IsBundle() {
		out["parts"] = r.partsData()
	}
	if r.Decision != nil {
		out["decided_by"] = r.Decision.By.EntityName
		out["decided_by_name"] = r.Decision.By.Person()
		out["decision_reason"] = r.Decision.Reason
	}
	return out
}

// EndedMessage explains why an ended request accepts no more actions.
func (rec *Request) EndedMessage(status string) string {
	switch status {
	case StatusGranted:
		return fmt.Sprintf("request %s was already picked up as grant %s", rec.ID, rec.GrantID)
	case StatusDenied:
		by := ""
		if rec.Decision != nil {
			by = " by " + rec.Decision.By.EntityName
		}
		return fmt.Sprintf("request %s was denied%s", rec.ID, by)
	case StatusCancelled:
		return fmt.Sprintf("request %s was cancelled by its requester", rec.ID)
	case StatusExpired:
		if rec.Status == StatusApproved || !rec.PickupBy.IsZero() {
			return fmt.Sprintf("request %s expired: it was approved but not picked up by %s (pickup_ttl)", rec.ID, FormatTime(rec.PickupBy))
		}
		return fmt.Sprintf("request %s expired unapproved at %s (request_ttl)", rec.ID, FormatTime(rec.ExpiresAt))
	}
	return fmt.Sprintf("request %s is %s", rec.ID, status)
}
