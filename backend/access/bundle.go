package access

import (
	"fmt"
	"slices"
	"time"
)

// Bundles: a named list of role entries (role, resources, permission) a person asks for
// at once. The request is one request with one part per entry: each part keeps its own
// role's approval rule (mode, required_approvals, approver sets), and the request is
// approved when every part is. The pickup gives one login whose policy covers every part
// and whose lease ends all of it together. Where the roles' settings differ the strictest
// wins (Strictest).

// BundleRolePrefix starts the role name of a bundle's requests and grants
// ("bundle:<name>"): role names cannot hold a colon, so no role is ever taken for a
// bundle, and the indexes, lists, events and history by role keep working.
const BundleRolePrefix = "bundle:"

// MaxBundleParts bounds a bundle's role entries.
const MaxBundleParts = 10

// Bundle is a bundle as stored (store.BundleStoragePrefix).
type Bundle struct {
	Description string        `json:"description,omitempty"`
	Parts       []BundlePart  `json:"parts"`
	TTL         time.Duration `json:"ttl"`
	// Reminder and escalation, as a role's (escalation.go).
	RemindAfter         time.Duration `json:"remind_after,omitempty"`
	EscalateAfter       time.Duration `json:"escalate_after,omitempty"`
	EscalateTo          []string      `json:"escalate_to,omitempty"`
	EscalationForOwners bool          `json:"escalation_stands_in_for_owners,omitempty"`
}

// BundlePart is one role entry of a bundle.
type BundlePart struct {
	Role string `json:"role"`
	// Resources are a subset of the role's (nil: all of them).
	Resources []string `json:"resources,omitempty"`
	// Permission is one of the role's ("": its first).
	Permission string `json:"permission,omitempty"`
}

// BundleRoleName is the role name a bundle's requests and grants carry.
func BundleRoleName(bundle string) string { return BundleRolePrefix + bundle }

// BundleName is the bundle a role name stands for ("" for a role).
func BundleName(role string) string {
	if len(role) > len(BundleRolePrefix) && role[:len(BundleRolePrefix)] == BundleRolePrefix {
		return role[len(BundleRolePrefix):]
	}
	return ""
}

// FlowRole is the role whose reminder and escalation fields are the bundle's, so the
// same checks and freezing apply (CheckEscalation, FreezeEscalation).
func (b *Bundle) FlowRole(requestTTL time.Duration) *Role {
	return &Role{RemindAfter: b.RemindAfter, EscalateAfter: b.EscalateAfter, EscalateTo: b.EscalateTo,
		EscalationForOwners: b.EscalationForOwners, RequestTTL: requestTTL}
}

// CheckBundleRoles checks a bundle's parts against their roles (roles[i] is part i's, nil
// when it does not exist) and returns a 400 message, or "". A bundle holds only roles that
// require approval: a bundle must never grant without approval what its roles would not.
func CheckBundleRoles(parts []BundlePart, roles []*Role) string {
	if len(parts) == 0 {
		return "parts: a bundle needs at least one role entry"
	}
	if len(parts) > MaxBundleParts {
		return fmt.Sprintf("parts: at most %d role entries are allowed, got %d", MaxBundleParts, len(parts))
	}
	seen := map[string]int{}
	for i, p := range parts {
		where := fmt.Sprintf("parts[%d] (role %q)", i, p.Role)
		switch r := roles[i]; {
		case r == nil:
			return where + ": no such role"
		case !r.ApprovalRequired():
			return where + ": the role grants without approval; a bundle holds only roles with approval=required, so that what it grants is always approved"
		case p.Permission != "" && !slices.Contains(r.Permissions, p.Permission):
			return fmt.Sprintf("%s: permission %q is not allowed by the role (allowed: %v)", where, p.Permission, r.Permissions)
		}
		permission := p.Permission
		if permission == "" && len(roles[i].Permissions) > 0 {
			permission = roles[i].Permissions[0] // what the part gets: the role's first
		}
		key := p.Role + "|" + permission
		if j, dup := seen[key]; dup {
			return fmt.Sprintf("%s: the same role and permission as parts[%d]; name the resources of both in one entry", where, j)
		}
		seen[key] = i
	}
	return ""
}

// Strictest is what a bundle request takes from its parts' roles: where they differ, the
// strictest setting.
type Strictest struct {
	RequireJustification  bool
	RequireApproverReason bool
	ApproverMaxTokenAge   time.Duration // 0: none
	RequestTTL, PickupTTL time.Duration
	MaxScheduleAhead      time.Duration
	BoundCIDRs            []string
}

