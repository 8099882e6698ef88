package sortedset

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

// countingStorage counts the calls a Set makes; a List fails the test, since a Set must
// never list storage.
type countingStorage struct {
	logical.Storage
	t                   testing.TB
	gets, puts, deletes int
}

var _ logical.Storage = (*countingStorage)(nil)

type calls struct{ gets, puts, deletes int }

func (c calls) String() string {
	return fmt.Sprintf("%d gets, %d puts, %d deletes", c.gets, c.puts, c.deletes)
}

func (c *countingStorage) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	c.gets++
	return c.Storage.Get(ctx, key)
}

func (c *countingStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	c.puts++
	return c.Storage.Put(ctx, e)
}

func (c *countingStorage) Delete(ctx context.Context, key string) error {
	c.deletes++
	return c.Storage.Delete(ctx, key)
}

func (c *countingStorage) List(ctx context.Context, prefix string) ([]string, error) {
	c.t.Errorf("List(%q): a Set must never list storage", prefix)
	return c.Storage.List(ctx, prefix)
}

// take returns the calls since the last take.
func (c *countingStorage) take() calls {
	r := calls{c.gets, c.puts, c.deletes}
	c.gets, c.puts, c.deletes = 0, 0, 0
	return r
}

var (
	errInjected = errors.New("injected storage failure")
	errCrashed  = errors.New("process crashed")
)

// faultyStorage fails the failAt-th Put or Delete (counting from 1; 0 never). With applied
// the failing write lands in storage first, as when Vault wrote it but the reply was lost.
// With crash, every call after the failure fails too: the process is dead, and the test
// goes on with a new Manager on the underlying storage.
type faultyStorage struct {
	logical.Storage
	failAt  int
	applied bool
	crash   bool
	writes  int
	crashed bool
}

var _ logical.Storage = (*faultyStorage)(nil)

func (f *faultyStorage) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	if f.crashed {
		return nil, errCrashed
	}
	return f.Storage.Get(ctx, key)
}

func (f *faultyStorage) List(ctx context.Context, prefix string) ([]string, error) {
	return nil, fmt.Errorf("List(%q): a Set must never list storage", prefix)
}

func (f *faultyStorage) write(do func() error) error {
	if f.crashed {
		return errCrashed
	}
	f.writes++
	if f.writes != f.failAt {
		return do()
	}
	if f.applied {
		if err := do(); err != nil {
			return err
		}
	}
	f.crashed = f.crash
	return errInjected
}

func (f *faultyStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	return f.write(func() error { return f.Storage.Put(ctx, e) })
}

func (f *faultyStorage) Delete(ctx context.Context, key string) error {
	return f.write(func() error { return f.Storage.Delete(ctx, key) })
}

// rawSegment is one segment as storage holds it, with its range from the head.
type rawSegment struct {
	id     uint64
	lo, hi string
	keys   []string // as stored
	inside []string // the keys in [lo, hi)
}

// readRaw reads a set's head and segments straight from storage, bypassing any cache.
// It returns a nil head when there is none.
func readRaw(st logical.Storage, prefix string) (*head, []rawSegment, error) {
	ctx := context.Background()
	e, err := st.Get(ctx, prefix+"/h")
	if err != nil || e == nil {
		return nil, nil, err
	}
	h := &head{}
	if err := e.DecodeJSON(h); err != nil {
		return nil, nil, fmt.Errorf("decode head: %w", err)
	}
	if err := h.validate(); err != nil {
		return nil, nil, fmt.Errorf("head %+v: %w", h, err)
	}
	var segs []rawSegment
	for i, r := range h.Segments {
		lo, hi := h.bounds(i)
		rs := rawSegment{id: r.ID, lo: lo, hi: hi}
		se, err := st.Get(ctx, fmt.Sprintf("%s/s/%d", prefix, r.ID))
		if err != nil {
			return nil, nil, err
		}
		if se != nil {
			var seg segment
			if err := se.DecodeJSON(&seg); err != nil {
				return nil, nil, fmt.Errorf("decode segment %d: %w", r.ID, err)
			}
			if !slices.IsSorted(seg.Keys) || len(slices.Compact(slices.Clone(seg.Keys))) != len(seg.Keys) {
				return nil, nil, fmt.Errorf("segment %d keys not strictly sorted: %q", r.ID, seg.Keys)
			}
			rs.keys = seg.Keys
			rs.inside, _ = inRange(seg.Keys, lo, hi)
		}
		segs = append(segs, rs)
	}
	return h, segs, nil
}

// checkShape checks the structure in storage: every segment within MaxSegment keys, and,
// with fill, at least max(1, M/4) keys in each segment unless it is the only one. It
// returns the keys in range, in order.
func checkShape(st logical.Storage, prefix string, maxSegment int, fill bool) ([]string, error) {
	_, segs, err := readRaw(st, prefix)
	if err != nil {
		return nil, err
	}
	var all []string
	minFill := max(1, maxSegment/4)
	for _, s := range segs {
		if len(s.inside) > maxSegment {
			return nil, fmt.Errorf("segment %d holds %d keys, max %d", s.id, len(s.inside), maxSegment)
		}
		if fill && len(segs) > 1 && len(s.inside) < minFill {
			return nil, fmt.Errorf("segment %d holds %d keys, under %d, beside %d segments", s.id, len(s.inside), minFill, len(segs)-1)
		}
		all = append(all, s.inside...)
	}
	return all, nil
}

// dumpRaw describes a set as storage holds it, for failure messages.
func dumpRaw(st logical.Storage, prefix string) string {
	h, segs, err := readRaw(st, prefix)
	if err != nil {
		return err.Error()
	}
	if h == nil {
		return "no head"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "next %d\n", h.Next)
	for _, s := range segs {
		fmt.Fprintf(&b, "segment %d [%q, %q): %q\n", s.id, s.lo, s.hi, s.keys)
	}
	return b.String()
}
