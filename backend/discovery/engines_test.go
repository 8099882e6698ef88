package discovery_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/apono-io/vault-plugin-apono/backend/config"
	"github.com/apono-io/vault-plugin-apono/backend/discovery"
	"github.com/apono-io/vault-plugin-apono/backend/owners"
	"github.com/apono-io/vault-plugin-apono/backend/resource"
	"github.com/apono-io/vault-plugin-apono/backend/vaultapi"
	"github.com/apono-io/vault-plugin-apono/backend/vaultapi/vaultfake"
	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/sdk/logical"
)

// allTypes is what apono/sync walks by default.
func allTypes() map[string]bool {
	out := map[string]bool{}
	for _, t := range config.DiscoverableTypes {
		out[t] = true
	}
	return out
}

// engineTypes are the engines' types alone (the fake's kv and secret mounts would list
// as kv/* and secret/*).
func engineTypes() map[string]bool {
	return map[string]bool{resource.TypeDatabase: true, resource.TypePKI: true, resource.TypeSSH: true}
}

// engineFake is a fake Vault with a database, a PKI and an SSH mount and their roles.
func engineFake() *vaultfake.Vault {
	fv := vaultfake.New()
	fv.MountTable["database/"] = vaultapi.MountInfo{Type: "database"}
	fv.MountTable["pki/"] = vaultapi.MountInfo{Type: "pki"}
	fv.MountTable["ssh/"] = vaultapi.MountInfo{Type: "ssh"}
	fv.Tree = vaultfake.NewTree().
		Role("database", "readonly", vaultfake.Role{}).
		Role("database", "rotate", vaultfake.Role{Static: true}).
		Role("pki", "web", vaultfake.Role{Data: map[string]interface{}{"max_ttl": 3600}}).
		Role("ssh", "ops", vaultfake.Role{KeyType: "ca"}).
		Role("ssh", "otp-hosts", vaultfake.Role{KeyType: "otp"})
	return fv
}

func TestWalkEngineRoles(t *testing.T) {
	fv := engineFake()
	res, err := walkFake(t, context.Background(), fv, discovery.Options{Types: engineTypes()})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"database/creds/readonly", "database/static-creds/rotate",
		"pki/issue/web", "pki/sign/web",
		"ssh/creds/otp-hosts", "ssh/sign/ops",
	}
	if got := names(res.Entries); !reflect.DeepEqual(got, want) {
		t.Fatalf("entries\n got %v\nwant %v", got, want)
	}
	mounts := fv.MountTable
	for _, e := range res.Entries {
		if e.Kind != discovery.KindRole {
			t.Errorf("%s: kind %q", e.Name, e.Kind)
		}
		// Every name is one a role accepts, as the type, mount, endpoint and role it says.
		ref, err := resource.Resolve(e.Name, mounts, resource.Options{OwnMount: "apono/"})
		if err != nil {
			t.Errorf("%s: %v", e.Name, err)
			continue
		}
		if ref.Type != e.Type || ref.Mount != e.Mount || ref.Path != e.Path || ref.Endpoint != e.Endpoint || ref.Folder {
			t.Errorf("%s resolves to %+v, entry says %+v", e.Name, ref, e)
		}
		if got, want := e.Permissions(), resource.PermissionsFor(e.Type); len(got) == 0 || !reflect.DeepEqual(got, want) {
			t.Errorf("%s permissions %v, want %v", e.Name, got, want)
		}
		d := e.ResponseData()
		if d["endpoint"] != e.Endpoint || d["kind"] != discovery.KindRole {
			t.Errorf("%s response data %v", e.Name, d)
		}
	}
	if ops := entryByName(t, res.Entries, "ssh/sign/ops"); ops.KeyType != "ca" || ops.ResponseData()["key_type"] != "ca" {
		t.Errorf("ssh/sign/ops = %+v", ops)
	}
	// One LIST per role list (database: roles and static-roles; pki, ssh: roles) and no
	// read: LIST ssh/roles gives the key types.
	if lists, reads, _ := fv.Tree.Counts(); lists != 4 || reads != 0 || res.ListCalls != 4 || res.ReadCalls != 0 {
		t.Errorf("calls: fake saw %d lists %d reads, walker counted %d %d; want 4 and 0", lists, reads, res.ListCalls, res.ReadCalls)
	}
	if res.SkippedCount != 0 || res.UngrantableCount != 0 || len(res.Warnings) != 0 {
		t.Errorf("skipped %v ungrantable %v warnings %v", res.Skipped, res.Ungrantable, res.Warnings)
	}

	// resource_types chooses: without them the engines are not listed at all.
	fv.Tree.ResetCounts()
	res, err = walkFake(t, context.Background(), fv, discovery.Options{Types: map[string]bool{resource.TypePKI: true}})
	if err != nil {
		t.Fatal(err)
	}
	if got := names(res.Entries); !reflect.DeepEqual(got, []string{"pki/issue/web", "pki/sign/web"}) {
		t.Fatalf("pki only: %v", got)
	}
	if lists, _, _ := fv.Tree.Counts(); lists != 1 {
		t.Errorf("%d lists for pki alone", lists)
	}
}

