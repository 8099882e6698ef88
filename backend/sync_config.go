package backend

import (
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode"

	"github.com/apono-io/vault-plugin-apono/backend/resource"
	"github.com/apono-io/vault-plugin-apono/internal/textsafe"
	"github.com/hashicorp/vault/sdk/framework"
)

// Discovery settings in config, and their bounds.
const (
	defaultSyncInterval    = 15 * time.Minute
	minSyncInterval        = time.Minute // the rollback manager ticks once a minute anyway
	defaultSyncConcurrency = 8
	maxSyncConcurrency     = 64
	defaultMaxResources    = 100000
	maxMaxResources        = 1000000
	maxOwnerMetadataKeyLen = 128 // Vault's limit on a custom_metadata key
	maxIntegrationOwnerLen = 256

	// periodicSyncTimeout bounds a background sync, which no request's deadline covers.
	periodicSyncTimeout = 30 * time.Minute
	// defaultRequestSyncTimeout bounds a sync run by a request. Vault cancels a request
	// after max_request_duration (90s by default) without telling the plugin its deadline
	// (the context it passes carries none), so the plugin stops first and says why.
	defaultRequestSyncTimeout = 80 * time.Second
)

// discoverableTypes are the values resource_types accepts.
var discoverableTypes = []string{resource.TypeKV, resource.TypeTransit}

func (c *pluginConfig) resourceTypes() []string {
	if c.ResourceTypes == "" {
		return append([]string(nil), discoverableTypes...)
	}
	return strings.Split(c.ResourceTypes, ",")
}

// syncInterval is 0 when periodic sync is off.
func (c *pluginConfig) syncInterval() time.Duration {
	switch {
	case c.SyncInterval < 0:
		return 0
	case c.SyncInterval == 0:
		return defaultSyncInterval
	}
	return c.SyncInterval
}

func (c *pluginConfig) syncConcurrency() int {
	if c.SyncConcurrency == 0 {
		return defaultSyncConcurrency
	}
	return c.SyncConcurrency
}

func (c *pluginConfig) maxResources() int {
	if c.MaxResources == 0 {
		return defaultMaxResources
	}
	return c.MaxResources
}

// setDiscoveryConfig applies the discovery fields sent in a config write and returns a
// message naming the first bad one, or "".
func setDiscoveryConfig(cfg *pluginConfig, d *framework.FieldData) string {
	if v, ok := d.GetOk("resource_types"); ok {
		seen := map[string]bool{}
		for _, t := range v.([]string) {
			t = strings.ToLower(strings.TrimSpace(t))
			if t == "" {
				continue
			}
			if !contains(discoverableTypes, t) {
				return fmt.Sprintf("resource_types: %q is not a resource type (allowed: %s)", textsafe.Truncate(t), strings.Join(discoverableTypes, ", "))
			}
			seen[t] = true
		}
		if len(seen) == 0 {
			return fmt.Sprintf("resource_types must name at least one of: %s", strings.Join(discoverableTypes, ", "))
		}
		types := make([]string, 0, len(seen))
		for t := range seen {
			types = append(types, t)
		}
		sort.Strings(types)
		cfg.ResourceTypes = strings.Join(types, ",")
	}
	if v, ok := d.GetOk("owner_metadata_key"); ok {
		key := strings.TrimSpace(v.(string))
		if len(key) > maxOwnerMetadataKeyLen || !printable(key) {
			return fmt.Sprintf("owner_metadata_key must be a custom_metadata key of at most %d printable characters", maxOwnerMetadataKeyLen)
		}
		cfg.OwnerMetadataKey = key
	}
	if v, ok := d.GetOk("integration_owner"); ok {
		owner := strings.TrimSpace(v.(string))
		if len(owner) > maxIntegrationOwnerLen || !printable(owner) {
			return fmt.Sprintf("integration_owner must be at most %d printable characters, e.g. an identity group name", maxIntegrationOwnerLen)
		}
		if owner != "" {
			if _, err := parsePrincipalList(owner); err != nil {
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
		case interval < minSyncInterval:
			return fmt.Sprintf("sync_interval must be 0 (off) or at least %d seconds, got %d", int(minSyncInterval.Seconds()), v.(int))
		default:
			cfg.SyncInterval = interval
		}
	}
	if v, ok := d.GetOk("sync_concurrency"); ok {
		n := v.(int)
		if n < 1 || n > maxSyncConcurrency {
			return fmt.Sprintf("sync_concurrency must be between 1 and %d, got %d", maxSyncConcurrency, n)
		}
		cfg.SyncConcurrency = n
	}
	if v, ok := d.GetOk("max_resources"); ok {
		n := v.(int)
		if n < 1 || n > maxMaxResources {
			return fmt.Sprintf("max_resources must be between 1 and %d, got %d", maxMaxResources, n)
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
