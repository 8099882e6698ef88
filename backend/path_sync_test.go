package backend

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/config"
	"github.com/apono-io/vault-plugin-apono/backend/discovery"
	"github.com/apono-io/vault-plugin-apono/backend/resource"
	"github.com/apono-io/vault-plugin-apono/backend/vaultapi/vaultfake"
	"github.com/hashicorp/vault/sdk/logical"
)

// syncEnv is a configured test backend whose fake Vault holds tree.
func syncEnv(t *testing.T, tree *vaultfake.Tree, config map[string]interface{}) *testEnv {
	t.Helper()
	e := newTestEnv(t)
	e.vault.Tree = tree
	e.configure(t)
	if config != nil {
		e.mustOK(t, logical.UpdateOperation, "config", config)
	}
	return e
}

// smallChunks makes snapshots split into chunks of n entries for the test's duration.
func smallChunks(t *testing.T, n int) {
	t.Helper()
	old := discovery.SnapshotChunkEntries
	discovery.SnapshotChunkEntries = n
	t.Cleanup(func() { discovery.SnapshotChunkEntries = old })
}

func wideTree(secrets int) *vaultfake.Tree {
	tree := vaultfake.NewTree()
	for i := 0; i < secrets; i++ {
		tree.Put("kv", fmt.Sprintf("team%d/app%d/s%03d", i%3, i%7, i), vaultfake.Secret{})
	}
	tree.Put("secret", "other", vaultfake.Secret{})
	tree.Key("transit", "payments", "aes256-gcm96")
	tree.KeyInfo = true
	return tree
}

func TestSyncReturnsCountsAndStoresChunkedSnapshot(t *testing.T) {
	smallChunks(t, 7)
	e := syncEnv(t, wideTree(40), nil)
	resp := e.mustOK(t, logical.UpdateOperation, "sync", nil)
	d := resp.Data
	// kv: 40 secrets, 3 team folders, 21 app folders (each team has all 7 apps), kv/*;
	// secret: 1 + secret/*; transit: 1.
	if d["total"] != 68 {
		t.Fatalf("total = %v, want 68 (%v)", d["total"], d)
	}
	if got := d["counts"].(map[string]int); got[resource.TypeKV] != 67 || got[resource.TypeTransit] != 1 {
		t.Errorf("counts = %v", got)
	}
	if got := d["kinds"].(map[string]int); got[discovery.KindSecret] != 41 || got[discovery.KindFolder] != 26 || got[discovery.KindKey] != 1 {
		t.Errorf("kinds = %v", got)
	}
	if got := d["mounts"].(map[string]int); got["kv"] != 65 || got["secret"] != 2 || got["transit"] != 1 {
		t.Errorf("mounts = %v", got)
	}
	for _, k := range []string{"synced_at", "duration", "duration_ms", "skipped", "ungrantable", "list_calls", "read_calls"} {
		if _, ok := d[k]; !ok {
			t.Errorf("sync response has no %s", k)
		}
	}

	h, err := discovery.LoadSnapshotHeader(e.ctx, e.storage)
	if err != nil || h == nil {
		t.Fatalf("no snapshot header: %v", err)
	}
	if len(h.Chunks) != 10 { // ceil(68/7)
		t.Errorf("%d chunks, want 10", len(h.Chunks))
	}
	var all []string
	for i := range h.Chunks {
		entries, err := discovery.LoadSnapshotChunk(e.ctx, e.storage, h, i)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != h.Chunks[i].Count || entries[0].Name != h.Chunks[i].First || entries[len(entries)-1].Name != h.Chunks[i].Last {
			t.Errorf("chunk %d does not match its header entry %+v", i, h.Chunks[i])
		}
		all = append(all, names(entries)...)
	}
	if len(all) != 68 || !sort.StringsAreSorted(all) {
		t.Errorf("chunks hold %d names, sorted %v", len(all), sort.StringsAreSorted(all))
	}

	// A second sync replaces the generation and leaves no chunk of the first behind.
	e.mustOK(t, logical.UpdateOperation, "sync", nil)
	gens, err := e.storage.List(e.ctx, discovery.SnapshotChunkPrefix)
	if err != nil {
		t.Fatal(err)
	}
	h2, _ := discovery.LoadSnapshotHeader(e.ctx, e.storage)
	if len(gens) != 1 || strings.TrimSuffix(gens[0], "/") != h2.Generation || h2.Generation == h.Generation {
		t.Errorf("generations in storage %v, current %s, previous %s", gens, h2.Generation, h.Generation)
	}
}

