package e2e

import (
	"net/http"
	"testing"
	"time"

	"github.com/apono-io/vault-plugin-apono/internal/testvault"
)

// Events wait in the plugin's storage while the receiver is down, and the next instance of
// the plugin (here after `vault plugin reload`; the same holds after a restart or a leader
// change) delivers them, signed as before; health counts what waits. On a Vault of its
// own: the reload kills the plugin process that every mount of the plugin shares, which
// would fail other tests' requests in flight with a 500.
func TestEventsSurviveAPluginReload(t *testing.T) {
	t.Parallel()
	e := ownVault(t, testvault.Options{})
	const mount, key = "apono-events", "events-signing-key"
	hook := newEventReceiver(key)
	t.Cleanup(hook.srv.Close)
	hook.setStatus(http.StatusServiceUnavailable)
	e.root(t, "secrets", "enable", "-path="+mount, "-plugin-version="+e.setup.Version, "vault-plugin-apono")
	e.root(t, "write", mount+"/config", "vault_addr="+e.s.URL(), "role_id="+e.setup.RoleID, "secret_id="+e.newSecretID(t),
		"notify_url="+hook.URL(), "notify_secret="+key)
	role := uniqueName(t)
	e.root(t, "kv", "put", "kv/"+role+"/db", "v=1")
	e.root(t, "write", mount+"/roles/"+role, "resources=kv/"+role+"/db", "ttl=5m")

	g := e.grantAs(t, "", mount+"/grants/"+role)
	for deadline := time.Now().Add(30 * time.Second); hook.attemptCount() == 0; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the grant.issued event was never tried")
		}
	}
	pending := func() float64 {
		v, _ := e.jsonOut(t, "", "read", mount+"/health")["data"].(map[string]interface{})["events_pending"].(float64)
		return v
	}
	if n := pending(); n != 1 {
		t.Fatalf("events_pending while the receiver is down: %v, want 1", n)
	}

	_, offset := e.serverLog(t, 0)
	e.reloadMount(t, mount)
	e.waitLogLine(t, offset, 30*time.Second, "successfully reloaded plugin", "path="+mount+"/")
	if n := pending(); n != 1 {
		t.Fatalf("events_pending after the reload: %v, want 1 (read from storage by the new instance)", n)
	}
	tried := hook.attemptCount()
	hook.setStatus(0)
	ev := hook.waitFor(t, 90*time.Second, "grant.issued", func(f map[string]interface{}) bool { return f["grant_id"] == g.GrantID })
	if ev.fields["mount"] != mount+"/" || hook.badCount() != 0 {
		t.Fatalf("event after the reload: %v (bad signatures: %d)", ev.fields, hook.badCount())
	}
	t.Logf("grant.issued delivered after %d refused attempts and a plugin reload", tried)
	for deadline := time.Now().Add(30 * time.Second); pending() != 0; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("events_pending after delivery: %v", pending())
		}
	}

	e.root(t, "lease", "revoke", "-sync", g.LeaseID)
	hook.waitFor(t, 30*time.Second, "grant.revoked", func(f map[string]interface{}) bool { return f["grant_id"] == g.GrantID })
}
