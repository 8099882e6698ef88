package backend

import (
	"fmt"
	"strings"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/apono-io/vault-plugin-apono/backend/access/window"
	"github.com/apono-io/vault-plugin-apono/internal/textsafe"
	"github.com/hashicorp/vault/sdk/framework"
)

// Access flows that follow time: access windows (accesswindow/) and scheduled requests.
//
// A role's access_windows say when its access may be had. A request (at its start_at
// when it has one), a pickup and a renewal outside every window are refused with the
// next window's start; a grant's lease and its user's token TTLs end, at the latest,
// when the window it started in ends (unless windows_cap_grants=false). Break-glass
// ignores the windows and its grant says so.
//
// A request may carry start_at, at most max_schedule_ahead (default 7 days) ahead. It is
// approved as any other; it can be picked up from start_at until start_at + pickup_ttl,
// and the grant ends at most ttl after start_at.

// setRoleTimeFields applies access_windows, windows_cap_grants, max_schedule_ahead and
// auto_approve; msg is a 400.
func setRoleTimeFields(role *access.Role, d *framework.FieldData) string {
	if v, ok := d.GetOk("access_windows"); ok {
		set, err := window.ParseList(v.([]string))
		if err != nil {
			return err.Error()
		}
		role.AccessWindows, role.ParsedWindows = set.Strings(), set
	}
	if v, ok := d.GetOk("windows_cap_grants"); ok {
		role.WindowsNoCap = !v.(bool)
	}
	if v, ok := d.GetOk("max_schedule_ahead"); ok {
		ahead := time.Duration(v.(int)) * time.Second
		if ahead <= 0 || ahead > access.MaxFlowTTL {
			return fmt.Sprintf("max_schedule_ahead must be more than 0 and at most %s, got %s", access.MaxFlowTTL, ahead)
		}
		role.MaxScheduleAhead = ahead
	}
	if v, ok := d.GetOk("auto_approve"); ok {
		rules, msg := access.ParseAutoApprove(v.(string))
		if msg != "" {
			return "auto_approve: " + msg
		}
		role.AutoApprove = rules
	}
	return ""
}

// parseStartAt reads start_at; msg is a 400.
func parseStartAt(roleName string, role *access.Role, raw string, now time.Time) (time.Time, string) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return time.Time{}, ""
	}
	t, err := time.Parse(time.RFC3339, raw)
	if err != nil {
		return time.Time{}, fmt.Sprintf("start_at %q is not an RFC 3339 time such as 2026-12-02T08:00:00+01:00", textsafe.Truncate(raw))
	}
	if !t.After(now) {
		return time.Time{}, fmt.Sprintf("start_at %s is not in the future; leave it out for access now", t.UTC().Format(time.RFC3339))
	}
	if ahead := role.MaxScheduleAheadOrDefault(); t.Sub(now) > ahead {
		return time.Time{}, fmt.Sprintf("start_at %s is more than %s ahead (role %q's max_schedule_ahead)", t.UTC().Format(time.RFC3339), ahead, roleName)
	}
	return t.UTC(), ""
}

// escalationFields are the reminder and escalation fields of roles and bundles.
func escalationFields() map[string]*framework.FieldSchema {
	return map[string]*framework.FieldSchema{
		"remind_after": {
			Type: framework.TypeDurationSecond,
			Description: fmt.Sprintf("Tell the approvers of a request again, through the same notification targets, when nobody has "+
				"decided it this long after it was made (at least %s, shorter than request_ttl). 0 (the default): no reminder.", access.MinFlowTimer),
			DisplayAttrs: &framework.DisplayAttributes{Name: "Remind after"},
		},
		"escalate_after": {
			Type: framework.TypeDurationSecond,
			Description: fmt.Sprintf("Add escalate_to to the approvers of a request still pending this long after it was made (at least %s, "+
				"shorter than request_ttl); recorded with the time and shown to everyone in the flow. 0 (the default): no escalation.", access.MinFlowTimer),
			DisplayAttrs: &framework.DisplayAttributes{Name: "Escalate after"},
		},
		"escalate_to": {
			Type: framework.TypeCommaStringSlice,
			Description: "Who is added to the approvers at escalate_after: group:<identity group name> and entity:<entity name>. " +
				"Their approval stands in for the role's approvers; what owners must approve stays so unless escalation_stands_in_for_owners.",
		},
		"escalation_stands_in_for_owners": {
			Type:        framework.TypeBool,
			Description: "Let an escalation approver approve in place of resource owners too. Default: false (owners keep their veto).",
		},
	}
}
