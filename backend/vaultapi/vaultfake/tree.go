package vaultfake

import (
	"context"
	"encoding/json"
	"sort"
	"strings"
	"sync"
	"time"
)

// Tree models the KV v2 metadata, Transit keys and database, PKI and SSH roles of the
// fake Vault: what the discovery walker lists and reads. It counts calls and how many run at once, can make
// each call slow, and answers 403 below denied prefixes.
type Tree struct {
	mu      sync.Mutex
	Secrets map[string]map[string]Secret // KV v2 mount -> path -> secret
	Keys    map[string]map[string]string // Transit mount -> key -> type
	// KeyInfo makes LIST <mount>/keys return key_info with the types, as newer Vaults do.
	KeyInfo bool
	// Roles are the roles of database, PKI and SSH mounts: mount -> role name -> role. A
	// mount listed here (even with no roles) is modelled: LIST <mount>/roles and
	// <mount>/static-roles and reads of <mount>/roles/<name> answer from it.
	Roles map[string]map[string]Role
	// NoSSHKeyInfo leaves key_info out of LIST <ssh mount>/roles (Vault leaves out a
	// role it cannot parse), so the walker has to read the roles.
	NoSSHKeyInfo bool
	// Denied paths (exact or prefix, e.g. "secret/metadata/") answer 403.
	Denied []string
	// Failing paths (exact or prefix) answer their error, as a broken engine would.
	Failing map[string]error
	// Delay is how long each call takes; calls honour their context while waiting.
	Delay time.Duration
	// OnList runs before each LIST (outside the lock).
	OnList func(path string)

	Lists, Reads          []string
	inFlight, maxInFlight int
}

// Secret is a KV v2 secret of the tree: its custom metadata and its current version's state.
type Secret struct {
	Meta      map[string]string
	Deleted   bool // current version deleted
	Destroyed bool // current version destroyed
	// DeleteAt sets deletion_time in the future (delete_version_after).
	DeleteAt time.Time
}

// Role is a role of a database, PKI or SSH mount of the tree.
type Role struct {
	Static  bool   // database: a static role (LIST static-roles), else a dynamic one (LIST roles)
	KeyType string // ssh: ca or otp, in LIST key_info and in a read
	// Data is the rest of what a read of the role answers (max_ttl, ...).
	Data map[string]interface{}
}

// NewTree is an empty tree.
func NewTree() *Tree {
	return &Tree{Secrets: map[string]map[string]Secret{}, Keys: map[string]map[string]string{}, Roles: map[string]map[string]Role{}}
}

// Role adds role name to the database, PKI or SSH mount mount.
func (t *Tree) Role(mount, name string, r Role) *Tree {
	t.EngineMount(mount)
	t.Roles[mount][name] = r
	return t
}

// EngineMount makes mount's roles modelled, with none yet.
func (t *Tree) EngineMount(mount string) *Tree {
	if t.Roles == nil {
		t.Roles = map[string]map[string]Role{}
	}
	if t.Roles[mount] == nil {
		t.Roles[mount] = map[string]Role{}
	}
	return t
}

// Put adds secret path of KV v2 mount mount.
func (t *Tree) Put(mount, path string, s Secret) *Tree {
	if t.Secrets[mount] == nil {
		t.Secrets[mount] = map[string]Secret{}
	}
	t.Secrets[mount][path] = s
	return t
}

// Key adds Transit key name of type typ to mount.
func (t *Tree) Key(mount, name, typ string) *Tree {
	if t.Keys[mount] == nil {
		t.Keys[mount] = map[string]string{}
	}
	t.Keys[mount][name] = typ
	return t
}

// ResetCounts forgets the calls counted so far.
func (t *Tree) ResetCounts() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.maxInFlight, t.Lists, t.Reads = 0, nil, nil
}

// InFlight is how many calls into the tree are running now.
func (t *Tree) InFlight() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.inFlight
}

