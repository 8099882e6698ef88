package sortedset

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// gatedStorage holds every Put until the test lets it through, counts the Puts, and fails
// those whose segment holds a key named in failKeys.
type gatedStorage struct {
	logical.Storage
	gate     chan struct{}
	entered  chan struct{}
	puts     atomic.Int64
	failKeys map[string]bool
}

func (g *gatedStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	g.puts.Add(1)
	g.entered <- struct{}{}
	<-g.gate
	var seg segment
	if e.DecodeJSON(&seg) == nil {
		for _, k := range seg.Keys {
			if g.failKeys[k] {
				return errors.New("injected put failure")
			}
		}
	}
	return g.Storage.Put(ctx, e)
}

// waitQueued waits until n writes wait in s's queue.
func waitQueued(s *Set, n int) {
	for {
		s.qmu.Lock()
		queued := len(s.queue)
		s.qmu.Unlock()
		if queued == n {
			return
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// TestConcurrentWritesShareAPut: while one Add's Put is held, 31 more writers queue; they
// are stored together, one segment Put, not one after the other, and each learns its
// own outcome.
func TestConcurrentWritesShareAPut(t *testing.T) {
	ctx := context.Background()
	m := NewManager(Options{MaxSegment: 256})
	s := m.Set(testPrefix)
	st := &gatedStorage{Storage: &logical.InmemStorage{}, gate: make(chan struct{}), entered: make(chan struct{}, 100)}
	// A stored head and a few keys to start from (let these Puts through).
	go func() {
		for range 2 {
			<-st.entered
			st.gate <- struct{}{}
		}
	}()
	mustAdd(t, s, st, "k000")
	st.puts.Store(0)

	var wg sync.WaitGroup
	errs := make([]error, 32)
	wg.Go(func() { errs[0] = s.Add(ctx, st, "k001") })
	<-st.entered // the first writer's Put is in flight
	for i := 1; i < 32; i++ {
		wg.Go(func() { errs[i] = s.Add(ctx, st, fmt.Sprintf("k%03d", i+1)) })
	}
	waitQueued(s, 31)
	st.gate <- struct{}{} // the first Put
	<-st.entered          // the batch of 31
	st.gate <- struct{}{}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("writer %d: %v", i, err)
		}
	}
	if n := st.puts.Load(); n != 2 {
		t.Errorf("32 concurrent Adds made %d Puts, want 2 (the one in flight, then one for the 31 queued)", n)
	}
	if got, want := scanAll(t, s, st.Storage), keys("k%03d", 0, 33); !slices.Equal(got, want) {
		t.Fatalf("keys %v, want %v", got, want)
	}
	// The last leader (a goroutine the first writer handed the queue to) ends once the
	// queue is empty.
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.qmu.Lock()
		leading, queued := s.leading, len(s.queue)
		s.qmu.Unlock()
		if !leading && queued == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the set is left with a leader (%v) or a queue (%d)", leading, queued)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestBatchFailureFailsItsWrites: a batch whose Put fails reports the failure to each
// writer it carried, and a write reported failed is not half stored; the write stored
// before it is kept.
func TestBatchFailureFailsItsWrites(t *testing.T) {
	ctx := context.Background()
	m := NewManager(Options{MaxSegment: 8})
	s := m.Set(testPrefix)
	inner := &logical.InmemStorage{}
	if err := s.AddMany(ctx, inner, []string{"a1", "a2", "a3", "a4", "a5", "c1", "c2", "c3", "c4", "c5"}); err != nil {
		t.Fatal(err)
	}
	m.Reset()
	if h, _, err := readRaw(inner, testPrefix); err != nil || len(h.Segments) != 2 {
		t.Fatalf("setup: head %v %v, want two segments", h, err)
	}
	st := &gatedStorage{Storage: inner, gate: make(chan struct{}), entered: make(chan struct{}, 100), failKeys: map[string]bool{"a0": true}}
	var wg sync.WaitGroup
	var first, low, high error
	// Hold a first write so that the next two queue into one batch.
	wg.Go(func() { first = s.Add(ctx, st, "c6") })
	<-st.entered
	wg.Go(func() { low = s.Add(ctx, st, "a0") })  // first segment: its Put fails
	wg.Go(func() { high = s.Add(ctx, st, "c7") }) // second segment, in the same batch
	waitQueued(s, 2)
	st.gate <- struct{}{}
	<-st.entered // the batch's first Put, which fails; the plan stops there
	st.gate <- struct{}{}
	wg.Wait()
	if first != nil {
		t.Fatalf("the write stored before the batch failed: %v", first)
	}
	if low == nil || high == nil {
		t.Fatalf("writes of a batch whose Put failed reported success: a0 %v, c7 %v", low, high)
	}
	if n := st.puts.Load(); n != 2 {
		t.Errorf("%d Puts, want 2 (c6, then the failed one)", n)
	}
	m.Reset()
	got := scanAll(t, s, inner)
	if slices.Contains(got, "a0") || slices.Contains(got, "c7") || !slices.Contains(got, "c6") {
		t.Fatalf("stored keys %v: want c6, neither a0 nor c7", got)
	}
	// The set works on after the failure (its cache was dropped).
	mustAdd(t, s, inner, "a0", "c7")
	if got := scanAll(t, s, inner); !slices.Contains(got, "a0") || !slices.Contains(got, "c7") {
		t.Fatalf("after the failure: %v", got)
	}
}
