package backend

import (
	"context"
	"sync"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/vaultapi"
)

// grantMountsTTL is how long issuing grants reuses one read of sys/mounts. Reading it per
// grant was a Vault round trip and ~2 ms of Vault and plugin CPU on every grant; a mount
// enabled, disabled or retyped reaches grants within this long (role writes always read
// it afresh).
const grantMountsTTL = 5 * time.Second

// mountsCache holds the last sys/mounts answer for grant issue. No lock is held around the
// Vault call: concurrent misses each read it, and the last answer wins.
type mountsCache struct {
	mu      sync.Mutex
	client  vaultapi.Client // the answer is about this client's Vault; a new client starts over
	mounts  map[string]vaultapi.MountInfo
	fetched time.Time
}

// get returns the cached mounts when client fetched them less than grantMountsTTL ago,
// otherwise reads them. The map is shared: callers must not modify it.
func (c *mountsCache) get(ctx context.Context, client vaultapi.Client) (map[string]vaultapi.MountInfo, error) {
	c.mu.Lock()
	if c.client == client && c.mounts != nil && time.Since(c.fetched) < grantMountsTTL {
		m := c.mounts
		c.mu.Unlock()
		return m, nil
	}
	c.mu.Unlock()

	m, err := client.Mounts(ctx)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.client, c.mounts, c.fetched = client, m, time.Now()
	c.mu.Unlock()
	return m, nil
}