func TestSnapshotChunksStayUnderTheByteBound(t *testing.T) {
	tree := vaultfake.NewTree()
	big := map[string]string{}
	for i := 0; i < 60; i++ {
		big[fmt.Sprintf("k%02d", i)] = strings.Repeat("v", 500)
	}
	for i := 0; i < 40; i++ {
		tree.Put("kv", fmt.Sprintf("s%02d", i), vaultfake.Secret{Meta: big})
	}
	e := syncEnv(t, tree, nil)
	e.mustOK(t, logical.UpdateOperation, "sync", nil)
	h, _ := discovery.LoadSnapshotHeader(e.ctx, e.storage)
	// Each entry is ~33 KB of JSON: 256 KiB chunks hold 7.
	if len(h.Chunks) < 5 {
		t.Fatalf("%d chunks for ~1.3 MB of entries", len(h.Chunks))
	}
	for i := range h.Chunks {
		entries, err := discovery.LoadSnapshotChunk(e.ctx, e.storage, h, i)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != h.Chunks[i].Count {
			t.Fatalf("chunk %d: %d entries, header says %d", i, len(entries), h.Chunks[i].Count)
		}
		size := 0
		for _, en := range entries {
			for k, v := range en.CustomMetadata {
				size += len(k) + len(v)
			}
		}
		if size > discovery.SnapshotChunkBytes {
			t.Errorf("chunk %d holds %d bytes of metadata, bound is %d", i, size, discovery.SnapshotChunkBytes)
		}
	}
}

func TestSyncNeedsConfig(t *testing.T) {
	e := newTestEnv(t)
	e.mustBadRequest(t, logical.UpdateOperation, "sync", nil, "not configured")
}

func TestSyncSkippedMountIsReportedAndSyncSucceeds(t *testing.T) {
	tree := wideTree(5)
	tree.Denied = []string{"secret/metadata/"}
	e := syncEnv(t, tree, nil)
	resp := e.mustOK(t, logical.UpdateOperation, "sync", nil)
	skipped := resp.Data["skipped"].([]map[string]interface{})
	if len(skipped) != 1 || skipped[0]["mount"] != "secret" || !strings.Contains(skipped[0]["reason"].(string), "permission denied") {
		t.Fatalf("skipped = %v", skipped)
	}
	if resp.Data["mounts"].(map[string]int)["secret"] != 0 {
		t.Errorf("entries from the skipped mount: %v", resp.Data["mounts"])
	}
}

func TestSyncPastMaxResourcesKeepsPreviousSnapshot(t *testing.T) {
	e := syncEnv(t, wideTree(30), nil)
	e.mustOK(t, logical.UpdateOperation, "sync", nil)
	before, _ := discovery.LoadSnapshotHeader(e.ctx, e.storage)

	e.mustOK(t, logical.UpdateOperation, "config", map[string]interface{}{"max_resources": 10})
	e.mustBadRequest(t, logical.UpdateOperation, "sync", nil, "max_resources (10)")
	after, _ := discovery.LoadSnapshotHeader(e.ctx, e.storage)
	if after.Generation != before.Generation {
		t.Fatal("a failed sync replaced the snapshot")
	}
	st, _ := discovery.LoadSyncStatus(e.ctx, e.storage)
	if st == nil || !strings.Contains(st.Error, "max_resources") {
		t.Errorf("sync status = %+v, want the error recorded", st)
	}
	resp := e.mustOK(t, logical.ReadOperation, "resources", nil)
	if resp.Data["total"] != before.Total {
		t.Errorf("resources after a failed sync: total %v, want %d", resp.Data["total"], before.Total)
	}
}

