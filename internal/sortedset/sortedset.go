// Package sortedset keeps ordered sets of string keys in a Vault logical.Storage, so that
// adding, removing and paging through keys costs a few storage calls whatever the size.
//
// Vault's storage List returns every key under a prefix, so an index made of one entry per
// key costs O(n) per page. Here a set is a small head plus segments of up to MaxSegment
// sorted keys, and nothing ever lists storage.
//
// # Layout
//
//	<prefix>/h       {"segments":[{"id":0,"lo":""},{"id":3,"lo":"k42"},...],"next":4}
//	<prefix>/s/<id>  {"keys":["k42","k43",...]}
//
// Segment i holds the keys k with lo_i <= k < lo_(i+1); the first lo is "" (below every
// key) and the last segment has no upper bound. A segment that fills past MaxSegment is
// split in halves, the upper one taking id next. Every segment, unless it is the only one,
// keeps at least max(1, MaxSegment/4) keys: a Remove that leaves fewer merges it with a
// neighbour (when the two hold at most 3/4 MaxSegment together, so an empty segment is
// always dropped) or else evens the two out. A write cut short can leave a segment with
// fewer (see below), which costs scans one more read until a Remove in it merges it. The
// head grows by one segment per 64 to 256 keys, about 55 bytes each for UUID keys: 100k
// keys make a head of 40 to 60 KiB, and about a million near Vault's entry size limit
// (512 KiB on Consul, 1 MiB on integrated storage).
//
// # Storage calls
//
// Gets are for what the Manager's cache lacks (a warm cache makes them 0); M is MaxSegment.
//
//	Has                         Get <= 2 (head, segment)
//	Add, key present            Get <= 2
//	Add                         Get <= 2, Put 1 (segment)
//	Add, first key of the set   Get <= 1, Put 2 (segment, head)
//	Add, segment full: split    Get <= 2, Put 3 (new upper segment, head, lower segment)
//	Remove, key absent          Get <= 2 (1 when the set has no head)
//	Remove                      Get <= 2, Put 1 (segment)
//	Remove, segment left empty  Get <= 3, Put 1 (head), Delete 1; plus 1 Put of the
//	                            neighbour if a crash left it keys outside its range
//	Remove, segment under M/4   Get <= 3, merge: Put 2 (neighbour, head), Delete 1;
//	                            or even out: Put 3 (growing segment, head, shrinking one)
//	Scan, ScanRange             Get <= 1 + s, s the segments whose keys are visited;
//	                            s <= 2 + n/max(1,M/4) for n keys given to fn, and
//	                            ceil(n/M)+1 when segments are full
//	Count                       Get <= 1 + segments
//	AddMany                     Get <= 1 + segments touched; Put one per segment touched
//	                            and per new segment, plus 1 head if any segment split
//	                            or the set had no head
//	Clear                       Get <= 1, Delete segments + 2
//
// A scan reads the head once and keeps it while no write changes it; a split or merge
// during the scan costs one more head read (from the cache when present).
//
// # Crash safety
//
// The process may die between any two storage calls, and the next one starts with an
// empty cache. No key an Add reported done is lost, no key a Remove reported done comes
// back, and every state in between is readable, by four rules:
//
//  1. Readers use only the keys of a segment that lie in its range; others are leftovers.
//  2. Every segment write is made from keys in range only, so it drops leftovers.
//  3. A segment is written in full before a head names it: a new one takes id next,
//     which only the head that names it moves on, so a leftover from a split cut short
//     is overwritten by the next split (the first segment of a new set is written before
//     its head, so nothing left under id 0 is read).
//  4. A head that widens a segment's range is written after that segment, which by then
//     holds exactly the set's keys in its new range (a neighbour that takes over an empty
//     segment's range is rewritten first if it holds leftovers there); a segment whose
//     range narrows, or that leaves the head, is written or deleted after the head. A
//     split thus writes the new upper segment, then the head, then the lower segment: cut
//     short after the head, both hold the upper keys and readers honour the ranges.
//
// So at every step the segment whose range holds a key holds it exactly when the set
// does, and a leftover never comes back into range without a write that drops it first.
// A write that fails leaves one of those states, so the Set drops its cached entries and
// reads storage again. A Clear cut short leaves the head naming deleted segments, which
// read as empty; a crash in AddMany can leave unnamed segments with ids above next, which
// are overwritten before use and never read.
package sortedset

