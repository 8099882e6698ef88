package sortedset

import (
	"context"
	"slices"
	"sort"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// Group commit.
//
// A plugin's storage call is a gRPC round trip into Vault, and on a busy Vault each one
// waits its turn in Vault's scheduler (tens of milliseconds on two cores doing bcrypt).
// Every write of a set holds the set's lock for such a call, so without batching n
// concurrent writers of one set (every grant writes the same few sets) wait for n round
// trips one after the other. Instead a write that finds another being stored queues, and
// whoever stores next stores everything queued with it: each segment that the queued
// writes change is Put once, with all of them. So a writer waits for at most the write
// in flight and its own batch, however many write at once.
//
// A batch is every write queued, and it goes through the storage value of its first
// write: a Manager serves one storage (see Manager), and a plugin is handed a new
// logical.Storage value with each request for the same storage behind it. Writes that leave every changed segment within its bounds (no split,
// no merge) go in one plan of segment Puts, each segment holding only keys of its range,
// so a crash between two Puts leaves each write either stored or not, as rule 2 of the
// package comment wants; the others, and a batch of one, are applied one by one as a
// lone Add or Remove would be (with the storage calls listed in the package comment).
// Each writer learns its own outcome: a failed Put fails the writes it carried.

// batchTimeout bounds a batch's storage calls. The batch runs on behalf of several
// callers, so it does not end when the one that runs it gives up (context.WithoutCancel).
const batchTimeout = 30 * time.Second

// pendingOp is one queued Add (add) or Remove.
type pendingOp struct {
	ctx  context.Context
	st   logical.Storage
	key  string
	add  bool
	done chan error // buffered: the leader never waits for a writer that gave up
}

// submit queues an Add or Remove and waits for its outcome, storing the batch itself when
// no other writer is.
func (s *Set) submit(ctx context.Context, st logical.Storage, key string, add bool) error {
	if err := checkKey(key); err != nil {
		return err
	}
	op := &pendingOp{ctx: ctx, st: st, key: key, add: add, done: make(chan error, 1)}
	s.qmu.Lock()
	s.queue = append(s.queue, op)
	lead := !s.leading
	s.leading = true
	s.qmu.Unlock()
	if lead {
		s.lead(context.WithoutCancel(ctx), op)
	}
	select {
	case err := <-op.done:
		return err
	case <-ctx.Done():
		// The write may still be stored: as with any storage call given up on.
		return ctx.Err()
	}
}

// lead stores batches until mine is done, then hands the queue on to a goroutine of its
// own so that this writer can return; the last leader finds the queue empty.
func (s *Set) lead(ctx context.Context, mine *pendingOp) {
	for {
		s.qmu.Lock()
		if len(s.queue) == 0 {
			s.leading = false
			s.qmu.Unlock()
			return
		}
		batch := s.queue
		s.queue = nil
		s.qmu.Unlock()

		s.store(ctx, batch)
		if mine != nil && slices.Contains(batch, mine) {
			s.qmu.Lock()
			if len(s.queue) == 0 {
				s.leading = false
				s.qmu.Unlock()
				return
			}
			s.qmu.Unlock()
			go s.lead(ctx, nil)
			return
		}
	}
}

// store applies one batch under the set's lock and tells each writer its outcome.
func (s *Set) store(ctx context.Context, batch []*pendingOp) {
	var live []*pendingOp
	for _, op := range batch {
		if err := op.ctx.Err(); err != nil {
			op.done <- err // gave up before its turn: nothing stored
			continue
		}
		live = append(live, op)
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, batchTimeout)
	defer cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	st := live[0].st
	if len(live) == 1 {
		live[0].done <- s.applyOne(ctx, st, live[0])
		return
	}
	h, err := s.loadHead(ctx, st)
	if err != nil {
		for _, op := range live {
			op.done <- err
		}
		return
	}
	if !h.stored {
		for _, op := range live {
			op.done <- s.applyOne(ctx, st, op)
		}
		return
	}
	bySegment := map[int][]*pendingOp{}
	for _, op := range live {
		i := h.find(op.key)
		bySegment[i] = append(bySegment[i], op)
	}
	segments := make([]int, 0, len(bySegment))
	for i := range bySegment {
		segments = append(segments, i)
	}
	sort.Ints(segments)

	var p plan
	var planned, alone []*pendingOp
	for _, i := range segments {
		ops := bySegment[i]
		keys, _, err := s.loadSegment(ctx, st, h, i)
		if err != nil {
			for _, op := range ops {
				op.done <- err
			}
			continue
		}
		next, changed := slices.Clip(keys), false
		for _, op := range ops {
			j, found := slices.BinarySearch(next, op.key)
			switch {
			case op.add && !found:
				next, changed = slices.Insert(slices.Clone(next), j, op.key), true
			case !op.add && found:
				next, changed = slices.Delete(slices.Clone(next), j, j+1), true
			}
		}
		switch {
		case !changed:
			for _, op := range ops {
				op.done <- nil
			}
		case len(next) <= s.m.maxSegment && (len(h.Segments) == 1 || len(next) >= s.m.minFill):
			p.before = append(p.before, segWrite{id: h.Segments[i].ID, keys: next})
			planned = append(planned, ops...)
		default:
			alone = append(alone, ops...) // a split or merge: one by one
		}
	}
	if len(p.before) > 0 {
		err := s.apply(ctx, st, p)
		for _, op := range planned {
			op.done <- err
		}
	}
	for _, op := range alone {
		op.done <- s.applyOne(ctx, st, op)
	}
}

func (s *Set) applyOne(ctx context.Context, st logical.Storage, op *pendingOp) error {
	if op.add {
		return s.addLocked(ctx, st, op.key)
	}
	return s.removeLocked(ctx, st, op.key)
}
