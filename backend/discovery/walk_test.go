package discovery_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/config"
	"github.com/apono-io/vault-plugin-apono/backend/discovery"
	"github.com/apono-io/vault-plugin-apono/backend/resource"
	"github.com/apono-io/vault-plugin-apono/backend/vaultapi/vaultfake"
)

// walkFake runs the walker over the fake Vault's mounts and tree.
func walkFake(t *testing.T, ctx context.Context, fv *vaultfake.Vault, opts discovery.Options) (*discovery.Result, error) {
	t.Helper()
	if opts.Types == nil {
		opts.Types = map[string]bool{resource.TypeKV: true, resource.TypeTransit: true}
	}
	if opts.Concurrency == 0 {
		opts.Concurrency = 4
	}
	if opts.MaxResources == 0 {
		opts.MaxResources = config.DefaultMaxResources
	}
	if opts.OwnMount == "" {
		opts.OwnMount = "apono/"
	}
	c, err := fv.Login()
	if err != nil {
		t.Fatal(err)
	}
	mounts, err := c.Mounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return discovery.Walk(ctx, c, mounts, opts)
}

func names(entries []discovery.Entry) []string {
	out := make([]string, 0, len(entries))
	for _, e := range entries {
		out = append(out, e.Name)
	}
	return out
}

func entryByName(t *testing.T, entries []discovery.Entry, name string) discovery.Entry {
	t.Helper()
	for _, e := range entries {
		if e.Name == name {
			return e
		}
	}
	t.Fatalf("no entry %q among %v", name, names(entries))
	return discovery.Entry{}
}

// sampleTree: nested folders on kv, a second KV v2 mount (secret), a KV v1 mount (kv1)
// that must not be listed, and Transit keys.
func sampleTree() *vaultfake.Tree {
	return vaultfake.NewTree().
		Put("kv", "top", vaultfake.Secret{}).
		Put("kv", "app/db", vaultfake.Secret{Meta: map[string]string{"team": "payments"}}).
		Put("kv", "app/api/key", vaultfake.Secret{}).
		Put("kv", "team/a/b/c", vaultfake.Secret{}).
		Put("kv1", "legacy", vaultfake.Secret{}).
		Put("secret", "x", vaultfake.Secret{}).
		Key("transit", "payments", "aes256-gcm96").
		Key("transit", "signer", "ed25519")
}

func TestWalkListsEverySecretFolderAndKey(t *testing.T) {
	fv := vaultfake.New()
	fv.Tree = sampleTree()
	fv.Tree.KeyInfo = true
	res, err := walkFake(t, context.Background(), fv, discovery.Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"kv/*", "kv/app/*", "kv/app/api/*", "kv/app/api/key", "kv/app/db",
		"kv/team/*", "kv/team/a/*", "kv/team/a/b/*", "kv/team/a/b/c", "kv/top",
		"secret/*", "secret/x",
		"transit/payments", "transit/signer",
	}
	if got := names(res.Entries); !reflect.DeepEqual(got, want) {
		t.Fatalf("entries\n got %v\nwant %v", got, want)
	}
	for _, l := range fv.Tree.Lists {
		if strings.HasPrefix(l, "kv1/") {
			t.Errorf("the KV v1 mount was listed: %s", l)
		}
	}
	db := entryByName(t, res.Entries, "kv/app/db")
	if db.Type != resource.TypeKV || db.Kind != discovery.KindSecret || db.Mount != "kv" || db.Path != "app/db" || db.CustomMetadata["team"] != "payments" {
		t.Errorf("kv/app/db = %+v", db)
	}
	folder := entryByName(t, res.Entries, "kv/app/api/*")
	if folder.Kind != discovery.KindFolder || folder.Path != "app/api" || folder.Mount != "kv" {
		t.Errorf("kv/app/api/* = %+v", folder)
	}
	// Every name is one a role accepts, on the mount it says.
	mounts := fv.MountTable
	for _, e := range res.Entries {
		ref, err := resource.Resolve(e.Name, mounts, resource.Options{OwnMount: "apono/"})
		if err != nil {
			t.Errorf("%s: %v", e.Name, err)
			continue
		}
		if ref.Type != e.Type || ref.Mount != e.Mount || ref.Path != e.Path || ref.Folder != (e.Kind == discovery.KindFolder) {
			t.Errorf("%s resolves to %+v, entry says %+v", e.Name, ref, e)
		}
	}
	if res.SkippedCount != 0 || res.UngrantableCount != 0 {
		t.Errorf("skipped %v ungrantable %v", res.Skipped, res.Ungrantable)
	}
	// One LIST per folder (kv: root, app, app/api, team, team/a, team/a/b; secret: root;
	// transit), one metadata read per secret.
	if lists, reads, _ := fv.Tree.Counts(); lists != 8 || reads != 5 || res.ListCalls != 8 || res.ReadCalls != 5 {
		t.Errorf("calls: fake saw %d lists %d reads, walker counted %d %d; want 8 and 5", lists, reads, res.ListCalls, res.ReadCalls)
	}
}