import (
	"container/list"
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/vault/sdk/logical"
)

// Set is one ordered set of keys under a storage prefix. It is safe for concurrent use;
// writes are serialized by one lock (concurrent Adds and Removes are stored together, a
// segment Put for all of them), and scans hold it only while reading a segment, so fn may
// call the Set.
type Set struct {
	m       *Manager
	prefix  string
	headKey string
	mu      sync.Mutex
	// headVersion changes whenever the head may have changed, so a scan can keep the head
	// it read across segments without reading it again.
	headVersion atomic.Uint64
	cached      map[string]*list.Element // guarded by m.cacheMu

	// qmu guards the writes waiting for the one being stored (batch.go).
	qmu     sync.Mutex
	queue   []*pendingOp
	leading bool
}

// Has reports whether key is in the set.
func (s *Set) Has(ctx context.Context, st logical.Storage, key string) (bool, error) {
	if err := checkKey(key); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	h, err := s.loadHead(ctx, st)
	if err != nil {
		return false, err
	}
	keys, _, err := s.loadSegment(ctx, st, h, h.find(key))
	if err != nil {
		return false, err
	}
	_, found := slices.BinarySearch(keys, key)
	return found, nil
}

// Add puts key in the set; adding a key already there writes nothing.
// Adds and removes that arrive while another write of the set is being stored are stored
// together after it (see batch.go).
func (s *Set) Add(ctx context.Context, st logical.Storage, key string) error {
	return s.submit(ctx, st, key, true)
}

// addLocked is one Add; the caller holds s.mu.
func (s *Set) addLocked(ctx context.Context, st logical.Storage, key string) error {
	h, err := s.loadHead(ctx, st)
	if err != nil {
		return err
	}
	i := h.find(key)
	keys, _, err := s.loadSegment(ctx, st, h, i)
	if err != nil {
		return err
	}
	j, found := slices.BinarySearch(keys, key)
	if found {
		return nil
	}
	keys = slices.Insert(slices.Clip(keys), j, key) // a copy: cached slices are shared
	id := h.Segments[i].ID
	if !h.stored {
		return s.apply(ctx, st, plan{before: []segWrite{{id: id, keys: keys}}, head: h})
	}
	if len(keys) <= s.m.maxSegment {
		return s.apply(ctx, st, plan{before: []segWrite{{id: id, keys: keys}}})
	}
	lower, upper := keys[:len(keys)/2], keys[len(keys)/2:]
	nh := h.clone()
	nh.Segments = slices.Insert(nh.Segments, i+1, segRef{ID: nh.Next, Lo: upper[0]})
	nh.Next++
	return s.apply(ctx, st, plan{
		before: []segWrite{{id: h.Next, keys: upper}},
		head:   nh,
		after:  []segWrite{{id: id, keys: lower}},
	})
}

// Remove takes key out of the set; removing a key not there writes nothing.
func (s *Set) Remove(ctx context.Context, st logical.Storage, key string) error {
	return s.submit(ctx, st, key, false)
}