// pageAll reads every page of resources with the given filters and page size.
func pageAll(t *testing.T, e *testEnv, op logical.Operation, filters map[string]interface{}, limit int) []string {
	t.Helper()
	var got []string
	after := ""
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatal("paging does not end")
		}
		data := map[string]interface{}{"limit": limit}
		for k, v := range filters {
			data[k] = v
		}
		if after != "" {
			data["after"] = after
		}
		resp := e.mustOK(t, op, "resources/", data)
		var page []string
		if op == logical.ListOperation {
			page, _ = resp.Data["keys"].([]string)
			info := resp.Data["key_info"].(map[string]interface{})
			for _, k := range page {
				if info[k].(map[string]interface{})["name"] != k {
					t.Fatalf("key_info[%s] = %v", k, info[k])
				}
			}
		} else {
			for _, r := range resp.Data["resources"].([]map[string]interface{}) {
				page = append(page, r["name"].(string))
			}
		}
		if len(page) > limit {
			t.Fatalf("page of %d with limit %d", len(page), limit)
		}
		got = append(got, page...)
		next, more := resp.Data["next_after"].(string)
		if !more {
			return got
		}
		if len(page) == 0 || next != page[len(page)-1] {
			t.Fatalf("next_after %q is not the page's last name (%v)", next, page)
		}
		after = next
	}
}

func TestResourcesPagingReturnsEachEntryOnce(t *testing.T) {
	smallChunks(t, 6)
	e := syncEnv(t, wideTree(50), nil)
	e.mustOK(t, logical.UpdateOperation, "sync", nil)
	h, _ := discovery.LoadSnapshotHeader(e.ctx, e.storage)
	var want []string
	for i := range h.Chunks {
		entries, _ := discovery.LoadSnapshotChunk(e.ctx, e.storage, h, i)
		want = append(want, names(entries)...)
	}
	for _, op := range []logical.Operation{logical.ReadOperation, logical.ListOperation} {
		for _, limit := range []int{1, 4, 6, 7, 1000} {
			if got := pageAll(t, e, op, nil, limit); !reflect.DeepEqual(got, want) {
				t.Errorf("%s limit %d: %d names, want %d (each once, in order)", op, limit, len(got), len(want))
			}
		}
	}
}

func TestResourcesFilters(t *testing.T) {
	smallChunks(t, 5)
	e := syncEnv(t, wideTree(30), nil)
	e.mustOK(t, logical.UpdateOperation, "sync", nil)
	all := pageAll(t, e, logical.ReadOperation, nil, 1000)
	filter := func(keep func(string) bool) []string {
		var out []string
		for _, n := range all {
			if keep(n) {
				out = append(out, n)
			}
		}
		return out
	}
	cases := []struct {
		name    string
		filters map[string]interface{}
		want    []string
	}{
		{"type transit", map[string]interface{}{"type": "transit"}, []string{"transit/payments"}},
		{"type kv", map[string]interface{}{"type": "kv"}, filter(func(n string) bool { return !strings.HasPrefix(n, "transit/") })},
		{"mount", map[string]interface{}{"mount": "secret"}, []string{"secret/*", "secret/other"}},
		{"mount with slash", map[string]interface{}{"mount": "secret/"}, []string{"secret/*", "secret/other"}},
		{"prefix", map[string]interface{}{"prefix": "kv/team1/app2/"}, filter(func(n string) bool { return strings.HasPrefix(n, "kv/team1/app2/") })},
		{"prefix and type", map[string]interface{}{"prefix": "kv/team2", "type": "kv"}, filter(func(n string) bool { return strings.HasPrefix(n, "kv/team2") })},
		{"mount and prefix disagree", map[string]interface{}{"mount": "secret", "prefix": "kv/"}, nil},
		{"nothing", map[string]interface{}{"prefix": "nope/"}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if len(c.want) == 0 && c.name != "nothing" && c.name != "mount and prefix disagree" {
				t.Fatal("case selects nothing")
			}
			for _, limit := range []int{2, 1000} {
				if got := pageAll(t, e, logical.ReadOperation, c.filters, limit); !reflect.DeepEqual(got, c.want) {
					t.Errorf("limit %d: got %v, want %v", limit, got, c.want)
				}
			}
		})
	}
	e.mustBadRequest(t, logical.ReadOperation, "resources", map[string]interface{}{"type": "consul"}, "allowed: kv, transit, database, pki, ssh")
	e.mustBadRequest(t, logical.ReadOperation, "resources", map[string]interface{}{"limit": 0}, "limit")
	e.mustBadRequest(t, logical.ListOperation, "resources/", map[string]interface{}{"limit": maxResourcesLimit + 1}, "limit")
}

