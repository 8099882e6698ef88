package backend

import (
	"crypto/x509"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/apono-io/vault-plugin-apono/backend/config"
	"github.com/apono-io/vault-plugin-apono/backend/notify"
	"github.com/apono-io/vault-plugin-apono/backend/resource"
	"github.com/apono-io/vault-plugin-apono/internal/textsafe"
	"github.com/hashicorp/vault/sdk/framework"
)

// The fields of a config write, each group applied to the config and checked; every
// setter returns a 400 naming the field, or "".

// setNotifyConfig applies and checks the notify_* and request_retention fields sent.
func setNotifyConfig(cfg *config.Config, d *framework.FieldData) string {
	_, urlSent := d.GetOk("notify_url")
	_, allowSent := d.GetOk("notify_allowed_hosts")
	_, vaultSent := d.GetOk("vault_addr")
	if v, ok := d.GetOk("notify_url"); ok {
		cfg.NotifyURL = strings.TrimSpace(v.(string))
	}
	if v, ok := d.GetOk("notify_allowed_hosts"); ok {
		norm, _, msg := notify.ParseAllowedHosts(v.([]string))
		if msg != "" {
			return msg
		}
		cfg.NotifyAllowedHosts = strings.Join(norm, ",")
	}
	// notify_url is checked against the rules this write leaves in force (notify/dest.go);
	// a write that changes none of the three leaves it be.
	if cfg.NotifyURL != "" && (urlSent || allowSent || vaultSent) {
		if msg := notify.CheckURL(cfg.NotifyURL, "notify_url", notify.PolicyOf(cfg)); msg != "" {
			return msg
		}
	}
	if v, ok := d.GetOk("notify_secret"); ok {
		cfg.NotifySecret = v.(string)
		if len(cfg.NotifySecret) > 1024 {
			return "notify_secret must be at most 1024 bytes"
		}
	}
	if v, ok := d.GetOk("notify_ca_cert"); ok {
		cfg.NotifyCACert = strings.TrimSpace(v.(string))
		if cfg.NotifyCACert != "" && !x509.NewCertPool().AppendCertsFromPEM([]byte(cfg.NotifyCACert)) {
			return "notify_ca_cert must hold at least one PEM-encoded certificate"
		}
	}
	if v, ok := d.GetOk("history_retention"); ok {
		r := time.Duration(v.(int)) * time.Second
		if r <= 0 || r > 10*365*24*time.Hour {
			return fmt.Sprintf("history_retention must be more than 0 and at most 87600h, got %s", r)
		}
		cfg.HistoryRetention = r
	}
	if v, ok := d.GetOk("portal_url"); ok {
		u := strings.TrimSpace(v.(string))
		if u != "" {
			p, err := url.Parse(u)
			if err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" || p.User != nil || len(u) > 2048 {
				return fmt.Sprintf("portal_url %q must be an http:// or https:// URL with a host and no user:password@ (at most 2048 characters)", textsafe.Truncate(u))
			}
			p.Fragment = ""
			u = p.String()
		}
		cfg.PortalURL = u
	}
	if v, ok := d.GetOk("request_retention"); ok {
		r := time.Duration(v.(int)) * time.Second
		if r <= 0 || r > 365*24*time.Hour {
			return fmt.Sprintf("request_retention must be more than 0 and at most 8760h, got %s", r)
		}
		cfg.RequestRetention = r
	}
	return ""
}

// Bounds of access flows, in config: how much one request or grant may name, and how
// many requests one person may keep open. They keep one caller from making the plugin
// read, store or ask approvers about an unbounded amount.

// setFlowLimits applies the bounds sent in a config write; msg names the first bad one.
func setFlowLimits(cfg *config.Config, d *framework.FieldData) string {
	for _, f := range []struct {
		field string
		max   int
		dst   *int
	}{
		{"max_resources_per_request", config.MaxMaxResourcesPerRequest, &cfg.MaxResourcesPerRequest},
		{"max_open_requests", config.MaxMaxOpenRequests, &cfg.MaxOpenRequests},
		{"max_folder_secrets", config.MaxMaxFolderSecrets, &cfg.MaxFolderSecrets},
	} {
		if v, ok := d.GetOk(f.field); ok {
			n := v.(int)
			if n < 1 || n > f.max {
				return fmt.Sprintf("%s must be between 1 and %d, got %d", f.field, f.max, n)
			}
			*f.dst = n
		}
	}
	return ""
}

const (
	// periodicSyncTimeout bounds a background sync, which no request's deadline covers.
	periodicSyncTimeout = 30 * time.Minute
	// defaultRequestSyncTimeout bounds a sync run by a request. Vault cancels a request
	// after max_request_duration (90s by default) without telling the plugin its deadline
	// (the context it passes carries none), so the plugin stops first and says why.
	defaultRequestSyncTimeout = 80 * time.Second
)

