package owners

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/apono-io/vault-plugin-apono/backend/config"
	"github.com/apono-io/vault-plugin-apono/backend/resource"
	"github.com/apono-io/vault-plugin-apono/backend/vaultapi"
	"github.com/apono-io/vault-plugin-apono/backend/vaultapi/vaultfake"
	"github.com/apono-io/vault-plugin-apono/internal/keylock"
	"github.com/hashicorp/vault/sdk/logical"
)

// tableEnv is a resolver with an owners table on in-memory storage, and a fake Vault with
// KV v2 (kv), database, PKI and Consul mounts: kv/app/db is tagged group:kv-owners,
// kv/app/plain has no tag.
type tableEnv struct {
	r      *Resolver
	s      logical.Storage
	vault  *vaultfake.Vault
	client vaultapi.Client
	cfg    *config.Config
}

func newTableEnv(t *testing.T) *tableEnv {
	t.Helper()
	fv := vaultfake.New()
	fv.MountTable["database/"] = vaultapi.MountInfo{Type: "database"}
	fv.MountTable["pki/"] = vaultapi.MountInfo{Type: "pki"}
	fv.MountTable["consul/"] = vaultapi.MountInfo{Type: "consul"}
	fv.Tree = vaultfake.NewTree().
		Put("kv", "app/db", vaultfake.Secret{Meta: map[string]string{"owner": "group:kv-owners"}}).
		Put("kv", "app/plain", vaultfake.Secret{})
	s := &logical.InmemStorage{}
	return &tableEnv{
		r:      &Resolver{Locks: &keylock.Set{}, Table: &Table{}, Storage: s},
		s:      s,
		vault:  fv,
		client: fv.Client(),
		cfg:    &config.Config{OwnerMetadataKey: "owner", IntegrationOwner: "group:security"},
	}
}

func (e *tableEnv) put(t *testing.T, pattern string, approvers ...string) {
	t.Helper()
	put(t, e.r.Table, e.s, pattern, approvers...)
}

func (e *tableEnv) refs(t *testing.T, names ...string) []resource.Ref {
	t.Helper()
	var out []resource.Ref
	for _, n := range names {
		ref, err := resource.Resolve(n, e.vault.MountTable, resource.Options{OwnMount: "apono/", PathPrefixes: []string{"consul/creds/"}})
		if err != nil {
			t.Fatalf("resolve %s: %v", n, err)
		}
		out = append(out, ref)
	}
	return out
}

// ownerSets is every owner set as "source principals: resources", sorted.
func (e *tableEnv) ownerSets(t *testing.T, names ...string) []string {
	t.Helper()
	sets, _, msg, err := e.r.ResourceOwnerSets(context.Background(), e.cfg, e.refs(t, names...), e.client, false)
	if err != nil || msg != "" {
		t.Fatalf("owner sets of %v: %q %v", names, msg, err)
	}
	var out []string
	for _, s := range sets {
		if !s.Owner {
			t.Fatalf("an owner set must be marked: %+v", s)
		}
		out = append(out, s.Source+" "+CanonicalPrincipals(s.Principals)+": "+strings.Join(s.Resources, ","))
	}
	sort.Strings(out)
	return out
}

func wantSets(t *testing.T, got []string, want ...string) {
	t.Helper()
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("owner sets\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(want, "\n     "))
	}
}

func TestTableOwnsResourcesWithoutATag(t *testing.T) {
	e := newTableEnv(t)
	e.put(t, "database/creds/readonly", "group:dba")
	e.put(t, "database/*", "group:platform")
	e.put(t, "kv/app/*", "group:app-team")
	e.put(t, "transit/payments", "entity:pat")

	t.Run("a database role owned via the table", func(t *testing.T) {
		wantSets(t, e.ownerSets(t, "database/creds/readonly"), access.SetSourceTable+" group:dba: database/creds/readonly")
		wantSets(t, e.ownerSets(t, "database/static-creds/rotate"), access.SetSourceTable+" group:platform: database/static-creds/rotate")
	})
	t.Run("no entry: the integration owner", func(t *testing.T) {
		wantSets(t, e.ownerSets(t, "pki/issue/web"), access.SetSourceIntegration+" group:security: pki/issue/web")
	})
	t.Run("a Transit key", func(t *testing.T) {
		wantSets(t, e.ownerSets(t, "transit/payments"), access.SetSourceTable+" entity:pat: transit/payments")
	})
	t.Run("a KV secret with a tag ignores the table", func(t *testing.T) {
		wantSets(t, e.ownerSets(t, "kv/app/db"), access.SetSourceMetadata+" group:kv-owners: kv/app/db")
	})
	t.Run("a KV secret without a tag uses it", func(t *testing.T) {
		wantSets(t, e.ownerSets(t, "kv/app/plain"), access.SetSourceTable+" group:app-team: kv/app/plain")
	})
	t.Run("a folder: each secret by its tag, else the table", func(t *testing.T) {
		wantSets(t, e.ownerSets(t, "kv/app/*"),
			access.SetSourceMetadata+" group:kv-owners: kv/app/db",
			access.SetSourceTable+" group:app-team: kv/app/plain")
	})
	t.Run("an empty folder: the table's entry for it", func(t *testing.T) {
		wantSets(t, e.ownerSets(t, "kv/app/none/*"), access.SetSourceTable+" group:app-team: kv/app/none/*")
	})
	t.Run("one set per owners across resources", func(t *testing.T) {
		wantSets(t, e.ownerSets(t, "database/creds/readonly", "database/creds/other", "database/static-creds/x", "pki/issue/web"),
			access.SetSourceTable+" group:dba: database/creds/readonly",
			access.SetSourceTable+" group:platform: database/creds/other,database/static-creds/x",
			access.SetSourceIntegration+" group:security: pki/issue/web")
	})
	t.Run("a metadata read denied stays with the integration owner", func(t *testing.T) {
		e.vault.Tree.Denied = []string{"kv/metadata/app/plain"}
		defer func() { e.vault.Tree.Denied = nil }()
		wantSets(t, e.ownerSets(t, "kv/app/plain"), access.SetSourceIntegration+" group:security: kv/app/plain")
	})
}

