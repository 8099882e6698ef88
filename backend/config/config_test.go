package config

import (
	"strings"
	"testing"
	"time"
)

// A zero field means the default, so a config stored before a field existed gets it; a
// negative sync interval or hash cost turns the feature off.
func TestZeroFieldsMeanTheDefaults(t *testing.T) {
	var c Config
	if c.KeepRequestsFor() != DefaultRequestRetention || c.KeepHistoryFor() != DefaultHistoryRetention ||
		c.SyncEvery() != DefaultSyncInterval || c.SyncWorkers() != DefaultSyncConcurrency ||
		c.ResourceLimit() != DefaultMaxResources || c.ResourcesPerRequestLimit() != DefaultMaxResourcesPerRequest ||
		c.OpenRequestsLimit() != DefaultMaxOpenRequests || c.FolderSecretsLimit() != DefaultMaxFolderSecrets ||
		c.HashCost() != DefaultPasswordHashCost || strings.Join(c.TypesToDiscover(), ",") != "kv,transit,database,pki,ssh" {
		t.Fatalf("defaults of a zero config: %+v", c)
	}
	off := Config{SyncInterval: -1, PasswordHashCost: -1, HistoryRetention: time.Hour, ResourceTypes: "transit"}
	if off.SyncEvery() != 0 || off.HashCost() != 0 || off.KeepHistoryFor() != time.Hour || strings.Join(off.TypesToDiscover(), ",") != "transit" {
		t.Fatalf("set fields: %+v", off)
	}
}

func TestValidateNamesTheBadField(t *testing.T) {
	good := Config{VaultAddr: "https://vault.example.com:8200", RoleID: "r", SecretID: "s", AppRoleMount: "approle", UserpassMount: "userpass"}
	if msg := Validate(&good); msg != "" {
		t.Fatalf("a good config: %s", msg)
	}
	for name, tc := range map[string]struct {
		edit func(*Config)
		want string
	}{
		"http to another host":   {func(c *Config) { c.VaultAddr = "http://vault.example.com" }, "vault_addr"},
		"no credentials":         {func(c *Config) { c.SecretID = "" }, "credentials are required"},
		"approle mount":          {func(c *Config) { c.AppRoleMount = "../sys" }, "approle_mount"},
		"userpass mount":         {func(c *Config) { c.UserpassMount = "/userpass/" }, "userpass_mount"},
		"access details":         {func(c *Config) { c.AccessDetails = strings.Repeat("x", MaxAccessDetailsLen+1) }, "access_details"},
		"ca cert":                {func(c *Config) { c.CACert = "not a pem" }, "ca_cert"},
		"password policy":        {func(c *Config) { c.PasswordPolicy = "a b" }, "password_policy"},
		"owner key, no fallback": {func(c *Config) { c.OwnerMetadataKey = "owner" }, "integration_owner"},
	} {
		c := good
		tc.edit(&c)
		if msg := Validate(&c); !strings.Contains(msg, tc.want) {
			t.Errorf("%s: want a message naming %q, got %q", name, tc.want, msg)
		}
	}
}

// The client connects where the config says, with the credentials it holds.
func TestVaultSettingsCarryTheConnection(t *testing.T) {
	c := Config{VaultAddr: "https://v:8200", RoleID: "r", SecretID: "s", AppRoleMount: "ar", Token: "", CACert: "pem", TLSServerName: "v", TLSSkipVerify: true}
	s := c.VaultSettings()
	if s.Addr != c.VaultAddr || s.RoleID != "r" || s.SecretID != "s" || s.AppRoleMount != "ar" || s.CACert != "pem" || s.TLSServerName != "v" || !s.TLSSkipVerify {
		t.Fatalf("settings %+v from %+v", s, c)
	}
}