// setDiscoveryConfig applies the discovery fields sent in a config write and returns a
// message naming the first bad one, or "".
func setDiscoveryConfig(cfg *config.Config, d *framework.FieldData, ownMount string) string {
	if v, ok := d.GetOk("resource_types"); ok {
		seen := map[string]bool{}
		for _, t := range v.([]string) {
			t = strings.ToLower(strings.TrimSpace(t))
			if t == "" {
				continue
			}
			if !slices.Contains(config.DiscoverableTypes, t) {
				return fmt.Sprintf("resource_types: %q is not a resource type (allowed: %s)", textsafe.Truncate(t), strings.Join(config.DiscoverableTypes, ", "))
			}
			seen[t] = true
		}
		if len(seen) == 0 {
			return fmt.Sprintf("resource_types must name at least one of: %s", strings.Join(config.DiscoverableTypes, ", "))
		}
		types := make([]string, 0, len(seen))
		for t := range seen {
			types = append(types, t)
		}
		sort.Strings(types)
		cfg.ResourceTypes = strings.Join(types, ",")
	}
	if v, ok := d.GetOk("grantable_path_prefixes"); ok {
		var prefixes []string
		for _, p := range v.([]string) {
			p = strings.TrimSpace(p)
			if p == "" || slices.Contains(prefixes, p) {
				continue
			}
			if err := resource.ValidatePathPrefix(p, ownMount); err != nil {
				return "grantable_path_prefixes: " + err.Error()
			}
			prefixes = append(prefixes, p)
		}
		if len(prefixes) > config.MaxGrantablePathPrefixes {
			return fmt.Sprintf("grantable_path_prefixes: at most %d prefixes, got %d", config.MaxGrantablePathPrefixes, len(prefixes))
		}
		sort.Strings(prefixes)
		cfg.GrantablePathPrefixes = prefixes
	}
	if v, ok := d.GetOk("owner_metadata_key"); ok {
		key := strings.TrimSpace(v.(string))
		if len(key) > config.MaxOwnerMetadataKeyLen || !printable(key) {
			return fmt.Sprintf("owner_metadata_key must be a custom_metadata key of at most %d printable characters", config.MaxOwnerMetadataKeyLen)
		}
		cfg.OwnerMetadataKey = key
	}
	if v, ok := d.GetOk("integration_owner"); ok {
		owner := strings.TrimSpace(v.(string))
		if len(owner) > config.MaxIntegrationOwnerLen || !printable(owner) {
			return fmt.Sprintf("integration_owner must be at most %d printable characters, e.g. an identity group name", config.MaxIntegrationOwnerLen)
		}
		if owner != "" {
			if _, err := access.ParsePrincipalList(owner); err != nil {
				return "integration_owner: " + err.Error() + "; name identity groups or entities, e.g. security or group:security,entity:erin"
			}
		}
		cfg.IntegrationOwner = owner
	}
	if v, ok := d.GetOk("sync_interval"); ok {
		interval := time.Duration(v.(int)) * time.Second
		switch {
		case interval == 0:
			cfg.SyncInterval = -1 // stored as negative: zero means "not set, use the default"
		case interval < config.MinSyncInterval:
			return fmt.Sprintf("sync_interval must be 0 (off) or at least %d seconds, got %d", int(config.MinSyncInterval.Seconds()), v.(int))
		default:
			cfg.SyncInterval = interval
		}
	}
	if v, ok := d.GetOk("sync_concurrency"); ok {
		n := v.(int)
		if n < 1 || n > config.MaxSyncConcurrency {
			return fmt.Sprintf("sync_concurrency must be between 1 and %d, got %d", config.MaxSyncConcurrency, n)
		}
		cfg.SyncConcurrency = n
	}
	if v, ok := d.GetOk("max_resources"); ok {
		n := v.(int)
		if n < 1 || n > config.MaxMaxResources {
			return fmt.Sprintf("max_resources must be between 1 and %d, got %d", config.MaxMaxResources, n)
		}
		cfg.MaxResources = n
	}
	return ""
}

func printable(s string) bool {
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// password_hash_cost: how hard the plugin hashes a grant's password where userpass takes
// password_hash (package grants says why a low cost is safe).

// setPasswordHashCost applies password_hash_cost; msg is a 400.
func setPasswordHashCost(cfg *config.Config, d *framework.FieldData) string {
	v, ok := d.GetOk("password_hash_cost")
	if !ok {
		return ""
	}
	n := v.(int)
	switch {
	case n == 0:
		cfg.PasswordHashCost = -1
	case n < config.MinPasswordHashCost || n > config.MaxPasswordHashCost:
		return fmt.Sprintf("password_hash_cost must be 0 (let Vault hash the password) or between %d and %d, got %d", config.MinPasswordHashCost, config.MaxPasswordHashCost, n)
	default:
		cfg.PasswordHashCost = n
	}
	return ""
}