// removeLocked is one Remove; the caller holds s.mu.
func (s *Set) removeLocked(ctx context.Context, st logical.Storage, key string) error {
	h, err := s.loadHead(ctx, st)
	if err != nil || !h.stored {
		return err
	}
	i := h.find(key)
	keys, _, err := s.loadSegment(ctx, st, h, i)
	if err != nil {
		return err
	}
	j, found := slices.BinarySearch(keys, key)
	if !found {
		return nil
	}
	keys = slices.Delete(slices.Clone(keys), j, j+1)
	id := h.Segments[i].ID
	if len(h.Segments) == 1 || len(keys) >= s.m.minFill {
		return s.apply(ctx, st, plan{before: []segWrite{{id: id, keys: keys}}})
	}

	// Too few keys left: pair the segment with its next neighbour (the previous one for
	// the last segment).
	x := i + 1
	if x == len(h.Segments) {
		x = i - 1
	}
	xkeys, xstale, err := s.loadSegment(ctx, st, h, x)
	if err != nil {
		return err
	}
	lo, hi := min(i, x), max(i, x)
	if len(keys) == 0 || len(keys)+len(xkeys) <= s.m.mergeMax {
		// The neighbour takes over the segment's range and keys; the segment leaves the head.
		merged := slices.Concat(keys, xkeys)
		if x < i {
			merged = slices.Concat(xkeys, keys)
		}
		nh := h.clone()
		if x > i {
			nh.Segments[x].Lo = h.Segments[i].Lo
		}
		nh.Segments = slices.Delete(nh.Segments, i, i+1)
		p := plan{head: nh, after: []segWrite{{id: id, del: true}}}
		if len(keys) > 0 || xstale {
			p.before = []segWrite{{id: h.Segments[x].ID, keys: merged}}
		}
		return s.apply(ctx, st, p)
	}

	// Too many keys for one segment: move the boundary so each holds half.
	var all []string
	if x > i {
		all = slices.Concat(keys, xkeys)
	} else {
		all = slices.Concat(xkeys, keys)
	}
	half := len(all) / 2
	newLo, oldLo := all[half], h.Segments[hi].Lo
	lower := segWrite{id: h.Segments[lo].ID, keys: all[:half]}
	upper := segWrite{id: h.Segments[hi].ID, keys: all[half:]}
	nh := h.clone()
	nh.Segments[hi].Lo = newLo
	switch {
	case newLo < oldLo: // the upper segment grows down
		return s.apply(ctx, st, plan{before: []segWrite{upper}, head: nh, after: []segWrite{lower}})
	case newLo > oldLo: // the lower segment grows up
		return s.apply(ctx, st, plan{before: []segWrite{lower}, head: nh, after: []segWrite{upper}})
	default:
		return s.apply(ctx, st, plan{before: []segWrite{lower, upper}})
	}
}

// AddMany adds keys (in any order, repeats allowed), for rebuilding an index from its
// records: each segment that gains keys is written once, however many it gains, and the
// head at most once. It checks every key before writing any.
func (s *Set) AddMany(ctx context.Context, st logical.Storage, keys []string) error {
	for _, k := range keys {
		if err := checkKey(k); err != nil {
			return err
		}
	}
	keys = slices.Compact(slices.Sorted(slices.Values(keys)))
	if len(keys) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	h, err := s.loadHead(ctx, st)
	if err != nil {
		return err
	}
	nh := h.clone()
	nh.Segments = nh.Segments[:0:0]
	var p plan
	split := false
	for i, ref := range h.Segments {
		_, hi := h.bounds(i)
		n := len(keys)
		if hi != "" {
			n, _ = slices.BinarySearch(keys, hi)
		}
		add := keys[:n]
		keys = keys[n:]
		nh.Segments = append(nh.Segments, ref)
		if len(add) == 0 {
			continue
		}
		old, _, err := s.loadSegment(ctx, st, h, i)
		if err != nil {
			return err
		}
		merged := mergeSorted(old, add)
		if len(merged) == len(old) {
			continue
		}
		if len(merged) <= s.m.maxSegment {
			p.before = append(p.before, segWrite{id: ref.ID, keys: merged})
			continue
		}
		// As few segments as hold the keys, evenly filled: each gets more than M/2.
		parts := (len(merged) + s.m.maxSegment - 1) / s.m.maxSegment
		bound := func(c int) int { return c * len(merged) / parts }
		p.after = append(p.after, segWrite{id: ref.ID, keys: merged[:bound(1)]})
		for c := 1; c < parts; c++ {
			part := merged[bound(c):bound(c+1)]
			p.before = append(p.before, segWrite{id: nh.Next, keys: part})
			nh.Segments = append(nh.Segments, segRef{ID: nh.Next, Lo: part[0]})
			nh.Next++
		}
		split = true
	}
	if !h.stored {
		// No head names segment 0 yet, so it is written before the head like a new one.
		p.before, p.after = append(p.before, p.after...), nil
	}
	if split || !h.stored {
		p.head = nh
	}
	return s.apply(ctx, st, p)
}