// StrictestOf combines the roles of a bundle's parts; msg is a 400 when they cannot be
// combined (token_bound_cidrs that differ).
func StrictestOf(roles []*Role) (s Strictest, msg string) {
	for i, r := range roles {
		s.RequireJustification = s.RequireJustification || r.RequireJustification
		s.RequireApproverReason = s.RequireApproverReason || r.RequireApproverReason
		if a := r.ApproverMaxTokenAge; a > 0 && (s.ApproverMaxTokenAge == 0 || a < s.ApproverMaxTokenAge) {
			s.ApproverMaxTokenAge = a
		}
		if i == 0 {
			s.RequestTTL, s.PickupTTL, s.MaxScheduleAhead = r.RequestTTLOrDefault(), r.PickupTTLOrDefault(), r.MaxScheduleAheadOrDefault()
		}
		s.RequestTTL = min(s.RequestTTL, r.RequestTTLOrDefault())
		s.PickupTTL = min(s.PickupTTL, r.PickupTTLOrDefault())
		s.MaxScheduleAhead = min(s.MaxScheduleAhead, r.MaxScheduleAheadOrDefault())
		if len(r.TokenBoundCIDRs) > 0 {
			if len(s.BoundCIDRs) > 0 && !slices.Equal(slices.Sorted(slices.Values(s.BoundCIDRs)), slices.Sorted(slices.Values(r.TokenBoundCIDRs))) {
				return s, fmt.Sprintf("the roles' token_bound_cidrs differ (%v and %v): one login cannot be bound to both; bundle roles that agree", s.BoundCIDRs, r.TokenBoundCIDRs)
			}
			s.BoundCIDRs = r.TokenBoundCIDRs
		}
	}
	return s, ""
}

// RequestPart is one part of a bundle request: what it asks of one role, and that role's
// approval rule over its own sets (indexes into the request's Sets).
type RequestPart struct {
	Role       string   `json:"role"`
	Resources  []string `json:"resources"`
	Permission string   `json:"permission"`
	Mode       string   `json:"approval_mode"`
	Required   int      `json:"required_approvals"`
	Sets       []int    `json:"approver_sets"`
}

// PartRule is a part's approval rule inside a bundle request's ApprovalRule.
type PartRule struct {
	Mode     string
	Required int
	Sets     []int
}

// IsBundle reports whether the request asks for a bundle.
func (r *Request) IsBundle() bool { return len(r.Parts) > 0 }

// partRule is part p's rule over its own sets and the escalation sets (which stand in
// for every part), with approvals mapped to those sets.
func (rule ApprovalRule) partRule(p PartRule, approvals []ApprovalRecord) (ApprovalRule, []ApprovalRecord) {
	index := map[int]int{}
	sub := ApprovalRule{Mode: p.Mode, Required: p.Required}
	add := func(i int) {
		if i >= 0 && i < len(rule.Sets) {
			if _, dup := index[i]; !dup {
				index[i] = len(sub.Sets)
				sub.Sets = append(sub.Sets, rule.Sets[i])
			}
		}
	}
	for _, i := range p.Sets {
		add(i)
	}
	for i, s := range rule.Sets {
		if s.Escalation {
			add(i)
		}
	}
	mapped := make([]ApprovalRecord, 0, len(approvals))
	for _, a := range approvals {
		var sets []int
		for _, i := range a.Sets {
			if j, ok := index[i]; ok {
				sets = append(sets, j)
			}
		}
		a.Sets = sets
		mapped = append(mapped, a)
	}
	return sub, mapped
}

// evaluateParts is Evaluate for a bundle request: satisfied when every part's rule is.
// The counts add up the parts' (Needed: the largest part's), Missing names every set
// still open.
func (rule ApprovalRule) evaluateParts(approvals []ApprovalRecord) (ApprovalProgress, []ApprovalProgress) {
	total := ApprovalProgress{Satisfied: true, Owners: true}
	entities := map[string]bool{}
	parts := make([]ApprovalProgress, 0, len(rule.Parts))
	for _, p := range rule.Parts {
		sub, mapped := rule.partRule(p, approvals)
		got := sub.Evaluate(mapped)
		parts = append(parts, got)
		total.Satisfied = total.Satisfied && got.Satisfied
		total.Owners = total.Owners && got.Owners
		total.Needed = max(total.Needed, got.Needed)
		total.SetsCovered += got.SetsCovered
		total.SetsTotal += got.SetsTotal
		total.Missing = append(total.Missing, got.Missing...)
		for _, a := range mapped {
			if len(a.Sets) > 0 && a.Approver.EntityID != "" {
				entities[a.Approver.EntityID] = true
			}
		}
	}
	total.Distinct = len(entities)
	return total, parts
}

