package grants

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/apono-io/vault-plugin-apono/backend/config"
	"github.com/apono-io/vault-plugin-apono/backend/vaultapi"
)

// ResolveBundle is Resolve for a bundle: each part is checked against its role (roles[i]
// is part i's) and Vault's mounts as a grant of that role alone would be, and the parts
// are combined into one grant: every part's resources, each with its permission, for ttl
// (0: the bundle's), no longer than any part's role allows. parts are the parts resolved
// alone (their approver sets are each role's). msg is a 400 naming the part.
func (g *Grants) ResolveBundle(ctx context.Context, cfg *config.Config, name string, bundle *access.Bundle, roles []*access.Role,
	ttl time.Duration, justification string, client vaultapi.Client,
) (gr *Request, parts []*Request, warnings []string, msg string, err error) {
	if msg := access.CheckBundleRoles(bundle.Parts, roles); msg != "" {
		return nil, nil, nil, msg, nil
	}
	strict, msg := access.StrictestOf(roles)
	if msg != "" {
		return nil, nil, nil, msg, nil
	}
	if ttl <= 0 {
		ttl = bundle.TTL
	}
	if bundle.TTL > 0 && ttl > bundle.TTL {
		return nil, nil, nil, fmt.Sprintf("ttl %s is longer than bundle %q allows (%s)", ttl, name, bundle.TTL), nil
	}
	gr = &Request{Role: access.BundleRoleName(name), Bundle: name, Justification: justification, BoundCIDRs: strict.BoundCIDRs}
	var permissions []string
	for i, p := range bundle.Parts {
		part, partWarnings, msg, err := g.Resolve(ctx, cfg, p.Role, roles[i], Input{
			Resources: p.Resources, Permission: p.Permission, TTL: ttl, Justification: justification,
		}, client)
		if err != nil {
			return nil, nil, nil, "", err
		}
		if msg != "" {
			return nil, nil, nil, fmt.Sprintf("parts[%d] (role %q): %s", i, p.Role, msg), nil
		}
		if ttl > 0 && part.MaxTTL < ttl {
			return nil, nil, nil, fmt.Sprintf("ttl %s is longer than parts[%d] (role %q) allows (max_ttl %s)", ttl, i, p.Role, part.MaxTTL), nil
		}
		for _, w := range partWarnings {
			warnings = append(warnings, fmt.Sprintf("parts[%d] (role %q): %s", i, p.Role, w))
		}
		parts = append(parts, part)
		gr.Parts = append(gr.Parts, Part{Role: p.Role, Resources: part.Resources, Permission: part.Permission})
		gr.Resources = append(gr.Resources, part.Resources...)
		if !slices.Contains(permissions, part.Permission) {
			permissions = append(permissions, part.Permission)
		}
		if i == 0 || part.MaxTTL < gr.MaxTTL {
			gr.MaxTTL = part.MaxTTL
		}
		if i == 0 || part.TTL < gr.TTL {
			gr.TTL = part.TTL // what each role gives by default, when no ttl is set
		}
	}
	if msg := cfg.CheckResourceCount(len(gr.Resources)); msg != "" {
		return nil, nil, nil, fmt.Sprintf("bundle %q: %s", name, msg), nil
	}
	gr.Permission = strings.Join(permissions, ", ")
	if ttl > 0 {
		gr.TTL = min(ttl, gr.MaxTTL)
	}
	return gr, parts, warnings, "", nil
}
