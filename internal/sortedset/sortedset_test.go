package sortedset

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

const testPrefix = "idx/test"

func newCounted(t *testing.T, opts Options) (*Manager, *Set, *countingStorage) {
	t.Helper()
	m := NewManager(opts)
	return m, m.Set(testPrefix), &countingStorage{Storage: &logical.InmemStorage{}, t: t}
}

func mustAdd(t *testing.T, s *Set, st logical.Storage, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if err := s.Add(context.Background(), st, k); err != nil {
			t.Fatalf("Add(%q): %v", k, err)
		}
	}
}

func mustRemove(t *testing.T, s *Set, st logical.Storage, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if err := s.Remove(context.Background(), st, k); err != nil {
			t.Fatalf("Remove(%q): %v", k, err)
		}
	}
}

func scanAll(t *testing.T, s *Set, st logical.Storage) []string {
	t.Helper()
	var got []string
	if err := s.Scan(context.Background(), st, "", func(k string) bool { got = append(got, k); return true }); err != nil {
		t.Fatalf("Scan: %v", err)
	}
	return got
}

func segmentCount(t *testing.T, st logical.Storage) int {
	t.Helper()
	if c, ok := st.(*countingStorage); ok {
		st = c.Storage // not counted
	}
	h, _, err := readRaw(st, testPrefix)
	if err != nil || h == nil {
		t.Fatalf("head: %v %v", h, err)
	}
	return len(h.Segments)
}

func keys(format string, from, to int) []string {
	var ks []string
	for i := from; i < to; i++ {
		ks = append(ks, fmt.Sprintf(format, i))
	}
	return ks
}

