package store

import (
	"context"
	"strings"
	"sync"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/hashicorp/vault/sdk/logical"
)

// RoleCache keeps roles as last read or written on this node, so that issuing a grant
// costs no storage round trip through Vault for its role. Role writes and deletes update
// it, and Vault's Invalidate (another node, or a performance standby, changed a role)
// drops the entry.
type RoleCache struct {
	mu    sync.RWMutex
	roles map[string]*access.Role
	gen   uint64 // bumped by every change, so a read that raced a write is not cached
}

// Get returns the stored role (nil when there is none). Callers must not modify it.
func (c *RoleCache) Get(ctx context.Context, s logical.Storage, name string) (*access.Role, error) {
	c.mu.RLock()
	role, ok := c.roles[name]
	gen := c.gen
	c.mu.RUnlock()
	if ok {
		return role, nil
	}
	role, err := GetRole(ctx, s, name)
	if err != nil || role == nil {
		return role, err
	}
	c.mu.Lock()
	if c.gen == gen {
		if c.roles == nil {
			c.roles = map[string]*access.Role{}
		}
		c.roles[name] = role
	}
	c.mu.Unlock()
	return role, nil
}

// Changed records a write (role) or delete (nil) of role name.
func (c *RoleCache) Changed(name string, role *access.Role) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if role == nil {
		delete(c.roles, name)
		return
	}
	if c.roles == nil {
		c.roles = map[string]*access.Role{}
	}
	c.roles[name] = role
}

// Invalidate handles Vault's Invalidate for a storage key under role/.
func (c *RoleCache) Invalidate(key string) bool {
	name, ok := strings.CutPrefix(key, RoleStoragePrefix)
	if ok {
		c.Changed(name, nil)
	}
	return ok
}
