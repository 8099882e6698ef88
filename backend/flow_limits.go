package backend

import (
	"fmt"

	"github.com/apono-io/vault-plugin-apono/backend/config"
	"github.com/hashicorp/vault/sdk/framework"
)

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
