// Package discovery walks Vault's KV v2, Transit, database, PKI and SSH mounts into a
// snapshot of every grantable resource with its owners (what apono/sync stores and
// apono/resources reads), with bounded concurrency and a report of what it skipped and
// why, and stores and loads that snapshot in chunks. It grants nothing and decides no
// approval.
package discovery

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/apono-io/vault-plugin-apono/backend/owners"
	"github.com/apono-io/vault-plugin-apono/backend/resource"
	"github.com/apono-io/vault-plugin-apono/backend/vaultapi"
)

// Kinds of discovered resources.
const (
	KindSecret = "secret" // one KV v2 secret: kv/app/db
	KindFolder = "folder" // a KV v2 folder and everything below it: kv/app/*
	KindKey    = "key"    // one Transit key: transit/payments
	KindRole   = "role"   // one endpoint of a database, PKI or SSH role: database/creds/readonly
)

// Where an entry's owner came from.
const (
	OwnerFromMetadata    = access.SetSourceMetadata
	OwnerFromFolder      = "secrets_in_folder" // every secret below the folder names the same owner
	OwnerFromIntegration = access.SetSourceIntegration
	OwnerFromSeveral     = "several_owners"      // a folder whose secrets have several owner sets: see owners
	OwnerFromTable       = access.SetSourceTable // the owners table's entry for the name
)

// MaxReportedProblems bounds the skipped and ungrantable lists kept in a snapshot (their
// counts are always exact), so one bad subtree cannot make the snapshot header huge.
const MaxReportedProblems = 100

// Entry is one grantable resource. Name can be pasted as is into a role's or a
// grant's resources.
type Entry struct {
	Name  string `json:"name"`
	Type  string `json:"type"` // a resource type (resource.TypeKV, ...), as roles use them
	Kind  string `json:"kind"` // KindSecret, KindFolder, KindKey or KindRole
	Mount string `json:"mount"`
	Path  string `json:"path"` // below the mount; "" for a whole mount (kv/*); a role's name
	// Endpoint is a role's endpoint below its mount: creds, static-creds, issue, sign.
	Endpoint string `json:"endpoint,omitempty"`

	// KV secrets: custom_metadata (nil when it could not be read) and whether the current
	// version is deleted or destroyed (its metadata and older versions remain).
	CustomMetadata map[string]string `json:"custom_metadata,omitempty"`
	Deleted        bool              `json:"deleted,omitempty"`

	Owner       string `json:"owner,omitempty"`
	OwnerSource string `json:"owner_source,omitempty"`
	// Owners are the owner sets a request for the entry needs, each approving on its own.
	Owners []OwnerView `json:"owners,omitempty"`

	// Transit keys (and KeyType of SSH roles: ca, otp); the Supports* are nil when the
	// key type is unknown.
	KeyType            string `json:"key_type,omitempty"`
	SupportsEncryption *bool  `json:"supports_encryption,omitempty"`
	SupportsDecryption *bool  `json:"supports_decryption,omitempty"`
	SupportsSigning    *bool  `json:"supports_signing,omitempty"`
}

// Permissions are the permission levels a role may use for this entry.
func (e Entry) Permissions() []string {
	all := resource.PermissionsFor(e.Type)
	if e.Type != resource.TypeTransit || e.SupportsEncryption == nil {
		return all
	}
	var out []string
	for _, p := range all {
		switch {
		case p == "encrypt" && !*e.SupportsEncryption,
			p == "decrypt" && !*e.SupportsDecryption,
			p == "encrypt-decrypt" && !(*e.SupportsEncryption && *e.SupportsDecryption),
			p == "sign-verify" && !*e.SupportsSigning:
			continue
		}
		out = append(out, p)
	}
	return out
}

// ResponseData is the entry as API responses show it: every field, always present for
// its kind, so clients need not guess what a missing key means.
func (e *Entry) ResponseData() map[string]interface{} {
	d := map[string]interface{}{
		"name":         e.Name,
		"type":         e.Type,
		"kind":         e.Kind,
		"mount":        e.Mount,
		"path":         e.Path,
		"owner":        e.Owner,
		"owner_source": e.OwnerSource,
		"owners":       NonNilOwners(e.Owners),
		"permissions":  e.Permissions(),
	}
	switch e.Kind {
	case KindSecret:
		d["custom_metadata"] = e.CustomMetadata
		d["deleted"] = e.Deleted
	case KindKey:
		d["key_type"] = e.KeyType
		d["supports_encryption"] = BoolOrNil(e.SupportsEncryption)
		d["supports_decryption"] = BoolOrNil(e.SupportsDecryption)
		d["supports_signing"] = BoolOrNil(e.SupportsSigning)
	case KindRole:
		d["endpoint"] = e.Endpoint
		if e.Type == resource.TypeSSH {
			d["key_type"] = e.KeyType
		}
	}
	return d
}

