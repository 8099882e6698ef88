package grants

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/apono-io/vault-plugin-apono/backend/vaultapi"
)

// Two facts of Vault that a grant has to live with:
//
//   - A lease belongs to the token that wrote it: when that token ends, Vault revokes the
//     lease, and with it the grant. So a grant never promises more than the caller's token
//     can deliver (CapAtCallerToken), checked through auth/token/lookup-accessor.
//   - A userpass login makes an identity entity that outlives the user. So the plugin makes
//     each grant user's entity itself, named after the grant and with an alias for the
//     user, and removes it with the user (revoke, rollback, sweeper).
//
// Both need capabilities beyond the vendor's apono-management policy
// (testdata/apono-identity.hcl); without them the plugin works as before and says so in
// the grant's warnings and apono/health.

// Paths of Vault's identity and token stores the plugin calls (the optional additions).
const (
	TokenLookupPath = "auth/token/lookup-accessor"
	EntityAliasPath = "identity/entity-alias"
	EntityListPath  = "identity/entity/name"
)

// EntityCheckPath is the path whose capabilities say whether grant entities can be managed.
func (g *Grants) EntityCheckPath() string {
	return vaultapi.EntityNamePath(g.ObjectName(ProbeID))
}

// EntitiesEnabled reports whether the management token may create, alias and delete
// grant entities.
func (g *Grants) EntitiesEnabled(ctx context.Context, client vaultapi.Client) bool {
	return g.Caps.Allowed(ctx, client, g.EntityCheckPath(), "create", "update", "delete") &&
		g.Caps.Allowed(ctx, client, EntityAliasPath, "create", "update")
}

// EntitiesRemovable reports whether grant entities can be deleted (revoke, sweep).
func (g *Grants) EntitiesRemovable(ctx context.Context, client vaultapi.Client) bool {
	return g.Caps.Allowed(ctx, client, g.EntityCheckPath(), "delete")
}

// createEntity makes the entity of a grant's user, with metadata saying whom and what
// it is for, and the alias that makes the user's logins use it.
func (g *Grants) createEntity(ctx context.Context, client vaultapi.Client, rec *access.Grant) (string, error) {
	accessor, err := g.AuthAccessors.Get(ctx, client, rec.UserpassMount)
	if err != nil {
		return "", fmt.Errorf("finding the accessor of auth/%s: %w", rec.UserpassMount, err)
	}
	meta := map[string]string{
		"created_by": "vault-plugin-apono",
		"mount":      g.OwnMount(),
		"grant_id":   rec.ID,
		"role":       rec.Role,
		"requester":  rec.Requester,
	}
	if rec.RequestID != "" {
		meta["request_id"] = rec.RequestID
	}
	if rec.RequesterEntity != nil {
		meta["requester_entity_id"] = rec.RequesterEntity.EntityID
	}
	if rec.BreakGlass {
		meta["break_glass"] = "true"
	}
	id, err := client.WriteEntity(ctx, rec.EntityName, meta)
	if err != nil {
		return "", err
	}
	if err := client.WriteEntityAlias(ctx, rec.Username, id, accessor); err != nil {
		return id, fmt.Errorf("creating the entity alias of %s: %w", rec.Username, err)
	}
	return id, nil
}

// deleteEntity removes a grant's entity (and so its alias). A 403 is not retried:
// the capability was taken away, the access is already cut, and the sweeper or an
// operator removes the entity later.
func (g *Grants) deleteEntity(ctx context.Context, client vaultapi.Client, name string) error {
	err := client.DeleteEntity(ctx, name)
	if err != nil && vaultapi.IsStatus(err, http.StatusForbidden) {
		g.Caps.Remember(client, g.EntityCheckPath(), false, vaultapi.CapabilityCacheTTL)
		g.logger().Warn("may not delete a grant's identity entity; it stays until the permission is back", "entity", name)
		return nil
	}
	return err
}

// CapAtCallerToken returns ttl, shortened to when the token with accessor ends if that is
// sooner, and a warning for the caller when it was shortened or could not be checked.
func (g *Grants) CapAtCallerToken(ctx context.Context, client vaultapi.Client, accessor string, ttl time.Duration, now time.Time) (time.Duration, string) {
	if accessor == "" {
		return ttl, ""
	}
	if !g.Caps.Allowed(ctx, client, TokenLookupPath, "update") {
		return ttl, "this grant's end was not checked against the lifetime of the token that asked for it (the management policy " +
			"lacks update on " + TokenLookupPath + "; see apono/health): Vault revokes a token's leases when the token ends, so the grant ends then at the latest"
	}
	life, err := g.TokenLifetimes.Lookup(ctx, client, accessor)
	if err != nil {
		g.logger().Warn("could not look up the lifetime of the caller's token", "error", vaultapi.Redact(err))
		return ttl, "this grant's end could not be checked against the lifetime of the token that asked for it: " +
			"Vault revokes a token's leases when the token ends, so the grant ends then at the latest"
	}
	end := life.End()
	if end.IsZero() || !end.Before(now.Add(ttl)) {
		return ttl, ""
	}
	capped := end.Sub(now).Truncate(time.Second)
	if capped < time.Second {
		capped = time.Second
	}
	return capped, fmt.Sprintf("the token that asked for this grant ends at %s, and Vault revokes a token's leases when it ends: "+
		"this grant ends then, after %s, not after the %s asked for. A service that brokers grants should use a periodic token "+
		"(for instance AppRole token_period) and keep it renewed; a person can log in with a longer TTL, then renew the grant",
		end.UTC().Format(time.RFC3339), capped, ttl)
}
