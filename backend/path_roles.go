package backend

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/logical"
)

const roleStoragePrefix = "role/"

// roleNameRe is stricter than framework.GenericNameRegex (which the path pattern uses so
// that a bad name gets a 400 naming the rule instead of "unsupported path").
var roleNameRe = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9_-]{0,62}[A-Za-z0-9])?$`)

const roleNameRule = "1 to 64 letters, digits, '_' or '-', starting and ending with a letter or digit"

// roleEntry says what a role may grant and for how long.
type roleEntry struct {
	Resources            []string      `json:"resources"`
	Permissions          []string      `json:"permissions"`
	TTL                  time.Duration `json:"ttl"`
	MaxTTL               time.Duration `json:"max_ttl"`
	TokenBoundCIDRs      []string      `json:"token_bound_cidrs,omitempty"`
	RequireJustification bool          `json:"require_justification"`
}

func (r *roleEntry) responseData() map[string]interface{} {
	cidrs := r.TokenBoundCIDRs
	if cidrs == nil {
		cidrs = []string{}
	}
	return map[string]interface{}{
		"resources":             r.Resources,
		"permissions":           r.Permissions,
		"ttl":                   int64(r.TTL.Seconds()),
		"max_ttl":               int64(r.MaxTTL.Seconds()),
		"token_bound_cidrs":     cidrs,
		"require_justification": r.RequireJustification,
	}
}

func pathRoles(b *aponoBackend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern: "roles/" + framework.GenericNameRegex("name"),
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: "apono",
				OperationSuffix: "role",
			},
			Fields: map[string]*framework.FieldSchema{
				"name": {
					Type:        framework.TypeLowerCaseString,
					Description: "Name of the role: " + roleNameRule + ".",
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
					Description: "Longest a grant may last, renewals included. Default: the mount's max lease TTL.",
				},
				"token_bound_cidrs": {
					Type:        framework.TypeCommaStringSlice,
					Description: "CIDR blocks or IPs the grant's user may log in from and use its tokens from.",
				},
				"require_justification": {
					Type:        framework.TypeBool,
					Description: "Refuse grants that give no justification.",
					Default:     false,
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
}

const pathRolesHelp = `
A role lists the resources a grant may give (resources), the permission levels it may
give them at (permissions, first is the default), how long a grant lasts (ttl, max_ttl),
where its user may log in from (token_bound_cidrs), and whether a justification is
required. Resources are checked against Vault's mounts when the role is written: only KV
v2 secrets and folders and Transit keys can be granted. Deleting a role does not end the
grants already issued from it; they end with their leases.
`

func getRole(ctx context.Context, s logical.Storage, name string) (*roleEntry, error) {
	entry, err := s.Get(ctx, roleStoragePrefix+name)
	if err != nil {
		return nil, err
	}
	if entry == nil {
		return nil, nil
	}
	role := &roleEntry{}
	if err := entry.DecodeJSON(role); err != nil {
		return nil, fmt.Errorf("decoding role %q: %w", name, err)
	}
	return role, nil
}

func (b *aponoBackend) pathRoleExists(ctx context.Context, req *logical.Request, d *framework.FieldData) (bool, error) {
	role, err := getRole(ctx, req.Storage, d.Get("name").(string))
	return role != nil, err
}

func (b *aponoBackend) pathRoleRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	b.rememberMount(req)
	role, err := getRole(ctx, req.Storage, d.Get("name").(string))
	if err != nil || role == nil {
		return nil, err
	}
	return &logical.Response{Data: role.responseData()}, nil
}

func (b *aponoBackend) pathRoleList(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	b.rememberMount(req)
	names, err := req.Storage.List(ctx, roleStoragePrefix)
	if err != nil {
		return nil, err
	}
	return logical.ListResponse(names), nil
}

func (b *aponoBackend) pathRoleDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	b.rememberMount(req)
	name := d.Get("name").(string)
	lock := locksutil.LockForKey(b.roleLocks, name)
	lock.Lock()
	defer lock.Unlock()
	return nil, req.Storage.Delete(ctx, roleStoragePrefix+name)
}

func (b *aponoBackend) pathRoleWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	b.rememberMount(req)
	if resp := rejectUnknownFields(req, d.Schema); resp != nil {
		return resp, nil
	}
	name := d.Get("name").(string)
	if !roleNameRe.MatchString(name) {
		return logical.ErrorResponse(fmt.Sprintf("name %q is not a valid role name: %s", name, roleNameRule)), nil
	}
	lock := locksutil.LockForKey(b.roleLocks, name)
	lock.Lock()
	defer lock.Unlock()

	role, err := getRole(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if role == nil {
		if req.Operation == logical.UpdateOperation {
			return logical.ErrorResponse(fmt.Sprintf("role %q does not exist", name)), nil
		}
		role = &roleEntry{}
	}

	if v, ok := d.GetOk("resources"); ok {
		role.Resources = dedupe(v.([]string))
	}
	if len(role.Resources) == 0 {
		return logical.ErrorResponse("resources is required: a list such as kv/app/db,kv/app/*,transit/payments"), nil
	}
	if v, ok := d.GetOk("permissions"); ok {
		role.Permissions = dedupe(v.([]string))
	}
	if v, ok := d.GetOk("ttl"); ok {
		role.TTL = time.Duration(v.(int)) * time.Second
	}
	if v, ok := d.GetOk("max_ttl"); ok {
		role.MaxTTL = time.Duration(v.(int)) * time.Second
	}
	if v, ok := d.GetOk("token_bound_cidrs"); ok {
		role.TokenBoundCIDRs = dedupe(v.([]string))
	}
	if v, ok := d.GetOk("require_justification"); ok {
		role.RequireJustification = v.(bool)
	}

	// Check the resource names before asking Vault anything about them.
	for _, r := range role.Resources {
		if err := validateResourceName(r); err != nil {
			return logical.ErrorResponse("resources: " + err.Error()), nil
		}
	}
	if msg := validateRoleLimits(role); msg != "" {
		return logical.ErrorResponse(msg), nil
	}

	client, err := b.getClient(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	mounts, err := client.Mounts(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading sys/mounts: %w", err)
	}
	types := map[string]bool{}
	for _, r := range role.Resources {
		ref, err := resolveResource(r, mounts, b.ownMountPath())
		if err != nil {
			return logical.ErrorResponse("resources: " + err.Error()), nil
		}
		types[ref.Type] = true
	}

	if len(role.Permissions) == 0 {
		if len(types) > 1 {
			return logical.ErrorResponse("permissions is required when a role mixes KV and Transit resources"), nil
		}
		for t := range types {
			role.Permissions = []string{defaultPermission[t]}
		}
	}
	for _, p := range role.Permissions {
		t, ok := permissionTypes[p]
		if !ok {
			return logical.ErrorResponse(fmt.Sprintf("permissions: %q is not a permission level (allowed: %s)", p, knownPermissions())), nil
		}
		if !types[t] {
			return logical.ErrorResponse(fmt.Sprintf("permissions: %q applies to %s resources, and this role has none", p, t)), nil
		}
	}

	entry, err := logical.StorageEntryJSON(roleStoragePrefix+name, role)
	if err != nil {
		return nil, err
	}
	if err := req.Storage.Put(ctx, entry); err != nil {
		return nil, err
	}
	return nil, nil
}

// validateRoleLimits checks the fields that need no call to Vault.
func validateRoleLimits(role *roleEntry) string {
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

func dedupe(in []string) []string {
	seen := make(map[string]bool, len(in))
	out := make([]string, 0, len(in))
	for _, s := range in {
		s = strings.TrimSpace(s)
		if s == "" || seen[s] {
			continue
		}
		seen[s] = true
		out = append(out, s)
	}
	return out
}