// Counts is how many LISTs and reads were made, and the most that ran at once.
func (t *Tree) Counts() (lists, reads, maxInFlight int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.Lists), len(t.Reads), t.maxInFlight
}

// call does the bookkeeping of one call: in-flight count, delay, 403.
func (t *Tree) call(ctx context.Context, path string) error {
	t.mu.Lock()
	t.inFlight++
	if t.inFlight > t.maxInFlight {
		t.maxInFlight = t.inFlight
	}
	delay := t.Delay
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		t.inFlight--
		t.mu.Unlock()
	}()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, d := range t.Denied {
		if path == d || strings.HasPrefix(path, d) {
			return ErrForbidden
		}
	}
	for p, err := range t.Failing {
		if path == p || strings.HasPrefix(path, p) {
			return err
		}
	}
	return nil
}

// treeMounts returns the fake's KV v2, Transit and (mount path -> type) database, PKI
// and SSH mount paths (no trailing slash).
func (f *Vault) treeMounts() (t *Tree, kv, transit []string, engines map[string]string) {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	engines = map[string]string{}
	for p, m := range f.MountTable {
		switch {
		case m.Type == "kv" && m.Version == "2":
			kv = append(kv, strings.TrimSuffix(p, "/"))
		case m.Type == "transit":
			transit = append(transit, strings.TrimSuffix(p, "/"))
		case m.Type == "database" || m.Type == "pki" || m.Type == "ssh":
			engines[strings.TrimSuffix(p, "/")] = m.Type
		}
	}
	return f.Tree, kv, transit, engines
}

// engineList answers LIST <mount>/roles and <mount>/static-roles of the tree's engine
// mounts. Caller holds t.mu.
func (t *Tree) engineList(engines map[string]string, path string) (keys []string, info map[string]interface{}, handled bool) {
	for mount, typ := range engines {
		roles := t.Roles[mount]
		if roles == nil {
			continue
		}
		static := false
		switch {
		case path == mount+"/roles":
		case path == mount+"/static-roles" && typ == "database":
			static = true
		default:
			continue
		}
		handled = true
		for name, r := range roles {
			if r.Static != static {
				continue
			}
			keys = append(keys, name)
			if typ == "ssh" && !t.NoSSHKeyInfo {
				if info == nil {
					info = map[string]interface{}{}
				}
				info[name] = map[string]interface{}{"key_type": r.KeyType}
			}
		}
	}
	return keys, info, handled
}

// engineRead answers a read of <mount>/roles/<name> or <mount>/static-roles/<name> of
// the tree's engine mounts. Caller holds t.mu.
func (t *Tree) engineRead(engines map[string]string, path string) (data map[string]interface{}, handled bool) {
	for mount := range engines {
		roles := t.Roles[mount]
		if roles == nil {
			continue
		}
		static := false
		name, ok := strings.CutPrefix(path, mount+"/roles/")
		if !ok {
			if name, ok = strings.CutPrefix(path, mount+"/static-roles/"); !ok {
				continue
			}
			static = true
		}
		handled = true
		if r, ok := roles[name]; ok && r.Static == static {
			data = map[string]interface{}{}
			for k, v := range r.Data {
				data[k] = v
			}
			if r.KeyType != "" {
				data["key_type"] = r.KeyType
			}
		}
	}
	return data, handled
}