func TestResourcesReadRunsFirstSync(t *testing.T) {
	e := syncEnv(t, wideTree(3), nil)
	resp := e.mustOK(t, logical.ReadOperation, "resources", nil)
	// kv/*, 3 team and 3 app folders, 3 secrets; secret/* and secret/other; a key.
	if resp.Data["synced_at"] == "" || resp.Data["total"] != 13 {
		t.Fatalf("first read did not sync: %v", resp.Data)
	}
	lists, _, _ := e.vault.Tree.Counts()
	// Later reads use the snapshot.
	e.mustOK(t, logical.ReadOperation, "resources", nil)
	e.mustOK(t, logical.ListOperation, "resources/", nil)
	if again, _, _ := e.vault.Tree.Counts(); again != lists {
		t.Errorf("reads with a snapshot walked Vault again (%d -> %d LISTs)", lists, again)
	}
	res := resp.Data["resources"].([]map[string]interface{})
	for _, r := range res {
		if r["name"] == "kv/team0/app0/s000" {
			if r["type"] != "kv" || r["kind"] != "secret" || r["deleted"] != false || r["custom_metadata"] == nil {
				t.Errorf("entry = %v", r)
			}
			return
		}
	}
	t.Errorf("kv/team0/app0/s000 missing from %v", res)
}

func TestResourcesReadWithoutConfigIsABadRequest(t *testing.T) {
	e := newTestEnv(t)
	e.mustBadRequest(t, logical.ReadOperation, "resources", nil, "not configured")
}

func TestPeriodicSync(t *testing.T) {
	e := syncEnv(t, wideTree(3), nil)
	// tick runs the periodic function and waits for a background sync it may start.
	tick := func() {
		t.Helper()
		if err := e.b.periodic(e.ctx, &logical.Request{Storage: e.storage}); err != nil {
			t.Fatal(err)
		}
		e.b.syncMu.Lock()
		//lint:ignore SA2001 an empty critical section: waiting is the point
		e.b.syncMu.Unlock()
	}
	lists := func() int { n, _, _ := e.vault.Tree.Counts(); return n }
	// age makes the snapshot and the last background attempt d old.
	age := func(d time.Duration) {
		t.Helper()
		h, _ := discovery.LoadSnapshotHeader(e.ctx, e.storage)
		h.SyncedAt = h.SyncedAt.Add(-d)
		entry, _ := logical.StorageEntryJSON(discovery.SnapshotHeaderPath, h)
		st, _ := discovery.LoadSyncStatus(e.ctx, e.storage)
		st.BackgroundAttemptedAt = st.BackgroundAttemptedAt.Add(-d)
		entry2, _ := logical.StorageEntryJSON(discovery.SyncStatusPath, st)
		if e.storage.Put(e.ctx, entry) != nil || e.storage.Put(e.ctx, entry2) != nil {
			t.Fatal("cannot age the snapshot")
		}
	}

	tick()
	if h, _ := discovery.LoadSnapshotHeader(e.ctx, e.storage); h == nil {
		t.Fatal("the first periodic run did not sync")
	}
	n := lists()
	tick()
	if lists() != n {
		t.Fatal("periodic synced again before sync_interval passed")
	}

	age(16 * time.Minute)
	tick()
	if lists() == n {
		t.Fatal("periodic did not sync after sync_interval (15m)")
	}

	// A failing background sync is not retried before the interval passes; a failed
	// manual sync does not hold the periodic one back.
	e.mustOK(t, logical.UpdateOperation, "config", map[string]interface{}{"max_resources": 2})
	age(16 * time.Minute)
	tick()
	st, _ := discovery.LoadSyncStatus(e.ctx, e.storage)
	if !strings.Contains(st.Error, "max_resources") {
		t.Fatalf("status after a failed background sync = %+v", st)
	}
	n = lists()
	tick()
	if lists() != n {
		t.Fatal("a failed background sync was retried at the next tick")
	}
	age(16 * time.Minute)
	e.mustBadRequest(t, logical.UpdateOperation, "sync", nil, "max_resources")
	e.mustOK(t, logical.UpdateOperation, "config", map[string]interface{}{"max_resources": 1000})
	n = lists()
	tick()
	if lists() == n {
		t.Fatal("a failed manual sync held the periodic one back")
	}

	// Off: never.
	e.mustOK(t, logical.UpdateOperation, "config", map[string]interface{}{"sync_interval": 0})
	age(48 * time.Hour)
	n = lists()
	tick()
	if lists() != n {
		t.Fatal("periodic synced with sync_interval 0")
	}
}

