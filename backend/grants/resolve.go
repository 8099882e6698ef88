package grants

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/apono-io/vault-plugin-apono/backend/config"
	"github.com/apono-io/vault-plugin-apono/backend/resource"
	"github.com/apono-io/vault-plugin-apono/backend/vaultapi"
	"github.com/apono-io/vault-plugin-apono/internal/textsafe"
)

// Input is what a caller asks for, before it is checked against the role and mounts.
type Input struct {
	Resources     []string      // nil: all of the role's
	Permission    string        // "": the role's first
	TTL           time.Duration // 0: the role's
	Justification string
}

// Resolve checks in against the role and Vault's mounts (as they are now, read at most
// vaultapi.MountsTTL ago) into the request to issue; msg is a 400 for the caller, err an
// internal failure.
func (g *Grants) Resolve(ctx context.Context, cfg *config.Config, roleName string, role *access.Role, in Input, client vaultapi.Client,
) (gr *Request, warnings []string, msg string, err error) {
	gr = &Request{Role: roleName, BoundCIDRs: role.TokenBoundCIDRs, Justification: in.Justification}

	requested := role.Resources
	if in.Resources != nil {
		requested = in.Resources
	}
	if msg := cfg.CheckResourceCount(len(requested)); msg != "" {
		if in.Resources == nil {
			msg += fmt.Sprintf("; role %q has %d, so name the ones you need", roleName, len(role.Resources))
		}
		return nil, nil, msg, nil
	}
	for _, r := range requested {
		if err := resource.ValidateName(r); err != nil {
			return nil, nil, "resources: " + err.Error(), nil
		}
	}

	gr.Permission = role.Permissions[0]
	if in.Permission != "" {
		gr.Permission = in.Permission
		if !slices.Contains(role.Permissions, gr.Permission) {
			return nil, nil, fmt.Sprintf("permission %q is not allowed by role %q (allowed: %s)", textsafe.Truncate(gr.Permission), roleName, strings.Join(role.Permissions, ", ")), nil
		}
	}
	if role.RequireJustification && strings.TrimSpace(gr.Justification) == "" {
		return nil, nil, fmt.Sprintf("justification is required by role %q", roleName), nil
	}

	gr.TTL, gr.MaxTTL, warnings = g.ttls(role, in.TTL)

	// The mounts as they are now: one may have changed since the role was written.
	mounts, err := g.Mounts.Get(ctx, client)
	if err != nil {
		return nil, nil, "", fmt.Errorf("reading sys/mounts: %w", err)
	}
	roleRefs := make([]resource.Ref, 0, len(role.Resources))
	for _, r := range role.Resources {
		ref, err := resource.Resolve(r, mounts, g.resourceOptions(cfg))
		if err != nil {
			return nil, nil, fmt.Sprintf("role %q can no longer be granted: %s", roleName, err), nil
		}
		roleRefs = append(roleRefs, ref)
	}
	for _, r := range requested {
		ref, err := resource.Resolve(r, mounts, g.resourceOptions(cfg))
		if err != nil {
			return nil, nil, "resources: " + err.Error(), nil
		}
		if !resource.CoveredBy(ref, roleRefs) {
			return nil, nil, fmt.Sprintf("resources: %q is not among role %q's resources (%s)", r, roleName, strings.Join(role.Resources, ", ")), nil
		}
		gr.Resources = append(gr.Resources, ref)
	}
	for _, ref := range gr.Resources {
		if resource.PermissionTypes[gr.Permission] != ref.Type {
			return nil, nil, fmt.Sprintf("permission %q does not apply to %s resource %q (allowed for it: %s); ask for the resources separately",
				gr.Permission, ref.Type, ref.Name, strings.Join(resource.PermissionsFor(ref.Type), ", ")), nil
		}
	}
	return gr, warnings, "", nil
}

// ttls picks the grant's TTL and max TTL from the request (0: the role's), the role
// and the mount.
func (g *Grants) ttls(role *access.Role, requested time.Duration) (ttl, maxTTL time.Duration, warnings []string) {
	sys := g.System()
	maxTTL = role.MaxTTL
	if maxTTL <= 0 || maxTTL > sys.MaxLeaseTTL() {
		maxTTL = sys.MaxLeaseTTL()
	}
	ttl = role.TTL
	if requested > 0 {
		ttl = requested
	}
	if ttl <= 0 {
		ttl = sys.DefaultLeaseTTL()
	}
	if ttl > maxTTL {
		warnings = append(warnings, fmt.Sprintf("ttl of %s is more than the role's max_ttl; capped at %s", ttl, maxTTL))
		ttl = maxTTL
	}
	return ttl, maxTTL, warnings
}
