package sortedset

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/vault/sdk/logical"
)

// MaxKeyLen is the longest key accepted, so that a full segment stays a small entry.
const MaxKeyLen = 512

// ErrInvalidKey is wrapped by the error Add, AddMany, Remove and Has return for a key that
// cannot be stored: callers can tell bad input from a storage failure.
var ErrInvalidKey = errors.New("invalid key")

func checkKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("%w: empty", ErrInvalidKey)
	case len(key) > MaxKeyLen:
		return fmt.Errorf("%w: %d bytes, at most %d allowed", ErrInvalidKey, len(key), MaxKeyLen)
	case strings.IndexByte(key, 0) >= 0:
		return fmt.Errorf("%w: contains a NUL byte", ErrInvalidKey)
	case !utf8.ValidString(key):
		// encoding/json would store U+FFFD in place of the invalid bytes.
		return fmt.Errorf("%w: not valid UTF-8", ErrInvalidKey)
	}
	return nil
}

// segRef is one segment in the head: its id and the least key it may hold.
type segRef struct {
	ID uint64 `json:"id"`
	Lo string `json:"lo"`
}

// head is stored at <prefix>/h. Cached heads are shared with running scans, so a change
// is made on a copy (clone).
type head struct {
	Segments []segRef `json:"segments"`
	Next     uint64   `json:"next"`
	// stored is false for the head of a set that has none in storage yet: one empty
	// segment with id 0, which is known empty without reading it.
	stored bool
}

// segment is stored at <prefix>/s/<id>. Keys are sorted; after a crash they may include
// keys outside the segment's range, which readers skip and the next write drops.
type segment struct {
	Keys []string `json:"keys"`
}

func emptyHead() *head {
	return &head{Segments: []segRef{{ID: 0, Lo: ""}}, Next: 1}
}

func (h *head) clone() *head {
	return &head{Segments: slices.Clone(h.Segments), Next: h.Next, stored: h.stored}
}

// find returns the index of the segment whose range holds key.
func (h *head) find(key string) int {
	return sort.Search(len(h.Segments), func(i int) bool { return h.Segments[i].Lo > key }) - 1
}

// bounds returns segment i's range [lo, hi); hi == "" is no upper bound (only the first
// segment's lo is "", so no other bound is ever "").
func (h *head) bounds(i int) (lo, hi string) {
	if i+1 < len(h.Segments) {
		hi = h.Segments[i+1].Lo
	}
	return h.Segments[i].Lo, hi
}

func (h *head) validate() error {
	if len(h.Segments) == 0 || h.Segments[0].Lo != "" {
		return errors.New("head has no segments or the first has a lower bound")
	}
	ids := make(map[uint64]bool, len(h.Segments))
	for i, r := range h.Segments {
		if i > 0 && r.Lo <= h.Segments[i-1].Lo {
			return fmt.Errorf("segment bounds out of order at %d", i)
		}
		if r.ID >= h.Next || ids[r.ID] {
			return fmt.Errorf("segment id %d repeated or not below next %d", r.ID, h.Next)
		}
		ids[r.ID] = true
	}
	return nil
}

func headSize(h *head) int64 {
	n := int64(64)
	for _, r := range h.Segments {
		n += int64(len(r.Lo)) + 24
	}
	return n
}

func segmentSize(keys []string) int64 {
	n := int64(64)
	for _, k := range keys {
		n += int64(len(k)) + 16
	}
	return n
}

// inRange returns the keys of sorted within [lo, hi), and whether sorted holds others.
func inRange(sorted []string, lo, hi string) ([]string, bool) {
	a, _ := slices.BinarySearch(sorted, lo)
	b := len(sorted)
	if hi != "" {
		b, _ = slices.BinarySearch(sorted, hi)
		b = max(a, b)
	}
	return sorted[a:b], a != 0 || b != len(sorted)
}

func (s *Set) segmentKey(id uint64) string {
	return s.prefix + "/s/" + strconv.FormatUint(id, 10)
}

// loadHead returns the head, from the cache or storage; a missing one is an empty set.
// Callers hold s.mu.
func (s *Set) loadHead(ctx context.Context, st logical.Storage) (*head, error) {
	if v, ok := s.m.lookup(s.headKey); ok {
		return v.(*head), nil
	}
	epoch := s.m.currentEpoch()
	entry, err := st.Get(ctx, s.headKey)
	if err != nil {
		return nil, fmt.Errorf("sortedset %s: read head: %w", s.prefix, err)
	}
	h := emptyHead()
	if entry != nil {
		h = &head{}
		if err := entry.DecodeJSON(h); err != nil {
			return nil, fmt.Errorf("sortedset %s: decode head: %w", s.prefix, err)
		}
		if err := h.validate(); err != nil {
			return nil, fmt.Errorf("sortedset %s: corrupt head: %w", s.prefix, err)
		}
		h.stored = true
	}
	s.m.store(s, s.headKey, h, headSize(h), epoch, false)
	return h, nil
}

