package backend

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/apono-io/vault-plugin-apono/backend/store"
	"github.com/hashicorp/vault/sdk/logical"
)

// waitUntil polls cond until it holds or the deadline passes.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func isTooManyRequests(err error) bool {
	var coded logical.HTTPCodedError
	return errors.As(err, &coded) && coded.Code() == http.StatusTooManyRequests
}

// One person holds at most store.MaxWaitersPerPerson waiting reads; the next is a 429 at once,
// another person is not held back, and once the reads answer a new one is accepted.
func TestWaitingReadsAreBoundedPerPerson(t *testing.T) {
	f := newFlowEnv(t)
	f.mustOK(t, logical.CreateOperation, "roles/app", map[string]interface{}{"resources": "kv/app/db", "approval": "required", "approvers": "owner"})
	id := f.request(t, "app", nil)
	type answer struct {
		resp *logical.Response
		err  error
	}
	done := make(chan answer, store.MaxWaitersPerPerson+1)
	for i := 0; i < store.MaxWaitersPerPerson; i++ {
		go func() {
			resp, err := f.doAs(t, f.alice, logical.ReadOperation, "requests/"+id, map[string]interface{}{"wait": 30})
			done <- answer{resp, err}
		}()
	}
	waitUntil(t, "the waiting reads", func() bool { return f.b.store.Watchers.Count() == store.MaxWaitersPerPerson })
	start := time.Now()
	_, err := f.doAs(t, f.alice, logical.ReadOperation, "requests/"+id, map[string]interface{}{"wait": 30})
	if !isTooManyRequests(err) || time.Since(start) > 5*time.Second {
		t.Fatalf("read %d of one person: want a 429 at once, got %v after %s", store.MaxWaitersPerPerson+1, err, time.Since(start))
	}
	// bob (an approver) may still wait.
	go func() {
		resp, err := f.doAs(t, f.bob, logical.ReadOperation, "requests/"+id, map[string]interface{}{"wait": 30})
		done <- answer{resp, err}
	}()
	waitUntil(t, "bob's waiting read", func() bool { return f.b.store.Watchers.Count() == store.MaxWaitersPerPerson+1 })
	f.mustAs(t, f.bob, logical.UpdateOperation, "requests/"+id+"/approve", nil)
	for i := 0; i < store.MaxWaitersPerPerson+1; i++ {
		select {
		case a := <-done:
			if a.err != nil || a.resp.Data["status"] != access.StatusApproved || a.resp.Data["status_changed"] != true {
				t.Fatalf("a waiting read answered %v %#v", a.err, a.resp)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("the waiting reads did not answer the approval")
		}
	}
	if n := f.b.store.Watchers.Count(); n != 0 {
		t.Fatalf("%d waiters left after every read answered", n)
	}
	if resp := f.mustAs(t, f.alice, logical.ReadOperation, "requests/"+id, map[string]interface{}{"wait": 1}); resp.Data["status_changed"] != false {
		t.Fatalf("a new waiting read: %v", resp.Data)
	}
}

// A waiting read is woken by the write, not by polling: a wait with no change reads the
// request once, at its end; a change written on another node wakes it through Invalidate.
func TestWaitingReadIsWokenNotPolling(t *testing.T) {
	st := newCountingStorage()
	f := newFlowEnvOn(t, st)
	f.mustOK(t, logical.CreateOperation, "roles/app", map[string]interface{}{"resources": "kv/app/db", "approval": "required", "approvers": "owner"})
	id := f.request(t, "app", nil)
	st.reset()
	f.mustAs(t, f.alice, logical.ReadOperation, "requests/"+id, map[string]interface{}{"wait": 3})
	if n := st.reset()[store.RequestStoragePrefix]; n > 2 { // the read itself, and one at the end of the wait
		t.Fatalf("a 3s wait with no change read the request %d times", n)
	}

	done := make(chan *logical.Response, 1)
	go func() {
		resp, _ := f.doAs(t, f.alice, logical.ReadOperation, "requests/"+id, map[string]interface{}{"wait": 30})
		done <- resp
	}()
	waitUntil(t, "the waiting read", func() bool { return f.b.store.Watchers.Count() == 1 })
	// Another node's write: this process sees only the storage change and Invalidate.
	rec, err := store.GetRequest(f.ctx, f.storage, id)
	if err != nil || rec == nil {
		t.Fatal(rec, err)
	}
	rec.Status = access.StatusDenied
	if err := store.PutRequest(f.ctx, f.storage, rec); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	f.b.invalidate(f.ctx, store.RequestStoragePrefix+id)
	select {
	case resp := <-done:
		if resp == nil || resp.Data["status"] != access.StatusDenied || time.Since(start) > store.RequestWaitFallback/2 {
			t.Fatalf("after %s the waiting read answered %#v", time.Since(start), resp)
		}
	case <-time.After(store.RequestWaitFallback / 2):
		t.Fatal("Invalidate did not wake the waiting read")
	}
}
