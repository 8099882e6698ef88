// Package config owns the plugin's settings record (stored at "config"): its fields and
// their JSON names, the defaults and bounds of each, the checks a write must pass, and
// where the Vault client connects. It does no I/O but reading its own storage entry, and
// knows nothing of roles, requests or grants.
package config

import (
	"context"
	"crypto/x509"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/vaultapi"
	"github.com/apono-io/vault-plugin-apono/internal/textsafe"
	"github.com/hashicorp/vault/sdk/logical"
)

const (
	// StoragePath is where the config is stored (seal-wrapped).
	StoragePath          = "config"
	DefaultAppRoleMount  = "approle"
	DefaultUserpassMount = "userpass"
	MaxAccessDetailsLen  = 400
)

// pluginConfig is stored (seal-wrapped) at "config".
type Config struct {
	VaultAddr     string `json:"vault_addr"`
	RoleID        string `json:"role_id,omitempty"`
	SecretID      string `json:"secret_id,omitempty"`
	AppRoleMount  string `json:"approle_mount"`
	Token         string `json:"token,omitempty"`
	CACert        string `json:"ca_cert,omitempty"`
	TLSServerName string `json:"tls_server_name,omitempty"`
	TLSSkipVerify bool   `json:"tls_skip_verify"`
	// Namespace is the namespace (OpenBao, Vault Enterprise) the plugin logs in to and
	// makes every call in: the one its mount is in. "" is the root namespace.
	Namespace      string `json:"namespace,omitempty"`
	UserpassMount  string `json:"userpass_mount"`
	AccessDetails  string `json:"access_details,omitempty"`
	PasswordPolicy string `json:"password_policy,omitempty"`

	// Discovery (apono/sync). Zero values mean "the default", so a config stored before
	// these fields existed gets the defaults; see the accessors in path_sync.go.
	ResourceTypes    string        `json:"resource_types,omitempty"` // sorted, e.g. "kv,transit"; "" = every DiscoverableTypes
	OwnerMetadataKey string        `json:"owner_metadata_key,omitempty"`
	IntegrationOwner string        `json:"integration_owner,omitempty"`
	SyncInterval     time.Duration `json:"sync_interval,omitempty"` // <0 = off (the API's 0)
	SyncConcurrency  int           `json:"sync_concurrency,omitempty"`
	MaxResources     int           `json:"max_resources,omitempty"`
	// GrantablePathPrefixes are the prefixes below which a path resource (any Vault path
	// not on a KV v2, Transit, database, PKI or SSH mount) may be granted; none by default.
	GrantablePathPrefixes []string `json:"grantable_path_prefixes,omitempty"`

	// Access flows: events (package notify) and how long ended requests stay readable.
	NotifyURL    string `json:"notify_url,omitempty"`
	NotifySecret string `json:"notify_secret,omitempty"`
	NotifyCACert string `json:"notify_ca_cert,omitempty"`
	// NotifyAllowedHosts is notify_allowed_hosts, normalised, comma-separated ("": the
	// default rules; notify_dest.go).
	NotifyAllowedHosts string        `json:"notify_allowed_hosts,omitempty"`
	RequestRetention   time.Duration `json:"request_retention,omitempty"` // 0 = default
	// PasswordHashCost is the bcrypt cost of grant passwords sent as password_hash
	// (0: the default, -1: off).
	PasswordHashCost int `json:"password_hash_cost,omitempty"`
	// HistoryRetention is how long ended grants' history stays (0: the default).
	HistoryRetention time.Duration `json:"history_retention,omitempty"`
	// PortalURL is the access portal's address in chat messages (default: vault_addr's
	// <mount>ui).
	PortalURL string `json:"portal_url,omitempty"`

	// Bounds of access flows (limits.go); 0 = the default.
	MaxResourcesPerRequest int `json:"max_resources_per_request,omitempty"`
	MaxOpenRequests        int `json:"max_open_requests,omitempty"`
	MaxFolderSecrets       int `json:"max_folder_secrets,omitempty"`
}

// KeepRequestsFor is how long ended requests stay readable.
func (c *Config) KeepRequestsFor() time.Duration {
	return orDefault(c.RequestRetention, DefaultRequestRetention)
}

// VaultSettings is where and how the plugin reaches Vault and logs in.
func (c *Config) VaultSettings() vaultapi.Settings {
	return vaultapi.Settings{
		Addr: c.VaultAddr, RoleID: c.RoleID, SecretID: c.SecretID, AppRoleMount: c.AppRoleMount,
		Token: c.Token, CACert: c.CACert, TLSServerName: c.TLSServerName, TLSSkipVerify: c.TLSSkipVerify,
		Namespace: c.Namespace,
	}
}

// Get reads the stored config; nil when none is stored yet.
func Get(ctx context.Context, s logical.Storage) (*Config, error) {
	entry, err := s.Get(ctx, StoragePath)
	if err != nil {
		return nil, err
	}
	if entry == nil {
		return nil, nil
	}
	cfg := &Config{}
	if err := entry.DecodeJSON(cfg); err != nil {
		return nil, fmt.Errorf("decoding config: %w", err)
	}
	return cfg, nil
}

// MountPathRe is a mount path or policy name: segments of letters, digits, _ . -
var MountPathRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)*$`)

// NamespaceRe is a namespace path: up to 8 segments of letters, digits, _ and -.
var NamespaceRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}(/[A-Za-z0-9_-]{1,64}){0,7}$`)

// NormalizeNamespace trims what a person may type around a namespace path (spaces, a
// leading or trailing slash).
func NormalizeNamespace(ns string) string {
	return strings.Trim(strings.TrimSpace(ns), "/")
}

// Validate returns a message naming the first bad field, or "".
func Validate(cfg *Config) string {
	if msg := vaultapi.CheckAddr(cfg.VaultAddr); msg != "" {
		return msg
	}
	if cfg.Token == "" && (cfg.RoleID == "" || cfg.SecretID == "") {
		return "credentials are required: role_id and secret_id (AppRole), or token"
	}
	if cfg.Namespace != "" && (!NamespaceRe.MatchString(cfg.Namespace) || cfg.Namespace == "root") {
		return fmt.Sprintf("namespace %q must be a namespace path: up to 8 names of letters, digits, '_' and '-' separated by '/' (\"\" for the root namespace)", textsafe.Truncate(cfg.Namespace))
	}
	for field, v := range map[string]string{"approle_mount": cfg.AppRoleMount, "userpass_mount": cfg.UserpassMount} {
		if !MountPathRe.MatchString(v) || strings.Contains(v, "..") {
			return fmt.Sprintf("%s %q must be a mount path of letters, digits, '_', '-', '.' and '/' (no leading or trailing slash)", field, v)
		}
	}
	if len([]rune(cfg.AccessDetails)) > MaxAccessDetailsLen {
		return fmt.Sprintf("access_details is %d characters; at most %d are allowed", len([]rune(cfg.AccessDetails)), MaxAccessDetailsLen)
	}
	if cfg.CACert != "" && !x509.NewCertPool().AppendCertsFromPEM([]byte(cfg.CACert)) {
		return "ca_cert must hold at least one PEM-encoded certificate"
	}
	if cfg.PasswordPolicy != "" && !MountPathRe.MatchString(cfg.PasswordPolicy) {
		return fmt.Sprintf("password_policy %q is not a valid policy name", cfg.PasswordPolicy)
	}
	if cfg.OwnerMetadataKey != "" && cfg.IntegrationOwner == "" {
		return "integration_owner is required when owner_metadata_key is set: it is the approver for resources without an owner"
	}
	return ""
}
