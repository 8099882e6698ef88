package keylock

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/helper/locksutil"
)

func TestGrantLocksExcludeOnlyTheSameGrant(t *testing.T) {
	var g Set
	unlockA := g.Lock("a")

	// Another grant's lock is free while "a" is held, even one whose ID shares "a"'s
	// lock among locksutil's 256.
	sharing := ""
	for i := 0; sharing == ""; i++ {
		if id := fmt.Sprintf("%016x", i); locksutil.LockIndexForKey(id) == locksutil.LockIndexForKey("a") {
			sharing = id
		}
	}
	for _, id := range []string{"b", sharing} {
		done := make(chan struct{})
		go func() { g.Lock(id)(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("locking %q waited for %q", id, "a")
		}
	}

	// The same grant waits until "a" is unlocked.
	got := make(chan struct{})
	go func() { unlock := g.Lock("a"); close(got); unlock() }()
	select {
	case <-got:
		t.Fatal("a second holder of the same grant got the lock")
	case <-time.After(50 * time.Millisecond):
	}
	unlockA()
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("the waiter did not get the lock after unlock")
	}
}

func TestGrantLocksAreDroppedWhenUnused(t *testing.T) {
	var g Set
	var wg sync.WaitGroup
	counter := 0
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			unlock := g.Lock("same")
			counter++ // the lock is what makes this safe (go test -race)
			unlock()
		}()
	}
	wg.Wait()
	if counter != 100 {
		t.Fatalf("counter %d, want 100", counter)
	}
	if n := g.held(); n != 0 {
		t.Fatalf("%d locks kept after every holder unlocked", n)
	}
}

// held is how many grant IDs have a holder or a waiter (for tests).
func (g *Set) held() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.locks)
}
