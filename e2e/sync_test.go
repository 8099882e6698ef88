package e2e

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/apono-io/vault-plugin-apono/internal/testvault"
)

// syncVault starts a Vault of the test's own, with the vendor's setup done and the
// plugin configured with only the apono-plugin AppRole. Discovery sees every mount, so
// on the shared server, where other tests add mounts and secrets, its output would vary.
func syncVault(t *testing.T) *env {
	t.Helper()
	t.Parallel() // each test has its own server
	s, setup := testvault.StartWithPluginT(t, testvault.Options{})
	e := &env{s: s, setup: setup}
	// A dev server mounts a KV v2 engine at secret/ that the seed policy cannot list;
	// without it, skipped holds only what a test puts there.
	e.root(t, "secrets", "disable", "secret")
	if err := e.configure(); err != nil {
		t.Fatal(err)
	}
	return e
}

// kvPut writes a KV v2 secret with the root API client: much faster than a CLI run when
// a test needs many.
func (e *env) kvPut(t *testing.T, mount, path string) {
	t.Helper()
	if _, err := e.s.Client.KVv2(mount).Put(context.Background(), path, map[string]interface{}{"v": "1"}); err != nil {
		t.Fatalf("writing %s/%s: %v", mount, path, err)
	}
}

// syncNow writes apono/sync and returns the response's data and warnings.
func (e *env) syncNow(t *testing.T) (map[string]interface{}, []string) {
	t.Helper()
	v := e.jsonOut(t, "", "write", "-f", "apono/sync")
	data, _ := v["data"].(map[string]interface{})
	if data == nil {
		t.Fatalf("apono/sync returned no data: %v", v)
	}
	var warnings []string
	ws, _ := v["warnings"].([]interface{})
	for _, w := range ws {
		warnings = append(warnings, fmt.Sprint(w))
	}
	return data, warnings
}

// resourcePage reads one page of apono/resources with the CLI (read) or the API (LIST).
func (e *env) resourcePage(t *testing.T, list bool, params map[string]string) (entries []map[string]interface{}, nextAfter string, data map[string]interface{}) {
	t.Helper()
	if list {
		q := map[string][]string{"list": {"true"}}
		for k, v := range params {
			q[k] = []string{v}
		}
		s, err := e.s.Client.Logical().ReadWithDataWithContext(context.Background(), "apono/resources", q)
		if err != nil || s == nil {
			t.Fatalf("LIST apono/resources %v: %v", params, err)
		}
		keys, _ := s.Data["keys"].([]interface{})
		info, _ := s.Data["key_info"].(map[string]interface{})
		for _, k := range keys {
			entry, _ := info[k.(string)].(map[string]interface{})
			if entry == nil || entry["name"] != k {
				t.Fatalf("LIST apono/resources: key_info[%v] = %v", k, entry)
			}
			entries = append(entries, entry)
		}
		nextAfter, _ = s.Data["next_after"].(string)
		return entries, nextAfter, s.Data
	}
	args := []string{"read", "apono/resources"}
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, k+"="+params[k])
	}
	data = e.jsonOut(t, "", args...)["data"].(map[string]interface{})
	list2, _ := data["resources"].([]interface{})
	for _, r := range list2 {
		entries = append(entries, r.(map[string]interface{}))
	}
	nextAfter, _ = data["next_after"].(string)
	return entries, nextAfter, data
}

// allResources pages through apono/resources with the given filters and page size.
func (e *env) allResources(t *testing.T, list bool, filters map[string]string, limit int) []map[string]interface{} {
	t.Helper()
	var all []map[string]interface{}
	after := ""
	for pages := 0; ; pages++ {
		if pages > 500 {
			t.Fatal("paging does not end")
		}
		params := map[string]string{"limit": strconv.Itoa(limit)}
		for k, v := range filters {
			params[k] = v
		}
		if after != "" {
			params["after"] = after
		}
		page, next, _ := e.resourcePage(t, list, params)
		if len(page) > limit {
			t.Fatalf("page of %d entries with limit %d", len(page), limit)
		}
		all = append(all, page...)
		if next == "" {
			return all
		}
		if len(page) == 0 || next != page[len(page)-1]["name"] {
			t.Fatalf("next_after %q is not the last name of its page", next)
		}
		after = next
	}
}