// mergeSorted returns the sorted union of two sorted, duplicate-free slices.
func mergeSorted(a, b []string) []string {
	out := make([]string, 0, len(a)+len(b))
	for len(a) > 0 && len(b) > 0 {
		switch {
		case a[0] < b[0]:
			out, a = append(out, a[0]), a[1:]
		case a[0] > b[0]:
			out, b = append(out, b[0]), b[1:]
		default:
			out, a, b = append(out, a[0]), a[1:], b[1:]
		}
	}
	return append(append(out, a...), b...)
}

// Clear deletes the head and every segment. Segments go first, so a Clear cut short
// leaves no segment that no head names; running it again finishes it.
func (s *Set) Clear(ctx context.Context, st logical.Storage) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, err := s.loadHead(ctx, st)
	if err != nil || !h.stored {
		return err
	}
	var p plan
	for _, r := range h.Segments {
		p.before = append(p.before, segWrite{id: r.ID, del: true})
	}
	// Where a split cut short may have left its new segment.
	p.before = append(p.before, segWrite{id: h.Next, del: true})
	if err := s.apply(ctx, st, p); err != nil {
		return err
	}
	if err := st.Delete(ctx, s.headKey); err != nil {
		s.m.dropSet(s)
		s.headVersion.Add(1)
		return fmt.Errorf("sortedset %s: delete head: %w", s.prefix, err)
	}
	s.m.store(s, s.headKey, emptyHead(), headSize(emptyHead()), 0, true)
	s.headVersion.Add(1)
	return nil
}

// Count returns the number of keys, reading every segment.
func (s *Set) Count(ctx context.Context, st logical.Storage) (int, error) {
	n := 0
	err := s.walk(ctx, st, "", func(keys []string) bool {
		n += len(keys)
		return true
	})
	return n, err
}

// Scan calls fn with each key greater than after (after == "": every key), ascending,
// until fn returns false or the keys end. Keys added or removed during the scan may or
// may not be seen; every other key is seen exactly once.
func (s *Set) Scan(ctx context.Context, st logical.Storage, after string, fn func(key string) bool) error {
	return s.walk(ctx, st, after, func(keys []string) bool {
		if len(keys) > 0 && keys[0] == after {
			keys = keys[1:]
		}
		for _, k := range keys {
			if !fn(k) {
				return false
			}
		}
		return true
	})
}

// ScanRange calls fn with each key k with from <= k < to (to == "": no upper bound),
// ascending, until fn returns false or the keys end.
func (s *Set) ScanRange(ctx context.Context, st logical.Storage, from, to string, fn func(key string) bool) error {
	if to != "" && from >= to {
		return nil
	}
	return s.walk(ctx, st, from, func(keys []string) bool {
		for _, k := range keys {
			if to != "" && k >= to {
				return false
			}
			if !fn(k) {
				return false
			}
		}
		return true
	})
}

// walk calls visit with the keys >= start of the segment that holds start, then with the
// keys of each following segment, until visit returns false or the segments end. It holds
// s.mu only while it reads, so visit may call the Set. A later segment is looked up in
// the head again from the previous segment's upper bound, so a split or merge in between
// neither skips nor repeats a key.
func (s *Set) walk(ctx context.Context, st logical.Storage, start string, visit func(keys []string) bool) error {
	var h *head
	var version uint64
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		s.mu.Lock()
		if v := s.headVersion.Load(); h == nil || v != version {
			var err error
			if h, err = s.loadHead(ctx, st); err != nil {
				s.mu.Unlock()
				return err
			}
			version = v
		}
		i := h.find(start)
		keys, _, err := s.loadSegment(ctx, st, h, i)
		s.mu.Unlock()
		if err != nil {
			return err
		}
		if j, _ := slices.BinarySearch(keys, start); j > 0 {
			keys = keys[j:]
		}
		_, hi := h.bounds(i)
		if !visit(keys) || hi == "" {
			return nil
		}
		start = hi
	}
}
