package backend

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/apono-io/vault-plugin-apono/backend/store"
	"github.com/hashicorp/vault/sdk/logical"
)

// vault read <mount>/requests/<id> wait=<duration> answers when the request's status
// changes (an approval that completes it, a denial, a pickup, its expiry) or, unchanged,
// at the end of the wait, so that a script waits for approval without polling fast.
//
// A waiting read sleeps until it is woken: saveRequest wakes the reads of the request it
// stores on this node, and Invalidate wakes them when another node stored it (a
// performance standby answers reads itself and hears of the active node's writes that
// way); an open request's deadline wakes them for its expiry. A read of storage every
// requestWaitFallback covers a change this process is told of neither way; it is not how
// a change is normally seen.
//
// Waiting reads are bounded: at most maxWaitersPerPerson per person and maxWaiters in all
// on this node; past either, the read is refused at once with a 429.

const (
	maxRequestWait      = 60 * time.Second
	requestWaitFallback = 10 * time.Second
	maxWaitersPerPerson = 8
	maxWaiters          = 256
)

// requestWatchers wakes the reads waiting on a request when it is saved, and counts them.
type requestWatchers struct {
	mu       sync.Mutex
	m        map[string][]chan struct{}
	total    int
	byPerson map[string]int
}

// errTooManyWaiters is the 429 of a read with wait= past the bounds.
func errTooManyWaiters(mine bool) error {
	if mine {
		return logical.CodedError(http.StatusTooManyRequests, fmt.Sprintf(
			"you already have %d reads waiting with wait= (at most %d at a time): wait for one to answer, or read without wait", maxWaitersPerPerson, maxWaitersPerPerson))
	}
	return logical.CodedError(http.StatusTooManyRequests, fmt.Sprintf(
		"%d reads are waiting with wait= on this node (at most %d): try again shortly, or read without wait", maxWaiters, maxWaiters))
}

// subscribe registers a read of request id waiting for person; err is the 429 when
// person or the node is at the bound. cancel unregisters it.
func (w *requestWatchers) subscribe(id, person string) (<-chan struct{}, func(), error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.m == nil {
		w.m, w.byPerson = map[string][]chan struct{}{}, map[string]int{}
	}
	if w.byPerson[person] >= maxWaitersPerPerson {
		return nil, nil, errTooManyWaiters(true)
	}
	if w.total >= maxWaiters {
		return nil, nil, errTooManyWaiters(false)
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

func (w *requestWatchers) changed(id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, ch := range w.m[id] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// invalidateRequest wakes the reads waiting on a request another node stored; it says
// whether key is a request's.
func (b *aponoBackend) invalidateRequest(key string) bool {
	id, ok := strings.CutPrefix(key, store.RequestStoragePrefix)
	if ok {
		b.watchers.changed(id)
	}
	return ok
}

// waitForChange returns the request once its status differs from rec's, or at the end
// of wait; changed says which. person is who waits, for the bounds.
func (b *aponoBackend) waitForChange(ctx context.Context, s logical.Storage, rec *access.Request, person string, wait time.Duration) (*access.Request, bool, error) {
	ch, cancel, err := b.watchers.subscribe(rec.ID, person)
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
		next := min(left, requestWaitFallback)
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
		cur, err := store.GetRequest(ctx, s, rec.ID)
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
