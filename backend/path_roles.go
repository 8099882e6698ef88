package backend

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/apono-io/vault-plugin-apono/backend/resource"
	"github.com/apono-io/vault-plugin-apono/backend/store"
	"github.com/apono-io/vault-plugin-apono/internal/textsafe"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/logical"
)

func pathRoles(b *aponoBackend) []*framework.Path {
	paths := []*framework.Path{
		{
			Pattern: "roles/" + framework.GenericNameRegex("name"),
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: "apono",
				OperationSuffix: "role",
			},
			Fields: map[string]*framework.FieldSchema{
				"name": {
					Type:        framework.TypeLowerCaseString,
					Description: "Name of the role: " + access.RoleNameRule + ".",
					Required:    true,
				},
				"resources": {
					Type: framework.TypeCommaStringSlice,
					Description: "What this role may grant, as paths relative to the mount: kv/app/db (one KV v2 secret), " +
						"kv/app/* (every secret below kv/app/), transit/payments (a Transit key). Required.",
				},
				"permissions": {
					Type: framework.TypeCommaStringSlice,
					Description: "Permission levels a grant may ask for; the first is the default. KV v2: read, read-write, admin. " +
						"Transit: encrypt, decrypt, encrypt-decrypt, sign-verify. Default: read (KV) or encrypt-decrypt (Transit).",
				},
				"ttl": {
					Type:        framework.TypeDurationSecond,
					Description: "Default duration of a grant. Default: the mount's default lease TTL.",
				},
				"max_ttl": {
					Type:        framework.TypeDurationSecond,
					Description: "Longest a grant may last, renewals included; a grant picked up from a request lasts at most the ttl that was approved (more needs an extension). Default: the mount's max lease TTL.",
				},
				"token_bound_cidrs": {
					Type:        framework.TypeCommaStringSlice,
					Description: "CIDR blocks or IPs the grant's user may log in from and use its tokens from.",
				},
				"require_justification": {
					Type:        framework.TypeBool,
					Description: "Refuse grants and requests that give no justification.",
					Default:     false,
				},
				"approval": {
					Type:          framework.TypeString,
					Description:   "none: grants/<role> grants at once. required: access is asked for at requests/<role> and granted once approvers approve.",
					Default:       access.ApprovalNone,
					AllowedValues: []interface{}{access.ApprovalNone, access.ApprovalRequired},
				},
				"approvers": {
					Type: framework.TypeCommaStringSlice,
					Description: "Who may approve requests: group:<identity group name> (external groups from OIDC or LDAP included), " +
						"entity:<entity name>, and owner (each requested resource's owners: the KV secret's owner_metadata_key tag, " +
						"else integration_owner). Required when approval is required.",
				},
				"approval_mode": {
					Type: framework.TypeString,
					Description: "any_of: required_approvals distinct approvers from any approver set. all_of: also at least one " +
						"approval from every set (each listed group or entity and, with owner, each resource's owners).",
					Default:       access.ApprovalModeAnyOf,
					AllowedValues: []interface{}{access.ApprovalModeAnyOf, access.ApprovalModeAllOf},
				},
				"required_approvals": {
					Type:        framework.TypeInt,
					Description: fmt.Sprintf("How many distinct approvers a request needs (1 to %d). The requester never counts.", access.MaxRequiredApproval),
					Default:     1,
				},
				"request_ttl": {
					Type:        framework.TypeDurationSecond,
					Description: "How long a request may wait for approval before it expires.",
					Default:     int(access.DefaultRequestTTL.Seconds()),
				},
				"pickup_ttl": {
					Type:        framework.TypeDurationSecond,
					Description: "How long after approval the requester may turn the request into a grant (requests/<id>/grant).",
					Default:     int(access.DefaultPickupTTL.Seconds()),
				},
				"require_approver_reason": {
					Type:        framework.TypeBool,
					Description: "Refuse approvals and denials that give no reason.",
					Default:     false,
				},
				"break_glass": {
					Type:        framework.TypeBool,
					Description: "Let a requester skip approval in an emergency (break-glass/<role> with a justification); the grant is capped at break_glass_max_ttl and marked as break-glass.",
					Default:     false,
				},
				"break_glass_allowed": {
					Type: framework.TypeCommaStringSlice,
					Description: "Who may use break-glass on this role: group:<identity group name> and entity:<entity name> (external groups from OIDC or LDAP included). " +
						"Empty: every caller with an identity entity who may write break-glass/<role>.",
				},
				"on_behalf_allowed": {
					Type: framework.TypeCommaStringSlice,
					Description: "Who may ask for access for someone else (requests/<role> with for=<entity name>): group:<identity group name> and " +
						"entity:<entity name> (external groups from OIDC or LDAP included). The access is the other person's: only they pick it up, " +
						"and neither of them may approve it. Empty (the default): nobody.",
				},
				"break_glass_max_live_grants": {
					Type: framework.TypeInt,
					Description: fmt.Sprintf("How many live break-glass grants of this role one person may hold at once (1 to %d, or 0 for no limit). Default: %d.",
						access.MaxBreakGlassMaxLive, access.DefaultBreakGlassMaxLive),
					Default: access.DefaultBreakGlassMaxLive,
				},
				"access_windows": {
					Type: framework.TypeStringSlice,
					Description: "When access may be had: days, hours and an IANA time zone, e.g. \"mon-fri 08:00-18:00 Europe/Berlin\" " +
						"(several allowed; days mon..sun, ranges, lists, daily; an end before the start crosses midnight). Requests, pickups and " +
						"renewals outside every window are refused with the next window's start. Break-glass ignores them. Empty: any time.",
				},
				"windows_cap_grants": {
					Type:        framework.TypeBool,
					Default:     true,
					Description: "A grant's lease and its user's token TTLs end with the access window the grant started in (with a warning).",
				},
				"max_schedule_ahead": {
					Type:        framework.TypeDurationSecond,
					Default:     int(access.DefaultMaxScheduleAhead.Seconds()),
					Description: "How far ahead a request may ask for its access to start (start_at).",
				},
				"auto_approve": {
					Type: framework.TypeString,
					Description: "Rules that approve a matching request at once, as JSON: [{\"name\": \"oncall-read\", \"groups\": [\"oncall\"], " +
						"\"entities\": [], \"resources\": [\"kv/app/*\"], \"permissions\": [\"read\"], \"max_ttl\": \"1h\", \"windows\": " +
						"[\"mon-fri 08:00-18:00 Europe/Berlin\"]}]. A request matches when its requester is in one of the groups or entities, every " +
						"resource lies within the rule's, its permission and ttl are allowed and now is in a window. Never for break-glass, and " +
						"never when the requester is one of the request's approvers. \"\" or \"[]\" removes them.",
				},
				"approver_max_token_age": {
					Type: framework.TypeDurationSecond,
					Description: "Refuse approvals and denials made with a token older than this, or with one not made by a login (auth/token/create), so that " +
						"someone who left an approver group at the IdP cannot keep deciding with a token from before. 0 (the default) turns it off. " +
						"Needs update on auth/token/lookup-accessor in the management policy (testdata/apono-identity.hcl).",
					Default: 0,
				},
				"break_glass_max_ttl": {
					Type:        framework.TypeDurationSecond,
					Description: "Longest a break-glass grant may last, renewals included.",
					Default:     int(access.DefaultBreakGlassMaxTTL.Seconds()),
				},
			},
			ExistenceCheck: b.pathRoleExists,
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{Callback: b.pathRoleRead},
				logical.CreateOperation: &framework.PathOperation{
					Callback:                    b.pathRoleWrite,
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
				},
				logical.UpdateOperation: &framework.PathOperation{
					Callback:                    b.pathRoleWrite,
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
				},
				logical.DeleteOperation: &framework.PathOperation{
					Callback:                    b.pathRoleDelete,
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
				},
			},
			HelpSynopsis:    "Define what a grant of this role may give, and for how long.",
			HelpDescription: pathRolesHelp,
		},
		{
			Pattern: "my/roles/?$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: "apono",
				OperationSuffix: "my-roles",
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{Callback: b.pathMyRoles,
					DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "read"}},
			},
			HelpSynopsis:    "What people may ask for: every role, with what it grants and how.",
			HelpDescription: "For the access portal and people's scripts: each role's name, approval (required: ask at requests/<role>; none: a direct grant, if a policy allows grants/<role>), resources, permissions, ttl and max_ttl, whether a justification is required, whether break-glass is allowed, and its approvers. Which resources of a role exist: resources?role=<name>.",
		},
		{
			Pattern: "roles/?$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: "apono",
				OperationSuffix: "roles",
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ListOperation: &framework.PathOperation{Callback: b.pathRoleList},
			},
			HelpSynopsis:    "List the roles.",
			HelpDescription: "List the names of all roles.",
		},
	}
	for k, f := range escalationFields() {
		paths[0].Fields[k] = f
	}
	return paths
}