// loadSegment returns the keys of segment i that lie in its range, and whether the stored
// segment holds others (left by a crash). A segment the head names but storage lacks (left
// by a Clear cut short) is empty. Callers hold s.mu.
func (s *Set) loadSegment(ctx context.Context, st logical.Storage, h *head, i int) ([]string, bool, error) {
	if !h.stored {
		return nil, false, nil
	}
	keys, err := s.loadSegmentKeys(ctx, st, h.Segments[i].ID)
	if err != nil {
		return nil, false, err
	}
	lo, hi := h.bounds(i)
	in, stale := inRange(keys, lo, hi)
	return in, stale, nil
}

func (s *Set) loadSegmentKeys(ctx context.Context, st logical.Storage, id uint64) ([]string, error) {
	key := s.segmentKey(id)
	if v, ok := s.m.lookup(key); ok {
		return v.(*segment).Keys, nil
	}
	epoch := s.m.currentEpoch()
	entry, err := st.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("sortedset %s: read segment %d: %w", s.prefix, id, err)
	}
	seg := &segment{}
	if entry != nil {
		if err := entry.DecodeJSON(seg); err != nil {
			return nil, fmt.Errorf("sortedset %s: decode segment %d: %w", s.prefix, id, err)
		}
		for j := 1; j < len(seg.Keys); j++ {
			if seg.Keys[j-1] >= seg.Keys[j] {
				return nil, fmt.Errorf("sortedset %s: corrupt segment %d: keys out of order", s.prefix, id)
			}
		}
	}
	s.m.store(s, key, seg, segmentSize(seg.Keys), epoch, false)
	return seg.Keys, nil
}

// segWrite is one segment Put (keys, possibly empty) or Delete (del).
type segWrite struct {
	id   uint64
	keys []string
	del  bool
}

// plan is the storage writes of one change, in the order that keeps every crash point
// readable and lossless: before holds new segments and segments whose range grows (each
// holding every key of its new range), head the new head if the ranges change, after the
// segments whose range shrank or that left the head.
type plan struct {
	before []segWrite
	head   *head
	after  []segWrite
}

// apply runs p. On a failed write the state in storage is one of the crash states the
// order allows, but not known, so the set's cache is dropped and storage read again.
func (s *Set) apply(ctx context.Context, st logical.Storage, p plan) error {
	fail := func(err error) error {
		s.m.dropSet(s)
		s.headVersion.Add(1)
		return fmt.Errorf("sortedset %s: %w", s.prefix, err)
	}
	for _, w := range p.before {
		if err := s.write(ctx, st, w); err != nil {
			return fail(err)
		}
	}
	if p.head != nil {
		h := p.head.clone()
		h.stored = true
		entry, err := logical.StorageEntryJSON(s.headKey, h)
		if err == nil {
			err = st.Put(ctx, entry)
		}
		if err != nil {
			return fail(fmt.Errorf("write head: %w", err))
		}
		s.m.store(s, s.headKey, h, headSize(h), 0, true)
		s.headVersion.Add(1)
	}
	for _, w := range p.after {
		if err := s.write(ctx, st, w); err != nil {
			return fail(err)
		}
	}
	return nil
}

func (s *Set) write(ctx context.Context, st logical.Storage, w segWrite) error {
	key := s.segmentKey(w.id)
	if w.del {
		if err := st.Delete(ctx, key); err != nil {
			return fmt.Errorf("delete segment %d: %w", w.id, err)
		}
		s.m.drop(key)
		return nil
	}
	seg := &segment{Keys: w.keys}
	if seg.Keys == nil {
		seg.Keys = []string{} // "keys":[] rather than null, for anyone reading storage
	}
	entry, err := logical.StorageEntryJSON(key, seg)
	if err == nil {
		err = st.Put(ctx, entry)
	}
	if err != nil {
		return fmt.Errorf("write segment %d: %w", w.id, err)
	}
	s.m.store(s, key, seg, segmentSize(seg.Keys), 0, true)
	return nil
}
