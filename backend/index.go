package backend

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/vaultapi"
	"github.com/apono-io/vault-plugin-apono/internal/sortedset"
	"github.com/apono-io/vault-plugin-apono/internal/textsafe"
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

const indexStoragePrefix = "idx/"

// indexEntry is one key in one set; set is the name below idx/.
type indexEntry struct{ set, key string }

// newestFirstKey sorts records by creation time, newest first, then by ID.
func newestFirstKey(t time.Time, id string) string {
	return fmt.Sprintf("%016x.%s", uint64(math.MaxInt64-t.UnixNano()), id)
}

// timeKey sorts by t, oldest first, then by ID: the deadline and expiry sets.
func timeKey(t time.Time, id string) string {
	n := t.UnixNano()
	if n < 0 {
		n = 0
	}
	return fmt.Sprintf("%016x.%s", uint64(n), id)
}

// timeBound is the smallest key of timeKey(t, ...): a range up to it holds what is due
// before t.
func timeBound(t time.Time) string {
	return strings.TrimSuffix(timeKey(t, ""), ".")
}

// keyID is the record ID of an index key.
func keyID(key string) string {
	_, id, _ := strings.Cut(key, ".")
	return id
}

// hashedName keeps a name of any characters out of storage keys.
func hashedName(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:16])
}

// entityKey is an entity ID as a storage key segment (see openKeyPrefix).
func entityKey(entityID string) string {
	return strings.TrimSuffix(strings.TrimPrefix(openKeyPrefix(entityID), openRequestPrefix), "/")
}

// diffEntries is what after has and before lacks, and the other way round.
func diffEntries(before, after []indexEntry) (adds, removes []indexEntry) {
	in := func(list []indexEntry, e indexEntry) bool {
		for _, x := range list {
			if x == e {
				return true
			}
		}
		return false
	}
	for _, e := range after {
		if !in(before, e) {
			adds = append(adds, e)
		}
	}
	for _, e := range before {
		if !in(after, e) {
			removes = append(removes, e)
		}
	}
	return adds, removes
}

// indexes is the backend's index state.
type indexes struct {
	sets *sortedset.Manager
	// repaired counts entries removed because their record no longer belonged to the set.
	repaired atomic.Int64

	// build: the rebuild of index_build.go.
	mu       sync.Mutex
	ready    chan struct{} // closed once the indexes hold every record
	building bool
	progress atomic.Int64 // records read by the running build
	total    atomic.Int64
	builtAt  time.Time
	buildErr error
}

func newIndexes() *indexes {
	return &indexes{sets: sortedset.NewManager(sortedset.Options{}), ready: make(chan struct{})}
}

func (x *indexes) set(name string) *sortedset.Set {
	return x.sets.Set(indexStoragePrefix + name)
}

