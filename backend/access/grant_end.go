package access

import (
	"fmt"
	"time"
)

// Extension is one approved extension, in the grant's record.
type Extension struct {
	RequestID string           `json:"request_id"`
	Until     time.Time        `json:"until"`
	Approvals []ApprovalRecord `json:"approvals,omitempty"`
	At        time.Time        `json:"at"`
}

// MaxEnd is the latest the grant may be renewed to now: issue plus max_ttl, or an
// approved extension's end.
func (g *Grant) MaxEnd() time.Time {
	if g.ExtendedUntil.After(g.MaxExpiresAt) {
		return g.ExtendedUntil
	}
	return g.MaxExpiresAt
}

const EndReasonWindow = "the end of its access window"

// EndReason names what sets end, the most the grant may last now, for a requester.
func (g *Grant) EndReason(end time.Time) string {
	switch {
	case !g.WindowEnd.IsZero() && !g.WindowEnd.After(end):
		return EndReasonWindow
	case g.ExtendedUntil.After(g.MaxExpiresAt):
		return "an approved extension"
	case g.LifetimeApproved:
		return "the lifetime approved for request " + g.RequestID
	}
	return "the role's max_ttl"
}

// RenewLimitWarning is the warning of a renewal cut short at end. A grant picked up from a
// request is told how to get more time: an extension, approved as such.
func (g *Grant) RenewLimitWarning(end time.Time) string {
	reason := g.EndReason(end)
	w := fmt.Sprintf("grant reached the most it may last (%s); it ends at %s", reason, end.Format(time.RFC3339))
	if g.RequestID != "" && reason != EndReasonWindow {
		w += fmt.Sprintf(": more time needs an extension (grants/%s/%s/extend), approved as such", g.Role, g.ID)
	}
	return w
}