const pathRolesHelp = `
A role lists the resources a grant may give (resources), the permission levels it may
give them at (permissions, first is the default), how long a grant lasts (ttl, max_ttl),
where its user may log in from (token_bound_cidrs), and whether a justification is
required.

With approval=required, access is asked for at requests/<role> and granted only once
the role's approvers approve (approvers, approval_mode, required_approvals); the request
waits at most request_ttl, and an approved request must be picked up within pickup_ttl.
break_glass lets a requester skip approval with a justification, capped at
break_glass_max_ttl. Resources are checked against Vault's mounts when the role is written: only KV
v2 secrets and folders and Transit keys can be granted. Deleting a role does not end the
grants already issued from it; they end with their leases.
`

func (b *aponoBackend) pathRoleExists(ctx context.Context, req *logical.Request, d *framework.FieldData) (bool, error) {
	role, err := store.GetRole(ctx, req.Storage, d.Get("name").(string))
	return role != nil, err
}

func (b *aponoBackend) pathRoleRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	b.rememberMount(req)
	role, err := store.GetRole(ctx, req.Storage, d.Get("name").(string))
	if err != nil || role == nil {
		return nil, err
	}
	return &logical.Response{Data: role.ResponseData()}, nil
}

func (b *aponoBackend) pathRoleList(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	b.rememberMount(req)
	names, err := req.Storage.List(ctx, store.RoleStoragePrefix)
	if err != nil {
		return nil, err
	}
	return logical.ListResponse(names), nil
}

