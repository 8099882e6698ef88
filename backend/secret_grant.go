package backend

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/access/window"
	"github.com/apono-io/vault-plugin-apono/backend/config"
	"github.com/apono-io/vault-plugin-apono/backend/notify"
	"github.com/apono-io/vault-plugin-apono/backend/store"
	"github.com/apono-io/vault-plugin-apono/backend/vaultapi"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/mitchellh/mapstructure"
)

const secretGrantType = "apono_grant"

// grantObjects names everything a grant created in Vault. It is the lease's InternalData
// and the WAL entry's data, so revocation and rollback need nothing else: not the role,
// not the config's current userpass mount.
type grantObjects struct {
	GrantID       string `json:"grant_id" mapstructure:"grant_id"`
	Username      string `json:"username" mapstructure:"username"`
	Policy        string `json:"policy" mapstructure:"policy"`
	UserpassMount string `json:"userpass_mount" mapstructure:"userpass_mount"`
	// Entity is the name of the grant user's identity entity, when the plugin made one.
	Entity string `json:"entity,omitempty" mapstructure:"entity"`
	// BreakGlassKey is the plugin's storage entry counting a break-glass grant among its
	// requester's live ones; it goes with the grant.
	BreakGlassKey string `json:"break_glass_key,omitempty" mapstructure:"break_glass_key"`
}

// decodeGrantObjects reads grantObjects from InternalData or WAL data, which after a
// restart are plain map[string]interface{} values: decode, never assert.
func decodeGrantObjects(raw interface{}) (grantObjects, error) {
	var g grantObjects
	if err := mapstructure.Decode(raw, &g); err != nil {
		return g, fmt.Errorf("decoding grant objects: %w", err)
	}
	if g.Username == "" || g.Policy == "" || g.UserpassMount == "" {
		return g, errors.New("grant data is missing the username, policy or userpass mount")
	}
	return g, nil
}

func secretGrant(b *aponoBackend) *framework.Secret {
	return &framework.Secret{
		Type: secretGrantType,
		Fields: map[string]*framework.FieldSchema{
			"username": {Type: framework.TypeString, Description: "Userpass username of the grant."},
			"password": {Type: framework.TypeString, Description: "Userpass password of the grant.",
				DisplayAttrs: &framework.DisplayAttributes{Sensitive: true}},
			"policy": {Type: framework.TypeString, Description: "ACL policy holding the granted access."},
		},
		Renew:  b.grantRenew,
		Revoke: b.grantRevoke,
	}
}

func (b *aponoBackend) grantRenew(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	objs, err := decodeGrantObjects(req.Secret.InternalData)
	if err != nil {
		return nil, err
	}
	defer b.grantLocks.Lock(objs.GrantID)()

	rec, err := store.GetGrant(ctx, req.Storage, objs.GrantID)
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return logical.ErrorResponse(fmt.Sprintf("grant %s has ended and cannot be renewed", objs.GrantID)), nil
	}

	now := time.Now().UTC()
	increment := req.Secret.Increment
	if increment <= 0 {
		increment = rec.ExpiresAt.Sub(rec.IssuedAt)
	}
	ttl := increment
	var warning string
	if len(rec.Windows) > 0 && !rec.WindowsIgnored && rec.WindowEnd.IsZero() {
		// Not capped at its window (windows_cap_grants=false): renewals only inside one.
		set, err := window.ParseList(rec.Windows)
		if err != nil {
			return nil, fmt.Errorf("grant %s's access windows: %w", objs.GrantID, err)
		}
		if _, err := set.Check(now); err != nil {
			return logical.ErrorResponse(fmt.Sprintf("grant %s cannot be renewed now: %s", objs.GrantID, err)), nil
		}
	}
	end := rec.MaxEnd()
	if !rec.WindowEnd.IsZero() && rec.WindowEnd.Before(end) {
		end = rec.WindowEnd
	}
	if remaining := end.Sub(now); ttl > remaining {
		ttl = remaining
		warning = rec.RenewLimitWarning(end)
	}
	if ttl <= 0 {
		return logical.ErrorResponse(fmt.Sprintf("grant %s is past the most it may last (%s) and cannot be renewed", objs.GrantID, rec.EndReason(end))), nil
	}
	// Raise the user's token limits first: a lease longer than the user's tokens is harmless,
	// the other way round is not.
	client, err := b.getClient(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	// The lease dies with the token that wrote it: never promise past that token's end.
	accessor, _ := req.Secret.InternalData["token_accessor"].(string)
	capped, tokenWarning := b.capAtCallerToken(ctx, client, accessor, ttl, now)
	if tokenWarning != "" && capped < ttl {
		ttl = capped
		warning = tokenWarning
	}
	if err := client.UpdateUserTTL(ctx, objs.UserpassMount, objs.Username, ttl, ttl); err != nil {
		return nil, fmt.Errorf("updating token limits of %s: %w", objs.Username, err)
	}
	before := store.GrantEntries(rec)
	rec.ExpiresAt = now.Add(ttl)
	if err := b.storeGrant(ctx, req.Storage, before, rec); err != nil {
		return nil, err
	}

	resp := &logical.Response{Secret: req.Secret}
	resp.Secret.TTL = ttl
	resp.Secret.MaxTTL = end.Sub(rec.IssuedAt)
	if warning != "" {
		resp.AddWarning(warning)
	}
	return resp, nil
}

