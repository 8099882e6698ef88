package store

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/hashicorp/vault/sdk/logical"
)

// Bounds of the reads waiting on a request (wait=): per person and on this node.
const (
	MaxWaitersPerPerson = 8
	MaxWaiters          = 256
	// RequestWaitFallback is how often a waiting read reads storage when nothing woke it.
	RequestWaitFallback = 10 * time.Second
)

// TooManyWaiters is Subscribe's refusal past the bounds; Mine says the person's own bound.
type TooManyWaiters struct{ Mine bool }

func (e *TooManyWaiters) Error() string {
	if e.Mine {
		return "too many waiting reads of this person"
	}
	return "too many waiting reads on this node"
}

// Watchers wakes the reads waiting on a request when it is saved, and counts them.
type Watchers struct {
	mu       sync.Mutex
	m        map[string][]chan struct{}
	total    int
	byPerson map[string]int
}

// Subscribe registers a read of request id waiting for person; err is a
// *TooManyWaiters when person or the node is at the bound. cancel unregisters it.
func (w *Watchers) Subscribe(id, person string) (<-chan struct{}, func(), error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.m == nil {
		w.m, w.byPerson = map[string][]chan struct{}{}, map[string]int{}
	}
	if w.byPerson[person] >= MaxWaitersPerPerson {
		return nil, nil, &TooManyWaiters{Mine: true}
	}
	if w.total >= MaxWaiters {
		return nil, nil, &TooManyWaiters{}
	}
	ch := make(chan struct{}, 1)
	w.m[id] = append(w.m[id], ch)
	w.total++
	w.byPerson[person]++
	return ch, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		list := w.m[id]
		for i, c := range list {
			if c == ch {
				w.m[id] = append(list[:i], list[i+1:]...)
				break
			}
		}
		if len(w.m[id]) == 0 {
			delete(w.m, id)
		}
		w.total--
		if w.byPerson[person]--; w.byPerson[person] <= 0 {
			delete(w.byPerson, person)
		}
	}, nil
}

// Count is how many reads wait now.
func (w *Watchers) Count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.total
}

// Changed wakes the reads waiting on request id.
func (w *Watchers) Changed(id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, ch := range w.m[id] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// RequestInvalidated wakes the reads waiting on a request another node stored (Vault's
// Invalidate); it says whether key is a request's.
func (st *Store) RequestInvalidated(key string) bool {
	id, ok := strings.CutPrefix(key, RequestStoragePrefix)
	if ok {
		st.Watchers.Changed(id)
	}
	return ok
}

// WaitForChange returns the request once its status differs from rec's, or at the end
// of wait; changed says which. person is who waits, for the bounds.
func (st *Store) WaitForChange(ctx context.Context, s logical.Storage, rec *access.Request, person string, wait time.Duration) (*access.Request, bool, error) {
	ch, cancel, err := st.Watchers.Subscribe(rec.ID, person)
	if err != nil {
		return nil, false, err
	}
	defer cancel()
	start := time.Now()
	from := rec.StatusAt(start)
	for {
		now := time.Now()
		left := wait - now.Sub(start)
		if left <= 0 {
			return rec, false, nil
		}
		next := min(left, RequestWaitFallback)
		if d := rec.Deadline(); !d.IsZero() && d.After(now) && d.Sub(now) < next {
			next = d.Sub(now) + time.Millisecond // an open request expires at its deadline
		}
		timer := time.NewTimer(next)
		select {
		case <-ctx.Done():
			timer.Stop()
			return rec, false, ctx.Err()
		case <-ch:
		case <-timer.C:
		}
		timer.Stop()
		cur, err := GetRequest(ctx, s, rec.ID)
		if err != nil {
			return nil, false, err
		}
		if cur == nil {
			return rec, true, nil // removed past its retention
		}
		rec = cur
		if rec.StatusAt(time.Now()) != from {
			return rec, true, nil
		}
	}
}