func (b *aponoBackend) pathMyRoles(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	b.rememberMount(req)
	names, err := req.Storage.List(ctx, store.RoleStoragePrefix)
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	roles := make([]map[string]interface{}, 0, len(names))
	for _, name := range names {
		role, err := b.store.Roles.Get(ctx, req.Storage, name)
		if err != nil {
			return nil, err
		}
		if role == nil {
			continue
		}
		roles = append(roles, map[string]interface{}{
			"name":                  name,
			"approval":              role.ApprovalSetting(),
			"resources":             role.Resources,
			"permissions":           role.Permissions,
			"ttl":                   int64(role.TTL.Seconds()),
			"max_ttl":               int64(role.MaxTTL.Seconds()),
			"require_justification": role.RequireJustification,
			"approvers":             access.NonNil(role.Approvers),
			"approval_mode":         role.ApprovalModeSetting(),
			"required_approvals":    role.RequiredApprovalCount(),
			"break_glass":           role.BreakGlass,
			"break_glass_max_ttl":   int64(role.BreakGlassMaxTTLOrDefault().Seconds()),
			"on_behalf_allowed":     access.NonNil(role.OnBehalfAllowed),
		})
	}
	return &logical.Response{Data: map[string]interface{}{"roles": roles}}, nil
}

func (b *aponoBackend) pathRoleDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	b.rememberMount(req)
	name := d.Get("name").(string)
	lock := locksutil.LockForKey(b.roleLocks, name)
	lock.Lock()
	defer lock.Unlock()
	if err := req.Storage.Delete(ctx, store.RoleStoragePrefix+name); err != nil {
		return nil, err
	}
	b.store.Roles.Changed(name, nil)
	return nil, nil
}

