package notify

import (
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/access"
)

// GrantEvent describes the grant for notify_url.
func GrantEvent(g *access.Grant, typ string) Event {
	return Event{
		Type: typ, GrantID: g.ID, Role: g.Role, Bundle: g.Bundle, RequestID: g.RequestID,
		Requester: g.Requester, RequesterEntity: g.RequesterEntity, RequesterKind: g.RequesterKindOrStated(), StatedBy: g.StatedBy,
		Justification: g.Justification, Resources: g.Resources, Permission: g.Permission,
		ExpiresAt: g.ExpiresAt.UTC().Format(time.RFC3339), BreakGlass: g.BreakGlass,
		TTL: int64(g.ExpiresAt.Sub(g.IssuedAt).Seconds()), RequesterName: g.RequesterName(),
		RequestedBy: g.RequestedBy,
	}
}

// RequestEvent describes the request for notify_url.
func RequestEvent(r *access.Request, typ string, now time.Time, actor *access.IdentityRef, reason string) Event {
	ev := Event{
		Type: typ, RequestID: r.ID, Role: r.Role, Bundle: r.Bundle, Status: r.StatusAt(now), GrantID: r.GrantID,
		Requester: r.Requester.EntityName, RequesterEntity: &r.Requester, RequesterKind: access.RequesterEntity, Actor: actor, Reason: reason,
		Justification: r.Justification, Resources: r.Resources, Permission: r.Permission,
		Approvers: access.ApproverNames(r.Sets), Approvals: r.Progress(),
		ExpiresAt: access.FormatTime(r.Deadline()), RequesterName: r.Requester.Person(), TTL: int64(r.TTL.Seconds()),
		PickupBy: access.FormatTime(r.PickupBy),
	}
	if r.OnBehalf() {
		by := *r.RequestedBy
		ev.RequestedBy = &by
	}
	return ev
}
