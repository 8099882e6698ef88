package backend

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/apono-io/vault-plugin-apono/backend/grants"
	"github.com/apono-io/vault-plugin-apono/backend/store"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// Break-glass: on a role with approval=required and break_glass=true, a person may skip
// approval in an emergency at break-glass/<role>, with a justification. It has a path of
// its own so that a policy can allow it without allowing grants/<role> (a direct grant on
// any role with approval=none). The grant is capped at break_glass_max_ttl, marked as
// break-glass in its record, its log line and its events, and a person holds at most
// break_glass_max_live_grants live break-glass grants of the role at once (default 1).

func pathBreakGlass(b *aponoBackend) *framework.Path {
	return &framework.Path{
		Pattern: "break-glass/" + framework.GenericNameRegex("role") + "$",
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: "apono",
			OperationVerb:   "break-glass",
			OperationSuffix: "access",
		},
		Fields: map[string]*framework.FieldSchema{
			"role": {Type: framework.TypeLowerCaseString, Description: "Role with break_glass=true to grant from.", Required: true},
			"resources": {Type: framework.TypeCommaStringSlice,
				Description: "Resources to grant: a subset of the role's. Default: all of the role's."},
			"permission": {Type: framework.TypeString,
				Description: "Permission level, one of the role's permissions. Default: the role's first."},
			"ttl": {Type: framework.TypeDurationSecond,
				Description: "How long the access lasts; capped at the role's break_glass_max_ttl."},
			"justification": {Type: framework.TypeString, Required: true,
				Description: fmt.Sprintf("Why approval cannot wait (at most %d characters). Required.", maxJustificationLen)},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.UpdateOperation: &framework.PathOperation{
				Callback:                    b.pathBreakGlassIssue,
				ForwardPerformanceStandby:   true,
				ForwardPerformanceSecondary: true,
			},
		},
		HelpSynopsis:    "Grant access at once in an emergency, skipping approval, where the role allows it.",
		HelpDescription: pathBreakGlassHelp,
	}
}

const pathBreakGlassHelp = `
Writing break-glass/<role> grants at once, without approval, on a role with
approval=required and break_glass=true, to a caller with an identity entity (a person
who logged in) and, when the role names break_glass_allowed, only to its members. It
needs a justification, lasts at most the role's break_glass_max_ttl (renewals included),
and is marked as break-glass in the grant's record, a BREAK-GLASS warning in Vault's
log and the grant.break_glass event. A person holds at most break_glass_max_live_grants
live break-glass grants of the role at once (default 1). The response is a lease like
grants/<role>'s.
`