func TestWalkResourceTypesSelectsEngines(t *testing.T) {
	fv := vaultfake.New()
	fv.Tree = sampleTree()
	res, err := walkFake(t, context.Background(), fv, discovery.Options{Types: map[string]bool{resource.TypeTransit: true}})
	if err != nil {
		t.Fatal(err)
	}
	if got := names(res.Entries); !reflect.DeepEqual(got, []string{"transit/payments", "transit/signer"}) {
		t.Fatalf("transit only: %v", got)
	}
}

func TestWalkMarksDeletedSecrets(t *testing.T) {
	fv := vaultfake.New()
	fv.Tree = vaultfake.NewTree().
		Put("kv", "live", vaultfake.Secret{}).
		Put("kv", "deleted", vaultfake.Secret{Deleted: true}).
		Put("kv", "destroyed", vaultfake.Secret{Destroyed: true}).
		Put("kv", "expires-later", vaultfake.Secret{DeleteAt: time.Now().Add(time.Hour)})
	res, err := walkFake(t, context.Background(), fv, discovery.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{"kv/live": false, "kv/deleted": true, "kv/destroyed": true, "kv/expires-later": false} {
		if got := entryByName(t, res.Entries, name).Deleted; got != want {
			t.Errorf("%s deleted = %v, want %v", name, got, want)
		}
	}
}

func TestWalkSkipsForbiddenMountAndFolder(t *testing.T) {
	fv := vaultfake.New()
	fv.Tree = sampleTree()
	fv.Tree.Denied = []string{"secret/metadata/", "kv/metadata/team/a/"}
	res, err := walkFake(t, context.Background(), fv, discovery.Options{})
	if err != nil {
		t.Fatalf("a 403 must not fail the walk: %v", err)
	}
	if res.SkippedCount != 2 || len(res.Skipped) != 2 {
		t.Fatalf("skipped = %+v", res.Skipped)
	}
	if s := res.Skipped[0]; s.Mount != "kv" || s.Path != "team/a" || !strings.Contains(s.Reason, "403") {
		t.Errorf("skipped[0] = %+v, want kv team/a with a 403 reason", s)
	}
	if s := res.Skipped[1]; s.Mount != "secret" || s.Path != "" || !strings.Contains(s.Reason, "LIST secret/metadata/") {
		t.Errorf("skipped[1] = %+v, want the whole secret mount", s)
	}
	got := names(res.Entries)
	for _, n := range got {
		if strings.HasPrefix(n, "secret/") || strings.HasPrefix(n, "kv/team/a/b") {
			t.Errorf("%s listed from a path the policy denies", n)
		}
	}
	// The folder itself was seen in its parent's listing, so it can still be granted.
	entryByName(t, res.Entries, "kv/team/a/*")
	entryByName(t, res.Entries, "kv/app/db")
}

func TestWalkReportsUngrantableNamesWithoutListingBelow(t *testing.T) {
	fv := vaultfake.New()
	fv.Tree = vaultfake.NewTree().
		Put("kv", "app/ok", vaultfake.Secret{}).
		Put("kv", "app/has space", vaultfake.Secret{}).
		Put("kv", "app/café", vaultfake.Secret{}).
		Put("kv", "bad dir/x", vaultfake.Secret{}).
		Put("kv", "bad dir/y/z", vaultfake.Secret{})
	res, err := walkFake(t, context.Background(), fv, discovery.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := names(res.Entries); !reflect.DeepEqual(got, []string{"kv/*", "kv/app/*", "kv/app/ok", "secret/*"}) {
		t.Fatalf("entries = %v", got)
	}
	var rejected []string
	for _, u := range res.Ungrantable {
		rejected = append(rejected, u.Name)
		if !strings.Contains(u.Reason, "not allowed") {
			t.Errorf("%s: reason %q does not say what is wrong", u.Name, u.Reason)
		}
	}
	if want := []string{"kv/app/café", "kv/app/has space", "kv/bad dir/*"}; !reflect.DeepEqual(rejected, want) || res.UngrantableCount != 3 {
		t.Errorf("ungrantable = %v (%d), want %v", rejected, res.UngrantableCount, want)
	}
	for _, l := range fv.Tree.Lists {
		if strings.Contains(l, "bad dir") {
			t.Errorf("listed below an ungrantable folder: %s", l)
		}
	}
	for _, r := range fv.Tree.Reads {
		if strings.Contains(r, "space") || strings.Contains(r, "café") {
			t.Errorf("read the metadata of an ungrantable secret: %s", r)
		}
	}
}

func TestWalkStopsPastMaxResources(t *testing.T) {
	fv := vaultfake.New()
	fv.Tree = vaultfake.NewTree()
	for i := 0; i < 50; i++ {
		fv.Tree.Put("kv", fmt.Sprintf("f%d/s%d", i%5, i), vaultfake.Secret{})
	}
	_, err := walkFake(t, context.Background(), fv, discovery.Options{MaxResources: 20})
	var tooMany *discovery.ErrTooManyResources
	if !errors.As(err, &tooMany) {
		t.Fatalf("want errTooManyResources, got %v", err)
	}
	if !strings.Contains(err.Error(), "max_resources (20)") {
		t.Errorf("error %q does not name max_resources and its value", err)
	}
	// Exactly at the limit is fine: 50 secrets + 5 folders + kv/* + secret/* (empty).
	if _, err := walkFake(t, context.Background(), fv, discovery.Options{MaxResources: 57}); err != nil {
		t.Errorf("57 entries with max_resources 57: %v", err)
	}
}

func TestWalkHonoursCancellation(t *testing.T) {
	fv := vaultfake.New()
	fv.Tree = vaultfake.NewTree()
	for i := 0; i < 2000; i++ {
		fv.Tree.Put("kv", fmt.Sprintf("f%d/g%d/s%d", i%40, i%7, i), vaultfake.Secret{})
	}
	fv.Tree.Delay = 5 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const concurrency = 4
	var mu sync.Mutex
	listsSeen, callsAtCancel := 0, 0
	fv.Tree.OnList = func(string) {
		mu.Lock()
		defer mu.Unlock()
		if listsSeen++; listsSeen == 10 {
			l, r, _ := fv.Tree.Counts()
			callsAtCancel = l + r
			cancel()
		}
	}
	began := time.Now()
	res, err := walkFake(t, ctx, fv, discovery.Options{Concurrency: concurrency})
	if !errors.Is(err, context.Canceled) || res != nil {
		t.Fatalf("want context.Canceled and no result, got %v, %v", res, err)
	}
	if d := time.Since(began); d > time.Second {
		t.Errorf("walk took %s", d)
	}
	lists, reads, _ := fv.Tree.Counts()
	// Workers already past the queue may each start one more call; no more than that.
	if lists+reads > callsAtCancel+concurrency {
		t.Errorf("%d calls started after cancellation (%d before it)", lists+reads-callsAtCancel, callsAtCancel)
	}
	if n := fv.Tree.InFlight(); n != 0 {
		t.Errorf("%d calls still in flight after walk returned", n)
	}
}

func TestWalkBoundsConcurrency(t *testing.T) {
	fv := vaultfake.New()
	fv.Tree = vaultfake.NewTree()
	for i := 0; i < 300; i++ {
		fv.Tree.Put("kv", fmt.Sprintf("f%d/s%d", i%60, i), vaultfake.Secret{})
	}
	fv.Tree.Delay = 2 * time.Millisecond
	for _, n := range []int{1, 3, 8} {
		t.Run(fmt.Sprintf("concurrency %d", n), func(t *testing.T) {
			fv.Tree.ResetCounts()
			res, err := walkFake(t, context.Background(), fv, discovery.Options{Concurrency: n})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Entries) != 300+60+2 { // + kv/* and secret/*
				t.Fatalf("%d entries, want 362", len(res.Entries))
			}
			lists, reads, max := fv.Tree.Counts()
			if max > n {
				t.Errorf("%d calls in flight at once, concurrency is %d", max, n)
			}
			if max < n {
				t.Errorf("only %d calls in flight at once with concurrency %d: the pool is not used", max, n)
			}
			if lists != 63 || reads != 300 { // kv root + 60 folders, secret root, transit/keys
				t.Errorf("%d lists and %d reads, want 63 and 300", lists, reads)
			}
		})
	}
}

func TestWalkTransitKeyTypes(t *testing.T) {
	keys := map[string]string{"aes": "aes256-gcm96", "ed": "ed25519", "rsa": "rsa-2048", "hm": "hmac"}
	build := func() *vaultfake.Vault {
		fv := vaultfake.New()
		fv.Tree = vaultfake.NewTree()
		for k, typ := range keys {
			fv.Tree.Key("transit", k, typ)
		}
		return fv
	}
	check := func(t *testing.T, res *discovery.Result) {
		t.Helper()
		for k, typ := range keys {
			e := entryByName(t, res.Entries, "transit/"+k)
			enc, dec, sign := discovery.KeyTypeSupports(typ)
			if e.KeyType != typ || e.SupportsEncryption == nil || *e.SupportsEncryption != *enc ||
				*e.SupportsDecryption != *dec || *e.SupportsSigning != *sign {
				t.Errorf("%s = %+v, want type %s", k, e, typ)
			}
		}
		if perms := entryByName(t, res.Entries, "transit/ed").Permissions(); !reflect.DeepEqual(perms, []string{"sign-verify"}) {
			t.Errorf("ed25519 permissions = %v, want [sign-verify]", perms)
		}
	}

	t.Run("key_info in the LIST", func(t *testing.T) {
		fv := build()
		fv.Tree.KeyInfo = true
		res, err := walkFake(t, context.Background(), fv, discovery.Options{})
		if err != nil {
			t.Fatal(err)
		}
		check(t, res)
		if _, reads, _ := fv.Tree.Counts(); reads != 0 {
			t.Errorf("%d key reads although the LIST gave the types", reads)
		}
	})
	t.Run("types from reading each key", func(t *testing.T) {
		fv := build()
		res, err := walkFake(t, context.Background(), fv, discovery.Options{})
		if err != nil {
			t.Fatal(err)
		}
		check(t, res)
		if _, reads, _ := fv.Tree.Counts(); reads != len(keys) {
			t.Errorf("%d key reads, want %d", reads, len(keys))
		}
	})
	t.Run("reads denied: unknown after one probe", func(t *testing.T) {
		fv := build()
		fv.Tree.Denied = []string{"transit/keys/"}
		res, err := walkFake(t, context.Background(), fv, discovery.Options{Concurrency: 8})
		if err != nil {
			t.Fatal(err)
		}
		for k := range keys {
			e := entryByName(t, res.Entries, "transit/"+k)
			if e.KeyType != discovery.KeyTypeUnknown || e.SupportsEncryption != nil {
				t.Errorf("%s = %+v, want type unknown and no supports", k, e)
			}
			if perms := e.Permissions(); len(perms) != 4 {
				t.Errorf("%s permissions = %v, want every Transit level", k, perms)
			}
		}
		if _, reads, _ := fv.Tree.Counts(); reads != 1 {
			t.Errorf("%d key reads, want 1 probe (each 403 costs the real client a login)", reads)
		}
		if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "unknown") {
			t.Errorf("warnings = %v", res.Warnings)
		}
	})
}

