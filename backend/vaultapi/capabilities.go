package vaultapi

import (
	"context"
	"sync"
	"time"
)

// CapabilityCacheTTL is how long an answer about an optional capability is kept: a policy
// change reaches revoke and the sweeper within it (or at once, through apono/health).
const CapabilityCacheTTL = 5 * time.Minute

// capabilityErrorTTL is how long a failed capability check counts as "not available".
const capabilityErrorTTL = 30 * time.Second

// CapabilityCache remembers whether the management token holds an optional capability, so
// revoke and the sweeper ask sys/capabilities-self once every few minutes instead of per
// call, and never send a call bound to get 403 (which makes the client log in again).
// One per backend, shared by everything that asks.
type CapabilityCache struct {
	mu sync.Mutex
	// client is the client the answers are about; a new client (config change) starts over.
	client  Client
	answers map[string]capabilityAnswer
}

type capabilityAnswer struct {
	ok      bool
	expires time.Time
}

// Allowed reports whether client's token holds needs on path.
func (c *CapabilityCache) Allowed(ctx context.Context, client Client, path string, needs ...string) bool {
	c.mu.Lock()
	// Held across the call, so a burst of revokes on a cold cache asks once.
	defer c.mu.Unlock()
	if c.client == client {
		if a, ok := c.answers[path]; ok && time.Now().Before(a.expires) {
			return a.ok
		}
	}
	has, err := client.CapabilitiesSelf(ctx, []string{path})
	if err != nil {
		c.rememberLocked(client, path, false, capabilityErrorTTL)
		return false
	}
	ok := len(MissingCapabilities(has[path], needs)) == 0
	c.rememberLocked(client, path, ok, CapabilityCacheTTL)
	return ok
}

// Remember records an answer learned elsewhere (a health read, a 403) for ttl.
func (c *CapabilityCache) Remember(client Client, path string, ok bool, ttl time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rememberLocked(client, path, ok, ttl)
}

func (c *CapabilityCache) rememberLocked(client Client, path string, ok bool, ttl time.Duration) {
	if c.client != client || c.answers == nil {
		c.client = client
		c.answers = map[string]capabilityAnswer{}
	}
	c.answers[path] = capabilityAnswer{ok: ok, expires: time.Now().Add(ttl)}
}

// MissingCapabilities is what of needs the capabilities in has do not give ("root" gives
// everything). Never nil.
func MissingCapabilities(has, needs []string) []string {
	set := map[string]bool{}
	for _, c := range has {
		if c == "root" {
			return []string{}
		}
		set[c] = true
	}
	missing := []string{}
	for _, c := range needs {
		if !set[c] {
			missing = append(missing, c)
		}
	}
	return missing
}