func TestSyncStopsAtItsTimeout(t *testing.T) {
	tree := wideTree(200)
	tree.Delay = 20 * time.Millisecond // ~5s of calls at concurrency 1
	e := syncEnv(t, tree, map[string]interface{}{"sync_concurrency": 1})
	check := func(t *testing.T, resp *logical.Response, err error, within time.Duration, began time.Time) {
		t.Helper()
		if err != nil || resp == nil || !resp.IsError() {
			t.Fatalf("want a 400, got %v, %v", resp, err)
		}
		msg := resp.Error().Error()
		for _, want := range []string{"did not finish within its timeout", "max_request_duration", "sync_interval", "stopped after finding"} {
			if !strings.Contains(msg, want) {
				t.Errorf("message %q does not mention %q", msg, want)
			}
		}
		if d := time.Since(began); d > within {
			t.Errorf("answered after %s, want within %s", d, within)
		}
		if h, _ := discovery.LoadSnapshotHeader(e.ctx, e.storage); h != nil {
			t.Error("a stopped sync stored a snapshot")
		}
		if st, _ := discovery.LoadSyncStatus(e.ctx, e.storage); st == nil || !strings.Contains(st.Error, "deadline") {
			t.Errorf("status = %+v, want the attempt recorded", st)
		}
	}

	t.Run("timeout field", func(t *testing.T) {
		began := time.Now()
		resp, err := e.do(t, logical.UpdateOperation, "sync", map[string]interface{}{"timeout": 1})
		check(t, resp, err, 2*time.Second, began)
	})
	t.Run("request deadline", func(t *testing.T) {
		// Vault passes no deadline today; a caller that does gets the answer before it.
		ctx, cancel := context.WithTimeout(context.Background(), requestDeadlineMargin+300*time.Millisecond)
		defer cancel()
		began := time.Now()
		resp, err := e.b.HandleRequest(ctx, &logical.Request{
			Operation: logical.UpdateOperation, Path: "sync", Storage: e.storage, MountPoint: "apono/",
		})
		check(t, resp, err, requestDeadlineMargin, began)
	})
	e.mustBadRequest(t, logical.UpdateOperation, "sync", map[string]interface{}{"timeout": "31m"}, "timeout must be between 1s and 30m0s")
}

