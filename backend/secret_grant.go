package backend

import (
	"context"
	"fmt"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/access/window"
	"github.com/apono-io/vault-plugin-apono/backend/config"
	"github.com/apono-io/vault-plugin-apono/backend/grants"
	"github.com/apono-io/vault-plugin-apono/backend/notify"
	"github.com/apono-io/vault-plugin-apono/backend/store"
	"github.com/apono-io/vault-plugin-apono/backend/vaultapi"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

const secretGrantType = "apono_grant"

// issue issues gr (package grants) and answers with its lease.
func (b *aponoBackend) issue(ctx context.Context, s logical.Storage, client vaultapi.Client, cfg *config.Config, gr *grants.Request) (*logical.Response, error) {
	is, err := b.grants.Issue(ctx, s, client, cfg, gr)
	if err != nil {
		return nil, err
	}
	resp := b.Secret(secretGrantType).Response(is.Data, is.Internal)
	resp.Secret.TTL = is.TTL
	resp.Secret.MaxTTL = is.MaxTTL
	resp.Secret.Renewable = true
	for _, w := range is.Warnings {
		resp.AddWarning(w)
	}
	return resp, nil
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
	objs, err := grants.DecodeObjects(req.Secret.InternalData)
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
	capped, tokenWarning := b.grants.CapAtCallerToken(ctx, client, accessor, ttl, now)
	if tokenWarning != "" && capped < ttl {
		ttl = capped
		warning = tokenWarning
	}
	if err := client.UpdateUserTTL(ctx, objs.UserpassMount, objs.Username, ttl, ttl); err != nil {
		return nil, fmt.Errorf("updating token limits of %s: %w", objs.Username, err)
	}
	before := store.GrantEntries(rec)
	rec.ExpiresAt = now.Add(ttl)
	if err := b.grants.Store(ctx, req.Storage, before, rec); err != nil {
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
	objs, err := grants.DecodeObjects(req.Secret.InternalData)
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
	if err := b.grants.Remove(ctx, client, req.Storage, objs, store.EndedRevoked); err != nil {
		return nil, fmt.Errorf("revoking grant %s: %w", objs.GrantID, err)
	}
	b.Logger().Info("grant revoked", "grant_id", objs.GrantID, "username", objs.Username)
	if ev != nil {
		b.notify.Emit(ctx, ev.cfg, ev.event)
	}
	return nil, nil
}

// pendingEvent is an event prepared before the record it describes is removed.
type pendingEvent struct {
	cfg   *config.Config
	event notify.Event
}

// revokedSender is revokedEvent for the sweeper: what sends the event with a reason.
func (b *aponoBackend) revokedSender(ctx context.Context, s logical.Storage, grantID string) func(reason string) {
	ev := b.revokedEvent(ctx, s, grantID)
	if ev == nil {
		return nil
	}
	return func(reason string) {
		ev.event.Reason = reason
		b.notify.Emit(ctx, ev.cfg, ev.event)
	}
}

// revokedEvent prepares grant.revoked from the grant's record, when anything receives events.
func (b *aponoBackend) revokedEvent(ctx context.Context, s logical.Storage, grantID string) *pendingEvent {
	cfg, err := b.config(ctx, s)
	if err != nil || cfg == nil {
		return nil
	}
	if targets, _ := b.notify.LoadTargets(ctx, s); cfg.NotifyURL == "" && len(targets) == 0 {
		return nil
	}
	ev := notify.Event{Type: notify.EventGrantRevoked, GrantID: grantID}
	if rec, err := store.GetGrant(ctx, s, grantID); err == nil && rec != nil {
		ev = notify.GrantEvent(rec, notify.EventGrantRevoked)
	}
	return &pendingEvent{cfg: cfg, event: ev}
}
