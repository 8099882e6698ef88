package backend

import (
	"context"
	"strings"
	"sync"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/apono-io/vault-plugin-apono/backend/store"
	"github.com/hashicorp/vault/sdk/logical"
)

// roleCache keeps roles as last read or written on this node, so that issuing a grant
// costs no storage round trip through Vault for its role. Role writes and deletes update
// it, and Vault's Invalidate (another node, or a performance standby, changed a role)
// drops the entry.
type roleCache struct {
	mu    sync.RWMutex
	roles map[string]*access.Role
	gen   uint64 // bumped by every change, so a read that raced a write is not cached
}

// role returns the stored role (nil when there is none). Callers must not modify it.
func (b *aponoBackend) role(ctx context.Context, s logical.Storage, name string) (*access.Role, error) {
	c := &b.roleCache
	c.mu.RLock()
	role, ok := c.roles[name]
	gen := c.gen
	c.mu.RUnlock()
	if ok {
		return role, nil
	}
	role, err := store.GetRole(ctx, s, name)
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

// roleChanged records a write (role) or delete (nil) of role name.
func (b *aponoBackend) roleChanged(name string, role *access.Role) {
	c := &b.roleCache
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

// invalidateRole handles Vault's Invalidate for a storage key under role/.
func (b *aponoBackend) invalidateRole(key string) bool {
	name, ok := strings.CutPrefix(key, store.RoleStoragePrefix)
	if ok {
		b.roleChanged(name, nil)
	}
	return ok
}
