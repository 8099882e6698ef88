package grants

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/store"
	"github.com/apono-io/vault-plugin-apono/backend/vaultapi"
	"github.com/hashicorp/vault/sdk/logical"
)

// RevokeLoginsCheckPath is the path whose sudo lets the plugin revoke the tokens a grant
// user logged in with.
func RevokeLoginsCheckPath(userpassMount, username string) string {
	return "sys/leases/revoke-prefix/auth/" + userpassMount + "/login/" + username
}

// Remove deletes a grant's policy, user, entity and record. It is the one way a
// grant ends (revoke, rollback, sweep) and is idempotent: what is already gone is success.
// The policy goes first: that cuts every token the user already has.
func (g *Grants) Remove(ctx context.Context, client vaultapi.Client, s logical.Storage, objs Objects, ending string) error {
	began := time.Now()
	err := g.remove(ctx, client, s, objs, ending)
	g.Metrics.GrantRemoved(ending, time.Since(began), err)
	return err
}

func (g *Grants) remove(ctx context.Context, client vaultapi.Client, s logical.Storage, objs Objects, ending string) error {
	if err := client.DeletePolicy(ctx, objs.Policy); err != nil {
		return fmt.Errorf("deleting policy %s: %w", objs.Policy, err)
	}
	// With the policy gone there is nothing left to narrow; a deadline left behind by a
	// failed removal would write the policy back (EndDueSigning).
	if objs.GrantID != "" {
		if err := DeleteSignDeadline(ctx, s, objs.GrantID); err != nil {
			return fmt.Errorf("deleting the SSH signing deadline: %w", err)
		}
	}
	g.crashAt("remove-after-policy")
	if err := client.DeleteUser(ctx, objs.UserpassMount, objs.Username); err != nil {
		return fmt.Errorf("deleting user %s: %w", objs.Username, err)
	}
	if objs.Entity != "" {
		if err := g.deleteEntity(ctx, client, objs.Entity); err != nil {
			return fmt.Errorf("deleting identity entity %s: %w", objs.Entity, err)
		}
	}
	if err := g.revokeLoginTokens(ctx, client, objs); err != nil {
		return err
	}
	if objs.GrantID != "" {
		if err := g.DeleteRecord(ctx, s, objs.GrantID, ending); err != nil {
			return err
		}
	}
	// Only keys of the live break-glass count, which this mount's storage alone holds.
	if strings.HasPrefix(objs.BreakGlassKey, store.BreakGlassLivePrefix) {
		if err := s.Delete(ctx, objs.BreakGlassKey); err != nil {
			return fmt.Errorf("deleting the break-glass count entry: %w", err)
		}
	}
	return nil
}

// revokeLoginTokens revokes every token the grant's user logged in with, and with them
// their child leases, when the management token may (sudo on
// sys/leases/revoke-prefix/auth/<userpass>/login/...). For most grants this is defence in
// depth: the policy is already deleted, which cuts those tokens, so nothing here (a 403
// included) fails the removal. A grant whose user can obtain leased credentials
// (Objects.RevokeLoginsRequired: a database user lives as long as its lease, and the lease
// as long as the token) is not removed until the revoke succeeds: the error makes Vault,
// the WAL rollback and the sweeper try again.
func (g *Grants) revokeLoginTokens(ctx context.Context, client vaultapi.Client, objs Objects) error {
	checkPath := RevokeLoginsCheckPath(objs.UserpassMount, g.ObjectName(ProbeID))
	if !g.Caps.Allowed(ctx, client, checkPath, "sudo", "update") {
		if objs.RevokeLoginsRequired {
			return fmt.Errorf("revoking the login tokens of %s, whose leases must end with the grant: the management token lacks sudo on %s",
				objs.Username, RevokeLoginsCheckPath(objs.UserpassMount, "*"))
		}
		return nil
	}
	if err := client.RevokeLoginTokens(ctx, objs.UserpassMount, objs.Username); err != nil {
		if vaultapi.IsStatus(err, http.StatusForbidden) {
			g.Caps.Remember(client, checkPath, false, vaultapi.CapabilityCacheTTL)
		}
		if objs.RevokeLoginsRequired {
			return fmt.Errorf("revoking the login tokens of %s, whose leases must end with the grant: %w", objs.Username, err)
		}
		g.logger().Warn("could not revoke the login tokens of a removed grant user; its policy is already deleted",
			"username", objs.Username, "error", err)
	}
	return nil
}