func NonNilOwners(o []OwnerView) []OwnerView {
	if o == nil {
		return []OwnerView{}
	}
	return o
}

func BoolOrNil(b *bool) interface{} {
	if b == nil {
		return nil
	}
	return *b
}

// SkippedPath is a mount or folder the walk could not list, and why.
type SkippedPath struct {
	Mount  string `json:"mount"`
	Path   string `json:"path"` // "" for the whole mount
	Reason string `json:"reason"`
}

// UngrantableName is something that exists in Vault but has a name validateResourceName
// rejects, so it can never be put in a role.
type UngrantableName struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

// ErrTooManyResources stops a walk that found more than max_resources entries.
type ErrTooManyResources struct{ max int }

func (e *ErrTooManyResources) Error() string {
	return fmt.Sprintf("discovery found more than max_resources (%d) resources and stopped; nothing was stored and the previous snapshot is kept. Raise max_resources in config, or narrow resource_types", e.max)
}

// Options says what a walk discovers and how hard it may push Vault.
type Options struct {
	Types            map[string]bool // resource types to walk: resource.TypeKV, TypeTransit, TypeDatabase, TypePKI, TypeSSH
	OwnerKey         string          // custom_metadata key holding a secret's owner; "" = none
	IntegrationOwner string          // fallback owner
	// OwnersTable gives what has no owner tag its owners (nil: no table).
	OwnersTable  *owners.TableIndex
	Concurrency  int    // Vault calls in flight at most
	MaxResources int    // fail past this many entries
	OwnMount     string // this plugin's mount ("apono/"), never walked
}

// Result is everything a walk found. Entries are sorted by name.
type Result struct {
	Entries          []Entry
	Skipped          []SkippedPath
	SkippedCount     int
	Ungrantable      []UngrantableName
	UngrantableCount int
	Warnings         []string
	ListCalls        int64
	ReadCalls        int64
}

type TaskKind int

const (
	TaskListKV         TaskKind = iota // LIST <mount>/metadata/<path>
	TaskReadKVMeta                     // read <mount>/metadata/<path>
	TaskListTransit                    // LIST <mount>/keys
	TaskReadTransitKey                 // read <mount>/keys/<path>
	TaskListRoles                      // LIST <mount>/<path> (roles, static-roles) of a database, PKI or SSH mount
	TaskReadSSHRole                    // read <mount>/roles/<path> for its key_type
)

type WalkTask struct {
	kind  TaskKind
	mount string // without trailing slash
	path  string // folder with trailing slash ("" for the root), secret path, key or role name, or what to LIST
	typ   string // TaskListRoles: the mount's resource type
}

// Walker discovers resources with a fixed pool of workers taking tasks from a shared
// stack. Vault's LIST returns one level and has no paging, so every folder is one call;
// the pool bounds how many calls are in flight, and the stack (depth first) keeps the
// pending work small. Memory is the result plus the pending tasks.
type Walker struct {
	client vaultapi.Client
	opts   Options
	now    time.Time

	mu      sync.Mutex
	cond    *sync.Cond
	queue   []WalkTask
	pending int   // tasks queued or running; the walk is over when it reaches 0
	err     error // first fatal error; stops every worker
	cancel  context.CancelFunc

	found       int // entries emitted or reserved, checked against maxResources
	entries     []Entry
	skipped     []SkippedPath
	nSkipped    int
	ungrantable []UngrantableName
	nUngrant    int
	warnings    []string
	// incomplete holds folders whose contents are not all known (something below could
	// not be listed or is ungrantable): no owner is derived for them or their parents.
	incomplete []FolderRef
	gates      map[string]*ReadGate // "mount" -> whether reads there are allowed

	listCalls atomic.Int64
	readCalls atomic.Int64
}

