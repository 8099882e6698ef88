package backend

import "sync"

// grantLocks serialises the work on one grant (issue, renew, revoke, sweep) with one
// mutex per grant ID, made on first use and dropped when nobody holds or waits for it.
//
// It is not locksutil's 256 shared locks: with those, unrelated grants whose IDs hash to
// the same lock wait for each other. That costs little while calls into Vault take
// milliseconds, but while Vault seals or steps down each call waits out vaultCallTimeout,
// and revocations that share a lock would wait out one timeout after another, holding
// the seal up for a multiple of it instead of one.
type grantLocks struct {
	mu    sync.Mutex
	locks map[string]*grantLock
}

type grantLock struct {
	sync.Mutex
	refs int // holders and waiters; guarded by grantLocks.mu
}

// lock locks id's mutex and returns its unlock.
func (g *grantLocks) lock(id string) (unlock func()) {
	g.mu.Lock()
	if g.locks == nil {
		g.locks = make(map[string]*grantLock)
	}
	l := g.locks[id]
	if l == nil {
		l = &grantLock{}
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