// TestStorageCalls checks the call counts the package doc gives, cold (empty cache) and
// warm.
func TestStorageCalls(t *testing.T) {
	ctx := context.Background()
	type step struct {
		name string
		cold bool // drop the cache first
		do   func(t *testing.T, s *Set, st logical.Storage)
		want calls
	}
	add := func(k string) func(*testing.T, *Set, logical.Storage) {
		return func(t *testing.T, s *Set, st logical.Storage) { mustAdd(t, s, st, k) }
	}
	remove := func(k string) func(*testing.T, *Set, logical.Storage) {
		return func(t *testing.T, s *Set, st logical.Storage) { mustRemove(t, s, st, k) }
	}
	has := func(k string, want bool) func(*testing.T, *Set, logical.Storage) {
		return func(t *testing.T, s *Set, st logical.Storage) {
			if got, err := s.Has(ctx, st, k); err != nil || got != want {
				t.Fatalf("Has(%q) = %v, %v", k, got, err)
			}
		}
	}
	scan := func(n, wantSeen int) func(*testing.T, *Set, logical.Storage) {
		return func(t *testing.T, s *Set, st logical.Storage) {
			seen := 0
			if err := s.Scan(ctx, st, "", func(string) bool { seen++; return seen < n }); err != nil || seen != wantSeen {
				t.Fatalf("Scan: %d keys, %v", seen, err)
			}
		}
	}
	addMany := func(ks []string) func(*testing.T, *Set, logical.Storage) {
		return func(t *testing.T, s *Set, st logical.Storage) {
			if err := s.AddMany(ctx, st, ks); err != nil {
				t.Fatal(err)
			}
		}
	}
	segments := func(n int) func(*testing.T, *Set, logical.Storage) {
		return func(t *testing.T, s *Set, st logical.Storage) {
			if got := segmentCount(t, st); got != n {
				t.Fatalf("%d segments, want %d", got, n)
			}
		}
	}
	tests := []struct {
		name  string
		opts  Options
		steps []step
	}{
		{"add and remove, MaxSegment 8", Options{MaxSegment: 8}, []step{
			{"remove from a set with no head", true, remove("a"), calls{gets: 1}},
			{"has in a set with no head", false, has("a", false), calls{}},
			{"first add writes segment and head", true, add("b"), calls{gets: 1, puts: 2}},
			{"add, warm", false, add("c"), calls{puts: 1}},
			{"add, cold", true, add("d"), calls{gets: 2, puts: 1}},
			{"add present, cold", true, add("d"), calls{gets: 2}},
			{"add present, warm", false, add("d"), calls{}},
			{"has, cold", true, has("c", true), calls{gets: 2}},
			{"has, warm", false, has("c", true), calls{}},
			{"fill to 8", false, func(t *testing.T, s *Set, st logical.Storage) {
				mustAdd(t, s, st, "e", "f", "g", "h", "i")
			}, calls{puts: 5}},
			{"ninth key splits: upper, head, lower", false, add("j"), calls{puts: 3}},
			{"two segments", false, segments(2), calls{}},
			{"remove absent, cold", true, remove("zz"), calls{gets: 2}},
			{"remove, warm", false, remove("j"), calls{puts: 1}},
			// b c d e | f g h i: the lower falls under 2, the pair holds 1+4 <= 6: merge.
			{"remove to 2 (lower segment not cached)", false, func(t *testing.T, s *Set, st logical.Storage) { mustRemove(t, s, st, "b", "c") }, calls{gets: 1, puts: 2}},
			{"merge: neighbour, head, delete", true, remove("d"), calls{gets: 3, puts: 2, deletes: 1}},
			{"one segment", false, segments(1), calls{}},
		}},
		{"even out, MaxSegment 8", Options{MaxSegment: 8}, []step{
			{"fill", false, func(t *testing.T, s *Set, st logical.Storage) {
				mustAdd(t, s, st, keys("k%d", 0, 9)...) // k0..k3 | k4..k8
				mustAdd(t, s, st, "k45", "k46", "k47")  // k4 k45 k46 k47 k5 k6 k7 k8
			}, calls{gets: 1, puts: 2 + 7 + 3 + 3}},
			{"remove to 2", false, func(t *testing.T, s *Set, st logical.Storage) { mustRemove(t, s, st, "k0", "k1") }, calls{puts: 2}},
			// 1 + 8 > 6: the two share out 9 keys, the upper segment growing down.
			{"even out: growing, head, shrinking", true, remove("k2"), calls{gets: 3, puts: 3}},
			{"still two segments", false, segments(2), calls{}},
		}},
		{"drop an empty segment, MaxSegment 4", Options{MaxSegment: 4}, []step{
			{"fill", false, func(t *testing.T, s *Set, st logical.Storage) { mustAdd(t, s, st, "a", "b", "c", "d", "e") }, calls{gets: 1, puts: 2 + 3 + 3}},
			{"remove to 1", false, func(t *testing.T, s *Set, st logical.Storage) { mustRemove(t, s, st, "a") }, calls{puts: 1}},
			{"drop: head, delete", true, remove("b"), calls{gets: 3, puts: 1, deletes: 1}},
			{"one segment", false, segments(1), calls{}},
		}},
		{"bulk and scans, MaxSegment 16", Options{MaxSegment: 16}, []step{
			{"addMany into an empty set: 4 segments, head", true, addMany(keys("k%03d", 0, 64)), calls{gets: 1, puts: 5}},
			{"four full segments", false, segments(4), calls{}},
			{"scan 32, cold: head and 2 segments", true, scan(32, 32), calls{gets: 3}},
			{"scan 33, cold: head and 3 segments", true, scan(33, 33), calls{gets: 4}},
			{"scan all, warm but for the last segment", false, scan(1000, 64), calls{gets: 1}},
			{"scan all, warm", false, scan(1000, 64), calls{}},
			{"count, cold", true, func(t *testing.T, s *Set, st logical.Storage) {
				if n, err := s.Count(ctx, st); err != nil || n != 64 {
					t.Fatalf("Count = %d, %v", n, err)
				}
			}, calls{gets: 5}},
			{"remove from 2 segments", false, func(t *testing.T, s *Set, st logical.Storage) { mustRemove(t, s, st, "k000", "k001", "k063") }, calls{puts: 3}},
			{"addMany into 2 segments, cold", true, addMany([]string{"k000a", "k001a", "k063a"}), calls{gets: 3, puts: 2}},
			{"addMany splitting 2 segments: 2 new, head, 2 lower", false, addMany(append(keys("k000%02d", 0, 16), keys("k063%02d", 0, 16)...)), calls{puts: 5}},
			{"clear, cold: 6 segments, next, head", true, func(t *testing.T, s *Set, st logical.Storage) {
				if err := s.Clear(ctx, st); err != nil {
					t.Fatal(err)
				}
			}, calls{gets: 1, deletes: 8}},
			{"empty after clear", false, scan(10, 0), calls{}},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, s, st := newCounted(t, tc.opts)
			for _, step := range tc.steps {
				if step.cold {
					m.Reset()
				}
				st.take()
				step.do(t, s, st)
				if got := st.take(); got != step.want {
					t.Errorf("%s: %v, want %v", step.name, got, step.want)
				}
			}
		})
	}
}

