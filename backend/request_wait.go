package backend

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// vault read <mount>/requests/<id> wait=<duration> answers when the request's status
// changes (an approval that completes it, a denial, a pickup, its expiry) or, unchanged,
// at the end of the wait, so that a script waits for approval without polling fast.
// Changes are written on the active node, where requests are answered too; a poll every
// second covers whatever this process does not see written.

const (
	maxRequestWait  = 60 * time.Second
	requestWaitPoll = time.Second
)

// requestWatchers wakes the reads waiting on a request when it is saved.
type requestWatchers struct {
	mu sync.Mutex
	m  map[string][]chan struct{}
}

func (w *requestWatchers) subscribe(id string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	w.mu.Lock()
	if w.m == nil {
		w.m = map[string][]chan struct{}{}
	}
	w.m[id] = append(w.m[id], ch)
	w.mu.Unlock()
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
	}
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

// waitForChange returns the request once its status differs from rec's, or at the end
// of wait; changed says which.
func (b *aponoBackend) waitForChange(ctx context.Context, s logical.Storage, rec *requestRecord, wait time.Duration) (*requestRecord, bool, error) {
	ch, cancel := b.watchers.subscribe(rec.ID)
	defer cancel()
	start := time.Now()
	from := rec.status(start)
	for {
		now := time.Now()
		left := wait - now.Sub(start)
		if left <= 0 {
			return rec, false, nil
		}
		next := min(left, requestWaitPoll)
		if d := rec.deadline(); !d.IsZero() && d.After(now) && d.Sub(now) < next {
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
		cur, err := getRequest(ctx, s, rec.ID)
		if err != nil {
			return nil, false, err
		}
		if cur == nil {
			return rec, true, nil // removed past its retention
		}
		rec = cur
		if rec.status(time.Now()) != from {
			return rec, true, nil
		}
	}
}
