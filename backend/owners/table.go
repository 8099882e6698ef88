package owners

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/apono-io/vault-plugin-apono/backend/resource"
	"github.com/apono-io/vault-plugin-apono/internal/textsafe"
	"github.com/hashicorp/vault/sdk/logical"
)

// The owners table (apono/owners/<pattern>) is the operator's word on who owns what no
// owner tag can name: a database role, a PKI or SSH role, a Transit key, a path, or a KV
// secret without the tag. A pattern is a resource name as a role names it
// (database/creds/readonly) or a prefix ending in "*" (database/*, kv/team-a/*); a
// resource takes the entry of its exact name, else of the longest prefix that matches,
// else integration_owner. A KV secret's own tag always wins over the table.

const (
	// TableStoragePrefix holds one entry per pattern, the pattern path-escaped so that
	// "/" and "*" stay in one key and LIST returns every pattern.
	TableStoragePrefix = "owners-table/"
	// MaxTableEntries bounds the table: it is held in memory on every node.
	MaxTableEntries = 10000
	// MaxTableDescriptionLen bounds an entry's description.
	MaxTableDescriptionLen = 1024
)

// TableEntry is one row of the owners table.
type TableEntry struct {
	Pattern string `json:"pattern"`
	// Approvers are "group:<name>" and "entity:<name>", as access.Principal writes them.
	Approvers   []string `json:"approvers"`
	Description string   `json:"description,omitempty"`
}

// Prefix is what a pattern ending in "*" matches the start of; ok is false for an exact
// name.
func (e *TableEntry) Prefix() (prefix string, ok bool) {
	return strings.CutSuffix(e.Pattern, "*")
}

// ValidatePattern checks a pattern: a resource name with resource.ValidateName's
// characters and shape (at least a mount and one more segment, never under sys/, auth/,
// identity/ or cubbyhole/), or such a prefix followed by one "*" (kv/team-a/*,
// database/creds/app-*). A "*" anywhere else is refused.
func ValidatePattern(p string) error {
	if p == "" {
		return fmt.Errorf("pattern is empty: give a resource name (database/creds/readonly) or a prefix ending in * (database/*)")
	}
	body, prefix := strings.CutSuffix(p, "*")
	if strings.Contains(body, "*") {
		return fmt.Errorf("pattern %q: \"*\" is allowed only once, as the last character (a prefix such as kv/team-a/* or database/creds/app-*)", textsafe.Truncate(p))
	}
	name := p
	switch {
	case prefix && strings.HasSuffix(body, "/"):
		name = body + "*" // a folder: kv/team-a/*, database/*
	case prefix:
		name = body // the start of a name: database/creds/app-
	}
	if err := resource.ValidateName(name); err != nil {
		return fmt.Errorf("pattern %q is not a resource name or a prefix of one ending in *: %w", textsafe.Truncate(p), err)
	}
	return nil
}

// ParseApprovers reads an entry's approvers: group:<name> or entity:<name>, at most
// access.MaxApprovers, duplicates dropped; "owner" and bare names are refused (a table
// entry names its owners).
func ParseApprovers(in []string) ([]string, error) {
	var out []string
	for _, a := range in {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		if a == access.ApproverOwner {
			return nil, fmt.Errorf("%q is a role's word for the owners this table names; give the owners themselves (allowed: group:<identity group name>, entity:<entity name>)", a)
		}
		if !strings.HasPrefix(a, access.PrincipalGroup+":") && !strings.HasPrefix(a, access.PrincipalEntity+":") {
			return nil, fmt.Errorf("%q is not an approver (allowed: group:<identity group name>, entity:<entity name>)", textsafe.Truncate(a))
		}
		p, err := access.ParsePrincipal(a)
		if err != nil {
			return nil, err
		}
		if s := p.String(); !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("name at least one group:<name> or entity:<name>")
	}
	if len(out) > access.MaxApprovers {
		return nil, fmt.Errorf("at most %d approvers are allowed, got %d", access.MaxApprovers, len(out))
	}
	return out, nil
}

// Table reads and writes the owners table, and keeps it in memory for lookups until a
// write here or, through Invalidate, on another node.
type Table struct {
	writeMu sync.Mutex // one write at a time, so MaxTableEntries holds

	mu    sync.Mutex
	index *TableIndex
	gen   uint64 // bumped by every change, so a load that raced a write is not kept
}

func tableKey(pattern string) string { return TableStoragePrefix + url.PathEscape(pattern) }

// Get reads the entry of pattern from storage; nil when there is none.
func (t *Table) Get(ctx context.Context, s logical.Storage, pattern string) (*TableEntry, error) {
	entry, err := s.Get(ctx, tableKey(pattern))
	if err != nil || entry == nil {
		return nil, err
	}
	e := &TableEntry{}
	if err := entry.DecodeJSON(e); err != nil {
		return nil, fmt.Errorf("decoding owners table entry %q: %w", pattern, err)
	}
	return e, nil
}