// TestScanReadsBound checks the bound on segment reads for scans of every length from
// every start, over a set shaped by random adds and removes (segments between a quarter
// and all full).
func TestScanReadsBound(t *testing.T) {
	ctx := context.Background()
	m, s, st := newCounted(t, Options{MaxSegment: 16})
	all := keys("k%04d", 0, 2000)
	if err := s.AddMany(ctx, st, all[:1000]); err != nil {
		t.Fatal(err)
	}
	for i, k := range all {
		if i%3 == 0 {
			mustAdd(t, s, st, k)
		} else if i%5 != 0 {
			mustRemove(t, s, st, k)
		}
	}
	want := scanAll(t, s, st)
	minFill := 16 / 4
	for _, after := range []string{"", want[10], want[len(want)/2], "k1500"} {
		for n := 1; n <= 120; n++ {
			m.Reset()
			st.take()
			seen := 0
			if err := s.Scan(ctx, st, after, func(string) bool { seen++; return seen < n }); err != nil {
				t.Fatal(err)
			}
			if got, bound := st.take().gets, 1+2+seen/minFill; got > bound {
				t.Fatalf("scan of %d keys after %q read %d entries, bound %d", seen, after, got, bound)
			}
		}
	}
}

func TestKeysAreChecked(t *testing.T) {
	ctx := context.Background()
	_, s, st := newCounted(t, Options{})
	for _, k := range []string{"", strings.Repeat("x", MaxKeyLen+1), "a\x00b", "\xff", "a\xc3"} {
		if err := s.Add(ctx, st, k); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Add(%q) = %v, want ErrInvalidKey", k, err)
		}
		if err := s.AddMany(ctx, st, []string{"ok", k}); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("AddMany(ok, %q) = %v, want ErrInvalidKey", k, err)
		}
	}
	if got := st.take(); got.puts != 0 {
		t.Fatalf("rejected keys wrote: %v", got)
	}
	odd := []string{strings.Repeat("x", MaxKeyLen), "é", `"\`, "<>&", "\u2028", "\x01\x7f", "a b/c"}
	mustAdd(t, s, st, odd...)
	slices.Sort(odd)
	if got := scanAll(t, s, st); !slices.Equal(got, odd) {
		t.Fatalf("read back %q, want %q", got, odd)
	}
	if got := scanAll(t, NewManager(Options{}).Set(testPrefix), st); !slices.Equal(got, odd) {
		t.Fatalf("read back from storage %q, want %q", got, odd)
	}
}

func TestScanAndScanRange(t *testing.T) {
	ctx := context.Background()
	_, s, st := newCounted(t, Options{MaxSegment: 4})
	all := keys("t%02d", 0, 30)
	mustAdd(t, s, st, all...)
	collect := func(scan func(func(string) bool) error) []string {
		var got []string
		if err := scan(func(k string) bool { got = append(got, k); return true }); err != nil {
			t.Fatal(err)
		}
		return got
	}
	tests := []struct {
		name string
		scan func(func(string) bool) error
		want []string
	}{
		{"after nothing", func(fn func(string) bool) error { return s.Scan(ctx, st, "", fn) }, all},
		{"after a key", func(fn func(string) bool) error { return s.Scan(ctx, st, "t09", fn) }, all[10:]},
		{"after a non-key", func(fn func(string) bool) error { return s.Scan(ctx, st, "t095", fn) }, all[10:]},
		{"after the last", func(fn func(string) bool) error { return s.Scan(ctx, st, "t29", fn) }, nil},
		{"range", func(fn func(string) bool) error { return s.ScanRange(ctx, st, "t05", "t12", fn) }, all[5:12]},
		{"range from nothing", func(fn func(string) bool) error { return s.ScanRange(ctx, st, "", "t03", fn) }, all[:3]},
		{"range with no end", func(fn func(string) bool) error { return s.ScanRange(ctx, st, "t27", "", fn) }, all[27:]},
		{"empty range", func(fn func(string) bool) error { return s.ScanRange(ctx, st, "t12", "t05", fn) }, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := collect(tc.scan); !slices.Equal(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// writeRaw puts a set's head and segments into storage as given, to set up the states a
// crash leaves.
func writeRaw(t *testing.T, st logical.Storage, h *head, segs map[uint64][]string) {
	t.Helper()
	ctx := context.Background()
	if h != nil {
		e, _ := logical.StorageEntryJSON(testPrefix+"/h", h)
		if err := st.Put(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	for id, ks := range segs {
		e, _ := logical.StorageEntryJSON(fmt.Sprintf("%s/s/%d", testPrefix, id), &segment{Keys: ks})
		if err := st.Put(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCrashLeftovers starts from the states a crash can leave and checks that what lies
// outside a segment's range is never read, and never comes back into range.
func TestCrashLeftovers(t *testing.T) {
	ctx := context.Background()
	t.Run("split cut short after the head: lower still holds the upper keys", func(t *testing.T) {
		_, s, st := newCounted(t, Options{MaxSegment: 4})
		writeRaw(t, st, &head{Segments: []segRef{{0, ""}, {1, "m"}}, Next: 2},
			map[uint64][]string{0: {"a", "b", "m", "n"}, 1: {"m", "n"}})
		if got := scanAll(t, s, st); !slices.Equal(got, []string{"a", "b", "m", "n"}) {
			t.Fatalf("scan %q", got)
		}
		// The upper segment empties and is dropped: the lower widens, and must not bring
		// back the m and n it still holds.
		mustRemove(t, s, st, "m", "n")
		if got := scanAll(t, s, st); !slices.Equal(got, []string{"a", "b"}) {
			t.Fatalf("after removing m, n: %q", got)
		}
		if got := scanAll(t, NewManager(Options{MaxSegment: 4}).Set(testPrefix), st); !slices.Equal(got, []string{"a", "b"}) {
			t.Fatalf("after removing m, n, from storage: %q", got)
		}
	})
	t.Run("the next write of a segment drops its leftovers", func(t *testing.T) {
		_, s, st := newCounted(t, Options{MaxSegment: 4})
		writeRaw(t, st, &head{Segments: []segRef{{0, ""}, {1, "m"}}, Next: 2},
			map[uint64][]string{0: {"a", "m", "n"}, 1: {"m", "n"}})
		mustAdd(t, s, st, "b")
		if _, segs, _ := readRaw(st, testPrefix); !slices.Equal(segs[0].keys, []string{"a", "b"}) {
			t.Fatalf("lower segment holds %q", segs[0].keys)
		}
	})
	t.Run("split cut short before the head: the next split overwrites the new segment", func(t *testing.T) {
		_, s, st := newCounted(t, Options{MaxSegment: 4})
		writeRaw(t, st, &head{Segments: []segRef{{0, ""}}, Next: 1},
			map[uint64][]string{0: {"a", "b", "c", "d"}, 1: {"c", "d", "zz"}})
		mustAdd(t, s, st, "e")
		if got := scanAll(t, NewManager(Options{}).Set(testPrefix), st); !slices.Equal(got, []string{"a", "b", "c", "d", "e"}) {
			t.Fatalf("scan %q", got)
		}
	})
	t.Run("segments with no head are not read", func(t *testing.T) {
		_, s, st := newCounted(t, Options{MaxSegment: 4})
		writeRaw(t, st, nil, map[uint64][]string{0: {"old"}, 1: {"older"}})
		mustAdd(t, s, st, "new")
		if got := scanAll(t, NewManager(Options{}).Set(testPrefix), st); !slices.Equal(got, []string{"new"}) {
			t.Fatalf("scan %q", got)
		}
	})
	t.Run("clear cut short: deleted segments read as empty", func(t *testing.T) {
		_, s, st := newCounted(t, Options{MaxSegment: 4})
		writeRaw(t, st, &head{Segments: []segRef{{0, ""}, {1, "m"}}, Next: 2}, map[uint64][]string{1: {"m", "n"}})
		if got := scanAll(t, s, st); !slices.Equal(got, []string{"m", "n"}) {
			t.Fatalf("scan %q", got)
		}
		mustAdd(t, s, st, "a")
		if err := s.Clear(ctx, st); err != nil {
			t.Fatal(err)
		}
		if got := scanAll(t, NewManager(Options{}).Set(testPrefix), st); got != nil {
			t.Fatalf("after Clear: %q", got)
		}
	})
}

// recordingStorage notes the keys written, as Vault would pass them to Invalidate on
// another node; onGet runs after each Get has read storage, before it returns.
type recordingStorage struct {
	logical.Storage
	written []string
	onGet   func(key string)
}

func (r *recordingStorage) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	e, err := r.Storage.Get(ctx, key)
	if r.onGet != nil {
		r.onGet(key)
	}
	return e, err
}

func (r *recordingStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	r.written = append(r.written, e.Key)
	return r.Storage.Put(ctx, e)
}

func (r *recordingStorage) Delete(ctx context.Context, key string) error {
	r.written = append(r.written, key)
	return r.Storage.Delete(ctx, key)
}

func TestInvalidate(t *testing.T) {
	raw := &logical.InmemStorage{}
	active := &recordingStorage{Storage: raw}
	writer := NewManager(Options{MaxSegment: 4}).Set(testPrefix)
	standby := NewManager(Options{MaxSegment: 4})
	reader := standby.Set(testPrefix)

	mustAdd(t, writer, active, "a", "b")
	if got := scanAll(t, reader, raw); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("scan %q", got)
	}
	mustAdd(t, writer, active, "c", "d", "e", "f") // splits
	mustRemove(t, writer, active, "a")
	if got := scanAll(t, reader, raw); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("before Invalidate the cache answers: %q", got)
	}
	for _, k := range active.written {
		standby.Invalidate(k)
	}
	active.written = nil
	if got := scanAll(t, reader, raw); !slices.Equal(got, []string{"b", "c", "d", "e", "f"}) {
		t.Fatalf("after Invalidate: %q", got)
	}

	// A head invalidation drops the set's segments too.
	mustAdd(t, writer, active, "g")
	standby.Invalidate(testPrefix + "/h")
	if got := scanAll(t, reader, raw); !slices.Equal(got, []string{"b", "c", "d", "e", "f", "g"}) {
		t.Fatalf("after invalidating the head: %q", got)
	}

	// The last segment changes, and its invalidation arrives, while a reader is reading
	// its old value: the old value must not stay cached.
	_, segs, _ := readRaw(raw, testPrefix)
	last := segs[len(segs)-1]
	if len(last.inside) >= 4 {
		t.Fatalf("the last segment is full, so adding h would split it: %q", last.inside)
	}
	fresh := NewManager(Options{MaxSegment: 4})
	slow := &recordingStorage{Storage: raw}
	slow.onGet = func(key string) {
		if key != fmt.Sprintf("%s/s/%d", testPrefix, last.id) {
			return
		}
		slow.onGet = nil
		active.written = nil
		mustAdd(t, writer, active, "h")
		for _, k := range active.written {
			fresh.Invalidate(k)
		}
	}
	scanAll(t, fresh.Set(testPrefix), slow) // may or may not see h
	if got := scanAll(t, fresh.Set(testPrefix), slow); !slices.Contains(got, "h") {
		t.Fatalf("a value read before its invalidation stayed cached: %q", got)
	}
}

func TestSameSetAndCacheBound(t *testing.T) {
	m := NewManager(Options{MaxSegment: 8, CacheBytes: 2000})
	if a1, a2 := m.Set("a"), m.Set("a"); a1 != a2 || a1 == m.Set("b") {
		t.Fatal("Set(prefix) must give one *Set per prefix")
	}
	st := &logical.InmemStorage{}
	s := m.Set(testPrefix)
	for i, k := range keys("cache%04d", 0, 500) {
		mustAdd(t, s, st, k)
		if i%2 == 1 {
			mustRemove(t, s, st, keys("cache%04d", 0, 500)[i-1])
		}
		m.cacheMu.Lock()
		used, n := m.used, len(m.entries)
		m.cacheMu.Unlock()
		if used > 2000 || used < 0 {
			t.Fatalf("cache holds %d bytes in %d entries, bound 2000", used, n)
		}
	}
	if got := scanAll(t, s, st); len(got) != 250 {
		t.Fatalf("%d keys, want 250", len(got))
	}
}

func TestConcurrentUse(t *testing.T) {
	ctx := context.Background()
	m := NewManager(Options{MaxSegment: 4, CacheBytes: 3000})
	st := &logical.InmemStorage{}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 4 {
		wg.Go(func() {
			s := m.Set(testPrefix) // each goroutine asks for the set itself
			for i := range 150 {
				k := fmt.Sprintf("w%d-%03d", w, i)
				if err := s.Add(ctx, st, k); err != nil {
					t.Error(err)
					return
				}
				if i%2 == 1 {
					if err := s.Remove(ctx, st, fmt.Sprintf("w%d-%03d", w, i-1)); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	var readers sync.WaitGroup
	for range 2 {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				var prev string
				err := m.Set(testPrefix).Scan(ctx, st, "", func(k string) bool {
					if k <= prev {
						t.Errorf("scan out of order: %q after %q", k, prev)
					}
					prev = k
					return true
				})
				if err != nil {
					t.Error(err)
				}
				m.Invalidate(testPrefix + "/h")
			}
		})
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	var want []string
	for w := range 4 {
		for i := 1; i < 150; i += 2 {
			want = append(want, fmt.Sprintf("w%d-%03d", w, i))
		}
	}
	if got := scanAll(t, m.Set(testPrefix), st); !slices.Equal(got, want) {
		t.Fatalf("got %d keys, want %d", len(got), len(want))
	}
}