// A role list that is denied or fails is skipped with its reason; the sync goes on.
func TestWalkEngineFailuresAreSkipped(t *testing.T) {
	fv := engineFake()
	fv.Tree.Put("kv", "app/db", vaultfake.Secret{})
	fv.Tree.Denied = []string{"database/static-roles"}
	fv.Tree.Failing = map[string]error{"pki/roles": &api.ResponseError{HTTPMethod: "LIST", URL: "https://vault/v1/pki/roles", StatusCode: 500, Errors: []string{"internal error"}}}
	res, err := walkFake(t, context.Background(), fv, discovery.Options{Types: allTypes()})
	if err != nil {
		t.Fatalf("an engine's failure failed the sync: %v", err)
	}
	want := []string{"database/creds/readonly", "kv/*", "kv/app/*", "kv/app/db", "secret/*", "ssh/creds/otp-hosts", "ssh/sign/ops"}
	if got := names(res.Entries); !reflect.DeepEqual(got, want) {
		t.Fatalf("entries\n got %v\nwant %v", got, want)
	}
	if res.SkippedCount != 2 || len(res.Skipped) != 2 {
		t.Fatalf("skipped: %+v", res.Skipped)
	}
	db, pki := res.Skipped[0], res.Skipped[1]
	if db.Mount != "database" || db.Path != "static-roles" || !strings.Contains(db.Reason, "403") || !strings.Contains(db.Reason, "LIST database/static-roles") {
		t.Errorf("database skip: %+v", db)
	}
	if pki.Mount != "pki" || pki.Path != "roles" || !strings.Contains(pki.Reason, "500") || !strings.Contains(pki.Reason, "internal error") {
		t.Errorf("pki skip: %+v", pki)
	}

	// Cancellation still stops the walk: it is not an engine's failure.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := walkFake(t, ctx, fv, discovery.Options{Types: allTypes()}); !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled walk: %v", err)
	}
}

// Names no role could hold are reported as ungrantable, never listed.
func TestWalkEngineUngrantableRoles(t *testing.T) {
	fv := engineFake()
	fv.Tree.Role("database", "bad name", vaultfake.Role{}).Role("database", "team/", vaultfake.Role{Static: true})
	res, err := walkFake(t, context.Background(), fv, discovery.Options{Types: map[string]bool{resource.TypeDatabase: true}})
	if err != nil {
		t.Fatal(err)
	}
	if got := names(res.Entries); !reflect.DeepEqual(got, []string{"database/creds/readonly", "database/static-creds/rotate"}) {
		t.Fatalf("entries: %v", got)
	}
	if res.UngrantableCount != 2 {
		t.Fatalf("ungrantable: %+v", res.Ungrantable)
	}
	got := res.Ungrantable[0].Name + "|" + res.Ungrantable[1].Name
	if got != "database/creds/bad name|database/static-creds/team/" {
		t.Fatalf("ungrantable: %+v", res.Ungrantable)
	}
}

