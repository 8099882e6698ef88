package backend

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/apono-io/vault-plugin-apono/backend/store"
	"github.com/hashicorp/vault/sdk/logical"
)

// countingStorage counts the Gets of records (request/, grant/) a test makes the
// backend do.
type countingStorage struct {
	logical.Storage
	mu   sync.Mutex
	gets map[string]int
}

func newCountingStorage() *countingStorage {
	return &countingStorage{Storage: &logical.InmemStorage{}, gets: map[string]int{}}
}

func (c *countingStorage) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	c.mu.Lock()
	if i := strings.IndexByte(key, '/'); i > 0 {
		c.gets[key[:i+1]]++
	}
	c.mu.Unlock()
	return c.Storage.Get(ctx, key)
}

func (c *countingStorage) reset() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.gets
	c.gets = map[string]int{}
	return out
}

// flowEnvOn is newFlowEnvOn with room for many open requests and a role app.
func flowEnvOn(t *testing.T, st logical.Storage) *flowEnv {
	f := newFlowEnvOn(t, st)
	f.mustOK(t, logical.UpdateOperation, "config", map[string]interface{}{"max_open_requests": 1000})
	f.mustOK(t, logical.CreateOperation, "roles/app", map[string]interface{}{
		"resources": "kv/app/*", "approval": "required", "approvers": "owner",
	})
	return f
}

// pages lists path as who with data, page by page, and returns each page's keys.
func (f *flowEnv) pages(t *testing.T, who, path string, data map[string]interface{}) [][]string {
	t.Helper()
	var out [][]string
	after := ""
	for i := 0; i < 100; i++ {
		d := map[string]interface{}{}
		for k, v := range data {
			d[k] = v
		}
		if after != "" {
			d["after"] = after
		}
		resp := f.mustAs(t, who, logical.ListOperation, path, d)
		keys, _ := resp.Data["keys"].([]string)
		out = append(out, keys)
		next, _ := resp.Data["next_after"].(string)
		if next == "" {
			if len(resp.Warnings) != 0 {
				t.Fatalf("last page warns: %v", resp.Warnings)
			}
			return out
		}
		if len(resp.Warnings) == 0 || !strings.Contains(resp.Warnings[0], "this page is not everything") {
			t.Fatalf("a page with next_after does not say so: %v", resp.Warnings)
		}
		after = next
	}
	t.Fatal("more than 100 pages")
	return nil
}

// Lists come in pages, newest first, each entry once; every filter reads only what its
// index holds, not every stored request.
func TestRequestListsArePagedAndServedFromIndexes(t *testing.T) {
	st := newCountingStorage()
	f := flowEnvOn(t, st)
	var alices []string
	for i := 0; i < 25; i++ {
		alices = append(alices, f.request(t, "app", map[string]interface{}{"resources": "kv/app/db"}))
	}
	for i := 0; i < 200; i++ {
		id := f.mustAs(t, f.carol, logical.UpdateOperation, "requests/app", map[string]interface{}{"resources": "kv/app/plain"}).Data["request_id"].(string)
		if i%2 == 0 {
			f.mustAs(t, f.carol, logical.UpdateOperation, "requests/"+id+"/cancel", nil)
		}
	}
	pages := f.pages(t, f.alice, "requests/", map[string]interface{}{"mine": true, "limit": 10})
	if len(pages) != 3 || len(pages[0]) != 10 || len(pages[2]) != 5 {
		t.Fatalf("pages of 10: %v", pages)
	}
	var got []string
	for _, p := range pages {
		got = append(got, p...)
	}
	for i, id := range got {
		if want := alices[len(alices)-1-i]; id != want {
			t.Fatalf("entry %d is %s, want %s (newest first)", i, id, want)
		}
	}

	// Each filter of a person, and each of the operator's, reads about the page it
	// returns: alice's 25 among carol's 200, bob's can_approve (alice's, owned by
	// kv-owners), erin's (carol's, owned by security) status=cancelled.
	for _, c := range []struct {
		name, who, path string
		data            map[string]interface{}
		want            int
	}{
		{"mine", f.alice, "requests/", map[string]interface{}{"mine": true, "limit": 100}, 25},
		{"can_approve", f.bob, "requests/", map[string]interface{}{"can_approve": true, "limit": 100}, 25},
		{"visible status", f.erin, "requests/", map[string]interface{}{"status": "cancelled", "limit": 10}, 10},
		{"audit status", "", "audit/requests/", map[string]interface{}{"status": "cancelled", "limit": 10}, 10},
		{"audit role", "", "audit/requests/", map[string]interface{}{"role": "app", "limit": 10}, 10},
		{"audit all", "", "audit/requests/", map[string]interface{}{"limit": 10}, 10},
	} {
		st.reset()
		resp := f.mustAs(t, c.who, logical.ListOperation, c.path, c.data)
		keys, _ := resp.Data["keys"].([]string)
		reads := st.reset()["request/"]
		if len(keys) != c.want {
			t.Fatalf("%s: %d entries, want %d", c.name, len(keys), c.want)
		}
		// A page of n reads at most n + one batch of records past its filters.
		if reads > c.want*2+32 {
			t.Fatalf("%s: a page of %d read %d request records of the 225 stored", c.name, len(keys), reads)
		}
	}
	f.mustBadRequestAs(t, f.alice, logical.ListOperation, "requests/", map[string]interface{}{"limit": 1001}, "limit must be between 1 and 1000")
	f.mustBadRequestAs(t, f.alice, logical.ListOperation, "requests/", map[string]interface{}{"after": "bm9wZQ"}, "after: ")
	f.mustBadRequestAs(t, f.alice, logical.ListOperation, "requests/", map[string]interface{}{"after": "../../x"}, "is not a cursor")
}

