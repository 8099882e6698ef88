package store

import (
	"errors"
	"testing"
)

// The node holds at most MaxWaiters waiting reads, whoever asks.
func TestWaitingReadsAreBoundedInAll(t *testing.T) {
	var w Watchers
	var cancels []func()
	for i := 0; i < MaxWaiters; i++ {
		_, cancel, err := w.Subscribe("r", string(rune('a'+i%26))+string(rune('a'+i/26)))
		if err != nil {
			t.Fatalf("waiter %d: %v", i, err)
		}
		cancels = append(cancels, cancel)
	}
	var many *TooManyWaiters
	if _, _, err := w.Subscribe("r", "someone-new"); !errors.As(err, &many) || many.Mine {
		t.Fatalf("waiter %d: want the node's bound, got %v", MaxWaiters+1, err)
	}
	if w.Count() != MaxWaiters {
		t.Fatalf("Count() = %d, want %d", w.Count(), MaxWaiters)
	}
	cancels[0]()
	if _, _, err := w.Subscribe("r", "someone-new"); err != nil {
		t.Fatalf("after one left: %v", err)
	}
}
