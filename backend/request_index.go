package backend

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/apono-io/vault-plugin-apono/backend/store"
	"github.com/hashicorp/vault/sdk/logical"
)

// The sets a request belongs to (index.go), for the questions people ask of them:
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

// saveRequest stores rec, whose entries were before (nil for a new request): the entries
// it gains first, the record, then the removal of the ones it lost.
func (b *aponoBackend) saveRequest(ctx context.Context, s logical.Storage, before []store.Entry, rec *access.Request) error {
	adds, removes := store.DiffEntries(before, store.RequestEntries(rec))
	if err := b.idx.Apply(ctx, s, adds, true); err != nil {
		return err
	}
	if before == nil {
		b.crashAt("request-after-index")
	}
	if err := store.PutRequest(ctx, s, rec); err != nil {
		return err
	}
	b.watchers.changed(rec.ID)
	if err := b.idx.Apply(ctx, s, removes, false); err != nil {
		// The record is stored: what is left is an entry too many, which its next reader
		// removes.
		b.Logger().Warn("removing a request's old index entries; they are skipped and repaired when read", "request_id", rec.ID, "error", err)
	}
	return nil
}

// deleteRequest removes rec and then its entries.
func (b *aponoBackend) deleteRequest(ctx context.Context, s logical.Storage, rec *access.Request) error {
	if err := s.Delete(ctx, store.RequestStoragePrefix+rec.ID); err != nil {
		return err
	}
	if err := b.idx.Apply(ctx, s, store.RequestEntries(rec), false); err != nil {
		b.Logger().Warn("removing a deleted request's index entries; they are skipped and repaired when read", "request_id", rec.ID, "error", err)
	}
	return nil
}

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
) (recs []*access.Request, next string, err error) {
	if err := b.indexesReady(ctx, s); err != nil {
		return nil, "", err
	}
	m := b.newMergedStream(ctx, s, f.sets(), after)
	recs, next, _, err = pageOf(b, s, m, limit,
		func(ctx context.Context, id string) (*access.Request, error) { return store.GetRequest(ctx, s, id) },
		store.RequestEntries,
		func(r *access.Request) bool { return f.matches(r, now) })
	if err != nil {
		return nil, "", fmt.Errorf("listing requests: %w", err)
	}
	return recs, next, nil
}
