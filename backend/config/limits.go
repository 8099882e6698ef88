package config

import (
	"fmt"
	"strings"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/resource"
)

// Defaults and bounds of the settings; a zero field means "the default", so a config
// stored before a field existed gets it.
const (
	DefaultRequestRetention = 7 * 24 * time.Hour
	DefaultHistoryRetention = 90 * 24 * time.Hour

	// Discovery (apono/sync).
	DefaultSyncInterval    = 15 * time.Minute
	MinSyncInterval        = time.Minute // the rollback manager ticks once a minute anyway
	DefaultSyncConcurrency = 8
	MaxSyncConcurrency     = 64
	DefaultMaxResources    = 100000
	MaxMaxResources        = 1000000
	MaxOwnerMetadataKeyLen = 128 // Vault's limit on a custom_metadata key
	MaxIntegrationOwnerLen = 256

	// Bounds of access flows: how much one request or grant may name, how many requests
	// one person may keep open, how many secrets a folder request reads the owners of.
	DefaultMaxResourcesPerRequest = 64
	MaxMaxResourcesPerRequest     = 1000
	DefaultMaxOpenRequests        = 20
	MaxMaxOpenRequests            = 1000
	DefaultMaxFolderSecrets       = 1000
	MaxMaxFolderSecrets           = 100000

	// MaxGrantablePathPrefixes bounds grantable_path_prefixes.
	MaxGrantablePathPrefixes = 100

	// Grant passwords sent as password_hash (bcrypt).
	DefaultPasswordHashCost = 5
	MinPasswordHashCost     = 5  // OpenBao's lower bound
	MaxPasswordHashCost     = 12 // OpenBao's upper bound (DoS guard)
)

// DiscoverableTypes are the values resource_types accepts.
var DiscoverableTypes = []string{resource.TypeKV, resource.TypeTransit, resource.TypeDatabase, resource.TypePKI, resource.TypeSSH}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// KeepHistoryFor is how long the history of ended grants stays.
func (c *Config) KeepHistoryFor() time.Duration {
	return orDefault(c.HistoryRetention, DefaultHistoryRetention)
}

// TypesToDiscover are the resource types apono/sync walks.
func (c *Config) TypesToDiscover() []string {
	if c.ResourceTypes == "" {
		return append([]string(nil), DiscoverableTypes...)
	}
	return strings.Split(c.ResourceTypes, ",")
}

// SyncEvery is how often the snapshot is refreshed; 0 when periodic sync is off.
func (c *Config) SyncEvery() time.Duration {
	switch {
	case c.SyncInterval < 0:
		return 0
	case c.SyncInterval == 0:
		return DefaultSyncInterval
	}
	return c.SyncInterval
}

// SyncWorkers is how many LIST and read calls a sync makes at once.
func (c *Config) SyncWorkers() int {
	if c.SyncConcurrency == 0 {
		return DefaultSyncConcurrency
	}
	return c.SyncConcurrency
}

// ResourceLimit is how many resources a sync may find before it stops.
func (c *Config) ResourceLimit() int {
	if c.MaxResources == 0 {
		return DefaultMaxResources
	}
	return c.MaxResources
}

// ResourcesPerRequestLimit is the most resources one request or grant may name.
func (c *Config) ResourcesPerRequestLimit() int {
	if c.MaxResourcesPerRequest <= 0 {
		return DefaultMaxResourcesPerRequest
	}
	return c.MaxResourcesPerRequest
}

// OpenRequestsLimit is the most open requests one person may have.
func (c *Config) OpenRequestsLimit() int {
	if c.MaxOpenRequests <= 0 {
		return DefaultMaxOpenRequests
	}
	return c.MaxOpenRequests
}

// FolderSecretsLimit is the most secrets below a folder whose owners a request reads.
func (c *Config) FolderSecretsLimit() int {
	if c.MaxFolderSecrets <= 0 {
		return DefaultMaxFolderSecrets
	}
	return c.MaxFolderSecrets
}

// HashCost is the bcrypt cost of grant passwords sent as password_hash; 0 when Vault
// hashes them.
func (c *Config) HashCost() int {
	switch {
	case c.PasswordHashCost < 0:
		return 0 // off: Vault hashes the password
	case c.PasswordHashCost == 0:
		return DefaultPasswordHashCost
	}
	return c.PasswordHashCost
}

// CheckResourceCount is the 400 for a request or grant naming more than the config allows.
func (c *Config) CheckResourceCount(n int) string {
	if limit := c.ResourcesPerRequestLimit(); n > limit {
		return fmt.Sprintf("resources: %d resources asked for; at most %d are allowed in one request or grant (max_resources_per_request)", n, limit)
	}
	return ""
}
