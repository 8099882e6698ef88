// The index entries each record belongs in.

package store

import (
	"maps"
	"slices"

	"github.com/apono-io/vault-plugin-apono/backend/access"
)

// The sets a live grant belongs to (pages.go):
//
//	grant/all                   every live grant, newest first
//	grant/role/<role>           by role
//	grant/requester/<who>       by requester: e<entity> for a person, s<hash> for a
//	                            requester a service stated
//	grant/expiry                by expires_at, for the orphan sweeper
//
// The entries are added before the record is stored (grants.Issue) and removed after it
// is deleted (grants.Remove); a renewal moves the expiry entry the same way.
//
// GrantEntries are the entries of live grant g.
func GrantEntries(g *access.Grant) []Entry {
	k := NewestFirstKey(g.IssuedAt, g.ID)
	return []Entry{
		{"grant/all", k},
		{"grant/role/" + g.Role, k},
		{"grant/requester/" + GrantRequesterKey(g), k},
		{"grant/expiry", TimeKey(g.ExpiresAt, g.ID)},
	}
}

// GrantRequesterKey is the requester's part of a grant's set name.
func GrantRequesterKey(g *access.Grant) string {
	if g.RequesterEntity != nil && g.RequesterEntity.EntityID != "" && g.RequesterKindOrStated() == access.RequesterEntity {
		return "e" + EntityKey(g.RequesterEntity.EntityID)
	}
	return "s" + HashedName(g.Requester)
}

func RequestEntries(r *access.Request) []Entry {
	k := NewestFirstKey(r.CreatedAt, r.ID)
	out := []Entry{
		{"req/all", k},
		{"req/status/" + r.Status, k},
		{"req/role/" + r.Role, k},
	}
	// Who may see it, each also by status, so a person's status filter reads only
	// requests of that status.
	for _, v := range VisibilityKeys(r) {
		out = append(out, Entry{"req/" + v, k}, Entry{"req/" + v + "/status/" + r.Status, k})
	}
	if r.Status == access.StatusPending {
		for _, p := range access.ApproverNames(r.Sets) {
			out = append(out, Entry{"req/open-principal/" + HashedName(p), k})
		}
	}
	// The reminder and escalation still to carry out (sweep.TidyRequests).
	if t := r.RemindDue(); !t.IsZero() {
		out = append(out, Entry{"req/remind", TimeKey(t, r.ID)})
	}
	if t := r.EscalateDue(); !t.IsZero() {
		out = append(out, Entry{"req/escalate", TimeKey(t, r.ID)})
	}
	if d := r.Deadline(); !d.IsZero() {
		out = append(out, Entry{"req/deadline", TimeKey(d, r.ID)})
	} else {
		ended := r.EndedAt
		if ended.IsZero() {
			ended = r.CreatedAt
		}
		out = append(out, Entry{"req/ended", TimeKey(ended, r.ID)})
	}
	return out
}

// VisibilityKeys name who may see r (visibleTo): its requester (and who asked on their
// behalf), each principal of its approver sets, each entity that approved or decided it.
func VisibilityKeys(r *access.Request) []string {
	out := []string{"requester/" + EntityKey(r.Requester.EntityID)}
	if r.OnBehalf() {
		out = append(out, "requester/"+EntityKey(r.RequestedBy.EntityID))
	}
	for _, p := range access.ApproverNames(r.Sets) {
		out = append(out, "principal/"+HashedName(p))
	}
	deciders := map[string]bool{}
	for _, a := range r.Approvals {
		deciders[a.Approver.EntityID] = true
	}
	if r.Decision != nil {
		deciders[r.Decision.By.EntityID] = true
	}
	for _, id := range slices.Sorted(maps.Keys(deciders)) {
		if id != "" {
			out = append(out, "decider/"+EntityKey(id))
		}
	}
	return out
}

// StatusSets are the sets holding the requests whose status at a moment is status: an
// open request past its deadline counts as expired before the periodic job records it.
func StatusSets(status string) []string {
	if status == access.StatusExpired {
		return []string{"req/status/" + access.StatusExpired, "req/status/" + access.StatusPending, "req/status/" + access.StatusApproved}
	}
	return []string{"req/status/" + status}
}

// CallerPrincipals are the principal strings id belongs to: its entity and each group.
func CallerPrincipals(id *access.Identity) []string {
	out := []string{access.Principal{Kind: access.PrincipalEntity, Name: id.EntityName}.String()}
	for _, g := range id.Groups {
		out = append(out, access.Principal{Kind: access.PrincipalGroup, Name: g}.String())
	}
	return out
}