func byName(entries []map[string]interface{}) map[string]map[string]interface{} {
	out := make(map[string]map[string]interface{}, len(entries))
	for _, e := range entries {
		out[e["name"].(string)] = e
	}
	return out
}

func entryNames(entries []map[string]interface{}) []string {
	out := make([]string, 0, len(entries))
	for _, e := range entries {
		out = append(out, e["name"].(string))
	}
	return out
}

// The seed policy is enough to list every KV v2 secret and folder on kv, nested folders
// and deleted-but-not-destroyed secrets included; a KV v1 mount is not listed at all; a
// second KV v2 mount the policy may not list is named under skipped and the sync still
// succeeds; names validateResourceName rejects are reported, not offered.
func TestSyncListsKVTreeWithSeedPolicyOnly(t *testing.T) {
	e := syncVault(t)
	if cfg := e.jsonOut(t, "", "read", "apono/config")["data"].(map[string]interface{}); cfg["token_set"] != false || cfg["role_id"] == "" {
		t.Fatalf("the plugin must run on the AppRole alone: %v", cfg)
	}
	for _, p := range []string{"top", "app/db", "app/api/token", "team/a/b/c/deep", "app/old", "app/gone", "app/erased"} {
		e.kvPut(t, "kv", p)
	}
	e.root(t, "kv", "metadata", "put", "-custom-metadata=team=payments", "-custom-metadata=tier=1", "kv/app/db")
	e.root(t, "kv", "delete", "kv/app/old")                  // deleted, not destroyed
	e.root(t, "kv", "destroy", "-versions=1", "kv/app/gone") // current version destroyed
	e.root(t, "kv", "metadata", "delete", "kv/app/erased")   // gone for good
	e.root(t, "kv", "put", "kv/app/has space", "v=1")        // exists, cannot be granted
	e.root(t, "kv", "put", "kv/odd dir/inside", "v=1")       // folder that cannot be granted
	e.root(t, "secrets", "enable", "-path=legacy", "-version=1", "kv")
	e.root(t, "kv", "put", "legacy/old-secret", "v=1")
	e.root(t, "secrets", "enable", "-path=team-kv", "kv-v2")
	e.root(t, "kv", "put", "team-kv/private", "v=1")

	data, _ := e.syncNow(t)

	want := []string{
		"kv/*", "kv/app/*", "kv/app/api/*", "kv/app/api/token", "kv/app/db", "kv/app/gone", "kv/app/old",
		"kv/team/*", "kv/team/a/*", "kv/team/a/b/*", "kv/team/a/b/c/*", "kv/team/a/b/c/deep", "kv/top",
	}
	entries := e.allResources(t, false, map[string]string{"type": "kv"}, 1000)
	if got := entryNames(entries); !reflect.DeepEqual(got, want) {
		t.Fatalf("KV entries\n got %v\nwant %v", got, want)
	}
	for _, en := range entries {
		if en["mount"] != "kv" {
			t.Errorf("%s on mount %v: only kv is readable with the seed policy", en["name"], en["mount"])
		}
	}
	if fmt.Sprint(data["counts"].(map[string]interface{})["kv"]) != strconv.Itoa(len(want)) {
		t.Errorf("sync counts = %v, want kv %d", data["counts"], len(want))
	}

	got := byName(entries)
	db := got["kv/app/db"]
	if db["kind"] != "secret" || db["path"] != "app/db" || db["deleted"] != false ||
		!reflect.DeepEqual(db["custom_metadata"], map[string]interface{}{"team": "payments", "tier": "1"}) {
		t.Errorf("kv/app/db = %v", db)
	}
	if got["kv/app/old"]["deleted"] != true || got["kv/app/gone"]["deleted"] != true {
		t.Errorf("deleted: old=%v gone=%v, want true for both", got["kv/app/old"]["deleted"], got["kv/app/gone"]["deleted"])
	}
	if f := got["kv/team/a/b/*"]; f["kind"] != "folder" || f["path"] != "team/a/b" {
		t.Errorf("kv/team/a/b/* = %v", f)
	}

	// The KV v1 mount is neither listed nor reported.
	raw := e.root(t, "read", "-format=json", "apono/resources", "limit=1000")
	if strings.Contains(raw, "legacy") {
		t.Errorf("the KV v1 mount appears in apono/resources:\n%s", raw)
	}

	// The mount the seed policy cannot list is skipped, with the reason.
	skipped, _ := data["skipped"].([]interface{})
	if len(skipped) != 1 {
		t.Fatalf("skipped = %v, want team-kv only", skipped)
	}
	sk := skipped[0].(map[string]interface{})
	if sk["mount"] != "team-kv" || sk["path"] != "" || !strings.Contains(sk["reason"].(string), "403") {
		t.Errorf("skipped = %v, want team-kv with a 403 reason", sk)
	}

	ungrantable, _ := data["ungrantable"].([]interface{})
	var rejected []string
	for _, u := range ungrantable {
		rejected = append(rejected, u.(map[string]interface{})["name"].(string))
	}
	if !reflect.DeepEqual(rejected, []string{"kv/app/has space", "kv/odd dir/*"}) {
		t.Errorf("ungrantable = %v", ungrantable)
	}
	// An ungrantable name is not offered: a role would refuse it.
	e.mustBadRequest(t, "is not allowed", "write", "apono/roles/spacey", "resources=kv/app/has space")
}