func (f *Vault) treeList(ctx context.Context, path string) ([]string, map[string]interface{}, bool, error) {
	t, kvMounts, transitMounts, engines := f.treeMounts()
	if t == nil {
		return nil, nil, false, nil
	}
	t.mu.Lock()
	var keys []string
	var info map[string]interface{}
	handled := false
	for _, mount := range kvMounts {
		dir, ok := strings.CutPrefix(path, mount+"/metadata/")
		if !ok {
			continue
		}
		handled = true
		seen := map[string]bool{}
		for p := range t.Secrets[mount] {
			rest, ok := strings.CutPrefix(p, dir)
			if !ok || rest == "" {
				continue
			}
			if i := strings.IndexByte(rest, '/'); i >= 0 {
				rest = rest[:i+1]
			}
			if !seen[rest] {
				seen[rest] = true
				keys = append(keys, rest)
			}
		}
	}
	for _, mount := range transitMounts {
		if path != mount+"/keys" {
			continue
		}
		handled = true
		for k, typ := range t.Keys[mount] {
			keys = append(keys, k)
			if t.KeyInfo {
				if info == nil {
					info = map[string]interface{}{}
				}
				info[k] = map[string]interface{}{"type": typ}
			}
		}
	}
	if ek, ei, ok := t.engineList(engines, path); ok {
		handled, keys, info = true, ek, ei
	}
	if handled {
		t.Lists = append(t.Lists, path)
	}
	onList := t.OnList
	t.mu.Unlock()
	if !handled {
		return nil, nil, false, nil
	}
	if onList != nil {
		onList(path)
	}
	if err := t.call(ctx, path); err != nil {
		return nil, nil, true, err
	}
	sort.Strings(keys)
	return keys, info, true, nil
}

func (f *Vault) treeRead(ctx context.Context, path string) (map[string]interface{}, bool, error) {
	t, kvMounts, transitMounts, engines := f.treeMounts()
	if t == nil {
		return nil, false, nil
	}
	t.mu.Lock()
	var data map[string]interface{}
	handled := false
	for _, mount := range kvMounts {
		p, ok := strings.CutPrefix(path, mount+"/metadata/")
		if !ok {
			continue
		}
		handled = true
		if s, ok := t.Secrets[mount][p]; ok {
			data = KVMetadata(s)
		}
	}
	for _, mount := range transitMounts {
		name, ok := strings.CutPrefix(path, mount+"/keys/")
		if !ok {
			continue
		}
		handled = true
		if typ, ok := t.Keys[mount][name]; ok {
			enc, dec, sign := keySupports(typ)
			data = map[string]interface{}{"name": name, "type": typ,
				"supports_encryption": enc, "supports_decryption": dec, "supports_signing": sign}
		}
	}
	if ed, ok := t.engineRead(engines, path); ok {
		handled, data = true, ed
	}
	if handled {
		t.Reads = append(t.Reads, path)
	}
	t.mu.Unlock()
	if !handled {
		return nil, false, nil
	}
	if err := t.call(ctx, path); err != nil {
		return nil, true, err
	}
	return data, true, nil
}

// KVMetadata is what Vault's KV v2 metadata read answers, numbers as the api client
// decodes them.
func KVMetadata(s Secret) map[string]interface{} {
	cm := map[string]interface{}{}
	for k, v := range s.Meta {
		cm[k] = v
	}
	v1 := map[string]interface{}{"created_time": "2024-01-01T00:00:00Z", "deletion_time": "", "destroyed": false}
	v2 := map[string]interface{}{"created_time": "2024-01-02T00:00:00Z", "deletion_time": "", "destroyed": s.Destroyed}
	if s.Deleted {
		v2["deletion_time"] = "2024-01-03T00:00:00.123456Z"
	}
	if !s.DeleteAt.IsZero() {
		v2["deletion_time"] = s.DeleteAt.UTC().Format(time.RFC3339Nano)
	}
	return map[string]interface{}{
		"current_version": json.Number("2"),
		"custom_metadata": cm,
		"versions":        map[string]interface{}{"1": v1, "2": v2},
	}
}

// keySupports is what Vault's Transit says a key of type typ supports.
func keySupports(typ string) (enc, dec, sign bool) {
	switch {
	case strings.HasPrefix(typ, "aes") || typ == "chacha20-poly1305":
		return true, true, false
	case strings.HasPrefix(typ, "rsa-"):
		return true, true, true
	case typ == "ed25519" || strings.HasPrefix(typ, "ecdsa-"):
		return false, false, true
	}
	return false, false, false // hmac, and types the fake does not model
}
