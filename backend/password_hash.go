package backend

import (
	"fmt"

	"github.com/apono-io/vault-plugin-apono/backend/config"
	"github.com/hashicorp/vault/sdk/framework"
)

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
