package vaultapi

import (
	"context"
	"sync"
	"time"
)

// The caches below hold answers of one Vault about things that change rarely. Each
// remembers the client its answers came from: a new client (a config write, a reload)
// starts over. One of each per backend, shared by everything that asks.

// MountsTTL is how long MountsCache reuses one read of sys/mounts. Reading it per grant
// was a Vault round trip and ~2 ms of Vault and plugin CPU on every grant; a mount
// enabled, disabled or retyped reaches grants within this long (role writes always read
// it afresh).
const MountsTTL = 5 * time.Second

// MountsCache holds the last sys/mounts answer for grant issue. No lock is held around the
// Vault call: concurrent misses each read it, and the last answer wins.
type MountsCache struct {
	mu      sync.Mutex
	client  Client
	mounts  map[string]MountInfo
	fetched time.Time
}

// Get returns the cached mounts when client fetched them less than MountsTTL ago,
// otherwise reads them; a failed read is not remembered. The map is shared: callers must
// not modify it.
func (c *MountsCache) Get(ctx context.Context, client Client) (map[string]MountInfo, error) {
	c.mu.Lock()
	if c.client == client && c.mounts != nil && time.Since(c.fetched) < MountsTTL {
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

// AuthAccessorCache remembers auth mount accessors (they change only when a mount is
// disabled and enabled again).
type AuthAccessorCache struct {
	mu        sync.Mutex
	client    Client
	accessors map[string]string
}

// Get returns the accessor of auth mount mount.
func (c *AuthAccessorCache) Get(ctx context.Context, client Client, mount string) (string, error) {
	c.mu.Lock()
	if c.client == client {
		if a, ok := c.accessors[mount]; ok {
			c.mu.Unlock()
			return a, nil
		}
	}
	c.mu.Unlock()
	a, err := client.AuthMountAccessor(ctx, mount)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	if c.client != client || c.accessors == nil {
		c.client, c.accessors = client, map[string]string{}
	}
	c.accessors[mount] = a
	c.mu.Unlock()
	return a, nil
}

const (
	// tokenLifetimeCacheTTL is how long one lookup of a caller's token is reused: a token
	// ends no earlier than it said (renewal only moves its end later), so a recent answer
	// is a safe, slightly pessimistic one, and a burst of grants from one service costs
	// one lookup.
	tokenLifetimeCacheTTL = 5 * time.Second
	tokenLifetimeCacheMax = 4096
)

// TokenLifetimeCache remembers recent auth/token/lookup-accessor answers.
type TokenLifetimeCache struct {
	mu      sync.Mutex
	client  Client
	entries map[string]cachedLifetime
}

type cachedLifetime struct {
	life    *TokenLifetime
	fetched time.Time
}

// Lookup returns the lifetime of the token with accessor, at most a few seconds old.
func (c *TokenLifetimeCache) Lookup(ctx context.Context, client Client, accessor string) (*TokenLifetime, error) {
	now := time.Now()
	c.mu.Lock()
	if c.client == client {
		if e, ok := c.entries[accessor]; ok && now.Sub(e.fetched) < tokenLifetimeCacheTTL {
			c.mu.Unlock()
			return e.life, nil
		}
	}
	c.mu.Unlock()
	life, err := client.LookupTokenAccessor(ctx, accessor)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.client != client || c.entries == nil || len(c.entries) >= tokenLifetimeCacheMax {
		c.client, c.entries = client, map[string]cachedLifetime{}
	}
	c.entries[accessor] = cachedLifetime{life: life, fetched: now}
	c.mu.Unlock()
	return life, nil
}