func TestConfigDiscoveryFields(t *testing.T) {
	e := newTestEnv(t)
	e.configure(t)
	d := e.mustOK(t, logical.ReadOperation, "config", nil).Data
	defaults := map[string]interface{}{
		"resource_types":     []string{"kv", "transit", "database", "pki", "ssh"},
		"owner_metadata_key": "",
		"integration_owner":  "",
		"sync_interval":      int64(900),
		"sync_concurrency":   config.DefaultSyncConcurrency,
		"max_resources":      config.DefaultMaxResources,
	}
	for k, want := range defaults {
		if !reflect.DeepEqual(d[k], want) {
			t.Errorf("default %s = %#v, want %#v", k, d[k], want)
		}
	}

	e.mustOK(t, logical.UpdateOperation, "config", map[string]interface{}{
		"resource_types":     "transit, KV,kv",
		"owner_metadata_key": "owner",
		"integration_owner":  "secops@example.com",
		"sync_interval":      "1h",
		"sync_concurrency":   16,
		"max_resources":      5000,
	})
	d = e.mustOK(t, logical.ReadOperation, "config", nil).Data
	set := map[string]interface{}{
		"resource_types":     []string{"kv", "transit"},
		"owner_metadata_key": "owner",
		"integration_owner":  "secops@example.com",
		"sync_interval":      int64(3600),
		"sync_concurrency":   16,
		"max_resources":      5000,
	}
	for k, want := range set {
		if !reflect.DeepEqual(d[k], want) {
			t.Errorf("%s = %#v, want %#v", k, d[k], want)
		}
	}
	e.mustOK(t, logical.UpdateOperation, "config", map[string]interface{}{"sync_interval": 0, "resource_types": "kv"})
	d = e.mustOK(t, logical.ReadOperation, "config", nil).Data
	if d["sync_interval"] != int64(0) || !reflect.DeepEqual(d["resource_types"], []string{"kv"}) {
		t.Errorf("sync_interval %v resource_types %v, want 0 and [kv]", d["sync_interval"], d["resource_types"])
	}

	before, _ := config.Get(e.ctx, e.storage)
	bad := []struct {
		name string
		data map[string]interface{}
		want string
	}{
		{"unknown resource type", map[string]interface{}{"resource_types": "kv,consul"}, "allowed: kv, transit, database, pki, ssh"},
		{"path is granted, never discovered", map[string]interface{}{"resource_types": "path"}, "allowed: kv, transit, database, pki, ssh"},
		{"no resource type", map[string]interface{}{"resource_types": ""}, "resource_types must name at least one of: kv, transit, database, pki, ssh"},
		{"interval too short", map[string]interface{}{"sync_interval": 30}, "sync_interval must be 0 (off) or at least 60 seconds"},
		{"interval negative", map[string]interface{}{"sync_interval": -5}, "sync_interval"},
		{"concurrency zero", map[string]interface{}{"sync_concurrency": 0}, "sync_concurrency must be between 1 and 64"},
		{"concurrency too high", map[string]interface{}{"sync_concurrency": 65}, "sync_concurrency must be between 1 and 64"},
		{"max_resources zero", map[string]interface{}{"max_resources": 0}, "max_resources must be between 1 and 1000000"},
		{"owner key too long", map[string]interface{}{"owner_metadata_key": strings.Repeat("k", 129)}, "owner_metadata_key"},
		{"owner key control char", map[string]interface{}{"owner_metadata_key": "own\ner"}, "owner_metadata_key"},
		{"owner key without fallback", map[string]interface{}{"owner_metadata_key": "owner", "integration_owner": ""}, "integration_owner is required"},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			e.mustBadRequest(t, logical.UpdateOperation, "config", c.data, c.want)
			if after, _ := config.Get(e.ctx, e.storage); !reflect.DeepEqual(after, before) {
				t.Errorf("a rejected write changed config: %+v", after)
			}
		})
	}
}

func TestSyncRequestWaitsForARunningSyncNoLongerThanItsDeadline(t *testing.T) {
	e := syncEnv(t, wideTree(3), nil)
	e.b.syncMu.Lock() // a sync is running
	ctx, cancel := context.WithTimeout(context.Background(), requestDeadlineMargin+200*time.Millisecond)
	defer cancel()
	_, err := e.b.HandleRequest(ctx, &logical.Request{Operation: logical.UpdateOperation, Path: "sync", Storage: e.storage, MountPoint: "apono/"})
	var coded logical.HTTPCodedError
	if !errors.As(err, &coded) || coded.Code() != http.StatusConflict || !strings.Contains(err.Error(), "another sync is still running") {
		t.Fatalf("want a 409 naming the running sync, got %v", err)
	}
	e.b.syncMu.Unlock()
	// Once it has finished, a request waits for nothing.
	e.mustOK(t, logical.UpdateOperation, "sync", nil)
}

// names are the entries' names, in order.
func names(entries []discovery.Entry) []string {
	out := make([]string, 0, len(entries))
	for _, e := range entries {
		out = append(out, e.Name)
	}
	return out
}
