package backend

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/owners"
	"github.com/apono-io/vault-plugin-apono/backend/vaultapi/vaultfake"
	"github.com/hashicorp/vault/sdk/logical"
)

// Previews (dry_run) of a folder role, which any requester may send as often as they
// like, do not each read every secret's metadata below the folder: a scan is kept
// owners.FolderOwnersCacheTTL and concurrent previews wait for one. A real request still reads
// the owners fresh.
func TestFolderPreviewsShareOneScan(t *testing.T) {
	f := newFlowEnv(t)
	const n = 40
	for i := 0; i < n; i++ {
		f.vault.Tree.Put("kv", fmt.Sprintf("big/s%02d", i), vaultfake.Secret{Meta: map[string]string{"owner": "kv-owners"}})
	}
	f.mustOK(t, logical.UpdateOperation, "config", map[string]interface{}{"max_open_requests": 100})
	f.mustOK(t, logical.CreateOperation, "roles/big", map[string]interface{}{"resources": "kv/big/*", "approval": "required", "approvers": "owner"})
	preview := func() map[string]interface{} {
		return f.mustAs(t, f.alice, logical.UpdateOperation, "requests/big", map[string]interface{}{"dry_run": true}).Data
	}
	_, reads0 := treeCounts(f)
	first := preview()
	_, reads1 := treeCounts(f)
	if reads1-reads0 < n {
		t.Fatalf("the first preview read %d metadata, want the %d secrets' own", reads1-reads0, n)
	}
	for i := 0; i < 20; i++ {
		if got := preview(); strings.Join(got["approvers"].([]string), ",") != strings.Join(first["approvers"].([]string), ",") {
			t.Fatalf("preview %d: approvers %v, first %v", i, got["approvers"], first["approvers"])
		}
	}
	if _, reads2 := treeCounts(f); reads2 != reads1 {
		t.Fatalf("20 more previews read %d metadata, want none", reads2-reads1)
	}

	// Past the TTL, concurrent previews make one scan between them.
	f.b.owners.Now = func() time.Time { return time.Now().Add(owners.FolderOwnersCacheTTL) }
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			preview()
		}()
	}
	wg.Wait()
	_, reads3 := treeCounts(f)
	if d := reads3 - reads1; d < n || d >= 2*n {
		t.Fatalf("8 concurrent previews past the TTL read %d metadata, want one scan (%d to %d)", d, n, 2*n-1)
	}

	// A real request reads fresh: a changed owner shows at once.
	f.vault.Tree.Put("kv", "big/s00", vaultfake.Secret{Meta: map[string]string{"owner": "group:pay-owners"}})
	resp := f.mustAs(t, f.alice, logical.UpdateOperation, "requests/big", nil).Data
	if _, reads4 := treeCounts(f); reads4-reads3 < n {
		t.Fatalf("a request read %d metadata, want every secret's (%d)", reads4-reads3, n)
	}
	if got := strings.Join(resp["approvers"].([]string), ","); !strings.Contains(got, "group:pay-owners") {
		t.Fatalf("a request after an owner changed: approvers %s", got)
	}
}

func treeCounts(f *flowEnv) (lists, reads int) {
	lists, reads, _ = f.vault.Tree.Counts()
	return lists, reads
}
