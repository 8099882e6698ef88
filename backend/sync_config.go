package backend

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/apono-io/vault-plugin-apono/backend/config"
	"github.com/apono-io/vault-plugin-apono/internal/textsafe"
	"github.com/hashicorp/vault/sdk/framework"
)

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
func setDiscoveryConfig(cfg *config.Config, d *framework.FieldData) string {
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