// Without key_info in LIST ssh/roles the walker reads each role; denied, one probe, a
// warning, and sign/<role> with key_type unknown.
func TestWalkSSHRolesWithoutKeyInfo(t *testing.T) {
	fv := engineFake()
	fv.Tree.NoSSHKeyInfo = true
	ssh := map[string]bool{resource.TypeSSH: true}
	res, err := walkFake(t, context.Background(), fv, discovery.Options{Types: ssh})
	if err != nil {
		t.Fatal(err)
	}
	if got := names(res.Entries); !reflect.DeepEqual(got, []string{"ssh/creds/otp-hosts", "ssh/sign/ops"}) {
		t.Fatalf("entries: %v", got)
	}
	if _, reads, _ := fv.Tree.Counts(); reads != 2 || res.ReadCalls != 2 {
		t.Errorf("%d role reads, want 2", reads)
	}

	fv.Tree.ResetCounts()
	fv.Tree.Denied = []string{"ssh/roles/"}
	res, err = walkFake(t, context.Background(), fv, discovery.Options{Types: ssh, Concurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	if got := names(res.Entries); !reflect.DeepEqual(got, []string{"ssh/sign/ops", "ssh/sign/otp-hosts"}) {
		t.Fatalf("entries with the reads denied: %v", got)
	}
	for _, e := range res.Entries {
		if e.KeyType != discovery.KeyTypeUnknown {
			t.Errorf("%s key type %q", e.Name, e.KeyType)
		}
	}
	if _, reads, _ := fv.Tree.Counts(); reads != 1 {
		t.Errorf("%d role reads, want 1 probe", reads)
	}
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "ssh/roles/*") {
		t.Errorf("warnings = %v", res.Warnings)
	}
}

// Each entry's owners: a KV secret's tag, else the owners table, else integration_owner.
func TestWalkOwnersFromTheTable(t *testing.T) {
	ctx := context.Background()
	fv := engineFake()
	fv.Tree.
		Put("kv", "app/db", vaultfake.Secret{Meta: map[string]string{"owner": "group:kv-owners"}}).
		Put("kv", "app/plain", vaultfake.Secret{}).
		Key("transit", "payments", "aes256-gcm96")
	fv.Tree.KeyInfo = true
	s := &logical.InmemStorage{}
	tb := &owners.Table{}
	for pattern, approvers := range map[string][]string{
		"database/creds/readonly": {"group:dba"},
		"database/*":              {"group:platform"},
		"kv/app/*":                {"group:app-team"},
		"transit/payments":        {"entity:pat"},
	} {
		if msg, err := tb.Put(ctx, s, &owners.TableEntry{Pattern: pattern, Approvers: approvers}); err != nil || msg != "" {
			t.Fatal(msg, err)
		}
	}
	ix, err := tb.Index(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	res, err := walkFake(t, ctx, fv, discovery.Options{Types: allTypes(), OwnerKey: "owner", IntegrationOwner: "group:security", OwnersTable: ix})
	if err != nil {
		t.Fatal(err)
	}
	table := func(a string) []discovery.OwnerView {
		return []discovery.OwnerView{{Approvers: []string{a}, Source: discovery.OwnerFromTable}}
	}
	cases := []struct {
		name, owner, source string
		owners              []discovery.OwnerView
	}{
		{"database/creds/readonly", "group:dba", discovery.OwnerFromTable, table("group:dba")},
		{"database/static-creds/rotate", "group:platform", discovery.OwnerFromTable, table("group:platform")},
		{"pki/issue/web", "group:security", discovery.OwnerFromIntegration, []discovery.OwnerView{{Approvers: []string{"group:security"}, Source: discovery.OwnerFromIntegration}}},
		{"transit/payments", "entity:pat", discovery.OwnerFromTable, table("entity:pat")},
		{"kv/app/db", "group:kv-owners", discovery.OwnerFromMetadata, nil},
		{"kv/app/plain", "group:app-team", discovery.OwnerFromTable, table("group:app-team")},
		{"kv/app/*", "", discovery.OwnerFromSeveral, []discovery.OwnerView{
			{Approvers: []string{"group:kv-owners"}, Source: discovery.OwnerFromMetadata},
			{Approvers: []string{"group:app-team"}, Source: discovery.OwnerFromTable},
		}},
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
}
