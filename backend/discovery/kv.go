// What the discovery walk does in a KV v2 mount: list folders, read each secret's metadata
// (custom_metadata, deletion, owner), and derive folder owners from their secrets.

package discovery

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/apono-io/vault-plugin-apono/backend/owners"
	"github.com/apono-io/vault-plugin-apono/backend/resource"
	"github.com/apono-io/vault-plugin-apono/backend/vaultapi"
)

// listKV lists one KV v2 folder: dir is "" for the mount root or ends with "/".
func (w *Walker) listKV(ctx context.Context, mount, dir string) error {
	listPath := mount + "/metadata/" + dir
	w.listCalls.Add(1)
	keys, _, err := w.client.List(ctx, listPath)
	if vaultapi.IsStatus(err, http.StatusForbidden) {
		w.skip(mount, strings.TrimSuffix(dir, "/"), DeniedReason("LIST "+listPath))
		w.markIncomplete(mount, dir)
		return nil
	}
	if err != nil {
		return CallError(ctx, "listing "+listPath, err)
	}

	var folders []Entry
	var secrets []string // paths; their entries are made once the metadata is read
	var tasks []WalkTask
	if dir == "" {
		// The whole mount is a folder too: kv/*.
		folders = append(folders, KvEntry(mount, "", KindFolder))
	}
	for _, key := range keys {
		if key == "" || key == "/" {
			continue
		}
		if strings.HasSuffix(key, "/") {
			sub := dir + key
			name := mount + "/" + sub + "*"
			if err := resource.ValidateName(name); err != nil {
				// Every name below would fail too; do not spend calls listing them.
				w.rejectName(name, fmt.Errorf("%w (nothing below it was listed)", err))
				w.markIncomplete(mount, dir)
				continue
			}
			folders = append(folders, KvEntry(mount, strings.TrimSuffix(sub, "/"), KindFolder))
			tasks = append(tasks, WalkTask{kind: TaskListKV, mount: mount, path: sub})
			continue
		}
		p := dir + key
		if err := resource.ValidateName(mount + "/" + p); err != nil {
			w.rejectName(mount+"/"+p, err)
			w.markIncomplete(mount, dir)
			continue
		}
		secrets = append(secrets, p)
	}
	if err := w.reserve(len(folders) + len(secrets)); err != nil {
		return err
	}
	w.emit(folders...)
	// Secrets are emitted once their metadata is read (custom_metadata, owner, deleted):
	// one read per secret, made by the pool like the LISTs.
	for _, p := range secrets {
		tasks = append(tasks, WalkTask{kind: TaskReadKVMeta, mount: mount, path: p})
	}
	w.push(tasks...)
	return nil
}

func KvEntry(mount, path, kind string) Entry {
	e := Entry{Type: resource.TypeKV, Kind: kind, Mount: mount, Path: path}
	switch {
	case kind == KindSecret:
		e.Name = mount + "/" + path
	case path == "":
		e.Name = mount + "/*"
	default:
		e.Name = mount + "/" + path + "/*"
	}
	return e
}

func (w *Walker) readKVMeta(ctx context.Context, mount, path string) error {
	e := KvEntry(mount, path, KindSecret)
	readPath := mount + "/metadata/" + path
	data, denied, err := w.gatedRead(ctx, mount, readPath)
	switch {
	case denied:
		if err != nil {
			return err
		}
		w.warnOnce(fmt.Sprintf("reading %s/metadata/... is denied: custom_metadata, deleted and owner are not reported for mount %s", mount, mount))
	case err != nil:
		return CallError(ctx, "reading "+readPath, err)
	case data == nil:
		w.unreserve() // destroyed between the LIST and the read
		return nil
	default:
		e.CustomMetadata = StringMap(data["custom_metadata"])
		e.Deleted = CurrentVersionDeleted(data, w.now)
	}
	w.emit(e)
	return nil
}

// StringMap converts custom_metadata as decoded from JSON; never nil.
func StringMap(v interface{}) map[string]string {
	out := map[string]string{}
	m, _ := v.(map[string]interface{})
	for k, val := range m {
		if s, ok := val.(string); ok {
			out[k] = s
		} else if val != nil {
			out[k] = fmt.Sprint(val)
		}
	}
	return out
}

// CurrentVersionDeleted reports whether a KV v2 metadata read shows the current version
// deleted (deletion_time reached) or destroyed.
func CurrentVersionDeleted(meta map[string]interface{}, now time.Time) bool {
	cur := NumberString(meta["current_version"])
	versions, _ := meta["versions"].(map[string]interface{})
	v, _ := versions[cur].(map[string]interface{})
	if v == nil {
		return false
	}
	if destroyed, _ := v["destroyed"].(bool); destroyed {
		return true
	}
	dt, _ := v["deletion_time"].(string)
	if dt == "" {
		return false
	}
	t, err := time.Parse(time.RFC3339Nano, dt)
	// A deletion_time in the future is delete_version_after at work: not deleted yet.
	return err != nil || !t.After(now)
}

