package owners

import (
	"testing"
	"time"
)

// The cache holds at most maxFolderOwnersCached claims: the oldest scans go first.
func TestFolderOwnersCacheIsBounded(t *testing.T) {
	var c folderOwnersCache
	scan := func(n int) *folderScan {
		return &folderScan{claims: make([]folderClaim, n), at: time.Now()}
	}
	c.put("a", scan(maxFolderOwnersCached/2))
	c.put("b", scan(maxFolderOwnersCached/2))
	c.put("c", scan(10))
	if c.get("a", time.Now()) != nil || c.get("b", time.Now()) == nil || c.get("c", time.Now()) == nil || c.claims > maxFolderOwnersCached {
		t.Fatalf("after a third scan past the bound: %d claims, keys %v", c.claims, len(c.m))
	}
	c.put("huge", scan(maxFolderOwnersCached+1))
	if c.get("huge", time.Now()) != nil {
		t.Fatal("a scan larger than the whole cache was kept")
	}
	if c.get("c", time.Now().Add(FolderOwnersCacheTTL)) != nil {
		t.Fatal("a scan past its TTL was returned")
	}
}
