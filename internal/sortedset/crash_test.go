package sortedset

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// scriptOp is one step of the crash test's script.
type scriptOp struct {
	kind string // add, remove, addMany, clear
	keys []string
}

func keyN(i int) string { return fmt.Sprintf("k%04d", i) }

// crashScript grows a set one key at a time (splits), in bulk into an existing set
// (several segments split at once) and into an empty one, then shrinks it (merges, even-
// outs, drops of the first, middle and last segments) down to one segment and clears it.
func crashScript() []scriptOp {
	rng := rand.New(rand.NewPCG(7, 7))
	var ops []scriptOp
	for _, i := range rng.Perm(40) {
		ops = append(ops, scriptOp{kind: "add", keys: []string{keyN(i * 10)}})
	}
	ops = append(ops, scriptOp{kind: "add", keys: []string{keyN(50)}}) // already there
	var bulk []string
	for i := 0; i < 400; i += 7 { // between the keys, and past the last
		bulk = append(bulk, keyN(i), keyN(i+3))
	}
	ops = append(ops, scriptOp{kind: "addMany", keys: bulk})
	// Remove keys from the front, then at random, then from the back.
	var present []string
	for i := range 400 {
		if i%10 == 0 || i%7 == 0 || i%7 == 3 {
			present = append(present, keyN(i))
		}
	}
	for _, k := range present[:15] {
		ops = append(ops, scriptOp{kind: "remove", keys: []string{k}})
	}
	rest := present[15:]
	rng.Shuffle(len(rest), func(i, j int) { rest[i], rest[j] = rest[j], rest[i] })
	for _, k := range rest[:len(rest)/2] {
		ops = append(ops, scriptOp{kind: "remove", keys: []string{k}})
	}
	rest = rest[len(rest)/2:]
	for i := range rest {
		ops = append(ops, scriptOp{kind: "remove", keys: []string{rest[len(rest)-1-i]}})
	}
	var fresh []string
	for i := range 30 {
		fresh = append(fresh, keyN(1000+i*3))
	}
	ops = append(ops, scriptOp{kind: "addMany", keys: fresh})
	for i := range 10 {
		ops = append(ops, scriptOp{kind: "add", keys: []string{keyN(1001 + i*3)}})
	}
	ops = append(ops, scriptOp{kind: "clear"})
	for i := range 12 {
		ops = append(ops, scriptOp{kind: "add", keys: []string{keyN(2000 + i)}})
	}
	for i := range 6 {
		ops = append(ops, scriptOp{kind: "remove", keys: []string{keyN(2000 + i*2)}})
	}
	return ops
}

func (r *modelRun) run(op scriptOp) {
	r.t.Helper()
	switch op.kind {
	case "add":
		r.add(op.keys[0])
	case "remove":
		r.remove(op.keys[0])
	case "addMany":
		r.addMany(op.keys)
	case "clear":
		r.check() // a key that came back must show before Clear hides it
		r.clear()
	}
	// Through the Set after every step; in storage (slower) now and then.
	if got := r.scanAll(); !r.matches(got) {
		r.fatalf("scan:\n got %q\nwant %q", got, r.sorted())
	}
	if len(r.trace)%25 == 0 {
		r.check()
	}
}

// shapeChanges counts, over a run of the script without failures, the changes that
// rewrite the head, so the test shows it covers them all.
type shapeChanges struct{ first, split, multiSplit, shrink, evenOut int }

func (c *shapeChanges) observe(before, after *head) {
	switch {
	case before == nil && after != nil:
		c.first++
	case before == nil || after == nil:
	case len(after.Segments) == len(before.Segments)+1:
		c.split++
	case len(after.Segments) > len(before.Segments)+1:
		c.multiSplit++
	case len(after.Segments) < len(before.Segments):
		c.shrink++
	default:
		for i := range after.Segments {
			if after.Segments[i] != before.Segments[i] {
				c.evenOut++
				break
			}
		}
	}
}

// TestCrashAtEveryWrite runs the script once for every Put or Delete it makes, failing that
// write: it lands or not, and the process dies (a new Manager with an empty cache takes
// over the storage) or goes on with the error. Right after the failure, every key but the
// failed operation's must be as before; then the rest of the script runs with the set
// checked against the map after every step, through the Set and in storage, so a leftover
// that came back later, or a shape no reader can follow, fails too.
func TestCrashAtEveryWrite(t *testing.T) {
	script := crashScript()
	for _, maxSegment := range []int{4, 8} {
		t.Run(fmt.Sprintf("MaxSegment=%d", maxSegment), func(t *testing.T) {
			opts := Options{MaxSegment: maxSegment}
			clean := newModelRun(t, opts)
			var changes shapeChanges
			for _, op := range script {
				before, _, _ := readRaw(clean.raw, modelPrefix)
				clean.run(op)
				after, _, _ := readRaw(clean.raw, modelPrefix)
				changes.observe(before, after)
			}
			writes := clean.st.writes
			t.Logf("%d writes; head changes: %+v", writes, changes)
			if changes.first < 2 || changes.split == 0 || changes.multiSplit == 0 || changes.shrink == 0 {
				t.Fatalf("script misses a kind of change: %+v", changes)
			}
			if maxSegment >= 8 && changes.evenOut == 0 {
				t.Fatalf("script never evens out two segments: %+v", changes)
			}
			runs, stride := 0, 1
			if testing.Short() {
				stride = 7
			}
			for failAt := 1; failAt <= writes; failAt += stride {
				for _, mode := range []struct{ applied, crash bool }{{false, true}, {true, true}, {false, false}, {true, false}} {
					r := newModelRun(t, opts)
					r.st.failAt, r.st.applied, r.st.crash = failAt, mode.applied, mode.crash
					for _, op := range script {
						r.run(op)
					}
					r.check()
					if r.failures != 1 {
						t.Fatalf("write %d: %d failures", failAt, r.failures)
					}
					runs++
				}
			}
			t.Logf("%d runs", runs)
		})
	}
}
