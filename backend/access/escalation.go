package access

import (
	"fmt"
	"time"
)

// Reminders and escalation: a pending request nobody has decided is brought to its
// approvers again after the role's remind_after, and after escalate_after the
// escalate_to principals are added to its approvers. Both are frozen into the request
// when it is made (RemindAt, EscalateAt, EscalateTo) and carried out once each by the
// periodic job (sweep), which records when (RemindedAt, EscalatedAt).

// MinFlowTimer is the least remind_after and escalate_after: the periodic job that
// carries them out runs about once a minute.
const MinFlowTimer = time.Minute

// SetSourceEscalation marks the approver set escalation added.
const SetSourceEscalation = "escalation"

// CheckEscalation validates the role's reminder and escalation fields together.
func CheckEscalation(r *Role) string {
	if r.RemindAfter != 0 && r.RemindAfter < MinFlowTimer {
		return fmt.Sprintf("remind_after must be at least %s (or 0: no reminder), got %s", MinFlowTimer, r.RemindAfter)
	}
	if r.EscalateAfter != 0 && r.EscalateAfter < MinFlowTimer {
		return fmt.Sprintf("escalate_after must be at least %s (or 0: no escalation), got %s", MinFlowTimer, r.EscalateAfter)
	}
	if (r.EscalateAfter > 0) != (len(r.EscalateTo) > 0) {
		return "escalate_after and escalate_to go together: escalate_to names who is added to the approvers (group:<name>, entity:<name>) after escalate_after"
	}
	if msg := ValidatePrincipals("escalate_to", r.EscalateTo); msg != "" {
		return msg
	}
	ttl := r.RequestTTLOrDefault()
	for _, f := range []struct {
		name string
		d    time.Duration
	}{{"remind_after", r.RemindAfter}, {"escalate_after", r.EscalateAfter}} {
		if f.d >= ttl {
			return fmt.Sprintf("%s (%s) must be shorter than request_ttl (%s): a request expires before it", f.name, f.d, ttl)
		}
	}
	if r.EscalationForOwners && r.EscalateAfter == 0 {
		return "escalation_stands_in_for_owners needs escalate_after and escalate_to"
	}
	return ""
}

// FreezeEscalation sets a new request's reminder and escalation from its role.
func (r *Request) FreezeEscalation(role *Role) {
	if role.RemindAfter > 0 {
		r.RemindAt = r.CreatedAt.Add(role.RemindAfter)
	}
	if role.EscalateAfter > 0 {
		r.EscalateAt = r.CreatedAt.Add(role.EscalateAfter)
		r.EscalateTo = append([]string(nil), role.EscalateTo...)
		r.EscalationForOwners = role.EscalationForOwners
	}
}

// RemindDue is when the request's reminder is due, or zero when there is none to send.
func (r *Request) RemindDue() time.Time {
	if r.Status != StatusPending || r.RemindAt.IsZero() || !r.RemindedAt.IsZero() {
		return time.Time{}
	}
	return r.RemindAt
}

// EscalateDue is when the request's escalation is due, or zero when there is none.
func (r *Request) EscalateDue() time.Time {
	if r.Status != StatusPending || r.EscalateAt.IsZero() || !r.EscalatedAt.IsZero() {
		return time.Time{}
	}
	return r.EscalateAt
}

// Escalate adds the escalation set to the request's approvers and records when. It
// stands in for every set that is not an owner set, and for owner sets too only when
// the role says so (escalation_stands_in_for_owners).
func (r *Request) Escalate(now time.Time) error {
	principals := make([]Principal, 0, len(r.EscalateTo))
	for _, s := range r.EscalateTo {
		p, err := ParsePrincipal(s)
		if err != nil {
			return fmt.Errorf("escalate_to of request %s: %w", r.ID, err)
		}
		principals = append(principals, p)
	}
	r.Sets = append(r.Sets, ApproverSet{
		Label:      "escalation after " + r.EscalateAt.Sub(r.CreatedAt).String(),
		Principals: principals,
		Source:     SetSourceEscalation,
		Escalation: true,
		ForOwners:  r.EscalationForOwners,
	})
	r.EscalatedAt = now
	return nil
}
