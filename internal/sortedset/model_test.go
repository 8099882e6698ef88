package sortedset

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

// modelKeys are the keys the model test draws from: short, sharing prefixes (so "a" <
// "aa" < "ab" orders by bytes), plus a few that JSON escapes, and few enough that adds and
// removes hit each other.
var modelKeys = func() []string {
	var ks []string
	for _, a := range "abc" {
		ks = append(ks, string(a))
		for _, b := range "abc" {
			ks = append(ks, string(a)+string(b))
			for _, c := range "abc" {
				ks = append(ks, string(a)+string(b)+string(c))
			}
		}
	}
	return append(ks, `"q`, `\`, "<&>", "é", "\u2028", "\x01", "\x7f", "z\U0001F600")
}()

// byteSource hands out the bytes of a fuzz input, then zeros.
type byteSource struct{ b []byte }

func (s *byteSource) next() byte {
	if len(s.b) == 0 {
		return 0
	}
	c := s.b[0]
	s.b = s.b[1:]
	return c
}

func (s *byteSource) key() string { return modelKeys[int(s.next())%len(modelKeys)] }

// modelRun runs the operations encoded in ops against a Set and a map, failing t on any
// difference. Storage writes fail on request (landing or not), after which the process
// either goes on or "crashes" and a new Manager takes over the storage: the keys of the
// operation that failed may or may not be in the set, every other key must be as the map
// says.
type modelRun struct {
	t        testing.TB
	ctx      context.Context
	raw      *logical.InmemStorage
	st       *faultyStorage
	opts     Options
	m        *Manager
	set      *Set
	model    map[string]bool
	noFaults bool // the run injects no failures
	// fillBroken: a write failed since the last Clear. Its crash state is complete and
	// readable but may hold a segment under the fill (a split's lower segment not yet
	// written, a Clear's deleted segments), so the fill is not checked until a Clear.
	fillBroken bool
	failures   int      // injected failures seen
	trace      []string // the operations so far, shown when the run fails
}

func (r *modelRun) logf(format string, args ...any) {
	r.trace = append(r.trace, fmt.Sprintf(format, args...))
}

func (r *modelRun) fatalf(format string, args ...any) {
	r.t.Helper()
	r.t.Fatalf("%s\noperations:\n%s\nstorage:\n%s", fmt.Sprintf(format, args...), strings.Join(r.trace, "\n"), dumpRaw(r.raw, modelPrefix))
}

const modelPrefix = "idx/model"

func newModelRun(t testing.TB, opts Options) *modelRun {
	r := &modelRun{t: t, ctx: context.Background(), raw: &logical.InmemStorage{}, opts: opts, model: map[string]bool{}}
	r.st = &faultyStorage{Storage: r.raw}
	r.restart()
	return r
}

func (r *modelRun) restart() {
	r.m = NewManager(r.opts)
	r.set = r.m.Set(modelPrefix)
	r.st = &faultyStorage{Storage: r.raw}
}

func (r *modelRun) sorted() []string {
	var ks []string
	for k, in := range r.model {
		if in {
			ks = append(ks, k)
		}
	}
	slices.Sort(ks)
	return ks
}

// done handles the error of an operation on keys (all keys for a Clear). An error that is
// not injected fails the test; an injected one makes the keys unknown until the set is
// asked about them.
func (r *modelRun) done(err error, keys ...string) bool {
	r.t.Helper()
	if err == nil {
		return true
	}
	if !errors.Is(err, errInjected) && !errors.Is(err, errCrashed) {
		r.fatalf("unexpected error: %v", err)
	}
	crashed := r.st.crashed
	r.failures++
	r.fillBroken = true
	r.logf("  failed: %v", err)
	if crashed {
		r.restart()
	}
	r.st.failAt = 0
	// Every key not involved must be as before the failure.
	got := r.scanAll()
	unknown := map[string]bool{}
	for _, k := range keys {
		unknown[k] = true
	}
	for _, k := range got {
		if !r.model[k] && !unknown[k] {
			r.fatalf("after a failed write (crash %v), key %q is back", crashed, k)
		}
	}
	for _, k := range r.sorted() {
		if !unknown[k] && !slices.Contains(got, k) {
			r.fatalf("after a failed write (crash %v), key %q is lost", crashed, k)
		}
	}
	for k := range unknown {
		r.model[k] = slices.Contains(got, k)
	}
	return false
}

// matches reports whether got is the model's keys in order, without sorting the model.
func (r *modelRun) matches(got []string) bool {
	n := 0
	for _, in := range r.model {
		if in {
			n++
		}
	}
	for i, k := range got {
		if !r.model[k] || i > 0 && got[i-1] >= k {
			return false
		}
	}
	return len(got) == n
}

func (r *modelRun) scanAll() []string {
	r.t.Helper()
	var got []string
	if err := r.set.Scan(r.ctx, r.st, "", func(k string) bool { got = append(got, k); return true }); err != nil {
		r.fatalf("scan: %v", err)
	}
	return got
}

// check compares the whole set, through the Set and straight from storage.
func (r *modelRun) check() {
	r.t.Helper()
	want := r.sorted()
	if got := r.scanAll(); !slices.Equal(got, want) {
		r.fatalf("scan:\n got %q\nwant %q", got, want)
	}
	raw, err := checkShape(r.raw, modelPrefix, r.m.maxSegment, !r.fillBroken)
	if err != nil {
		r.fatalf("storage: %v", err)
	}
	if !slices.Equal(raw, want) {
		r.fatalf("storage holds:\n got %q\nwant %q", raw, want)
	}
}

func (r *modelRun) add(k string) {
	r.t.Helper()
	r.logf("Add %q", k)
	if r.done(r.set.Add(r.ctx, r.st, k), k) {
		r.model[k] = true
	}
}

func (r *modelRun) remove(k string) {
	r.t.Helper()
	r.logf("Remove %q", k)
	if r.done(r.set.Remove(r.ctx, r.st, k), k) {
		r.model[k] = false
	}
}

func (r *modelRun) addMany(keys []string) {
	r.t.Helper()
	r.logf("AddMany %q", keys)
	if r.done(r.set.AddMany(r.ctx, r.st, keys), keys...) {
		for _, k := range keys {
			r.model[k] = true
		}
	}
}

func (r *modelRun) clear() {
	r.t.Helper()
	r.logf("Clear")
	var all []string
	for k := range r.model {
		all = append(all, k)
	}
	if r.done(r.set.Clear(r.ctx, r.st), all...) {
		clear(r.model)
		r.fillBroken = false
	}
}

func (r *modelRun) step(src *byteSource) {
	r.t.Helper()
	op := src.next()
	switch op % 24 {
	case 0, 1, 2, 3:
		r.add(src.key())
	case 4, 5, 6:
		r.remove(src.key())
	case 7:
		k := src.key()
		got, err := r.set.Has(r.ctx, r.st, k)
		if err != nil || got != r.model[k] {
			r.fatalf("Has(%q) = %v, %v; want %v", k, got, err, r.model[k])
		}
	case 8, 9:
		after, limit := "", int(src.next()%12)+1
		if src.next()%2 == 0 {
			after = src.key()
		}
		var got, want []string
		for _, k := range r.sorted() {
			if k > after && len(want) < limit {
				want = append(want, k)
			}
		}
		err := r.set.Scan(r.ctx, r.st, after, func(k string) bool { got = append(got, k); return len(got) < limit })
		if err != nil || !slices.Equal(got, want) {
			r.fatalf("Scan after %q limit %d: %q, %v; want %q", after, limit, got, err, want)
		}
	case 10:
		from, to, limit := src.key(), src.key(), int(src.next()%12)+1
		if src.next()%4 == 0 {
			to = ""
		}
		var got, want []string
		for _, k := range r.sorted() {
			if k >= from && (to == "" || k < to) && len(want) < limit {
				want = append(want, k)
			}
		}
		err := r.set.ScanRange(r.ctx, r.st, from, to, func(k string) bool { got = append(got, k); return len(got) < limit })
		if err != nil || !slices.Equal(got, want) {
			r.fatalf("ScanRange [%q, %q) limit %d: %q, %v; want %q", from, to, limit, got, err, want)
		}
	case 11, 12:
		keys := make([]string, int(src.next()%20))
		for i := range keys {
			keys[i] = src.key()
		}
		r.addMany(keys)
	case 13:
		n, err := r.set.Count(r.ctx, r.st)
		if err != nil || n != len(r.sorted()) {
			r.fatalf("Count = %d, %v; want %d", n, err, len(r.sorted()))
		}
	case 14:
		if src.next()%4 != 0 { // rarely, so sets grow
			return
		}
		r.clear()
	case 15, 16:
		// The next write, or one a few writes on, fails.
		c := src.next()
		if r.noFaults {
			return
		}
		r.st.failAt = r.st.writes + 1 + int(c%4)
		r.st.applied = c&4 != 0
		r.st.crash = c&8 != 0
		r.logf("fail write %d (now %d) applied %v crash %v", r.st.failAt, r.st.writes, r.st.applied, r.st.crash)
	case 17:
		r.logf("restart")
		r.restart()
	case 18:
		switch c := src.next(); c % 3 {
		case 0:
			r.m.Invalidate(modelPrefix + "/h")
		case 1:
			r.m.Invalidate(modelPrefix + "/s/" + string('0'+rune(c%10)))
		default:
			r.m.Reset()
		}
	case 19:
		// fn may write the set: remove every other key while scanning.
		var got []string
		var removed []string
		failed := false
		r.logf("scan removing every other key")
		err := r.set.Scan(r.ctx, r.st, "", func(k string) bool {
			got = append(got, k)
			if len(got)%2 == 0 {
				if err := r.set.Remove(r.ctx, r.st, k); err != nil {
					failed = true
					r.done(err, k)
					return false
				}
				removed = append(removed, k)
				r.model[k] = false
			}
			return true
		})
		if err != nil {
			r.fatalf("scan: %v", err)
		}
		for _, k := range removed {
			r.model[k] = true // for the comparison: each key seen once, in order
		}
		if !failed && !slices.Equal(got, r.sorted()) {
			r.fatalf("scan removing keys: %q, want %q", got, r.sorted())
		}
		for _, k := range removed {
			r.model[k] = false
		}
	case 20:
		// Any bytes as a key: rejected, or stored and read back exactly.
		n := int(src.next() % 8)
		k := string(src.b[:min(len(src.b), n)])
		src.b = src.b[len(k):]
		r.logf("Add raw %q", k)
		err := r.set.Add(r.ctx, r.st, k)
		if checkKey(k) != nil {
			if !errors.Is(err, ErrInvalidKey) {
				r.fatalf("Add(%q) = %v, want ErrInvalidKey", k, err)
			}
			return
		}
		if r.done(err, k) {
			r.model[k] = true
		}
	default:
		r.check()
	}
}

func runModel(t testing.TB, data []byte) {
	src := &byteSource{b: data}
	opts := Options{MaxSegment: int(src.next()%8) + 1}
	switch src.next() % 3 {
	case 0:
		opts.CacheBytes = -1
	case 1:
		opts.CacheBytes = 400 // a few entries: evictions all the time
	}
	r := newModelRun(t, opts)
	r.noFaults = src.next()%2 == 0
	for len(src.b) > 0 {
		r.step(src)
	}
	r.st.failAt = 0
	r.check()
}

func TestModelRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	runs := 300
	if testing.Short() {
		runs = 30
	}
	for range runs {
		data := make([]byte, 2+rng.IntN(1500))
		for i := range data {
			data[i] = byte(rng.UintN(256))
		}
		if !t.Run("", func(t *testing.T) { runModel(t, data) }) {
			t.Fatalf("input: %q", data)
		}
	}
}

func FuzzModel(f *testing.F) {
	f.Add([]byte{3, 1, 0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 23, 4, 1, 4, 2, 23})
	f.Add([]byte{0, 2, 11, 19, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 23, 15, 0, 4, 3, 23})
	f.Add([]byte(strings.Repeat("\x00\x05\x0b\x0f\x0c\x10\x04\x07\x17", 20)))
	f.Add([]byte{7, 1, 20, 5, 'a', 0xff, 'b', 0, 'c', 20, 3, 'x', 'y', 'z', 23})
	f.Fuzz(func(t *testing.T, data []byte) {
		runModel(t, data)
	})
}
