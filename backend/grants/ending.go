package grants

import (
	"context"
	"fmt"
	"sort"

	"github.com/apono-io/vault-plugin-apono/backend/config"
	"github.com/apono-io/vault-plugin-apono/backend/resource"
	"github.com/apono-io/vault-plugin-apono/backend/store"
	"github.com/apono-io/vault-plugin-apono/backend/vaultapi"
	"github.com/hashicorp/vault/sdk/logical"
)

// RoleEnding checks, at role write, that what a grant of refs lets its user obtain can
// be ended with the grant. It returns a problem (the role must not be written) and the
// warnings that say what Vault cannot bound.
//
// Every type but KV and Transit gives credentials that live on their own (a database
// user lives as long as its lease): those end only when the grant user's login tokens
// are revoked with their child leases, so the management token must be allowed to.
func (g *Grants) RoleEnding(ctx context.Context, client vaultapi.Client, cfg *config.Config, refs []resource.Ref) (problem string, warnings []string) {
	if !resource.LeasesOutliveUser(refs) {
		return "", nil
	}
	mount := config.DefaultUserpassMount
	if cfg != nil && cfg.UserpassMount != "" {
		mount = cfg.UserpassMount
	}
	if !g.Caps.Allowed(ctx, client, RevokeLoginsCheckPath(mount, g.ObjectName(ProbeID)), "sudo", "update") {
		return fmt.Sprintf("resources: database, PKI, SSH and path resources give credentials that must end with the grant, "+
			"which needs the management token to revoke grant users' logins with their leases: add sudo and update on %s "+
			"to the management policy (docs/engines.md)", RevokeLoginsCheckPath(mount, g.Prefix+"*")), nil
	}
	seen := map[string]bool{}
	for _, r := range refs {
		var w string
		switch {
		case r.Type == resource.TypeDatabase && r.Endpoint == "static-creds":
			w = r.Name + ": a static role's password stays valid after the grant ends, until the database engine rotates it (its rotation_period)"
		case r.Type == resource.TypePKI:
			w = r.Name + ": a certificate ends at its not_after, which the grant's policy pins to the grant's end at pickup; " +
				"one issued before an early revoke stays valid until then (unless the PKI role has generate_lease=true)"
		case r.Type == resource.TypeSSH && r.Endpoint == "sign":
			w = r.Name + ": signing stops before the grant ends so that no certificate outlives it; an SSH session opened with one is not closed"
		case r.Type == resource.TypeSSH && r.Endpoint == "creds":
			w = r.Name + ": the one-time password's lease ends with the grant; an SSH session opened with it is not closed"
		case r.Type == resource.TypePath:
			w = r.Name + ": what the path's engine issues ends with the grant only if it is leased to the grant user's token"
		}
		if w != "" && !seen[w] {
			seen[w] = true
			warnings = append(warnings, w)
		}
	}
	sort.Strings(warnings)
	return "", warnings
}

// RolesNeedingLoginRevoke lists the stored roles (sorted) that name a resource whose
// credentials end only with the grant user's logins: for them the revoke capability is
// required. A resource that no longer resolves (its mount is gone) cannot be granted and
// does not count.
func (g *Grants) RolesNeedingLoginRevoke(ctx context.Context, s logical.Storage, mounts map[string]vaultapi.MountInfo, cfg *config.Config) ([]string, error) {
	names, err := s.List(ctx, store.RoleStoragePrefix)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, name := range names {
		role, err := store.GetRole(ctx, s, name)
		if err != nil {
			return nil, err
		}
		if role == nil {
			continue
		}
		for _, r := range role.Resources {
			ref, err := resource.Resolve(r, mounts, g.resourceOptions(cfg))
			if err == nil && resource.LeasesOutliveUser([]resource.Ref{ref}) {
				out = append(out, name)
				break
			}
		}
	}
	sort.Strings(out)
	return out, nil
}
