package backend

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/apono-io/vault-plugin-apono/backend/config"
	"github.com/apono-io/vault-plugin-apono/backend/vaultapi"
	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"
)

// A write that changes where or how the plugin logs in must bring the credentials: the
// stored ones never go to a new destination, and nothing connects (no client is built)
// before the write is refused.
func TestConfigConnectionChangeNeedsCredentialsAgain(t *testing.T) {
	e := newTestEnv(t)
	e.configure(t)
	before, _ := config.Get(e.ctx, e.storage)
	tlsSrv := httptest.NewTLSServer(http.NotFoundHandler())
	tlsSrv.Close()
	caPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsSrv.Certificate().Raw}))
	cases := []struct {
		name string
		data map[string]interface{}
		want string
	}{
		{"vault_addr", map[string]interface{}{"vault_addr": "http://127.0.0.1:9"}, "vault_addr"},
		{"vault_addr with role_id only", map[string]interface{}{"vault_addr": "http://127.0.0.1:9", "role_id": "role-id-1"}, "vault_addr"},
		{"vault_addr with secret_id only", map[string]interface{}{"vault_addr": "http://127.0.0.1:9", "secret_id": "guess"}, "vault_addr"},
		{"approle_mount", map[string]interface{}{"approle_mount": "evil"}, "approle_mount"},
		{"tls_skip_verify", map[string]interface{}{"tls_skip_verify": true}, "tls_skip_verify"},
		{"ca_cert", map[string]interface{}{"ca_cert": caPEM}, "ca_cert"},
		{"tls_server_name", map[string]interface{}{"tls_server_name": "evil.example.com"}, "tls_server_name"},
		{"namespace", map[string]interface{}{"namespace": "team-b"}, "namespace"},
		{"two at once", map[string]interface{}{"vault_addr": "https://evil.example.com", "tls_skip_verify": true}, "vault_addr, tls_skip_verify"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			logins := e.vault.Logins
			e.mustBadRequest(t, logical.UpdateOperation, "config", tc.data, tc.want)
			e.mustBadRequest(t, logical.UpdateOperation, "config", tc.data, "send them again in the same write")
			if e.vault.Logins != logins {
				t.Fatal("a refused write built a client (logged in) with the stored credentials")
			}
			if after, _ := config.Get(e.ctx, e.storage); !reflect.DeepEqual(after, before) {
				t.Fatalf("config changed: %+v -> %+v", before, after)
			}
		})
	}
	// A bad address is refused for what it is, before the credentials rule.
	e.mustBadRequest(t, logical.UpdateOperation, "config", map[string]interface{}{"vault_addr": "http://vault.example.com"}, "not a loopback address")

	// Unchanged values (a trailing slash on vault_addr included) need nothing.
	e.mustOK(t, logical.UpdateOperation, "config", map[string]interface{}{"vault_addr": "http://127.0.0.1:8200/", "approle_mount": "approle", "tls_skip_verify": false})
	// With the credentials, the change goes through.
	e.mustOK(t, logical.UpdateOperation, "config", map[string]interface{}{"vault_addr": "http://localhost:8200", "role_id": "role-id-1", "secret_id": "s3cret-id-value"})
	e.mustOK(t, logical.UpdateOperation, "config", map[string]interface{}{"tls_skip_verify": true, "token": "hvs.tok"})
	cfg, _ := config.Get(e.ctx, e.storage)
	if cfg.VaultAddr != "http://localhost:8200" || !cfg.TLSSkipVerify || cfg.Token != "hvs.tok" {
		t.Fatalf("changes with credentials not saved: %+v", cfg)
	}
}

// A non-loopback http:// vault_addr is refused by the write and by the client itself
// (a config stored by an older version), before anything is sent.
func TestPlainHTTPVaultAddrRefusedBeforeConnecting(t *testing.T) {
	e := newTestEnv(t)
	e.mustBadRequest(t, logical.UpdateOperation, "config", map[string]interface{}{
		"vault_addr": "http://vault.example.com:8200", "role_id": "r", "secret_id": "s",
	}, "not a loopback address")
	if e.vault.Logins != 0 {
		t.Fatal("the refused write built a client")
	}
	_, err := vaultapi.New(context.Background(), (&config.Config{
		VaultAddr: "http://vault.example.com:8200", RoleID: "r", SecretID: "s", AppRoleMount: "approle",
	}).VaultSettings(), hclog.NewNullLogger())
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("newAPIClient with http:// to a non-loopback host: want a refusal, got %v", err)
	}
}

// A namespace is a path of plain names: anything else is a 400 naming the field, and
// changes nothing; surrounding slashes and spaces are trimmed; "" is the root namespace.
func TestConfigNamespaceIsAPathOfNames(t *testing.T) {
	e := newTestEnv(t)
	e.configure(t)
	before, _ := config.Get(e.ctx, e.storage)
	creds := func(ns string) map[string]interface{} {
		return map[string]interface{}{"namespace": ns, "role_id": "role-id-1", "secret_id": "s3cret-id-value"}
	}
	for _, bad := range []string{"team a", "team-a/../root", "team-a//b", "root", "a/b/c/d/e/f/g/h/i", "t\u202eam", "team-a?x=1", strings.Repeat("n", 65)} {
		e.mustBadRequest(t, logical.UpdateOperation, "config", creds(bad), "namespace")
		if after, _ := config.Get(e.ctx, e.storage); !reflect.DeepEqual(after, before) {
			t.Fatalf("namespace %q changed the config: %+v", bad, after)
		}
	}
	e.mustOK(t, logical.UpdateOperation, "config", creds(" /team-a/payments/ "))
	if got := e.mustOK(t, logical.ReadOperation, "config", nil).Data["namespace"]; got != "team-a/payments" {
		t.Fatalf("namespace read back as %q", got)
	}
	e.mustOK(t, logical.UpdateOperation, "config", creds(""))
	if got := e.mustOK(t, logical.ReadOperation, "config", nil).Data["namespace"]; got != "" {
		t.Fatalf("namespace read back as %q after clearing it", got)
	}
}
