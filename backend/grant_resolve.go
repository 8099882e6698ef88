package backend

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/apono-io/vault-plugin-apono/backend/config"
	"github.com/apono-io/vault-plugin-apono/backend/grants"
	"github.com/apono-io/vault-plugin-apono/backend/resource"
	"github.com/apono-io/vault-plugin-apono/backend/vaultapi"
	"github.com/apono-io/vault-plugin-apono/internal/textsafe"
	"github.com/hashicorp/vault/sdk/logical"
)

// roleAndConfig reads what every grant and request needs first: the role and the config;
// msg is a 400 when either is missing.
func (b *aponoBackend) roleAndConfig(ctx context.Context, s logical.Storage, roleName string) (*access.Role, *config.Config, string, error) {
	role, err := b.store.Roles.Get(ctx, s, roleName)
	if err != nil {
		return nil, nil, "", err
	}
	if role == nil {
		return nil, nil, fmt.Sprintf("role %q does not exist", roleName), nil
	}
	cfg, err := b.config(ctx, s)
	if err != nil {
		return nil, nil, "", err
	}
	if cfg == nil {
		return nil, nil, errNotConfigured.Error(), nil
	}
	return role, cfg, "", nil
}

// resolveGrant checks in against the role and Vault's mounts; msg is a 400 for the
// caller, err an internal failure.
func (b *aponoBackend) resolveGrant(ctx context.Context, cfg *config.Config, roleName string, role *access.Role, in grantInput, client vaultapi.Client,
) (gr *grants.Request, warnings []string, msg string, err error) {
	gr = &grants.Request{Role: roleName, BoundCIDRs: role.TokenBoundCIDRs, Justification: in.justification}

	requested := role.Resources
	if in.resources != nil {
		requested = in.resources
	}
	if msg := checkResourceCount(cfg, len(requested)); msg != "" {
		if in.resources == nil {
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
	if in.permission != "" {
		gr.Permission = in.permission
		if !slices.Contains(role.Permissions, gr.Permission) {
			return nil, nil, fmt.Sprintf("permission %q is not allowed by role %q (allowed: %s)", textsafe.Truncate(gr.Permission), roleName, strings.Join(role.Permissions, ", ")), nil
		}
	}
	if role.RequireJustification && strings.TrimSpace(gr.Justification) == "" {
		return nil, nil, fmt.Sprintf("justification is required by role %q", roleName), nil
	}

	gr.TTL, gr.MaxTTL, warnings = b.grantTTLs(role, in.ttl)

	// Resolve against the mounts as they are now (read at most vaultapi.MountsTTL ago): a mount
	// may have changed since the role was written.
	mounts, err := b.grantMounts.Get(ctx, client)
	if err != nil {
		return nil, nil, "", fmt.Errorf("reading sys/mounts: %w", err)
	}
	roleRefs := make([]resource.Ref, 0, len(role.Resources))
	for _, r := range role.Resources {
		ref, err := resource.Resolve(r, mounts, b.ownMountPath())
		if err != nil {
			return nil, nil, fmt.Sprintf("role %q can no longer be granted: %s", roleName, err), nil
		}
		roleRefs = append(roleRefs, ref)
	}
	for _, r := range requested {
		ref, err := resource.Resolve(r, mounts, b.ownMountPath())
		if err != nil {
			return nil, nil, "resources: " + err.Error(), nil
		}
		if !coveredBy(ref, roleRefs) {
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

// grantTTLs picks the grant's TTL and max TTL from the request (0: the role's), the role
// and the mount.
func (b *aponoBackend) grantTTLs(role *access.Role, requested time.Duration) (ttl, maxTTL time.Duration, warnings []string) {
	sys := b.System()
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

// coveredBy reports whether ref is one of the role's resources or inside one of its folders.
func coveredBy(ref resource.Ref, role []resource.Ref) bool {
	for _, r := range role {
		if r.Type != ref.Type || r.Mount != ref.Mount {
			continue
		}
		if r.Folder == ref.Folder && r.Path == ref.Path {
			return true
		}
		// A folder covers everything strictly below it (a secret or a narrower folder).
		if r.Folder && (r.Path == "" || strings.HasPrefix(ref.Path, r.Path+"/")) {
			return true
		}
	}
	return false
}