// Transit keys of several types: with the seed policy (LIST only) Vault 1.14 gives no
// types, so they are "unknown"; once the policy may read transit/keys/*, each key's type
// and what it supports are reported.
func TestSyncTransitKeysOfSeveralTypes(t *testing.T) {
	e := syncVault(t)
	types := map[string]string{
		"aes":    "aes256-gcm96",
		"chacha": "chacha20-poly1305",
		"ed":     "ed25519",
		"ecdsa":  "ecdsa-p256",
		"rsa":    "rsa-2048",
		"mac":    "hmac",
	}
	for name, typ := range types {
		args := []string{"write", "transit/keys/" + name, "type=" + typ}
		if typ == "hmac" {
			args = append(args, "key_size=32")
		}
		e.root(t, args...)
	}

	_, warnings := e.syncNow(t)
	entries := e.allResources(t, false, map[string]string{"type": "transit"}, 1000)
	if len(entries) != len(types) {
		t.Fatalf("%d transit entries, want %d: %v", len(entries), len(types), entryNames(entries))
	}
	for _, en := range entries {
		if en["key_type"] != "unknown" || en["supports_encryption"] != nil || en["kind"] != "key" || en["mount"] != "transit" {
			t.Errorf("with the seed policy %s = %v, want key_type unknown", en["name"], en)
		}
	}
	if !strings.Contains(strings.Join(warnings, "\n"), "unknown") {
		t.Errorf("no warning says why key types are unknown: %v", warnings)
	}

	policy := e.root(t, "policy", "read", "apono-management")
	if _, _, err := e.s.CLIWithStdin("", policy+"\npath \"transit/keys/*\" { capabilities = [\"read\"] }\n", "policy", "write", "apono-management", "-"); err != nil {
		t.Fatal(err)
	}
	e.syncNow(t)
	got := byName(e.allResources(t, false, map[string]string{"type": "transit"}, 1000))
	want := map[string][3]bool{ // encrypt, decrypt, sign
		"aes":    {true, true, false},
		"chacha": {true, true, false},
		"ed":     {false, false, true},
		"ecdsa":  {false, false, true},
		"rsa":    {true, true, true},
		"mac":    {false, false, false},
	}
	for name, sup := range want {
		en := got["transit/"+name]
		if en == nil {
			t.Errorf("transit/%s missing", name)
			continue
		}
		if en["key_type"] != types[name] || en["supports_encryption"] != sup[0] || en["supports_decryption"] != sup[1] || en["supports_signing"] != sup[2] {
			t.Errorf("transit/%s = %v, want type %s supports %v", name, en, types[name], sup)
		}
	}
	if p := got["transit/ed"]["permissions"]; !reflect.DeepEqual(p, []interface{}{"sign-verify"}) {
		t.Errorf("ed25519 permissions = %v, want [sign-verify]", p)
	}
}

