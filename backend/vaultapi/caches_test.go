package vaultapi

import (
	"context"
	"errors"
	"testing"
	"time"
)

// mountsClient answers Mounts and counts the calls; every other method of Client is nil
// and panics if called.
type mountsClient struct {
	Client
	calls int
	err   error
}

func (c *mountsClient) Mounts(context.Context) (map[string]MountInfo, error) {
	c.calls++
	if c.err != nil {
		return nil, c.err
	}
	return map[string]MountInfo{"kv/": {Type: "kv", Version: "2"}}, nil
}

// One read of sys/mounts serves every call for MountsTTL; after it, the next call reads
// again, a failed read is returned and not remembered, and another client starts over.
func TestMountsCacheReadsOncePerTTL(t *testing.T) {
	ctx := context.Background()
	var c MountsCache
	client := &mountsClient{}
	for i := 0; i < 3; i++ {
		if m, err := c.Get(ctx, client); err != nil || m["kv/"].Type != "kv" {
			t.Fatalf("Get: %v %v", m, err)
		}
	}
	if client.calls != 1 {
		t.Fatalf("3 gets within the TTL read sys/mounts %d times, want 1", client.calls)
	}

	c.mu.Lock()
	c.fetched = time.Now().Add(-MountsTTL)
	c.mu.Unlock()
	client.err = errors.New("down")
	if _, err := c.Get(ctx, client); err == nil {
		t.Fatal("a get after the TTL with sys/mounts unreadable succeeded")
	}
	client.err = nil
	if _, err := c.Get(ctx, client); err != nil || client.calls != 3 {
		t.Fatalf("after a failed read: %v, %d reads in all, want 3", err, client.calls)
	}

	other := &mountsClient{}
	if _, err := c.Get(ctx, other); err != nil || other.calls != 1 {
		t.Fatalf("another client: %v, %d reads, want 1", err, other.calls)
	}
}
