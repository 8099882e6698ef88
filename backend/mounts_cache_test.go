package backend

import (
	"testing"

	"github.com/apono-io/vault-plugin-apono/backend/vaultapi/vaultfake"
	"github.com/hashicorp/vault/sdk/logical"
)

// Grants reuse one read of sys/mounts for vaultapi.MountsTTL; a new client (config write)
// reads it again, and a failed read is not remembered.
func TestGrantMountsAreReadOncePerTTL(t *testing.T) {
	e := newTestEnv(t)
	e.grantEnv(t)

	before := e.vault.CallCount("Mounts")
	for i := 0; i < 3; i++ {
		e.mustOK(t, logical.UpdateOperation, "grants/app", nil)
	}
	if got := e.vault.CallCount("Mounts") - before; got != 1 {
		t.Fatalf("3 grants read sys/mounts %d times, want 1", got)
	}

	e.configure(t)
	before = e.vault.CallCount("Mounts")
	e.mustOK(t, logical.UpdateOperation, "grants/app", nil)
	if got := e.vault.CallCount("Mounts") - before; got != 1 {
		t.Fatalf("the first grant after a config write read sys/mounts %d times, want 1", got)
	}

	// With nothing cached (a new client; the TTL's end is tested in vaultapi), a grant
	// reads again and fails if it cannot.
	e.configure(t)
	e.vault.Fail("Mounts", vaultfake.ErrDown)
	if _, err := e.do(t, logical.UpdateOperation, "grants/app", nil); err == nil {
		t.Fatal("grant succeeded with an expired cache and sys/mounts unreadable")
	}
	e.vault.Fail("Mounts", nil)
	before = e.vault.CallCount("Mounts")
	e.mustOK(t, logical.UpdateOperation, "grants/app", nil)
	if got := e.vault.CallCount("Mounts") - before; got != 1 {
		t.Fatalf("after a failed read, the next grant read sys/mounts %d times, want 1", got)
	}
}