// Patterns are the table's patterns, sorted.
func (t *Table) Patterns(ctx context.Context, s logical.Storage) ([]string, error) {
	keys, err := s.List(ctx, TableStoragePrefix)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		if p, err := url.PathUnescape(k); err == nil {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out, nil
}

// Put checks e (its pattern and approvers; the caller checks the description's text) and stores it, replacing the
// entry of its pattern; msg is a 400 and then nothing is stored. Approvers are stored as
// parsed (group:<name>, entity:<name>).
func (t *Table) Put(ctx context.Context, s logical.Storage, e *TableEntry) (msg string, err error) {
	if err := ValidatePattern(e.Pattern); err != nil {
		return "pattern: " + err.Error(), nil
	}
	approvers, err := ParseApprovers(e.Approvers)
	if err != nil {
		return "approvers: " + err.Error(), nil
	}
	t.writeMu.Lock()
	defer t.writeMu.Unlock()
	old, err := t.Get(ctx, s, e.Pattern)
	if err != nil {
		return "", err
	}
	if old == nil {
		keys, err := s.List(ctx, TableStoragePrefix)
		if err != nil {
			return "", err
		}
		if len(keys) >= MaxTableEntries {
			return fmt.Sprintf("the owners table holds %d entries, the most allowed; delete some, or use prefixes (database/*) for many names", len(keys)), nil
		}
	}
	stored := TableEntry{Pattern: e.Pattern, Approvers: approvers, Description: e.Description}
	entry, err := logical.StorageEntryJSON(tableKey(e.Pattern), stored)
	if err != nil {
		return "", err
	}
	if err := s.Put(ctx, entry); err != nil {
		return "", err
	}
	*e = stored
	t.Drop()
	return "", nil
}

// Delete removes the entry of pattern; a missing one counts as deleted.
func (t *Table) Delete(ctx context.Context, s logical.Storage, pattern string) error {
	t.writeMu.Lock()
	defer t.writeMu.Unlock()
	if err := s.Delete(ctx, tableKey(pattern)); err != nil {
		return err
	}
	t.Drop()
	return nil
}

// Drop makes the next Index read storage.
func (t *Table) Drop() {
	t.mu.Lock()
	t.index = nil
	t.gen++
	t.mu.Unlock()
}

// Invalidate drops the table when key is one of its entries (a write on another node);
// it reports whether key was the table's.
func (t *Table) Invalidate(key string) bool {
	if !strings.HasPrefix(key, TableStoragePrefix) {
		return false
	}
	t.Drop()
	return true
}

// Index is the whole table for lookups, from memory once read. Callers must not modify
// it.
func (t *Table) Index(ctx context.Context, s logical.Storage) (*TableIndex, error) {
	t.mu.Lock()
	ix, gen := t.index, t.gen
	t.mu.Unlock()
	if ix != nil {
		return ix, nil
	}
	patterns, err := t.Patterns(ctx, s)
	if err != nil {
		return nil, err
	}
	ix = &TableIndex{exact: map[string]*indexedEntry{}, prefix: map[string]*indexedEntry{}}
	for _, p := range patterns {
		e, err := t.Get(ctx, s, p)
		if err != nil {
			return nil, err
		}
		if e != nil {
			ix.add(e)
		}
	}
	t.mu.Lock()
	if t.gen == gen {
		t.index = ix
	}
	t.mu.Unlock()
	return ix, nil
}

// TableIndex is the owners table as lookups read it. A nil *TableIndex is an empty table.
type TableIndex struct {
	exact  map[string]*indexedEntry // by name
	prefix map[string]*indexedEntry // by the pattern without its "*"
	n      int
}

// indexedEntry is an entry with its approvers parsed; principals is nil when they are
// not usable (an entry stored under other rules), and the entry then owns nothing.
type indexedEntry struct {
	*TableEntry
	principals []access.Principal
}

func (ix *TableIndex) add(e *TableEntry) {
	ie := &indexedEntry{TableEntry: e}
	if approvers, err := ParseApprovers(e.Approvers); err == nil {
		for _, a := range approvers {
			p, _ := access.ParsePrincipal(a)
			ie.principals = append(ie.principals, p)
		}
	}
	if prefix, ok := e.Prefix(); ok {
		ix.prefix[prefix] = ie
	} else {
		ix.exact[e.Pattern] = ie
	}
	ix.n++
}

// Len is how many entries the table has.
func (ix *TableIndex) Len() int {
	if ix == nil {
		return 0
	}
	return ix.n
}

// Match is the entry that owns resource name: the entry of the exact name, else the one
// of the longest prefix of it; nil when none does.
func (ix *TableIndex) Match(name string) *TableEntry {
	if e := ix.match(name); e != nil {
		return e.TableEntry
	}
	return nil
}

func (ix *TableIndex) match(name string) *indexedEntry {
	if ix == nil || ix.n == 0 {
		return nil
	}
	if e := ix.exact[name]; e != nil {
		return e
	}
	for i := len(name); i > 0; i-- {
		if e := ix.prefix[name[:i]]; e != nil {
			return e
		}
	}
	return nil
}

// Below are the entries whose patterns lie strictly inside folder prefix (consul/creds/
// for consul/creds/*): a grant of the folder reaches what they own. Sorted by pattern.
func (ix *TableIndex) Below(prefix string) []*TableEntry {
	if ix == nil || ix.n == 0 {
		return nil
	}
	var out []*TableEntry
	for _, m := range []map[string]*indexedEntry{ix.exact, ix.prefix} {
		for k, e := range m {
			if strings.HasPrefix(k, prefix) && e.Pattern != prefix+"*" {
				out = append(out, e.TableEntry)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Pattern < out[j].Pattern })
	return out
}