func TestWalkMetadataReadDenied(t *testing.T) {
	fv := vaultfake.New()
	fv.Tree = sampleTree()
	fv.Tree.Denied = []string{"kv/metadata/app/db", "kv/metadata/top", "kv/metadata/app/api/key", "kv/metadata/team/a/b/c"}
	res, err := walkFake(t, context.Background(), fv, discovery.Options{Concurrency: 8, OwnerKey: "owner", IntegrationOwner: "sec"})
	if err != nil {
		t.Fatal(err)
	}
	db := entryByName(t, res.Entries, "kv/app/db")
	if db.CustomMetadata != nil || db.Owner != "sec" || db.OwnerSource != discovery.OwnerFromIntegration {
		t.Errorf("kv/app/db = %+v, want no custom_metadata and the fallback owner", db)
	}
	kvReads := 0
	for _, r := range fv.Tree.Reads {
		if strings.HasPrefix(r, "kv/") {
			kvReads++
		}
	}
	if kvReads != 1 {
		t.Errorf("%d metadata reads on kv, want 1 probe", kvReads)
	}
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "kv/metadata") {
		t.Errorf("warnings = %v", res.Warnings)
	}
}

func TestWalkOwners(t *testing.T) {
	fv := vaultfake.New()
	fv.Tree = vaultfake.NewTree().
		Put("kv", "pay/db", vaultfake.Secret{Meta: map[string]string{"owner": "alice@example.com"}}).
		Put("kv", "pay/api/key", vaultfake.Secret{Meta: map[string]string{"owner": " alice@example.com "}}).
		Put("kv", "mixed/a", vaultfake.Secret{Meta: map[string]string{"owner": "alice@example.com"}}).
		Put("kv", "mixed/b", vaultfake.Secret{Meta: map[string]string{"owner": "bob@example.com"}}).
		Put("kv", "partial/a", vaultfake.Secret{Meta: map[string]string{"owner": "bob@example.com"}}).
		Put("kv", "partial/b", vaultfake.Secret{}).
		Put("kv", "hidden/ok", vaultfake.Secret{Meta: map[string]string{"owner": "bob@example.com"}}).
		Put("kv", "hidden/bad name", vaultfake.Secret{}).
		Key("transit", "k", "aes256-gcm96")
	fv.Tree.KeyInfo = true
	res, err := walkFake(t, context.Background(), fv, discovery.Options{OwnerKey: "owner", IntegrationOwner: "secops"})
	if err != nil {
		t.Fatal(err)
	}
	// owner and owner_source say the one owner set where there is one; owners lists every
	// set a request for the entry needs, each approving on its own.
	alice := discovery.OwnerView{Approvers: []string{"group:alice@example.com"}, Source: discovery.OwnerFromMetadata}
	bob := discovery.OwnerView{Approvers: []string{"group:bob@example.com"}, Source: discovery.OwnerFromMetadata}
	secops := discovery.OwnerView{Approvers: []string{"group:secops"}, Source: discovery.OwnerFromIntegration}
	cases := []struct {
		name, owner, source string
		owners              []discovery.OwnerView
	}{
		{"kv/pay/db", "alice@example.com", discovery.OwnerFromMetadata, []discovery.OwnerView{alice}},
		{"kv/pay/api/key", "alice@example.com", discovery.OwnerFromMetadata, []discovery.OwnerView{alice}},
		{"kv/pay/*", "alice@example.com", discovery.OwnerFromFolder, []discovery.OwnerView{alice}},
		{"kv/pay/api/*", "alice@example.com", discovery.OwnerFromFolder, []discovery.OwnerView{alice}},
		{"kv/mixed/*", "", discovery.OwnerFromSeveral, []discovery.OwnerView{alice, bob}},
		{"kv/partial/b", "secops", discovery.OwnerFromIntegration, []discovery.OwnerView{secops}},
		{"kv/partial/*", "", discovery.OwnerFromSeveral, []discovery.OwnerView{bob, secops}},
		// hidden/bad name exists but is not in the snapshot: its owner is unknown, so the
		// integration owner approves the folder as well.
		{"kv/hidden/*", "", discovery.OwnerFromSeveral, []discovery.OwnerView{bob, secops}},
		{"kv/*", "", discovery.OwnerFromSeveral, nil},
		{"transit/k", "secops", discovery.OwnerFromIntegration, []discovery.OwnerView{secops}},
	}
	for _, c := range cases {
		e := entryByName(t, res.Entries, c.name)
		if e.Owner != c.owner || e.OwnerSource != c.source {
			t.Errorf("%s owner = %q (%s), want %q (%s)", c.name, e.Owner, e.OwnerSource, c.owner, c.source)
		}
		if c.owners != nil && !reflect.DeepEqual(e.Owners, c.owners) {
			t.Errorf("%s owners = %v, want %v", c.name, e.Owners, c.owners)
		}
	}

	// Without owner_metadata_key every entry gets integration_owner, if set.
	res, err = walkFake(t, context.Background(), fv, discovery.Options{IntegrationOwner: "secops"})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range res.Entries {
		if e.Owner != "secops" || e.OwnerSource != discovery.OwnerFromIntegration {
			t.Errorf("%s owner = %q (%s), want secops", e.Name, e.Owner, e.OwnerSource)
		}
	}
}

func TestCurrentVersionDeleted(t *testing.T) {
	now := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	meta := func(cur interface{}, deletion string, destroyed bool) map[string]interface{} {
		return map[string]interface{}{
			"current_version": cur,
			"versions": map[string]interface{}{
				"3": map[string]interface{}{"deletion_time": deletion, "destroyed": destroyed},
			},
		}
	}
	cases := []struct {
		name string
		meta map[string]interface{}
		want bool
	}{
		{"live", meta(json.Number("3"), "", false), false},
		{"deleted", meta(json.Number("3"), "2024-05-01T10:00:00.5Z", false), true},
		{"destroyed", meta(float64(3), "", true), true},
		{"deletion scheduled", meta(3, "2024-07-01T00:00:00Z", false), false},
		{"current version missing", meta(json.Number("4"), "2024-05-01T10:00:00Z", false), false},
		{"no metadata", map[string]interface{}{}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := discovery.CurrentVersionDeleted(c.meta, now); got != c.want {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}
}