func NumberString(v interface{}) string {
	switch n := v.(type) {
	case json.Number:
		return n.String()
	case float64:
		return strconv.FormatInt(int64(n), 10)
	case int:
		return strconv.Itoa(n)
	case int64:
		return strconv.FormatInt(n, 10)
	case string:
		return n
	}
	return ""
}

// ForEachFolder calls fn with the key ("mount/path") of every folder containing path, and
// of path itself when self: for mount kv and path a/b/c, kv/a/b, kv/a and kv/ (the root).
func ForEachFolder(mount, path string, self bool, fn func(key string)) {
	if self {
		fn(mount + "/" + path)
	}
	for path != "" {
		i := strings.LastIndexByte(path, '/')
		if i < 0 {
			path = ""
		} else {
			path = path[:i]
		}
		fn(mount + "/" + path)
	}
}

// deriveOwners gives every entry the owner sets a request for it would need (owners.go,
// the same owners.Collector): a secret its own tag's, a folder those of the secret named
// like it (when tagged) and of every secret below it, and whatever has no tag (a
// secret without one, an empty folder, a Transit key, an engine's role) the owners
// table's entry for it, else integration_owner; a secret whose metadata could not be
// read, and a folder the walk could not see all of (a LIST denied, a name no role could
// hold), get integration_owner, as a request for them would. Owner and OwnerSource say
// the same in one string where there is one set.
func (w *Walker) deriveOwners() {
	newCol := func() *owners.Collector {
		return owners.NewCollector(w.opts.OwnerKey, w.opts.IntegrationOwner).WithTable(w.opts.OwnersTable)
	}
	// tag is what a request would read as the secret's owner tag; known is false where
	// its metadata could not be read.
	tag := func(e *Entry) (string, bool) {
		if w.opts.OwnerKey == "" || e.CustomMetadata == nil {
			return "", w.opts.OwnerKey == ""
		}
		return strings.TrimSpace(e.CustomMetadata[w.opts.OwnerKey]), true
	}
	folders := map[string]*owners.Collector{}
	folder := func(key string) *owners.Collector {
		c := folders[key]
		if c == nil {
			c = newCol()
			folders[key] = c
		}
		return c
	}
	for i := range w.entries {
		e := &w.entries[i]
		if e.Kind == KindFolder {
			continue
		}
		own := newCol()
		if e.Kind == KindSecret {
			t, known := tag(e)
			claim := func(c *owners.Collector) {
				if known {
					c.Claim(e.Name, t, "")
				} else {
					c.Unowned(e.Name, "") // the tag might name someone: unknown
				}
			}
			claim(own)
			ForEachFolder(e.Mount, e.Path, false, func(key string) { claim(folder(key)) })
			// The folder named like this secret takes its tag as its own; unread, its own
			// tag is unknown, and integration_owner stands in, as for a request.
			switch {
			case t != "":
				folder(e.Mount+"/"+e.Path).Claim(e.Name, t, "")
			case !known:
				folder(e.Mount+"/"+e.Path).Unowned(e.Name, "")
			}
		} else {
			own.Untagged(e.Name)
		}
		e.setOwners(own)
	}
	for _, inc := range w.incomplete {
		ForEachFolder(inc.mount, inc.path, true, func(key string) { folder(key).Unowned("", "") })
	}
	for i := range w.entries {
		e := &w.entries[i]
		if e.Kind != KindFolder {
			continue
		}
		c := folders[e.Mount+"/"+e.Path]
		if c == nil || len(c.Sets)+len(c.UnownedNames) == 0 {
			c = newCol()
			c.Untagged(e.Name) // an empty folder names no owner: the table's, if any
		}
		e.setOwners(c)
		if e.OwnerSource == OwnerFromMetadata {
			e.OwnerSource = OwnerFromFolder
		}
	}
}

// OwnerView is one owner set as apono/sync reports it: any of approvers approves for it.
type OwnerView struct {
	Approvers []string `json:"approvers"`
	Source    string   `json:"source"`
}

// setOwners records c's owner sets on e: all of them in Owners, and in Owner and
// OwnerSource the one set's tag as written, or "" and several_owners.
func (e *Entry) setOwners(c *owners.Collector) {
	e.Owners = nil
	for _, s := range c.Sets {
		e.Owners = append(e.Owners, OwnerView{Approvers: access.ApproverNames([]access.ApproverSet{s}), Source: s.Source})
	}
	e.Owner, e.OwnerSource = "", ""
	switch len(c.Sets) {
	case 0:
	case 1:
		e.Owner, e.OwnerSource = c.Sets[0].Raw, c.Sets[0].Source
	default:
		e.OwnerSource = OwnerFromSeveral
	}
}
