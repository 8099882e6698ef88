package backend

import (
	"context"
	"strings"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/apono-io/vault-plugin-apono/backend/store"
	"github.com/hashicorp/vault/sdk/logical"
)

// The sets a request belongs to (store/pages.go), for the questions people ask of them:
//
//	req/all                        every request, newest first
//	req/status/<status>            by stored status (an open request past its deadline
//	                               is expired before the periodic job records it: see
//	                               statusSets)
//	req/role/<role>                by role
//	req/requester/<entity>         by requester (mine=true)
//	req/principal/<hash>           by each principal of its approver sets: who may see it
//	req/decider/<entity>           by who approved or decided it: they may see it
//	req/<one of those three>/status/<status>
//	                               the same by status: a person's status filter
//	req/open-principal/<hash>      by principal, while pending: can_approve=true
//	req/deadline                   open requests by the end of their current wait
//	req/ended                      ended requests by when they ended (retention)
//
// All but the last two hold newestFirstKey(created_at, id); those timeKey(when, id).

// requestSets picks the sets a filter reads: the narrowest index for it; the rest of the
// filter is checked on each record.
func (f *requestFilter) sets() []string {
	if f.caller == nil { // the operator's audit/requests
		switch {
		case f.role != "":
			return []string{"req/role/" + f.role}
		case f.status != "":
			return store.StatusSets(f.status)
		}
		return []string{"req/all"}
	}
	me := "requester/" + store.EntityKey(f.caller.EntityID)
	var bases []string
	switch {
	case f.canApprove:
		var out []string
		for _, p := range store.CallerPrincipals(f.caller) {
			out = append(out, "req/open-principal/"+store.HashedName(p))
		}
		return out
	case f.mine:
		bases = []string{me}
	default:
		// What a person may see: theirs, what they decided, what they may decide.
		bases = []string{me, "decider/" + store.EntityKey(f.caller.EntityID)}
		for _, p := range store.CallerPrincipals(f.caller) {
			bases = append(bases, "principal/"+store.HashedName(p))
		}
	}
	var out []string
	for _, base := range bases {
		if f.status == "" {
			out = append(out, "req/"+base)
			continue
		}
		for _, st := range store.StatusSets(f.status) {
			out = append(out, "req/"+base+"/status/"+strings.TrimPrefix(st, "req/status/"))
		}
	}
	return out
}

// requestPage is one page of the requests f lets through, newest first.
func (b *aponoBackend) requestPage(ctx context.Context, s logical.Storage, f *requestFilter, after string, limit int, now time.Time,
) ([]*access.Request, string, error) {
	return b.store.RequestPage(ctx, s, f.sets(), after, limit, func(r *access.Request) bool { return f.matches(r, now) })
}