// ReadGate learns once per mount whether the management policy allows reads there (KV
// metadata, Transit keys). The first reader probes; the others wait for its answer
// rather than all collecting a 403, each of which costs the client a fresh login.
type ReadGate struct {
	claimed bool
	done    chan struct{}
	allowed bool
}

// Walk discovers every KV v2, Transit, database, PKI and SSH resource in mounts that
// opts selects.
func Walk(ctx context.Context, client vaultapi.Client, mounts map[string]vaultapi.MountInfo, opts Options) (*Result, error) {
	if opts.Concurrency < 1 {
		opts.Concurrency = 1
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := &Walker{client: client, opts: opts, now: time.Now(), cancel: cancel, gates: map[string]*ReadGate{}}
	w.cond = sync.NewCond(&w.mu)

	paths := make([]string, 0, len(mounts))
	for p := range mounts {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		m := mounts[p]
		mount := strings.TrimSuffix(p, "/")
		if p == opts.OwnMount || mount == "" {
			continue
		}
		var tasks []WalkTask
		switch {
		case m.Type == "kv" && m.Version == "2" && opts.Types[resource.TypeKV]:
			tasks = []WalkTask{{kind: TaskListKV, mount: mount}}
		case m.Type == "transit" && opts.Types[resource.TypeTransit]:
			tasks = []WalkTask{{kind: TaskListTransit, mount: mount}}
		case resource.EngineEndpoints(m.Type) != nil && opts.Types[m.Type]:
			tasks = roleListTasks(mount, m.Type)
		default:
			continue // KV v1 and every other engine: nothing this plugin discovers
		}
		// The mount itself must make valid names (kv/* is the shortest).
		if err := resource.ValidateName(mount + "/*"); err != nil {
			w.skip(mount, "", "mount path cannot be part of a resource name: "+err.Error())
			continue
		}
		w.push(tasks...)
	}

	// Wake the workers when the caller gives up, so none waits forever.
	stop := context.AfterFunc(ctx, func() { w.fail(ctx.Err()) })
	defer stop()

	var wg sync.WaitGroup
	for i := 0; i < opts.Concurrency; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.work(ctx)
		}()
	}
	wg.Wait()
	if w.err != nil {
		if errors.Is(w.err, context.Canceled) || errors.Is(w.err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("stopped after finding %d resources with %d LIST and %d read calls: %w",
				w.found, w.listCalls.Load(), w.readCalls.Load(), w.err)
		}
		return nil, w.err
	}
	return w.finish(), nil
}

func (w *Walker) work(ctx context.Context) {
	for {
		w.mu.Lock()
		for len(w.queue) == 0 && w.pending > 0 && w.err == nil {
			w.cond.Wait()
		}
		if w.err != nil || w.pending == 0 {
			w.mu.Unlock()
			return
		}
		t := w.queue[len(w.queue)-1]
		w.queue = w.queue[:len(w.queue)-1]
		w.mu.Unlock()

		if err := w.run(ctx, t); err != nil {
			w.fail(err)
		}

		w.mu.Lock()
		w.pending--
		if w.pending == 0 {
			w.cond.Broadcast()
		}
		w.mu.Unlock()
	}
}

// fail records the first fatal error, cancels the calls in flight and wakes everyone.
func (w *Walker) fail(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.cond.Broadcast()
	w.mu.Unlock()
	w.cancel()
}

func (w *Walker) push(tasks ...WalkTask) {
	if len(tasks) == 0 {
		return
	}
	w.mu.Lock()
	w.queue = append(w.queue, tasks...)
	w.pending += len(tasks)
	w.cond.Broadcast()
	w.mu.Unlock()
}

// reserve counts n more entries toward max_resources.
func (w *Walker) reserve(n int) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.found += n
	if w.found > w.opts.MaxResources {
		return &ErrTooManyResources{max: w.opts.MaxResources}
	}
	return nil
}

// emit adds entries that were already reserved.
func (w *Walker) emit(es ...Entry) {
	w.mu.Lock()
	w.entries = append(w.entries, es...)
	w.mu.Unlock()
}

func (w *Walker) unreserve() {
	w.mu.Lock()
	w.found--
	w.mu.Unlock()
}

func (w *Walker) skip(mount, path, reason string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.nSkipped++
	if len(w.skipped) < MaxReportedProblems {
		w.skipped = append(w.skipped, SkippedPath{Mount: mount, Path: path, Reason: reason})
	}
}

