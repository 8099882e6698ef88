package backend

import (
	"strings"
	"testing"

	"github.com/apono-io/vault-plugin-apono/backend/config"
	"github.com/hashicorp/vault/sdk/logical"
)

// Writes of notify_url and targets follow the rules; notify_allowed_hosts opens private
// hosts and, once set, is the whole list; narrowing it under a target is refused.
func TestNotifyDestinationWrites(t *testing.T) {
	e := newTestEnv(t)
	e.configure(t) // vault_addr http://127.0.0.1:8200
	for _, bad := range []struct{ url, want string }{
		{"https://10.0.0.1/x", "private address"},
		{"https://169.254.169.254/latest", "link-local"},
		{"https://[fe80::1]/x", "link-local"},
		{"http://127.0.0.1:8200/", "Vault's own listener"},
	} {
		e.mustBadRequest(t, logical.UpdateOperation, "config", map[string]interface{}{"notify_url": bad.url}, "notify_url: ")
		e.mustBadRequest(t, logical.UpdateOperation, "config", map[string]interface{}{"notify_url": bad.url}, bad.want)
		e.mustBadRequest(t, logical.CreateOperation, "notify/t1", map[string]interface{}{"url": bad.url}, "url: ")
		e.mustBadRequest(t, logical.CreateOperation, "notify/t1", map[string]interface{}{"url": bad.url}, bad.want)
	}
	if targets, _ := e.b.notify.LoadTargets(e.ctx, e.storage); len(targets) != 0 {
		t.Fatalf("refused writes made targets: %v", targets)
	}
	e.mustBadRequest(t, logical.UpdateOperation, "config", map[string]interface{}{"notify_allowed_hosts": "169.254.169.254"}, "never go")
	e.mustBadRequest(t, logical.UpdateOperation, "config", map[string]interface{}{"notify_allowed_hosts": "https://x"}, "notify_allowed_hosts")

	e.mustOK(t, logical.UpdateOperation, "config", map[string]interface{}{"notify_allowed_hosts": "10.0.0.1, hooks.example.com"})
	e.mustOK(t, logical.CreateOperation, "notify/t1", map[string]interface{}{"url": "https://10.0.0.1/x"})
	e.mustOK(t, logical.UpdateOperation, "config", map[string]interface{}{"notify_url": "https://hooks.example.com/x"})
	e.mustBadRequest(t, logical.CreateOperation, "notify/t2", map[string]interface{}{"url": "https://hooks.slack.com/x"}, "not in notify_allowed_hosts")
	resp := e.mustOK(t, logical.ReadOperation, "config", nil)
	if got, _ := resp.Data["notify_allowed_hosts"].([]string); strings.Join(got, ",") != "10.0.0.1,hooks.example.com" {
		t.Fatalf("read notify_allowed_hosts: %v", resp.Data["notify_allowed_hosts"])
	}
	// Narrowing the list under t1 (or notify_url) is refused and changes nothing.
	e.mustBadRequest(t, logical.UpdateOperation, "config", map[string]interface{}{"notify_allowed_hosts": "hooks.example.com"}, "notify/t1 url")
	e.mustBadRequest(t, logical.UpdateOperation, "config", map[string]interface{}{"notify_allowed_hosts": "10.0.0.1"}, "notify_url")
	if cfg, _ := config.Get(e.ctx, e.storage); cfg.NotifyAllowedHosts != "10.0.0.1,hooks.example.com" {
		t.Fatalf("a refused write changed the list: %q", cfg.NotifyAllowedHosts)
	}
	// An unrelated write does not trip over what is stored.
	e.mustOK(t, logical.UpdateOperation, "config", map[string]interface{}{"access_details": "x"})
}