// Part is part i of a bundle request seen as a request of its own: its role, resources,
// permission and approval rule, its own sets (and the escalation sets), and the approvals
// mapped onto them. It shares nothing it could change with r.
func (r *Request) Part(i int) *Request {
	p := r.Parts[i]
	sub, approvals := r.Rule().partRule(PartRule{Mode: p.Mode, Required: p.Required, Sets: p.Sets}, r.Approvals)
	view := *r
	view.Role, view.Resources, view.Permission = p.Role, p.Resources, p.Permission
	view.Mode, view.Required, view.Sets, view.Approvals, view.Parts = sub.Mode, sub.Required, sub.Sets, approvals, nil
	return &view
}

// partsData is what a read shows of a bundle request's parts: each one's role, what it
// asks, who approves it and whether it is approved yet.
func (r *Request) partsData() []map[string]interface{} {
	_, progress := r.Rule().evaluateParts(r.Approvals)
	out := make([]map[string]interface{}, 0, len(r.Parts))
	for i, p := range r.Parts {
		var names []string
		for _, j := range p.Sets {
			if j >= 0 && j < len(r.Sets) {
				names = append(names, r.Sets[j].Label)
			}
		}
		out = append(out, map[string]interface{}{
			"role": p.Role, "resources": NonNil(p.Resources), "permission": p.Permission,
			"approval_mode": p.Mode, "required_approvals": progress[i].Needed, "approver_sets": p.Sets,
			"approver_set_labels": NonNil(names), "approved": progress[i].Satisfied, "progress": progress[i].String(),
			"approvers": ApproverNames(r.Part(i).Sets),
		})
	}
	return out
}

// modeOfSet is the approval mode set i is counted under: its part's, in a bundle request.
func (r *Request) modeOfSet(i int) string {
	for _, p := range r.Parts {
		if slices.Contains(p.Sets, i) {
			return p.Mode
		}
	}
	return r.Mode
}

// BundleWindowCheck is WindowCheck for every part's role at t: msg when any role's
// windows are closed; end is the earliest end of an open window that caps its grant, and
// windows that role's windows (the grant's renewals keep to them).
func BundleWindowCheck(parts []BundlePart, roles []*Role, t time.Time) (end time.Time, windows []string, msg string) {
	for i, r := range roles {
		e, msg := r.WindowCheck(parts[i].Role, t)
		if msg != "" {
			return time.Time{}, nil, msg
		}
		if !e.IsZero() && (end.IsZero() || e.Before(end)) {
			end, windows = e, r.AccessWindows
		}
	}
	return end, windows, ""
}

// BundleFromRequest is the bundle a request froze: its parts as asked, and its ttl. A
// pickup checks these, not the bundle as it is now.
func BundleFromRequest(r *Request) *Bundle {
	b := &Bundle{TTL: r.TTL}
	for _, p := range r.Parts {
		b.Parts = append(b.Parts, BundlePart{Role: p.Role, Resources: p.Resources, Permission: p.Permission})
	}
	return b
}

// AddPart adds a part to a bundle request: role (named roleName) asked for resources at
// permission, approved under the role's own rule by sets, which join the request's sets
// labelled with the role, as do the notes about how they were found.
func (r *Request) AddPart(roleName string, role *Role, resources []string, permission string, sets []ApproverSet, notes []string) {
	p := RequestPart{Role: roleName, Resources: resources, Permission: permission,
		Mode: role.ApprovalModeSetting(), Required: role.RequiredApprovalCount()}
	r.Resources = append(r.Resources, resources...)
	for _, s := range sets {
		s.Label = partLabel(roleName, s.Label)
		p.Sets = append(p.Sets, len(r.Sets))
		r.Sets = append(r.Sets, s)
	}
	for _, n := range notes {
		r.Notes = append(r.Notes, partLabel(roleName, n))
	}
	r.Parts = append(r.Parts, p)
}

// partLabel names a set of a bundle request's part for people: the role, then the set.
func partLabel(role, label string) string { return role + ": " + label }
