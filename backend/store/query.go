package store

import (
	"context"
	"strings"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/hashicorp/vault/sdk/logical"
)

// The sets a request belongs to (pages.go), for the questions people ask of them:
//
//	req/all                        every request, newest first
//	req/status/<status>            by stored status (an open request past its deadline
//	                               is expired before the periodic job records it: see
//	                               statusSets)
//	req/role/<role>                by role
//	req/requester/<entity>         by requester (mine=true), and by who asked for
//	                               a request made on the requester's behalf
//	req/principal/<hash>           by each principal of its approver sets: who may see it
//	req/decider/<entity>           by who approved or decided it: they may see it
//	req/<one of those three>/status/<status>
//	                               the same by status: a person's status filter
//	req/open-principal/<hash>      by principal, while pending: can_approve=true
//	req/deadline                   open requests by the end of their current wait
//	req/ended                      ended requests by when they ended (retention)
//
// All but the last two hold newestFirstKey(created_at, id); those timeKey(when, id).

// RequestQuery is a validated list of requests: who lists (Caller; nil for the operator's
// audit/requests, which sees all) and the filter they sent.
type RequestQuery struct {
	Status, Role     string
	Mine, CanApprove bool
	Caller           *access.Identity
}

// Matches reports whether r, as it stands at now, is in the answer.
func (f *RequestQuery) Matches(r *access.Request, now time.Time) bool {
	status := r.StatusAt(now)
	switch {
	case f.Caller != nil && !r.VisibleTo(f.Caller),
		f.Status != "" && status != f.Status,
		f.Role != "" && r.Role != f.Role,
		f.Mine && !r.IsParty(f.Caller.EntityID):
		return false
	case f.CanApprove:
		return status == access.StatusPending && !r.IsParty(f.Caller.EntityID) &&
			!r.ApprovedBy(f.Caller.EntityID) && len(access.QualifyingSets(f.Caller, r.Sets)) > 0
	}
	return true
}

// Sets picks the sets a filter reads: the narrowest index for it; the rest of the
// filter is checked on each record.
func (f *RequestQuery) Sets() []string {
	if f.Caller == nil { // the operator's audit/requests
		switch {
		case f.Role != "":
			return []string{"req/role/" + f.Role}
		case f.Status != "":
			return StatusSets(f.Status)
		}
		return []string{"req/all"}
	}
	me := "requester/" + EntityKey(f.Caller.EntityID)
	var bases []string
	switch {
	case f.CanApprove:
		var out []string
		for _, p := range CallerPrincipals(f.Caller) {
			out = append(out, "req/open-principal/"+HashedName(p))
		}
		return out
	case f.Mine:
		bases = []string{me}
	default:
		// What a person may see: theirs, what they decided, what they may decide.
		bases = []string{me, "decider/" + EntityKey(f.Caller.EntityID)}
		for _, p := range CallerPrincipals(f.Caller) {
			bases = append(bases, "principal/"+HashedName(p))
		}
	}
	var out []string
	for _, base := range bases {
		if f.Status == "" {
			out = append(out, "req/"+base)
			continue
		}
		for _, st := range StatusSets(f.Status) {
			out = append(out, "req/"+base+"/status/"+strings.TrimPrefix(st, "req/status/"))
		}
	}
	return out
}

// Requests is one page of the requests q lets through, newest first.
func (st *Store) Requests(ctx context.Context, s logical.Storage, q *RequestQuery, after string, limit int, now time.Time,
) ([]*access.Request, string, error) {
	return st.RequestPage(ctx, s, q.Sets(), after, limit, func(r *access.Request) bool { return q.Matches(r, now) })
}
