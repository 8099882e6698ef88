package access

import (
	"regexp"
	"strings"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/access/window"
)

// RoleNameRe is stricter than framework.GenericNameRegex (which the path pattern uses so
// that a bad name gets a 400 naming the rule instead of "unsupported path").
var RoleNameRe = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9_-]{0,62}[A-Za-z0-9])?$`)

const RoleNameRule = "1 to 64 letters, digits, '_' or '-', starting and ending with a letter or digit"

// Role says what a role may grant and for how long.
type Role struct {
	Resources            []string      `json:"resources"`
	Permissions          []string      `json:"permissions"`
	TTL                  time.Duration `json:"ttl"`
	MaxTTL               time.Duration `json:"max_ttl"`
	TokenBoundCIDRs      []string      `json:"token_bound_cidrs,omitempty"`
	RequireJustification bool          `json:"require_justification"`

	// Access flows (approval.go, path_requests.go). Zero values are the defaults, so roles
	// stored before these fields existed keep granting directly.
	Approval              string        `json:"approval,omitempty"` // "" = none
	Approvers             []string      `json:"approvers,omitempty"`
	ApprovalMode          string        `json:"approval_mode,omitempty"` // "" = any_of
	RequiredApprovals     int           `json:"required_approvals,omitempty"`
	RequestTTL            time.Duration `json:"request_ttl,omitempty"`
	PickupTTL             time.Duration `json:"pickup_ttl,omitempty"`
	RequireApproverReason bool          `json:"require_approver_reason,omitempty"`
	BreakGlass            bool          `json:"break_glass,omitempty"`
	BreakGlassMaxTTL      time.Duration `json:"break_glass_max_ttl,omitempty"`
	// BreakGlassAllowed, when set, names who may use break-glass (group:/entity:).
	BreakGlassAllowed []string `json:"break_glass_allowed,omitempty"`
	// BreakGlassMaxLive is how many live break-glass grants of this role one person may
	// hold: 0 = the default (1), -1 = no limit.
	BreakGlassMaxLive int `json:"break_glass_max_live_grants,omitempty"`
	// ApproverMaxTokenAge, when set, refuses approvals and denials made with a token
	// older than this (or not made by a login).
	ApproverMaxTokenAge time.Duration `json:"approver_max_token_age,omitempty"`
	// OnBehalfAllowed names who may ask for access for someone else (requests/<role> with
	// for=<entity name>): group:/entity: principals (on_behalf.go). Empty: nobody.
	OnBehalfAllowed []string `json:"on_behalf_allowed,omitempty"`
	// Reminders and escalation (escalation.go): a pending request is brought to its
	// approvers again after RemindAfter; after EscalateAfter the EscalateTo principals are
	// added to its approvers, standing in for owners too only with EscalationForOwners.
	RemindAfter         time.Duration `json:"remind_after,omitempty"`
	EscalateAfter       time.Duration `json:"escalate_after,omitempty"`
	EscalateTo          []string      `json:"escalate_to,omitempty"`
	EscalationForOwners bool          `json:"escalation_stands_in_for_owners,omitempty"`

	// Time and rules (role_time.go, auto_approve.go; backend/role_fields.go parses them): the access windows (specs as
	// accesswindow writes them), whether a grant ends with the window it started in,
	// how far ahead a request may be scheduled, and the automatic approval rules.
	AccessWindows    []string          `json:"access_windows,omitempty"`
	WindowsNoCap     bool              `json:"windows_no_cap,omitempty"`
	MaxScheduleAhead time.Duration     `json:"max_schedule_ahead,omitempty"`
	AutoApprove      []AutoApproveRule `json:"auto_approve,omitempty"`
	// ParsedWindows is AccessWindows parsed (getRole, setRoleTimeFields).
	ParsedWindows window.Set `json:"-"`
}

// Defaults of the access-flow fields.
const (
	DefaultRequestTTL       = 24 * time.Hour
	DefaultPickupTTL        = time.Hour
	DefaultBreakGlassMaxTTL = time.Hour
	MaxFlowTTL              = 30 * 24 * time.Hour
	// DefaultBreakGlassMaxLive: one emergency grant per person and role at a time.
	DefaultBreakGlassMaxLive = 1
	MaxBreakGlassMaxLive     = 100
)

func (r *Role) ApprovalSetting() string {
	if r.Approval == "" {
		return ApprovalNone
	}
	return r.Approval
}

func (r *Role) ApprovalRequired() bool { return r.ApprovalSetting() == ApprovalRequired }

func (r *Role) ApprovalModeSetting() string {
	if r.ApprovalMode == "" {
		return ApprovalModeAnyOf
	}
	return r.ApprovalMode
}

func (r *Role) RequiredApprovalCount() int {
	if r.RequiredApprovals <= 0 {
		return 1
	}
	return r.RequiredApprovals
}

func (r *Role) RequestTTLOrDefault() time.Duration { return OrDefault(r.RequestTTL, DefaultRequestTTL) }

func (r *Role) PickupTTLOrDefault() time.Duration { return OrDefault(r.PickupTTL, DefaultPickupTTL) }

func (r *Role) BreakGlassMaxTTLOrDefault() time.Duration {
	return OrDefault(r.BreakGlassMaxTTL, DefaultBreakGlassMaxTTL)
}

// breakGlassMaxLive is how many live break-glass grants of the role one person may hold;
// 0 means no limit.
func (r *Role) BreakGlassMaxLiveOrDefault() int {
	switch {
	case r.BreakGlassMaxLive < 0:
		return 0
	case r.BreakGlassMaxLive == 0:
		return DefaultBreakGlassMaxLive
	}
	return r.BreakGlassMaxLive
}

func OrDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

func (r *Role) ResponseData() map[string]interface{} {
	cidrs := r.TokenBoundCIDRs
	if cidrs == nil {
		cidrs = []string{}
	}
	return map[string]interface{}{
		"resources":             r.Resources,
		"permissions":           r.Permissions,
		"ttl":                   int64(r.TTL.Seconds()),
		"max_ttl":               int64(r.MaxTTL.Seconds()),
		"token_bound_cidrs":     cidrs,
		"require_justification": r.RequireJustification,

		"approval":                        r.ApprovalSetting(),
		"approvers":                       NonNil(r.Approvers),
		"approval_mode":                   r.ApprovalModeSetting(),
		"required_approvals":              r.RequiredApprovalCount(),
		"request_ttl":                     int64(r.RequestTTLOrDefault().Seconds()),
		"pickup_ttl":                      int64(r.PickupTTLOrDefault().Seconds()),
		"require_approver_reason":         r.RequireApproverReason,
		"break_glass":                     r.BreakGlass,
		"break_glass_max_ttl":             int64(r.BreakGlassMaxTTLOrDefault().Seconds()),
		"break_glass_allowed":             NonNil(r.BreakGlassAllowed),
		"break_glass_max_live_grants":     r.BreakGlassMaxLiveOrDefault(),
		"approver_max_token_age":          int64(r.ApproverMaxTokenAge.Seconds()),
		"on_behalf_allowed":               NonNil(r.OnBehalfAllowed),
		"remind_after":                    int64(r.RemindAfter.Seconds()),
		"escalate_after":                  int64(r.EscalateAfter.Seconds()),
		"escalate_to":                     NonNil(r.EscalateTo),
		"escalation_stands_in_for_owners": r.EscalationForOwners,
		"access_windows":                  NonNil(r.AccessWindows),
		"windows_cap_grants":              !r.WindowsNoCap,
		"max_schedule_ahead":              int64(r.MaxScheduleAheadOrDefault().Seconds()),
		"auto_approve":                    AutoApproveData(r.AutoApprove),
	}
}

func NonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func Dedupe(in []string) []string {
	seen := make(map[string]bool, len(in))
	out := make([]string, 0, len(in))
	for _, s := range in {
		s = strings.TrimSpace(s)
		if s == "" || seen[s] {
			continue
		}
		seen[s] = true
		out = append(out, s)
	}
	return out
}