// owner_metadata_key gives each secret the owner in its custom_metadata, a folder the
// owner its secrets agree on, and everything else integration_owner.
func TestSyncOwnerMetadataWithFallback(t *testing.T) {
	e := syncVault(t)
	e.mustBadRequest(t, "integration_owner is required", "write", "apono/config", "owner_metadata_key=owner")
	e.root(t, "write", "apono/config", "owner_metadata_key=owner", "integration_owner=secops@example.com")

	for _, p := range []string{"pay/db", "pay/api/key", "ops/x", "ops/y"} {
		e.kvPut(t, "kv", p)
	}
	e.root(t, "kv", "metadata", "put", "-custom-metadata=owner=alice@example.com", "kv/pay/db")
	e.root(t, "kv", "metadata", "put", "-custom-metadata=owner=alice@example.com", "kv/pay/api/key")
	e.root(t, "kv", "metadata", "put", "-custom-metadata=owner=bob@example.com", "kv/ops/x")
	e.root(t, "write", "-f", "transit/keys/payments")

	e.syncNow(t)
	got := byName(e.allResources(t, false, nil, 1000))
	// owner/owner_source name the one owner set where there is one; owners lists every set
	// a request for the entry needs (kv/ops/* needs bob and, for ops/y, the integration owner).
	alice := `{"approvers":["group:alice@example.com"],"source":"custom_metadata"}`
	bob := `{"approvers":["group:bob@example.com"],"source":"custom_metadata"}`
	secops := `{"approvers":["group:secops@example.com"],"source":"integration_owner"}`
	cases := []struct{ name, owner, source, owners string }{
		{"kv/pay/db", "alice@example.com", "custom_metadata", "[" + alice + "]"},
		{"kv/pay/api/key", "alice@example.com", "custom_metadata", "[" + alice + "]"},
		{"kv/pay/api/*", "alice@example.com", "secrets_in_folder", "[" + alice + "]"},
		{"kv/pay/*", "alice@example.com", "secrets_in_folder", "[" + alice + "]"},
		{"kv/ops/x", "bob@example.com", "custom_metadata", "[" + bob + "]"},
		{"kv/ops/y", "secops@example.com", "integration_owner", "[" + secops + "]"},
		{"kv/ops/*", "", "several_owners", "[" + bob + "," + secops + "]"},
		{"kv/*", "", "several_owners", ""},
		{"transit/payments", "secops@example.com", "integration_owner", "[" + secops + "]"},
	}
	for _, c := range cases {
		en := got[c.name]
		if en == nil {
			t.Errorf("%s missing from %v", c.name, got)
			continue
		}
		if en["owner"] != c.owner || en["owner_source"] != c.source {
			t.Errorf("%s owner = %v (%v), want %s (%s)", c.name, en["owner"], en["owner_source"], c.owner, c.source)
		}
		if c.owners != "" && jsonString(t, en["owners"]) != c.owners {
			t.Errorf("%s owners = %s, want %s", c.name, jsonString(t, en["owners"]), c.owners)
		}
	}
}

