package store

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

	"github.com/apono-io/vault-plugin-apono/internal/sortedset"
	"github.com/apono-io/vault-plugin-apono/internal/textsafe"
	"github.com/hashicorp/vault/sdk/logical"
)

const IndexStoragePrefix = "idx/"

// Entry is one key in one set; set is the name below idx/.
type Entry struct{ Set, Key string }

// NewestFirstKey sorts records by creation time, newest first, then by ID.
func NewestFirstKey(t time.Time, id string) string {
	return fmt.Sprintf("%016x.%s", uint64(math.MaxInt64-t.UnixNano()), id)
}

// TimeKey sorts by t, oldest first, then by ID: the deadline and expiry sets.
func TimeKey(t time.Time, id string) string {
	n := t.UnixNano()
	if n < 0 {
		n = 0
	}
	return fmt.Sprintf("%016x.%s", uint64(n), id)
}

// TimeBound is the smallest key of timeKey(t, ...): a range up to it holds what is due
// before t.
func TimeBound(t time.Time) string {
	return strings.TrimSuffix(TimeKey(t, ""), ".")
}

// KeyID is the record ID of an index key.
func KeyID(key string) string {
	_, id, _ := strings.Cut(key, ".")
	return id
}

// HashedName keeps a name of any characters out of storage keys.
func HashedName(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:16])
}

// EntityKey is an entity ID as a storage key segment (see openKeyPrefix).
func EntityKey(entityID string) string {
	return strings.TrimSuffix(strings.TrimPrefix(OpenKeyPrefix(entityID), OpenRequestPrefix), "/")
}

// DiffEntries is what after has and before lacks, and the other way round.
func DiffEntries(before, after []Entry) (adds, removes []Entry) {
	in := func(list []Entry, e Entry) bool {
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

// Indexes is the backend's index state.
type Indexes struct {
	Sets *sortedset.Manager
	// Repaired counts entries removed because their record no longer belonged to the set.
	Repaired atomic.Int64

	// build: the rebuild of build.go.
	Mu       sync.Mutex
	Ready    chan struct{} // closed once the indexes hold every record
	Building bool
	Progress atomic.Int64 // records read by the running build
	Total    atomic.Int64
	BuiltAt  time.Time
	BuildErr error
}

func NewIndexes() *Indexes {
	return &Indexes{Sets: sortedset.NewManager(sortedset.Options{}), Ready: make(chan struct{})}
}

func (x *Indexes) Set(name string) *sortedset.Set {
	return x.Sets.Set(IndexStoragePrefix + name)
}

// Apply adds or removes entries, all at once: each is a storage write of its own set, and
// on a busy Vault every one waits its turn, so side by side they cost one wait, not one
// each. It reports the first failure after all have ended.
func (x *Indexes) Apply(ctx context.Context, s logical.Storage, entries []Entry, add bool) error {
	errs := make([]error, len(entries))
	var wg sync.WaitGroup
	for i, e := range entries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if add {
				err = x.Set(e.Set).Add(ctx, s, e.Key)
			} else {
				err = x.Set(e.Set).Remove(ctx, s, e.Key)
			}
			if err != nil {
				errs[i] = fmt.Errorf("index %s: %w", e.Set, err)
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

// Paging of lists.
const (
	DefaultPageLimit = 100
	MaxPageLimit     = 1000
	// MaxScanPerPage bounds the entries one page reads past the filters: a page that finds
	// too few matches stops there and says where to go on.
	MaxScanPerPage = 5000
)

// cursor is an opaque after/next_after: the sort key of the last entry a page read.
func EncodeCursor(kind, key string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(kind + ":" + key))
}

var CursorKeyRe = regexp.MustCompile(`^[0-9a-f]{16}\.[0-9a-f-]{1,36}$`)

// DecodeCursor reads a cursor of kind; msg is a 400.
func DecodeCursor(kind, after string) (key, msg string) {
	if after == "" {
		return "", ""
	}
	raw, err := base64.RawURLEncoding.DecodeString(after)
	k, ok := strings.CutPrefix(string(raw), kind+":")
	if err != nil || !ok || !CursorKeyRe.MatchString(k) {
		return "", fmt.Sprintf("after: %q is not a cursor of this list: pass the next_after of the previous page, or leave after out for the first page", textsafe.Truncate(after))
	}
	return k, ""
}

// CheckLimit reads the limit field; msg is a 400.
func CheckLimit(limit int) (int, string) {
	switch {
	case limit == 0:
		return DefaultPageLimit, ""
	case limit < 0 || limit > MaxPageLimit:
		return 0, fmt.Sprintf("limit must be between 1 and %d, got %d", MaxPageLimit, limit)
	}
	return limit, ""
}

// MergedStream walks several sets in key order at once, each key once, and says which
// sets held it.
type MergedStream struct {
	Ctx   context.Context
	S     logical.Storage
	Heads []*SetStream
	// StopAfter, when set, ends the stream at the first key past it.
	StopAfter string
}

type SetStream struct {
	Name string
	Set  *sortedset.Set
	buf  []string
	Pos  string // the last key read from the set
	done bool
}

const StreamBatch = 128

func (st *SetStream) fill(ctx context.Context, s logical.Storage) error {
	if len(st.buf) > 0 || st.done {
		return nil
	}
	var got []string
	err := st.Set.Scan(ctx, s, st.Pos, func(k string) bool {
		got = append(got, k)
		return len(got) < StreamBatch
	})
	if err != nil {
		return err
	}
	if len(got) < StreamBatch {
		st.done = true
	}
	if len(got) > 0 {
		st.buf, st.Pos = got, got[len(got)-1]
	}
	return nil
}

// Next is the smallest key left and the sets that hold it; "" when every set is done.
func (m *MergedStream) Next() (string, []string, error) {
	for _, h := range m.Heads {
		if err := h.fill(m.Ctx, m.S); err != nil {
			return "", nil, err
		}
	}
	min := ""
	for _, h := range m.Heads {
		if len(h.buf) > 0 && (min == "" || h.buf[0] < min) {
			min = h.buf[0]
		}
	}
	if min == "" || (m.StopAfter != "" && min > m.StopAfter) {
		return "", nil, nil
	}
	var from []string
	for _, h := range m.Heads {
		if len(h.buf) > 0 && h.buf[0] == min {
			from = append(from, h.Name)
			h.buf = h.buf[1:]
		}
	}
	sort.Strings(from)
	return min, from, nil
}

func ContainsEntry(list []Entry, e Entry) bool {
	for _, x := range list {
		if x == e {
			return true
		}
	}
	return false
}
