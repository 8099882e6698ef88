package backend

import (
	"context"
	"sync"

	"github.com/apono-io/vault-plugin-apono/backend/store"
	"github.com/apono-io/vault-plugin-apono/backend/vaultapi"
	"github.com/hashicorp/vault/sdk/logical"
)

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
// not is skipped and removed then (repairEntry). A rebuild (index_build.go) adds every
// record's entries: it runs once after an upgrade from storage without indexes, and on
// demand at indexes/rebuild.

// repairEntry removes an entry whose record no longer belongs to its set, after the
// answer that found it: a read must not wait on it, and a failure leaves it for later.
func (b *aponoBackend) repairEntry(s logical.Storage, e store.Entry) {
	b.background.Add(1)
	go func() {
		defer b.background.Done()
		ctx, cancel := context.WithTimeout(b.lifetime, vaultapi.CallTimeout)
		defer cancel()
		if err := b.idx.Set(e.Set).Remove(ctx, s, e.Key); err == nil {
			b.idx.Repaired.Add(1)
		}
	}()
}

func (b *aponoBackend) newMergedStream(ctx context.Context, s logical.Storage, sets []string, after string) *store.MergedStream {
	m := &store.MergedStream{Ctx: ctx, S: s}
	seen := map[string]bool{}
	for _, name := range sets {
		if !seen[name] {
			seen[name] = true
			m.Heads = append(m.Heads, &store.SetStream{Name: name, Set: b.idx.Set(name), Pos: after})
		}
	}
	return m
}

// pageOf reads keys from m, loads each one's record with load (fetch at once, a few
// at a time), and keeps those match accepts, in key order, until limit are kept. An entry
// whose record is gone or no longer belongs to the set (entries says) is skipped and
// repaired. more says the page may not be everything: next is then the key to go on after.
func pageOf[R any](b *aponoBackend, s logical.Storage, m *store.MergedStream, limit int,
	load func(ctx context.Context, id string) (*R, error), entries func(*R) []store.Entry, match func(*R) bool,
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
				c.rec, c.err = load(m.Ctx, store.KeyID(c.key))
			}()
		}
		wg.Wait()
		for i, c := range batch {
			if c.err != nil {
				return nil, "", false, c.err
			}
			scanned++
			var own []store.Entry
			if c.rec != nil {
				own = entries(c.rec)
			}
			belongs := false
			for _, set := range c.sets {
				e := store.Entry{Set: set, Key: c.key}
				if store.ContainsEntry(own, e) {
					belongs = true
				} else {
					b.repairEntry(s, e)
				}
			}
			if belongs && match(c.rec) {
				kept = append(kept, c.rec)
			}
			if len(kept) == limit || scanned >= store.MaxScanPerPage {
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