// Paging with after/limit, by read and by LIST, returns every entry exactly once and in
// order; the first read, before any sync, runs one.
func TestSyncResourcesPaginationReturnsEachEntryOnce(t *testing.T) {
	e := syncVault(t)
	for i := 0; i < 45; i++ {
		e.kvPut(t, "kv", fmt.Sprintf("f%d/g%d/s%02d", i%4, i%3, i))
	}
	for i := 0; i < 3; i++ {
		e.root(t, "write", "-f", fmt.Sprintf("transit/keys/k%d", i))
	}

	page, _, first := e.resourcePage(t, false, map[string]string{"limit": "1000"})
	if first["synced_at"] == "" || first["synced_at"] == nil {
		t.Fatalf("the first read did not sync: %v", first)
	}
	// kv/*, 4 f folders, 12 g folders, 45 secrets, 3 keys.
	if len(page) != 65 || fmt.Sprint(first["total"]) != "65" {
		t.Fatalf("first read: %d entries, total %v; want 65", len(page), first["total"])
	}
	want := entryNames(page)
	if !sort.StringsAreSorted(want) {
		t.Fatal("resources are not sorted by name")
	}

	for _, list := range []bool{false, true} {
		for _, limit := range []int{1, 7, 64, 65} {
			if limit == 1 && !list {
				continue // 65 CLI runs prove nothing the API's 65 pages do not
			}
			got := entryNames(e.allResources(t, list, nil, limit))
			if !reflect.DeepEqual(got, want) {
				t.Errorf("list=%v limit=%d: %d names, want the %d of one full read, each once, in order", list, limit, len(got), len(want))
			}
		}
	}

	// The CLI's LIST (no paging parameters) gives the first page of names.
	if out := e.root(t, "list", "apono/resources"); !strings.Contains(out, "kv/f0/g0/s00") || !strings.Contains(out, "transit/k2") {
		t.Errorf("vault list apono/resources:\n%s", out)
	}
	filtered := entryNames(e.allResources(t, true, map[string]string{"prefix": "kv/f1/", "type": "kv"}, 4))
	var wantF []string
	for _, n := range want {
		if strings.HasPrefix(n, "kv/f1/") {
			wantF = append(wantF, n)
		}
	}
	if !reflect.DeepEqual(filtered, wantF) || len(wantF) == 0 {
		t.Errorf("prefix kv/f1/: got %v, want %v", filtered, wantF)
	}
	keys := entryNames(e.allResources(t, false, map[string]string{"mount": "transit"}, 2))
	if !reflect.DeepEqual(keys, []string{"transit/k0", "transit/k1", "transit/k2"}) {
		t.Errorf("mount transit: %v", keys)
	}
	e.mustBadRequest(t, "limit must be between 1 and 10000", "read", "apono/resources", "limit=0")
	e.mustBadRequest(t, "allowed: kv, transit, database, pki, ssh", "read", "apono/resources", "type=consul")
}

// Names taken from the sync output, pasted as they are into roles, grant access that
// works: a secret, a folder and a Transit key.
func TestSyncEntriesPasteIntoRoleThatGrants(t *testing.T) {
	e := syncVault(t)
	e.root(t, "kv", "put", "kv/app/db", "password=s3cr3t")
	e.root(t, "kv", "put", "kv/app/cfg/feature", "flag=on")
	e.root(t, "write", "-f", "transit/keys/payments")
	e.syncNow(t)

	entries := e.allResources(t, false, nil, 1000)
	var secret, folder, key string
	for _, en := range entries {
		switch {
		case en["kind"] == "secret" && en["path"] == "app/db":
			secret = en["name"].(string)
		case en["kind"] == "folder" && en["path"] == "app/cfg":
			folder = en["name"].(string)
		case en["kind"] == "key" && en["path"] == "payments":
			key = en["name"].(string)
		}
	}
	if secret == "" || folder == "" || key == "" {
		t.Fatalf("sync output lacks the secret, folder or key: %v", entryNames(entries))
	}

	e.root(t, "write", "apono/roles/from-sync-kv", "resources="+secret+","+folder, "ttl=5m")
	g := e.grant(t, "from-sync-kv")
	tok := e.mustLogin(t, g)
	if v := strings.TrimSpace(e.s.MustCLI(t, tok, "kv", "get", "-field=password", secret)); v != "s3cr3t" {
		t.Errorf("%s read through the grant = %q", secret, v)
	}
	e.s.MustCLI(t, tok, "kv", "get", strings.TrimSuffix(folder, "*")+"feature")
	e.root(t, "lease", "revoke", g.LeaseID)

	e.root(t, "write", "apono/roles/from-sync-transit", "resources="+key, "ttl=5m")
	g = e.grant(t, "from-sync-transit")
	tok = e.mustLogin(t, g)
	e.s.MustCLI(t, tok, "write", "transit/encrypt/payments", "plaintext=aGVsbG8=")
	e.root(t, "lease", "revoke", g.LeaseID)
}