// An entry whose record is gone (a crash between the index write and the record's) is
// skipped by the list that meets it, and removed.
func TestIndexEntryWithoutRecordIsSkippedAndRepaired(t *testing.T) {
	f := flowEnvOn(t, &logical.InmemStorage{})
	id := f.request(t, "app", map[string]interface{}{"resources": "kv/app/db"})
	ghost := &access.Request{ID: "00000000-0000-0000-0000-00000000dead", Role: "app", Status: access.StatusPending,
		Requester: access.IdentityRef{EntityID: f.alice, EntityName: "alice"}, CreatedAt: time.Now().UTC(), ExpiresAt: time.Now().Add(time.Hour)}
	if err := f.b.idx.Apply(f.ctx, f.storage, store.RequestEntries(ghost), true); err != nil {
		t.Fatal(err)
	}
	keys := f.mustAs(t, f.alice, logical.ListOperation, "requests/", map[string]interface{}{"mine": true}).Data["keys"].([]string)
	if len(keys) != 1 || keys[0] != id {
		t.Fatalf("list with a stale entry: %v", keys)
	}
	f.b.background.Wait()
	if n := f.b.idx.Repaired.Load(); n != 1 {
		t.Fatalf("repaired %d entries, want 1 (req/requester/alice's)", n)
	}
	if has, _ := f.b.idx.Set("req/requester/"+store.EntityKey(f.alice)).Has(f.ctx, f.storage, store.NewestFirstKey(ghost.CreatedAt, ghost.ID)); has {
		t.Fatal("the stale entry is still in the index")
	}
	// The periodic job removes its deadline entry when it falls due.
	ghost.ExpiresAt = time.Now().Add(-time.Minute)
	if err := f.b.idx.Apply(f.ctx, f.storage, []store.Entry{{Set: "req/deadline", Key: store.TimeKey(ghost.ExpiresAt, ghost.ID)}}, true); err != nil {
		t.Fatal(err)
	}
	if err := f.b.sweeper.TidyRequests(f.ctx, f.storage); err != nil {
		t.Fatal(err)
	}
	var due []string
	if err := f.b.idx.Set("req/deadline").ScanRange(f.ctx, f.storage, "", store.TimeBound(time.Now()), func(k string) bool {
		due = append(due, k)
		return true
	}); err != nil || len(due) != 0 {
		t.Fatalf("due deadline entries left: %v %v", due, err)
	}
}