func (w *Walker) rejectName(name string, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.nUngrant++
	if len(w.ungrantable) < MaxReportedProblems {
		w.ungrantable = append(w.ungrantable, UngrantableName{Name: name, Reason: err.Error()})
	}
}

type FolderRef struct{ mount, path string }

// markIncomplete records that folder (a path with or without trailing slash, "" for the
// mount root) holds something the snapshot does not describe.
func (w *Walker) markIncomplete(mount, folder string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.incomplete = append(w.incomplete, FolderRef{mount: mount, path: strings.TrimSuffix(folder, "/")})
}

// gate returns the read gate of mount and whether this caller must probe it.
func (w *Walker) gate(mount string) (g *ReadGate, probe bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	g, ok := w.gates[mount]
	if !ok {
		g = &ReadGate{done: make(chan struct{})}
		w.gates[mount] = g
	}
	if !g.claimed {
		g.claimed = true
		return g, true
	}
	return g, false
}

// wait waits for the probe of g; false means reads there are denied (or the walk
// is over).
func (g *ReadGate) wait(ctx context.Context) bool {
	select {
	case <-g.done:
		return g.allowed
	case <-ctx.Done():
		return false
	}
}

func (g *ReadGate) resolve(allowed bool) {
	g.allowed = allowed
	close(g.done)
}

// gatedRead reads path under mount's gate. denied is true when the policy refuses it
// (now or, as learned by an earlier probe, before); data is nil for a missing path.
func (w *Walker) gatedRead(ctx context.Context, mount, path string) (data map[string]interface{}, denied bool, err error) {
	g, probe := w.gate(mount)
	if !probe && !g.wait(ctx) {
		return nil, true, ctx.Err()
	}
	w.readCalls.Add(1)
	data, err = w.client.Read(ctx, path)
	denied = vaultapi.IsStatus(err, http.StatusForbidden)
	if probe {
		g.resolve(!denied)
	}
	if denied {
		return nil, true, nil
	}
	return data, false, err
}

func (w *Walker) run(ctx context.Context, t WalkTask) error {
	switch t.kind {
	case TaskListKV:
		return w.listKV(ctx, t.mount, t.path)
	case TaskReadKVMeta:
		return w.readKVMeta(ctx, t.mount, t.path)
	case TaskListTransit:
		return w.listTransit(ctx, t.mount)
	case TaskReadTransitKey:
		return w.readTransitKey(ctx, t.mount, t.path)
	case TaskListRoles:
		return w.listRoles(ctx, t.mount, t.typ, t.path)
	case TaskReadSSHRole:
		return w.readSSHRole(ctx, t.mount, t.path)
	}
	return fmt.Errorf("unknown walk task %d", t.kind)
}

// CallError wraps a failed call to Vault, or returns the context's error when the walk
// was cancelled (the call failed because of that).
func CallError(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("%s: %w", what, vaultapi.Redact(err))
}

func DeniedReason(what string) string {
	return fmt.Sprintf("permission denied (403) to %s: the management policy does not allow it", what)
}

// warnOnce adds msg to the walk's warnings unless it is there already.
func (w *Walker) warnOnce(msg string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, m := range w.warnings {
		if m == msg {
			return
		}
	}
	w.warnings = append(w.warnings, msg)
}

// finish sorts the entries and derives folder owners.
func (w *Walker) finish() *Result {
	sort.Slice(w.entries, func(i, j int) bool { return w.entries[i].Name < w.entries[j].Name })
	w.deriveOwners()
	sort.Slice(w.skipped, func(i, j int) bool {
		if w.skipped[i].Mount != w.skipped[j].Mount {
			return w.skipped[i].Mount < w.skipped[j].Mount
		}
		return w.skipped[i].Path < w.skipped[j].Path
	})
	sort.Slice(w.ungrantable, func(i, j int) bool { return w.ungrantable[i].Name < w.ungrantable[j].Name })
	sort.Strings(w.warnings)
	return &Result{
		Entries:          w.entries,
		Skipped:          w.skipped,
		SkippedCount:     w.nSkipped,
		Ungrantable:      w.ungrantable,
		UngrantableCount: w.nUngrant,
		Warnings:         w.warnings,
		ListCalls:        w.listCalls.Load(),
		ReadCalls:        w.readCalls.Load(),
	}
}
