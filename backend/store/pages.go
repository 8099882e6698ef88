package store

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/hashicorp/vault/sdk/logical"
)

// repairTimeout bounds the removal of one stale entry (as long as a call into Vault may
// take: storage goes through Vault).
const repairTimeout = 5 * time.Second

// Indexes of requests and grants: ordered sets of keys (internal/sortedset, a head and
// fixed-size segments per set under idx/), so that a page of a list and the periodic jobs
// cost what they return, not what is stored.
//
// One record (request/<id>, grant/<id>) belongs to several sets (its entries: all, by
// status, by role, by requester, ...), each holding the same sort key for it. A change
// adds the entries the record gains before the record is written and removes the ones it
// loses after, so a crash between the steps leaves entries too many, never one too few.
// Whoever reads an entry reads its record too (a page shows records, the periodic job
// acts on them) and checks that the record still belongs to the set; an entry that does
// not is skipped and removed then (repair). A rebuild (build.go) adds every
// record's entries: it runs once after an upgrade from storage without indexes, and on
// demand at indexes/rebuild.

// repair removes an entry whose record no longer belongs to its set, after the
// answer that found it: a read must not wait on it, and a failure leaves it for later.
func (st *Store) repair(s logical.Storage, e Entry) {
	st.Background.Add(1)
	go func() {
		defer st.Background.Done()
		ctx, cancel := context.WithTimeout(st.Lifetime, repairTimeout)
		defer cancel()
		if err := st.Index.Set(e.Set).Remove(ctx, s, e.Key); err == nil {
			st.Index.Repaired.Add(1)
		}
	}()
}

func (st *Store) stream(ctx context.Context, s logical.Storage, sets []string, after string) *MergedStream {
	m := &MergedStream{Ctx: ctx, S: s}
	seen := map[string]bool{}
	for _, name := range sets {
		if !seen[name] {
			seen[name] = true
			m.Heads = append(m.Heads, &SetStream{Name: name, Set: st.Index.Set(name), Pos: after})
		}
	}
	return m
}

// pageOf reads keys from m, loads each one's record with load (fetch at once, a few
// at a time), and keeps those match accepts, in key order, until limit are kept. An entry
// whose record is gone or no longer belongs to the set (entries says) is skipped and
// repaired. more says the page may not be everything: next is then the key to go on after.
func pageOf[R any](st *Store, s logical.Storage, m *MergedStream, limit int,
	load func(ctx context.Context, id string) (*R, error), entries func(*R) []Entry, match func(*R) bool,
) (kept []*R, next string, more bool, err error) {
	type candidate struct {
		key  string
		sets []string
		rec  *R
		err  error
	}
	scanned := 0
	for {
		var batch []*candidate
		for len(batch) < 32 {
			k, sets, err := m.Next()
			if err != nil {
				return nil, "", false, err
			}
			if k == "" {
				break
			}
			batch = append(batch, &candidate{key: k, sets: sets})
		}
		if len(batch) == 0 {
			return kept, "", false, nil
		}
		var wg sync.WaitGroup
		sem := make(chan struct{}, 16)
		for _, c := range batch {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				c.rec, c.err = load(m.Ctx, KeyID(c.key))
			}()
		}
		wg.Wait()
		for i, c := range batch {
			if c.err != nil {
				return nil, "", false, c.err
			}
			scanned++
			var own []Entry
			if c.rec != nil {
				own = entries(c.rec)
			}
			belongs := false
			for _, set := range c.sets {
				e := Entry{Set: set, Key: c.key}
				if ContainsEntry(own, e) {
					belongs = true
				} else {
					st.repair(s, e)
				}
			}
			if belongs && match(c.rec) {
				kept = append(kept, c.rec)
			}
			if len(kept) == limit || scanned >= MaxScanPerPage {
				more := i < len(batch)-1
				if !more {
					k, _, err := m.Next()
					if err != nil {
						return nil, "", false, err
					}
					more = k != ""
				}
				if !more {
					return kept, "", false, nil
				}
				return kept, c.key, true, nil
			}
		}
	}
}

// RequestPage is one page of the requests in sets that match keeps, newest first.
func (st *Store) RequestPage(ctx context.Context, s logical.Storage, sets []string, after string, limit int, match func(*access.Request) bool,
) (recs []*access.Request, next string, err error) {
	if err := st.Ready(ctx, s); err != nil {
		return nil, "", err
	}
	m := st.stream(ctx, s, sets, after)
	recs, next, _, err = pageOf(st, s, m, limit,
		func(ctx context.Context, id string) (*access.Request, error) { return GetRequest(ctx, s, id) },
		RequestEntries, match)
	if err != nil {
		return nil, "", fmt.Errorf("listing requests: %w", err)
	}
	return recs, next, nil
}

// GrantPage is one page of the live grants in sets that match keeps, newest first.
func (st *Store) GrantPage(ctx context.Context, s logical.Storage, sets []string, after string, limit int, match func(*access.Grant) bool,
) ([]*access.Grant, string, error) {
	if err := st.Ready(ctx, s); err != nil {
		return nil, "", err
	}
	m := st.stream(ctx, s, sets, after)
	recs, next, _, err := pageOf(st, s, m, limit,
		func(ctx context.Context, id string) (*access.Grant, error) { return GetGrant(ctx, s, id) },
		GrantEntries, match)
	if err != nil {
		return nil, "", fmt.Errorf("listing grants: %w", err)
	}
	return recs, next, nil
}

// HistoryPage is one page of the history in sets that match keeps, newest first; with
// since set, the scan stops at entries older than it.
func (st *Store) HistoryPage(ctx context.Context, s logical.Storage, sets []string, after string, since time.Time, limit int,
	match func(*HistoryRecord) bool,
) ([]*HistoryRecord, string, error) {
	m := st.stream(ctx, s, sets, after)
	if !since.IsZero() {
		m.StopAfter = NewestFirstKey(since, "")
	}
	recs, next, _, err := pageOf(st, s, m, limit,
		func(ctx context.Context, id string) (*HistoryRecord, error) { return GetHistory(ctx, s, id) },
		HistoryEntries, match)
	if err != nil {
		return nil, "", fmt.Errorf("reading history: %w", err)
	}
	return recs, next, nil
}