// apply adds or removes entries, all at once: each is a storage write of its own set, and
// on a busy Vault every one waits its turn, so side by side they cost one wait, not one
// each. It reports the first failure after all have ended.
func (x *indexes) apply(ctx context.Context, s logical.Storage, entries []indexEntry, add bool) error {
	errs := make([]error, len(entries))
	var wg sync.WaitGroup
	for i, e := range entries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if add {
				err = x.set(e.set).Add(ctx, s, e.key)
			} else {
				err = x.set(e.set).Remove(ctx, s, e.key)
			}
			if err != nil {
				errs[i] = fmt.Errorf("index %s: %w", e.set, err)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// repairEntry removes an entry whose record no longer belongs to its set, after the
// answer that found it: a read must not wait on it, and a failure leaves it for later.
func (b *aponoBackend) repairEntry(s logical.Storage, e indexEntry) {
	b.background.Add(1)
	go func() {
		defer b.background.Done()
		ctx, cancel := context.WithTimeout(b.lifetime, vaultapi.CallTimeout)
		defer cancel()
		if err := b.idx.set(e.set).Remove(ctx, s, e.key); err == nil {
			b.idx.repaired.Add(1)
		}
	}()
}

// Paging of lists.
const (
	defaultPageLimit = 100
	maxPageLimit     = 1000
	// maxScanPerPage bounds the entries one page reads past the filters: a page that finds
	// too few matches stops there and says where to go on.
	maxScanPerPage = 5000
)

// cursor is an opaque after/next_after: the sort key of the last entry a page read.
func encodeCursor(kind, key string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(kind + ":" + key))
}

var cursorKeyRe = regexp.MustCompile(`^[0-9a-f]{16}\.[0-9a-f-]{1,36}$`)

// decodeCursor reads a cursor of kind; msg is a 400.
func decodeCursor(kind, after string) (key, msg string) {
	if after == "" {
		return "", ""
	}
	raw, err := base64.RawURLEncoding.DecodeString(after)
	k, ok := strings.CutPrefix(string(raw), kind+":")
	if err != nil || !ok || !cursorKeyRe.MatchString(k) {
		return "", fmt.Sprintf("after: %q is not a cursor of this list: pass the next_after of the previous page, or leave after out for the first page", textsafe.Truncate(after))
	}
	return k, ""
}

// checkLimit reads the limit field; msg is a 400.
func checkLimit(limit int) (int, string) {
	switch {
	case limit == 0:
		return defaultPageLimit, ""
	case limit < 0 || limit > maxPageLimit:
		return 0, fmt.Sprintf("limit must be between 1 and %d, got %d", maxPageLimit, limit)
	}
	return limit, ""
}

// mergedStream walks several sets in key order at once, each key once, and says which
// sets held it.
type mergedStream struct {
	ctx   context.Context
	s     logical.Storage
	heads []*setStream
	// stopAfter, when set, ends the stream at the first key past it.
	stopAfter string
}

type setStream struct {
	name string
	set  *sortedset.Set
	buf  []string
	pos  string // the last key read from the set
	done bool
}

const streamBatch = 128

func (b *aponoBackend) newMergedStream(ctx context.Context, s logical.Storage, sets []string, after string) *mergedStream {
	m := &mergedStream{ctx: ctx, s: s}
	seen := map[string]bool{}
	for _, name := range sets {
		if !seen[name] {
			seen[name] = true
			m.heads = append(m.heads, &setStream{name: name, set: b.idx.set(name), pos: after})
		}
	}
	return m
}

func (st *setStream) fill(ctx context.Context, s logical.Storage) error {
	if len(st.buf) > 0 || st.done {
		return nil
	}
	var got []string
	err := st.set.Scan(ctx, s, st.pos, func(k string) bool {
		got = append(got, k)
		return len(got) < streamBatch
	})
	if err != nil {
		return err
	}
	if len(got) < streamBatch {
		st.done = true
	}
	if len(got) > 0 {
		st.buf, st.pos = got, got[len(got)-1]
	}
	return nil
}

// next is the smallest key left and the sets that hold it; "" when every set is done.
func (m *mergedStream) next() (string, []string, error) {
	for _, h := range m.heads {
		if err := h.fill(m.ctx, m.s); err != nil {
			return "", nil, err
		}
	}
	min := ""
	for _, h := range m.heads {
		if len(h.buf) > 0 && (min == "" || h.buf[0] < min) {
			min = h.buf[0]
		}
	}
	if min == "" || (m.stopAfter != "" && min > m.stopAfter) {
		return "", nil, nil
	}
	var from []string
	for _, h := range m.heads {
		if len(h.buf) > 0 && h.buf[0] == min {
			from = append(from, h.name)
			h.buf = h.buf[1:]
		}
	}
	sort.Strings(from)
	return min, from, nil
}

// pageOf reads keys from m, loads each one's record with load (fetch at once, a few
// at a time), and keeps those match accepts, in key order, until limit are kept. An entry
// whose record is gone or no longer belongs to the set (entries says) is skipped and
// repaired. more says the page may not be everything: next is then the key to go on after.
func pageOf[R any](b *aponoBackend, s logical.Storage, m *mergedStream, limit int,
	load func(ctx context.Context, id string) (*R, error), entries func(*R) []indexEntry, match func(*R) bool,
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
			k, sets, err := m.next()
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
				c.rec, c.err = load(m.ctx, keyID(c.key))
			}()
		}
		wg.Wait()
		for i, c := range batch {
			if c.err != nil {
				return nil, "", false, c.err
			}
			scanned++
			var own []indexEntry
			if c.rec != nil {
				own = entries(c.rec)
			}
			belongs := false
			for _, set := range c.sets {
				e := indexEntry{set: set, key: c.key}
				if containsEntry(own, e) {
					belongs = true
				} else {
					b.repairEntry(s, e)
				}
			}
			if belongs && match(c.rec) {
				kept = append(kept, c.rec)
			}
			if len(kept) == limit || scanned >= maxScanPerPage {
				more := i < len(batch)-1
				if !more {
					k, _, err := m.next()
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

func containsEntry(list []indexEntry, e indexEntry) bool {
	for _, x := range list {
		if x == e {
			return true
		}
	}
	return false
}
