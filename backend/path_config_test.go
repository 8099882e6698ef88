package backend

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/apono-io/vault-plugin-apono/backend/config"
	"github.com/hashicorp/vault/sdk/logical"
)

func TestConfigReadNeverReturnsSecrets(t *testing.T) {
	e := newTestEnv(t)
	e.configure(t)
	resp := e.mustOK(t, logical.ReadOperation, "config", nil)
	if _, ok := resp.Data["secret_id"]; ok {
		t.Fatal("config read returned secret_id")
	}
	if _, ok := resp.Data["token"]; ok {
		t.Fatal("config read returned token")
	}
	for k, v := range resp.Data {
		if s, ok := v.(string); ok && strings.Contains(s, "s3cret") {
			t.Fatalf("config read field %s leaks the secret", k)
		}
	}
	if resp.Data["secret_id_set"] != true || resp.Data["token_set"] != false {
		t.Fatalf("want secret_id_set=true token_set=false, got %v %v", resp.Data["secret_id_set"], resp.Data["token_set"])
	}
	if resp.Data["approle_mount"] != "approle" || resp.Data["userpass_mount"] != "userpass" {
		t.Fatalf("defaults not applied: %v", resp.Data)
	}
}

func TestConfigReadWhenUnset(t *testing.T) {
	e := newTestEnv(t)
	resp := e.mustOK(t, logical.ReadOperation, "config", nil)
	if resp != nil {
		t.Fatalf("want no data before config is written, got %#v", resp)
	}
}

func TestConfigPartialUpdateKeepsOtherFields(t *testing.T) {
	e := newTestEnv(t)
	e.configure(t)
	e.mustOK(t, logical.UpdateOperation, "config", map[string]interface{}{"access_details": "log in with vault login -method=userpass"})
	cfg, err := config.Get(e.ctx, e.storage)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SecretID != "s3cret-id-value" || cfg.RoleID != "role-id-1" || cfg.VaultAddr != "http://127.0.0.1:8200" {
		t.Fatalf("partial update lost fields: %+v", cfg)
	}
	// Switching to a token drops the AppRole credentials.
	e.mustOK(t, logical.UpdateOperation, "config", map[string]interface{}{"token": "hvs.tok"})
	cfg, _ = config.Get(e.ctx, e.storage)
	if cfg.Token != "hvs.tok" || cfg.RoleID != "" || cfg.SecretID != "" {
		t.Fatalf("token did not replace approle: %+v", cfg)
	}
}

func TestConfigBadInputIsRejectedAndChangesNothing(t *testing.T) {
	e := newTestEnv(t)
	e.configure(t)
	before, _ := config.Get(e.ctx, e.storage)

	cases := []struct {
		name string
		data map[string]interface{}
		want string
	}{
		{"both credential kinds", map[string]interface{}{"token": "t", "secret_id": "x"}, "not both"},
		{"bad address scheme", map[string]interface{}{"vault_addr": "ftp://vault"}, "vault_addr"},
		{"address without host", map[string]interface{}{"vault_addr": "http://"}, "vault_addr"},
		{"address with userinfo", map[string]interface{}{"vault_addr": "http://u:p@vault"}, "vault_addr"},
		{"access_details too long", map[string]interface{}{"access_details": strings.Repeat("x", 401)}, "access_details"},
		{"userpass mount traversal", map[string]interface{}{"userpass_mount": "../sys"}, "userpass_mount"},
		{"approle mount slash", map[string]interface{}{"approle_mount": "approle/"}, "approle_mount"},
		{"ca_cert not PEM", map[string]interface{}{"ca_cert": "not a cert"}, "ca_cert"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e.mustBadRequest(t, logical.UpdateOperation, "config", tc.data, tc.want)
			after, _ := config.Get(e.ctx, e.storage)
			if !reflect.DeepEqual(after, before) {
				t.Fatalf("config changed: %+v -> %+v", before, after)
			}
		})
	}
}

func TestConfigFirstWriteNeedsAddressAndCredentials(t *testing.T) {
	e := newTestEnv(t)
	e.mustBadRequest(t, logical.UpdateOperation, "config", map[string]interface{}{"role_id": "r", "secret_id": "s"}, "vault_addr is required")
	e.mustBadRequest(t, logical.UpdateOperation, "config", map[string]interface{}{"vault_addr": "http://127.0.0.1:8200", "role_id": "r"}, "credentials are required")
	if cfg, _ := config.Get(e.ctx, e.storage); cfg != nil {
		t.Fatalf("a rejected write stored config: %+v", cfg)
	}
}

func TestConfigBadLoginKeepsOldConfig(t *testing.T) {
	e := newTestEnv(t)
	e.configure(t)
	e.vault.LoginErr = errors.New("approle login failed: invalid role or secret ID")
	e.mustBadRequest(t, logical.UpdateOperation, "config", map[string]interface{}{"secret_id": "wrong-secret"}, "cannot log in")
	resp, _ := e.do(t, logical.UpdateOperation, "config", map[string]interface{}{"secret_id": "wrong-secret"})
	if strings.Contains(resp.Error().Error(), "wrong-secret") {
		t.Fatal("login error echoes the secret_id")
	}
	cfg, _ := config.Get(e.ctx, e.storage)
	if cfg.SecretID != "s3cret-id-value" {
		t.Fatal("a failed login replaced the stored secret_id")
	}
}

func TestConfigDeleteRefusedWhileGrantsLive(t *testing.T) {
	e := newTestEnv(t)
	e.configure(t)
	e.mustOK(t, logical.CreateOperation, "roles/app", map[string]interface{}{"resources": "kv/app/db"})
	e.mustOK(t, logical.UpdateOperation, "grants/app", nil)
	e.mustBadRequest(t, logical.DeleteOperation, "config", nil, "still active")
	if cfg, _ := config.Get(e.ctx, e.storage); cfg == nil {
		t.Fatal("config deleted under a live grant")
	}
}

func TestConfigDelete(t *testing.T) {
	e := newTestEnv(t)
	e.configure(t)
	e.mustOK(t, logical.DeleteOperation, "config", nil)
	if cfg, _ := config.Get(e.ctx, e.storage); cfg != nil {
		t.Fatal("config not deleted")
	}
	if e.b.client != nil {
		t.Fatal("cached client survived config delete")
	}
}