func (b *aponoBackend) pathBreakGlassIssue(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	b.rememberMount(req)
	if resp := rejectUnknownFields(req, d.Schema); resp != nil {
		return resp, nil
	}
	roleName := d.Get("role").(string)
	role, cfg, msg, err := b.roleAndConfig(ctx, req.Storage, roleName)
	if err != nil || msg != "" {
		return errorOrBadRequest(err, msg)
	}
	switch {
	case !role.ApprovalRequired():
		return logical.ErrorResponse(fmt.Sprintf("role %q does not require approval, so there is nothing to skip: write %sgrants/%s", roleName, req.MountPoint, roleName)), nil
	case !role.BreakGlass:
		return logical.ErrorResponse(fmt.Sprintf("role %q does not allow break-glass; ask at %srequests/%s", roleName, req.MountPoint, roleName)), nil
	}
	in, msg := grantInputFromFields(d)
	if msg != "" {
		return logical.ErrorResponse(msg), nil
	}
	if strings.TrimSpace(in.Justification) == "" {
		return logical.ErrorResponse("justification is required for break-glass: say why approval cannot wait"), nil
	}
	caller, msg, err := b.callerIdentity(req)
	if err != nil || msg != "" {
		return errorOrBadRequest(err, "break-glass: "+msg)
	}
	if len(role.BreakGlassAllowed) > 0 && !memberOfAny(caller, role.BreakGlassAllowed) {
		return nil, forbidden("break-glass on role %q is only for %s, and %s is none of them (membership as Vault's identity store knows it now)",
			roleName, strings.Join(role.BreakGlassAllowed, ", "), caller.Label())
	}

	client, err := b.getClient(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	gr, warnings, msg, err := b.grants.Resolve(ctx, cfg, roleName, role, in, client)
	if err != nil || msg != "" {
		return errorOrBadRequest(err, msg)
	}
	ref := caller.Ref()
	gr.Requester, gr.RequesterEntity, gr.RequesterKind = caller.EntityName, &ref, access.RequesterEntity
	gr.BreakGlass = true
	gr.CallerAccessor = req.ClientTokenAccessor
	if _, closed := role.WindowCheck(roleName, time.Now()); closed != "" {
		// Break-glass ignores the windows, and says so.
		gr.WindowsIgnored = true
		warnings = append(warnings, "break-glass outside the role's access windows ("+closed+"): granted anyway, and marked")
	}
	if limit := role.BreakGlassMaxTTLOrDefault(); gr.TTL > limit || gr.MaxTTL > limit {
		if gr.TTL > limit {
			warnings = append(warnings, fmt.Sprintf("break-glass grants last at most %s (the role's break_glass_max_ttl); ttl capped", limit))
			gr.TTL = limit
		}
		gr.MaxTTL = limit
	}
	if gr.GrantID, err = grants.NewID(); err != nil {
		return nil, err
	}

	// One person's break-glass grants of a role are counted and issued one at a time.
	prefix := store.BreakGlassLivePrefix + roleName + "/" + strings.TrimPrefix(store.OpenKeyPrefix(caller.EntityID), store.OpenRequestPrefix)
	defer b.grantLocks.Lock("breakglass:" + prefix)()
	if limit := role.BreakGlassMaxLiveOrDefault(); limit > 0 {
		live, err := b.liveBreakGlass(ctx, req.Storage, prefix)
		if err != nil {
			return nil, err
		}
		if len(live) >= limit {
			return logical.ErrorResponse(fmt.Sprintf("%s already holds %d live break-glass grant(s) of role %q (%s); at most %d at a time (break_glass_max_live_grants): "+
				"use it, or revoke it first", caller.Label(), len(live), roleName, strings.Join(live, ", "), limit)), nil
		}
	}
	gr.BreakGlassKey = prefix + gr.GrantID
	entry, err := logical.StorageEntryJSON(gr.BreakGlassKey, map[string]time.Time{"created": time.Now().UTC()})
	if err != nil {
		return nil, err
	}
	if err := req.Storage.Put(ctx, entry); err != nil {
		return nil, err
	}
	resp, err := b.issueWithWarnings(ctx, req.Storage, client, cfg, gr, warnings)
	if err != nil {
		// What a failed issue made is already removed, or left to its WAL rollback, which
		// removes this entry too.
		return nil, err
	}
	resp.Data["break_glass"] = true
	return resp, nil
}

// liveBreakGlass is the grant IDs counted under prefix whose grant is live, dropping the
// entries left by issues that never finished.
func (b *aponoBackend) liveBreakGlass(ctx context.Context, s logical.Storage, prefix string) ([]string, error) {
	ids, err := s.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	var live []string
	for _, id := range ids {
		g, err := store.GetGrant(ctx, s, id)
		if err != nil {
			return nil, err
		}
		if g != nil {
			live = append(live, id)
			continue
		}
		entry, err := s.Get(ctx, prefix+id)
		if err != nil || entry == nil {
			return nil, err
		}
		var v struct {
			Created time.Time `json:"created"`
		}
		if json.Unmarshal(entry.Value, &v) == nil && time.Since(v.Created) < walRollbackMinAge {
			live = append(live, id) // an issue in flight, or a rollback still due
			continue
		}
		if err := s.Delete(ctx, prefix+id); err != nil {
			return nil, err
		}
	}
	return live, nil
}

// memberOfAny reports whether id belongs to one of the principals ("group:x", "entity:y").
func memberOfAny(id *access.Identity, principals []string) bool {
	for _, a := range principals {
		if p, err := access.ParsePrincipal(a); err == nil && id.MemberOf(p) {
			return true
		}
	}
	return false
}
