// Package keylock gives one mutex per key (a grant ID, or any name), made on first use and
// dropped when nobody holds or waits for it. It owns nothing else and imports nothing of
// the project; the backend makes one Set and passes it to whatever must serialise on a key.
package keylock

import "sync"

// Set serialises the work on one key (a grant's issue, renew, revoke and sweep) with one
// mutex per key.
//
// It is not locksutil's 256 shared locks: with those, unrelated grants whose IDs hash to
// the same lock wait for each other. That costs little while calls into Vault take
// milliseconds, but while Vault seals or steps down each call waits out its timeout, and
// revocations that share a lock would wait out one timeout after another, holding the
// seal up for a multiple of it instead of one.
type Set struct {
	mu    sync.Mutex
	locks map[string]*entry
}

type entry struct {
	sync.Mutex
	refs int // holders and waiters; guarded by Set.mu
}

// Lock locks id's mutex and returns its unlock.
func (g *Set) Lock(id string) (unlock func()) {
	g.mu.Lock()
	if g.locks == nil {
		g.locks = make(map[string]*entry)
	}
	l := g.locks[id]
	if l == nil {
		l = &entry{}
		g.locks[id] = l
	}
	l.refs++
	g.mu.Unlock()

	l.Lock()
	return func() {
		l.Unlock()
		g.mu.Lock()
		l.refs--
		if l.refs == 0 {
			delete(g.locks, id)
		}
		g.mu.Unlock()
	}
}