func (b *aponoBackend) grantRevoke(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	objs, err := decodeGrantObjects(req.Secret.InternalData)
	if err != nil {
		return nil, err
	}
	defer b.grantLocks.Lock(objs.GrantID)()

	client, err := b.getClient(ctx, req.Storage)
	if err != nil {
		// An error makes Vault retry the revocation later.
		return nil, fmt.Errorf("revoking grant %s: %w", objs.GrantID, err)
	}
	ev := b.revokedEvent(ctx, req.Storage, objs.GrantID)
	if err := b.removeGrantObjects(ctx, client, req.Storage, objs, store.EndedRevoked); err != nil {
		return nil, fmt.Errorf("revoking grant %s: %w", objs.GrantID, err)
	}
	b.Logger().Info("grant revoked", "grant_id", objs.GrantID, "username", objs.Username)
	if ev != nil {
		b.emit(ctx, ev.cfg, ev.event)
	}
	return nil, nil
}

// removeGrantObjects deletes a grant's policy, user, entity and record. It is the one way a
// grant ends (revoke, rollback, sweep) and is idempotent: what is already gone is success.
// The policy goes first: that cuts every token the user already has.
func (b *aponoBackend) removeGrantObjects(ctx context.Context, client vaultapi.Client, s logical.Storage, objs grantObjects, ending string) error {
	if err := client.DeletePolicy(ctx, objs.Policy); err != nil {
		return fmt.Errorf("deleting policy %s: %w", objs.Policy, err)
	}
	if err := client.DeleteUser(ctx, objs.UserpassMount, objs.Username); err != nil {
		return fmt.Errorf("deleting user %s: %w", objs.Username, err)
	}
	if objs.Entity != "" {
		if err := b.deleteGrantEntity(ctx, client, objs.Entity); err != nil {
			return fmt.Errorf("deleting identity entity %s: %w", objs.Entity, err)
		}
	}
	b.revokeLoginTokens(ctx, client, objs)
	if objs.GrantID != "" {
		if err := b.deleteGrantRecord(ctx, s, objs.GrantID, ending); err != nil {
			return err
		}
	}
	// Only keys of the live break-glass count, which this mount's storage alone holds.
	if strings.HasPrefix(objs.BreakGlassKey, breakGlassLivePrefix) {
		if err := s.Delete(ctx, objs.BreakGlassKey); err != nil {
			return fmt.Errorf("deleting the break-glass count entry: %w", err)
		}
	}
	return nil
}

// revokeLoginTokens revokes every token the grant's user logged in with, when the
// management token may (sudo on sys/leases/revoke-prefix/auth/<userpass>/login/...). The
// policy is already deleted, which cuts those tokens; this is defence in depth, so nothing
// here (a 403 included) ever fails the removal.
func (b *aponoBackend) revokeLoginTokens(ctx context.Context, client vaultapi.Client, objs grantObjects) {
	checkPath := revokeLoginsCheckPath(objs.UserpassMount, b.grantObjectName(probeGrantID))
	if !b.caps.Allowed(ctx, client, checkPath, "sudo", "update") {
		return
	}
	if err := client.RevokeLoginTokens(ctx, objs.UserpassMount, objs.Username); err != nil {
		if vaultapi.IsStatus(err, http.StatusForbidden) {
			b.caps.Remember(client, checkPath, false, vaultapi.CapabilityCacheTTL)
		}
		b.Logger().Warn("could not revoke the login tokens of a removed grant user; its policy is already deleted",
			"username", objs.Username, "error", err)
	}
}

// pendingEvent is an event prepared before the record it describes is removed.
type pendingEvent struct {
	cfg   *config.Config
	event notify.Event
}

// revokedEvent prepares grant.revoked from the grant's record, when anything receives events.
func (b *aponoBackend) revokedEvent(ctx context.Context, s logical.Storage, grantID string) *pendingEvent {
	cfg, err := b.config(ctx, s)
	if err != nil || cfg == nil {
		return nil
	}
	if targets, _ := b.loadTargets(ctx, s); cfg.NotifyURL == "" && len(targets) == 0 {
		return nil
	}
	ev := notify.Event{Type: notify.EventGrantRevoked, GrantID: grantID}
	if rec, err := store.GetGrant(ctx, s, grantID); err == nil && rec != nil {
		ev = notify.GrantEvent(rec, notify.EventGrantRevoked)
	}
	return &pendingEvent{cfg: cfg, event: ev}
}