// Storage written before the indexes (records only) is indexed once when the plugin
// starts on it, and its requests and grants list, act and end as always.
func TestRecordsWithoutIndexesAreIndexedOnStart(t *testing.T) {
	st := &logical.InmemStorage{}
	f := flowEnvOn(t, st)
	id := f.request(t, "app", map[string]interface{}{"resources": "kv/app/db"})
	f.mustOK(t, logical.CreateOperation, "roles/direct", map[string]interface{}{"resources": "kv/app/db"})
	g := f.mustOK(t, logical.UpdateOperation, "grants/direct", nil)
	// What an earlier release left: the same records, no idx/.
	keys, err := logical.CollectKeysWithPrefix(f.ctx, st, store.IndexStoragePrefix)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if err := st.Delete(f.ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	f.b.background.Wait()

	again := newTestEnvOn(t, st) // Initialize builds the indexes
	again.b.newClient = fakeFactory(f.vault)
	again.ids.entities, again.ids.groups = f.ids.entities, f.ids.groups
	list := again.mustOK(t, logical.ListOperation, "audit/requests/", nil).Data["keys"].([]string)
	if len(list) != 1 || list[0] != id {
		t.Fatalf("requests after the upgrade: %v", list)
	}
	grants := again.mustOK(t, logical.ListOperation, "grants/", nil).Data["keys"].([]string)
	if len(grants) != 1 || grants[0] != "direct/"+g.Data["grant_id"].(string) {
		t.Fatalf("grants after the upgrade: %v", grants)
	}
	if entry, _ := st.Get(f.ctx, store.IndexVersionKey); entry == nil || string(entry.Value) != store.IndexVersion {
		t.Fatalf("no index version after the build: %v", entry)
	}
	read := again.mustOK(t, logical.ReadOperation, "indexes", nil).Data
	if read["ready"] != true || read["requests"] != 1 || read["grants"] != 1 {
		t.Fatalf("indexes: %v", read)
	}
}

// The periodic job reads only what is due: at rest, with many requests stored, no record.
func TestTidyReadsOnlyWhatIsDue(t *testing.T) {
	st := newCountingStorage()
	f := flowEnvOn(t, st)
	for i := 0; i < 300; i++ {
		f.request(t, "app", map[string]interface{}{"resources": "kv/app/db"})
	}
	due := f.request(t, "app", map[string]interface{}{"resources": "kv/app/db"})
	st.reset()
	if err := f.b.sweeper.TidyRequests(f.ctx, st); err != nil {
		t.Fatal(err)
	}
	if reads := st.reset()["request/"]; reads != 0 {
		t.Fatalf("a tidy with nothing due read %d request records", reads)
	}
	f.moveDeadlines(t, due, -25*time.Hour) // past its request_ttl
	st.reset()
	if err := f.b.sweeper.TidyRequests(f.ctx, st); err != nil {
		t.Fatal(err)
	}
	if reads := st.reset()["request/"]; reads != 1 {
		t.Fatalf("a tidy with one request due read %d records", reads)
	}
	if s := f.status(t, due); s != access.StatusExpired {
		t.Fatalf("due request: %s", s)
	}
}

// Grants list in pages too, by role and by requester, and a person lists their own.
func TestGrantListsArePaged(t *testing.T) {
	f := flowEnvOn(t, &logical.InmemStorage{})
	f.mustOK(t, logical.CreateOperation, "roles/direct", map[string]interface{}{"resources": "kv/app/db"})
	f.mustOK(t, logical.CreateOperation, "roles/other", map[string]interface{}{"resources": "kv/app/db"})
	for i := 0; i < 7; i++ {
		f.mustAs(t, f.erin, logical.UpdateOperation, "grants/direct", nil)
		f.mustOK(t, logical.UpdateOperation, "grants/other", map[string]interface{}{"requester": fmt.Sprintf("svc-%d@example.com", i%2)})
	}
	all := f.pages(t, "", "grants/", map[string]interface{}{"limit": 4})
	n := 0
	for _, p := range all {
		n += len(p)
	}
	if n != 14 || len(all) != 4 {
		t.Fatalf("grant pages of 4: %v", all)
	}
	byRole := f.mustOK(t, logical.ListOperation, "grants/", map[string]interface{}{"role": "direct"}).Data["keys"].([]string)
	bySvc := f.mustOK(t, logical.ListOperation, "grants/", map[string]interface{}{"requester": "svc-1@example.com"}).Data["keys"].([]string)
	byErin := f.mustOK(t, logical.ListOperation, "grants/", map[string]interface{}{"requester": f.erin}).Data["keys"].([]string)
	mine := f.mustAs(t, f.erin, logical.ReadOperation, "my/grants", nil).Data["grants"].([]map[string]interface{})
	if len(byRole) != 7 || len(bySvc) != 3 || len(byErin) != 7 || len(mine) != 7 {
		t.Fatalf("by role %d, by stated requester %d, by entity %d, mine %d", len(byRole), len(bySvc), len(byErin), len(mine))
	}
	if got := f.mustAs(t, f.alice, logical.ReadOperation, "my/grants", nil).Data["grants"].([]map[string]interface{}); len(got) != 0 {
		t.Fatalf("alice's own grants: %v", got)
	}
	f.mustBadRequestAs(t, "", logical.ReadOperation, "my/grants", nil, "apono/grants")
}