func TestTableWithoutOwnerMetadataKey(t *testing.T) {
	e := newTableEnv(t)
	e.cfg.OwnerMetadataKey = ""
	// An empty table: a folder is the integration owner's, read from nowhere.
	wantSets(t, e.ownerSets(t, "kv/app/*"), access.SetSourceIntegration+" group:security: kv/app/*")
	if _, reads, _ := e.vault.Tree.Counts(); reads != 0 {
		t.Fatalf("%d metadata reads without owner_metadata_key", reads)
	}
	// With a table, a folder's secrets are listed (never read) and looked up: no tag counts.
	e.put(t, "kv/app/db", "group:db-team")
	wantSets(t, e.ownerSets(t, "kv/app/*"),
		access.SetSourceTable+" group:db-team: kv/app/db",
		access.SetSourceIntegration+" group:security: kv/app/plain")
	wantSets(t, e.ownerSets(t, "kv/app/db"), access.SetSourceTable+" group:db-team: kv/app/db")
	if _, reads, _ := e.vault.Tree.Counts(); reads != 0 {
		t.Fatalf("%d metadata reads without owner_metadata_key", reads)
	}
}

// A path folder reaches whatever entries inside it own: their owners approve too.
func TestTablePathFolderIncludesEntriesInside(t *testing.T) {
	e := newTableEnv(t)
	e.put(t, "consul/*", "group:consul-admins")
	e.put(t, "consul/creds/app", "group:app-team")
	wantSets(t, e.ownerSets(t, "consul/creds/*"),
		access.SetSourceTable+" group:consul-admins: consul/creds/*",
		access.SetSourceTable+" group:app-team: consul/creds/app")
	wantSets(t, e.ownerSets(t, "consul/creds/other"), access.SetSourceTable+" group:consul-admins: consul/creds/other")
}

// CheckUnchanged re-reads the table at pickup: a change since the approval is a 403.
func TestTableChangeBetweenApprovalAndPickupIsRefused(t *testing.T) {
	e := newTableEnv(t)
	ctx := context.Background()
	e.put(t, "database/creds/readonly", "group:dba")
	refs := e.refs(t, "database/creds/readonly")
	sets, _, msg, err := e.r.ResourceOwnerSets(ctx, e.cfg, refs, e.client, false)
	if err != nil || msg != "" || len(sets) != 1 {
		t.Fatalf("sets: %v %q %v", sets, msg, err)
	}
	rec := &access.Request{ID: "req-1", Sets: sets, Approvals: []access.ApprovalRecord{{Sets: []int{0}}}}
	if err := e.r.CheckUnchanged(ctx, e.cfg, rec, refs, e.client); err != nil {
		t.Fatalf("unchanged owners: %v", err)
	}
	// The description changes nothing.
	if msg, err := e.r.Table.Put(ctx, e.s, &TableEntry{Pattern: "database/creds/readonly", Approvers: []string{"group:dba"}, Description: "the DBAs"}); err != nil || msg != "" {
		t.Fatal(msg, err)
	}
	if err := e.r.CheckUnchanged(ctx, e.cfg, rec, refs, e.client); err != nil {
		t.Fatalf("a new description: %v", err)
	}

	forbidden := func(t *testing.T, want string) {
		t.Helper()
		err := e.r.CheckUnchanged(ctx, e.cfg, rec, refs, e.client)
		var coded logical.HTTPCodedError
		if err == nil || !errors.As(err, &coded) || coded.Code() != http.StatusForbidden || !strings.Contains(err.Error(), want) {
			t.Fatalf("want a 403 naming %q, got %v", want, err)
		}
	}
	t.Run("other approvers", func(t *testing.T) {
		e.put(t, "database/creds/readonly", "group:dba2")
		forbidden(t, "group:dba2")
	})
	t.Run("entry removed: the integration owner", func(t *testing.T) {
		if err := e.r.Table.Delete(ctx, e.s, "database/creds/readonly"); err != nil {
			t.Fatal(err)
		}
		forbidden(t, "group:security")
	})
	t.Run("a more specific entry", func(t *testing.T) {
		e.put(t, "database/creds/readonly", "group:dba")
		if err := e.r.CheckUnchanged(ctx, e.cfg, rec, refs, e.client); err != nil {
			t.Fatalf("back as approved: %v", err)
		}
		e.put(t, "database/*", "group:platform") // less specific: changes nothing
		if err := e.r.CheckUnchanged(ctx, e.cfg, rec, refs, e.client); err != nil {
			t.Fatalf("a prefix entry under the exact one: %v", err)
		}
	})
	t.Run("a resource owned by the integration owner gets an entry", func(t *testing.T) {
		pki := e.refs(t, "pki/issue/web")
		sets, _, _, _ := e.r.ResourceOwnerSets(ctx, e.cfg, pki, e.client, false)
		rec := &access.Request{ID: "req-2", Sets: sets, Approvals: []access.ApprovalRecord{{Sets: []int{0}}}}
		e.put(t, "pki/*", "group:pki-team")
		err := e.r.CheckUnchanged(ctx, e.cfg, rec, pki, e.client)
		if err == nil || !strings.Contains(err.Error(), "group:pki-team") {
			t.Fatalf("want a 403 naming the new owners, got %v", err)
		}
	})
}
