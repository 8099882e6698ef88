// Package store owns what the plugin keeps in its storage for access flows: role, request,
// grant and history records under their prefixes, the index entries each record belongs
// in, the ordered index sets (internal/sortedset) and the cursors that page through them.
// Store, built once in backend/factory.go, is the one writer of request records with their
// entries (grants.Grants writes a grant's record and history with this package's functions,
// under the grant's lock) and the reader of every page; it builds and repairs the indexes,
// caches roles and wakes reads that wait on a request. It never calls Vault's API and
// decides no rule.
package store

import (
	"context"
	"sync"

	"github.com/apono-io/vault-plugin-apono/internal/keylock"
	hclog "github.com/hashicorp/go-hclog"
)

// Deps is what a Store is built from; all of it is shared with the rest of the backend.
type Deps struct {
	Index  *Indexes
	Logger func() hclog.Logger
	// Locks are the backend's per-key locks; a requester's open requests are counted
	// under "open:<entity>".
	Locks *keylock.Set
	// Lifetime ends when the backend is cleaned up; Background counts work left running
	// after an answer (index repairs, the index build).
	Lifetime   context.Context
	Background *sync.WaitGroup
	// CrashAt exits the process at a named test crash point when the fault tests ask.
	CrashAt func(point string)
}

// Store is the one writer of request records with their index entries, and
// the reader of their pages: it builds and repairs the indexes, caches roles and wakes
// the reads that wait on a request. One per backend, built in backend/factory.go.
type Store struct {
	Deps
	Roles    RoleCache
	Watchers Watchers
}

// New returns the Store of one backend.
func New(d Deps) *Store {
	if d.CrashAt == nil {
		d.CrashAt = func(string) {}
	}
	return &Store{Deps: d}
}