func (b *aponoBackend) pathRoleWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	b.rememberMount(req)
	if resp := rejectUnknownFields(req, d.Schema); resp != nil {
		return resp, nil
	}
	name := d.Get("name").(string)
	if !access.RoleNameRe.MatchString(name) {
		return logical.ErrorResponse(fmt.Sprintf("name %q is not a valid role name: %s", name, access.RoleNameRule)), nil
	}
	lock := locksutil.LockForKey(b.roleLocks, name)
	lock.Lock()
	defer lock.Unlock()

	role, err := store.GetRole(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if role == nil {
		if req.Operation == logical.UpdateOperation {
			return logical.ErrorResponse(fmt.Sprintf("role %q does not exist", name)), nil
		}
		role = &access.Role{}
	}

	if v, ok := d.GetOk("resources"); ok {
		role.Resources = access.Dedupe(v.([]string))
	}
	if len(role.Resources) == 0 {
		return logical.ErrorResponse("resources is required: a list such as kv/app/db,kv/app/*,transit/payments"), nil
	}
	if v, ok := d.GetOk("permissions"); ok {
		role.Permissions = access.Dedupe(v.([]string))
	}
	if v, ok := d.GetOk("ttl"); ok {
		role.TTL = time.Duration(v.(int)) * time.Second
	}
	if v, ok := d.GetOk("max_ttl"); ok {
		role.MaxTTL = time.Duration(v.(int)) * time.Second
	}
	if v, ok := d.GetOk("token_bound_cidrs"); ok {
		role.TokenBoundCIDRs = access.Dedupe(v.([]string))
	}
	if v, ok := d.GetOk("require_justification"); ok {
		role.RequireJustification = v.(bool)
	}
	if msg := setRoleApprovalFields(role, d); msg != "" {
		return logical.ErrorResponse(msg), nil
	}
	if msg := setRoleTimeFields(role, d); msg != "" {
		return logical.ErrorResponse(msg), nil
	}
	if msg := setRoleEscalationFields(role, d); msg != "" {
		return logical.ErrorResponse(msg), nil
	}
	if msg := access.CheckRulesWithinRole(role); msg != "" {
		return logical.ErrorResponse(msg), nil
	}

	// Check the resource names before asking Vault anything about them.
	for _, r := range role.Resources {
		if err := resource.ValidateName(r); err != nil {
			return logical.ErrorResponse("resources: " + err.Error()), nil
		}
	}
	if msg := validateRoleLimits(role); msg != "" {
		return logical.ErrorResponse(msg), nil
	}

	if slices.Contains(role.Approvers, access.ApproverOwner) {
		cfg, err := b.config(ctx, req.Storage)
		if err != nil {
			return nil, err
		}
		if cfg != nil && cfg.IntegrationOwner == "" {
			return logical.ErrorResponse("approvers: owner needs integration_owner in config: it approves resources that name no owner (Transit keys, folders, secrets without an owner tag)"), nil
		}
	}

	client, err := b.getClient(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	mounts, err := client.Mounts(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading sys/mounts: %w", err)
	}
	cfg, err := b.config(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	types := map[string]bool{}
	refs := make([]resource.Ref, 0, len(role.Resources))
	for _, r := range role.Resources {
		ref, err := resource.Resolve(r, mounts, b.resourceOptions(cfg))
		if err != nil {
			return logical.ErrorResponse("resources: " + err.Error()), nil
		}
		types[ref.Type] = true
		refs = append(refs, ref)
	}
	problem, warnings := b.grants.RoleEnding(ctx, client, cfg, refs)
	if problem != "" {
		return logical.ErrorResponse(problem), nil
	}

	if len(role.Permissions) == 0 {
		if len(types) > 1 {
			return logical.ErrorResponse("permissions is required when a role mixes resource types (each permission applies to one type)"), nil
		}
		for t := range types {
			role.Permissions = []string{resource.DefaultPermission[t]}
		}
	}
	for _, p := range role.Permissions {
		t, ok := resource.PermissionTypes[p]
		if !ok {
			return logical.ErrorResponse(fmt.Sprintf("permissions: %q is not a permission level (allowed: %s)", p, resource.KnownPermissions())), nil
		}
		if !types[t] {
			return logical.ErrorResponse(fmt.Sprintf("permissions: %q applies to %s resources, and this role has none", p, t)), nil
		}
	}

	entry, err := logical.StorageEntryJSON(store.RoleStoragePrefix+name, role)
	if err != nil {
		return nil, err
	}
	if err := req.Storage.Put(ctx, entry); err != nil {
		return nil, err
	}
	b.store.Roles.Changed(name, role)
	if len(warnings) == 0 {
		return nil, nil
	}
	return &logical.Response{Warnings: warnings}, nil
}

// setRoleApprovalFields applies and checks the access-flow fields that were sent.
func setRoleApprovalFields(role *access.Role, d *framework.FieldData) string {
	if v, ok := d.GetOk("approval"); ok {
		role.Approval = strings.ToLower(strings.TrimSpace(v.(string)))
	}
	if v, ok := d.GetOk("approvers"); ok {
		role.Approvers = access.Dedupe(v.([]string))
	}
	if v, ok := d.GetOk("approval_mode"); ok {
		role.ApprovalMode = strings.ToLower(strings.TrimSpace(v.(string)))
	}
	if v, ok := d.GetOk("required_approvals"); ok {
		role.RequiredApprovals = v.(int)
		if role.RequiredApprovals < 1 || role.RequiredApprovals > access.MaxRequiredApproval {
			return fmt.Sprintf("required_approvals must be between 1 and %d, got %d", access.MaxRequiredApproval, role.RequiredApprovals)
		}
	}
	durations := []struct {
		field string
		dst   *time.Duration
	}{
		{"request_ttl", &role.RequestTTL},
		{"pickup_ttl", &role.PickupTTL},
		{"break_glass_max_ttl", &role.BreakGlassMaxTTL},
	}
	for _, f := range durations {
		if v, ok := d.GetOk(f.field); ok {
			ttl := time.Duration(v.(int)) * time.Second
			if ttl <= 0 || ttl > access.MaxFlowTTL {
				return fmt.Sprintf("%s must be more than 0 and at most %s, got %s", f.field, access.MaxFlowTTL, ttl)
			}
			*f.dst = ttl
		}
	}
	if v, ok := d.GetOk("require_approver_reason"); ok {
		role.RequireApproverReason = v.(bool)
	}
	if v, ok := d.GetOk("break_glass"); ok {
		role.BreakGlass = v.(bool)
	}
	if v, ok := d.GetOk("break_glass_allowed"); ok {
		role.BreakGlassAllowed = access.Dedupe(v.([]string))
		if len(role.BreakGlassAllowed) > access.MaxApprovers {
			return fmt.Sprintf("break_glass_allowed: at most %d entries are allowed, got %d", access.MaxApprovers, len(role.BreakGlassAllowed))
		}
		for _, a := range role.BreakGlassAllowed {
			if !strings.HasPrefix(a, access.PrincipalGroup+":") && !strings.HasPrefix(a, access.PrincipalEntity+":") {
				return fmt.Sprintf("break_glass_allowed: %q is not a principal (allowed: group:<identity group name>, entity:<entity name>)", textsafe.Truncate(a))
			}
			if _, err := access.ParsePrincipal(a); err != nil {
				return "break_glass_allowed: " + err.Error()
			}
		}
	}
	if v, ok := d.GetOk("on_behalf_allowed"); ok {
		role.OnBehalfAllowed = access.Dedupe(v.([]string))
		if msg := access.ValidatePrincipals("on_behalf_allowed", role.OnBehalfAllowed); msg != "" {
			return msg
		}
	}
	if v, ok := d.GetOk("break_glass_max_live_grants"); ok {
		n := v.(int)
		if n < 0 || n > access.MaxBreakGlassMaxLive {
			return fmt.Sprintf("break_glass_max_live_grants must be between 0 (no limit) and %d, got %d", access.MaxBreakGlassMaxLive, n)
		}
		role.BreakGlassMaxLive = n
		if n == 0 {
			role.BreakGlassMaxLive = -1
		}
	}
	if v, ok := d.GetOk("approver_max_token_age"); ok {
		age := time.Duration(v.(int)) * time.Second
		if age < 0 || age > access.MaxFlowTTL {
			return fmt.Sprintf("approver_max_token_age must be between 0 (off) and %s, got %s", access.MaxFlowTTL, age)
		}
		role.ApproverMaxTokenAge = age
	}

	switch role.ApprovalSetting() {
	case access.ApprovalNone, access.ApprovalRequired:
	default:
		return fmt.Sprintf("approval %q is not allowed (allowed: %s, %s)", textsafe.Truncate(role.Approval), access.ApprovalNone, access.ApprovalRequired)
	}
	switch role.ApprovalModeSetting() {
	case access.ApprovalModeAnyOf, access.ApprovalModeAllOf:
	default:
		return fmt.Sprintf("approval_mode %q is not allowed (allowed: %s, %s)", textsafe.Truncate(role.ApprovalMode), access.ApprovalModeAnyOf, access.ApprovalModeAllOf)
	}
	if msg := access.ValidateApprovers(role.Approvers); msg != "" {
		return msg
	}
	if role.ApprovalRequired() && len(role.Approvers) == 0 {
		return "approvers is required when approval is required: e.g. approvers=owner or approvers=group:kv-owners,entity:alice"
	}
	if role.MaxTTL > 0 && role.BreakGlassMaxTTL > role.MaxTTL {
		return fmt.Sprintf("break_glass_max_ttl (%s) must not be longer than max_ttl (%s)", role.BreakGlassMaxTTL, role.MaxTTL)
	}
	return ""
}

// validateRoleLimits checks the fields that need no call to Vault.
func validateRoleLimits(role *access.Role) string {
	if role.TTL < 0 || role.MaxTTL < 0 {
		return "ttl and max_ttl must not be negative"
	}
	if role.MaxTTL > 0 && role.TTL > role.MaxTTL {
		return fmt.Sprintf("ttl (%s) must not be longer than max_ttl (%s)", role.TTL, role.MaxTTL)
	}
	for _, c := range role.TokenBoundCIDRs {
		if _, _, err := net.ParseCIDR(c); err != nil && net.ParseIP(c) == nil {
			return fmt.Sprintf("token_bound_cidrs: %q is not a CIDR block or IP address", c)
		}
	}
	return ""
}

// setRoleEscalationFields applies the reminder and escalation fields that were sent and
// checks them with the role's request_ttl.
func setRoleEscalationFields(role *access.Role, d *framework.FieldData) string {
	for _, f := range []struct {
		field string
		dst   *time.Duration
	}{{"remind_after", &role.RemindAfter}, {"escalate_after", &role.EscalateAfter}} {
		if v, ok := d.GetOk(f.field); ok {
			*f.dst = time.Duration(v.(int)) * time.Second
		}
	}
	if v, ok := d.GetOk("escalate_to"); ok {
		role.EscalateTo = access.Dedupe(v.([]string))
	}
	if v, ok := d.GetOk("escalation_stands_in_for_owners"); ok {
		role.EscalationForOwners = v.(bool)
	}
	return access.CheckEscalation(role)
}
