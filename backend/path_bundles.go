package backend

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/apono-io/vault-plugin-apono/backend/config"
	"github.com/apono-io/vault-plugin-apono/backend/store"
	"github.com/apono-io/vault-plugin-apono/internal/textsafe"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/logical"
)

// Bundles: what a task needs from several roles, asked for once (access/bundle.go).

func pathBundles(b *aponoBackend) []*framework.Path {
	fields := map[string]*framework.FieldSchema{
		"name": {Type: framework.TypeLowerCaseString, Required: true, Description: "Name of the bundle."},
		"description": {Type: framework.TypeString,
			Description: fmt.Sprintf("What the bundle is for, shown to the people who ask for it (at most %d characters).", maxBundleDescriptionLen)},
		"parts": {Type: framework.TypeSlice,
			Description: fmt.Sprintf("The role entries (1 to %d): each {\"role\": <name>, \"resources\": [a subset of the role's; default all], "+
				"\"permission\": <one of the role's; default its first>}, or a string \"<role>\" or \"<role>:<permission>\" (several comma-separated). Every role must have "+
				"approval=required; each keeps its own approvers.", access.MaxBundleParts),
			DisplayAttrs: &framework.DisplayAttributes{Name: "Parts"}},
		"ttl": {Type: framework.TypeDurationSecond,
			Description: "How long the bundle's access lasts, and the most a request may ask for: no longer than any part's role max_ttl. Default: the shortest of the parts' roles' ttl."},
	}
	for k, f := range escalationFields() {
		fields[k] = f
	}
	return []*framework.Path{
		{
			Pattern: "bundles/" + framework.GenericNameRegex("name"),
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: "apono",
				OperationSuffix: "bundle",
			},
			Fields:         fields,
			ExistenceCheck: b.pathBundleExists,
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{Callback: b.pathBundleRead},
				logical.CreateOperation: &framework.PathOperation{Callback: b.pathBundleWrite,
					ForwardPerformanceStandby: true, ForwardPerformanceSecondary: true},
				logical.UpdateOperation: &framework.PathOperation{Callback: b.pathBundleWrite,
					ForwardPerformanceStandby: true, ForwardPerformanceSecondary: true},
				logical.DeleteOperation: &framework.PathOperation{Callback: b.pathBundleDelete,
					ForwardPerformanceStandby: true, ForwardPerformanceSecondary: true},
			},
			HelpSynopsis:    "Define a bundle: several roles' access, asked for, approved and held as one.",
			HelpDescription: pathBundlesHelp,
		},
		{
			Pattern: "bundles/?$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: "apono",
				OperationSuffix: "bundles",
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ListOperation: &framework.PathOperation{Callback: b.pathBundleList},
			},
			HelpSynopsis:    "List the bundles.",
			HelpDescription: "List the names of all bundles.",
		},
		{
			Pattern: "my/bundles/?$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: "apono",
				OperationSuffix: "my-bundles",
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{Callback: b.pathMyBundles,
					DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "read"}},
			},
			HelpSynopsis:    "What people may ask for as a bundle: every bundle, its parts and who approves each.",
			HelpDescription: "For the access portal and people's scripts: each bundle's name, description, ttl, whether a justification is required (if any part's role requires one) and its parts (role, resources, permission, the role's approvers). Ask for one at requests/bundle/<name>.",
		},
	}
}

const maxBundleDescriptionLen = 512

const pathBundlesHelp = `
A bundle names what one task needs from several roles: a list of parts, each a role, a
subset of its resources and one of its permissions. A person asks for it once, at
requests/bundle/<name>; every part needs its own role's approval (its approvers, mode and
required_approvals; with approvers=owner, the owners of each resource), and the strictest
of the roles' settings applies to the whole (justification, approver reasons, approver
token age, access windows, request_ttl and pickup_ttl). Once approved, the pickup at
requests/<id>/grant gives one login: one userpass user with one policy covering every
part, and one lease that ends all of it together.

Every role must have approval=required (a bundle never grants without approval), and ttl
may not exceed any part's max_ttl. Roles are checked when the bundle is written and
again when a request is made and picked up. remind_after, escalate_after and escalate_to
work as on a role. Deleting a bundle refuses the pickup of its approved requests; grants
already issued end with their leases.
`

func (b *aponoBackend) pathBundleExists(ctx context.Context, req *logical.Request, d *framework.FieldData) (bool, error) {
	bundle, err := store.GetBundle(ctx, req.Storage, d.Get("name").(string))
	return bundle != nil, err
}

func (b *aponoBackend) pathBundleRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	b.rememberMount(req)
	bundle, err := store.GetBundle(ctx, req.Storage, d.Get("name").(string))
	if err != nil || bundle == nil {
		return nil, err
	}
	return &logical.Response{Data: bundleData(bundle)}, nil
}

func bundleData(bundle *access.Bundle) map[string]interface{} {
	parts := make([]map[string]interface{}, 0, len(bundle.Parts))
	for _, p := range bundle.Parts {
		parts = append(parts, map[string]interface{}{"role": p.Role, "resources": access.NonNil(p.Resources), "permission": p.Permission})
	}
	return map[string]interface{}{
		"description":                     bundle.Description,
		"parts":                           parts,
		"ttl":                             int64(bundle.TTL.Seconds()),
		"remind_after":                    int64(bundle.RemindAfter.Seconds()),
		"escalate_after":                  int64(bundle.EscalateAfter.Seconds()),
		"escalate_to":                     access.NonNil(bundle.EscalateTo),
		"escalation_stands_in_for_owners": bundle.EscalationForOwners,
	}
}

func (b *aponoBackend) pathBundleList(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	b.rememberMount(req)
	names, err := store.ListBundles(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	return logical.ListResponse(names), nil
}

func (b *aponoBackend) pathBundleDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	b.rememberMount(req)
	name := d.Get("name").(string)
	lock := locksutil.LockForKey(b.roleLocks, access.BundleRoleName(name))
	lock.Lock()
	defer lock.Unlock()
	return nil, store.DeleteBundle(ctx, req.Storage, name)
}

func (b *aponoBackend) pathBundleWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	b.rememberMount(req)
	if resp := rejectUnknownFields(req, d.Schema); resp != nil {
		return resp, nil
	}
	name := d.Get("name").(string)
	if !access.RoleNameRe.MatchString(name) {
		return logical.ErrorResponse(fmt.Sprintf("name %q is not a valid bundle name: %s", textsafe.Truncate(name), access.RoleNameRule)), nil
	}
	lock := locksutil.LockForKey(b.roleLocks, access.BundleRoleName(name))
	lock.Lock()
	defer lock.Unlock()

	bundle, err := store.GetBundle(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if bundle == nil {
		if req.Operation == logical.UpdateOperation {
			return logical.ErrorResponse(fmt.Sprintf("bundle %q does not exist", name)), nil
		}
		bundle = &access.Bundle{}
	}
	if v, ok := d.GetOk("description"); ok {
		bundle.Description = v.(string)
		if msg := checkFreeText("description", bundle.Description, maxBundleDescriptionLen); msg != "" {
			return logical.ErrorResponse(msg), nil
		}
	}
	if v, ok := d.GetOk("parts"); ok {
		parts, msg := parseBundleParts(v.([]interface{}))
		if msg != "" {
			return logical.ErrorResponse(msg), nil
		}
		bundle.Parts = parts
	}
	if v, ok := d.GetOk("ttl"); ok {
		if v.(int) < 0 {
			return logical.ErrorResponse("ttl must not be negative"), nil
		}
		bundle.TTL = time.Duration(v.(int)) * time.Second // 0: the parts' default, below
	}
	flow := bundle.FlowRole(access.MaxFlowTTL) // checked against the roles' request_ttl below
	if msg := setRoleEscalationFields(flow, d); msg != "" {
		return logical.ErrorResponse(msg), nil
	}
	bundle.RemindAfter, bundle.EscalateAfter, bundle.EscalateTo, bundle.EscalationForOwners = flow.RemindAfter, flow.EscalateAfter, flow.EscalateTo, flow.EscalationForOwners

	roles, cfg, msg, err := b.bundleRoles(ctx, req.Storage, bundle)
	if err != nil || msg != "" {
		return errorOrBadRequest(err, msg)
	}
	if msg := access.CheckBundleRoles(bundle.Parts, roles); msg != "" {
		return logical.ErrorResponse(msg), nil
	}
	strict, msg := access.StrictestOf(roles)
	if msg != "" {
		return logical.ErrorResponse(msg), nil
	}
	if msg := access.CheckEscalation(bundle.FlowRole(strict.RequestTTL)); msg != "" {
		return logical.ErrorResponse(msg + " (the bundle's request_ttl is the shortest of its roles')"), nil
	}
	client, err := b.getClient(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	gr, _, _, msg, err := b.grants.ResolveBundle(ctx, cfg, name, bundle, roles, bundle.TTL, "bundle check", client)
	if err != nil || msg != "" {
		return errorOrBadRequest(err, msg)
	}
	if bundle.TTL == 0 {
		bundle.TTL = gr.TTL
	}
	if err := store.PutBundle(ctx, req.Storage, name, bundle); err != nil {
		return nil, err
	}
	b.Logger().Info("bundle written", "bundle", name, "roles", bundleRoleNames(bundle), "ttl", bundle.TTL.String())
	return nil, nil
}

// parseBundleParts reads the parts field: JSON objects, a JSON list in one string (the
// CLI's parts=@parts.json), or "<role>[:<permission>]" strings.
func parseBundleParts(raw []interface{}) ([]access.BundlePart, string) {
	var out []access.BundlePart
	for i, v := range raw {
		switch x := v.(type) {
		case string:
			s := strings.TrimSpace(x)
			if strings.HasPrefix(s, "[") || strings.HasPrefix(s, "{") {
				var list []interface{}
				if strings.HasPrefix(s, "{") {
					s = "[" + s + "]"
				}
				if err := json.Unmarshal([]byte(s), &list); err != nil {
					return nil, fmt.Sprintf("parts[%d]: not JSON: %s", i, textsafe.Truncate(err.Error()))
				}
				more, msg := parseBundleParts(list)
				if msg != "" {
					return nil, msg
				}
				out = append(out, more...)
				continue
			}
			for _, entry := range strings.Split(s, ",") {
				role, permission, _ := strings.Cut(entry, ":")
				out = append(out, access.BundlePart{Role: strings.ToLower(strings.TrimSpace(role)), Permission: strings.TrimSpace(permission)})
			}
		case map[string]interface{}:
			var p access.BundlePart
			for k, val := range x {
				switch k {
				case "role", "permission":
					s, ok := val.(string)
					if !ok {
						return nil, fmt.Sprintf("parts[%d].%s must be a string", i, k)
					}
					if k == "role" {
						p.Role = strings.ToLower(strings.TrimSpace(s))
					} else {
						p.Permission = strings.TrimSpace(s)
					}
				case "resources":
					list, ok := val.([]interface{})
					if !ok {
						return nil, fmt.Sprintf("parts[%d].resources must be a list of resource names", i)
					}
					for _, r := range list {
						s, ok := r.(string)
						if !ok {
							return nil, fmt.Sprintf("parts[%d].resources must be a list of resource names", i)
						}
						p.Resources = append(p.Resources, s)
					}
					p.Resources = access.Dedupe(p.Resources)
					if len(p.Resources) == 0 {
						return nil, fmt.Sprintf("parts[%d].resources: give at least one resource, or leave it out for all of the role's", i)
					}
				default:
					return nil, fmt.Sprintf("parts[%d]: unknown key %q (allowed: role, resources, permission)", i, textsafe.Truncate(k))
				}
			}
			out = append(out, p)
		default:
			return nil, fmt.Sprintf("parts[%d]: a part is an object {\"role\", \"resources\", \"permission\"} or a string \"<role>[:<permission>]\"", i)
		}
	}
	for i, p := range out {
		if !access.RoleNameRe.MatchString(p.Role) {
			return nil, fmt.Sprintf("parts[%d]: role %q is not a role name: %s", i, textsafe.Truncate(p.Role), access.RoleNameRule)
		}
	}
	if len(out) == 0 {
		return nil, "parts: a bundle needs at least one role entry"
	}
	if len(out) > access.MaxBundleParts {
		return nil, fmt.Sprintf("parts: at most %d role entries are allowed, got %d", access.MaxBundleParts, len(out))
	}
	return out, ""
}

// bundleRoles reads the role of each of bundle's parts (nil where it does not exist) and
// the config.
func (b *aponoBackend) bundleRoles(ctx context.Context, s logical.Storage, bundle *access.Bundle) ([]*access.Role, *config.Config, string, error) {
	cfg, err := b.config(ctx, s)
	if err != nil {
		return nil, nil, "", err
	}
	if cfg == nil {
		return nil, nil, errNotConfigured.Error(), nil
	}
	roles := make([]*access.Role, len(bundle.Parts))
	for i, p := range bundle.Parts {
		if roles[i], err = b.store.Roles.Get(ctx, s, p.Role); err != nil {
			return nil, nil, "", err
		}
	}
	return roles, cfg, "", nil
}

func bundleRoleNames(bundle *access.Bundle) []string {
	out := make([]string, 0, len(bundle.Parts))
	for _, p := range bundle.Parts {
		out = append(out, p.Role)
	}
	return out
}

func (b *aponoBackend) pathMyBundles(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	b.rememberMount(req)
	names, err := store.ListBundles(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	out := make([]map[string]interface{}, 0, len(names))
	for _, name := range names {
		bundle, err := store.GetBundle(ctx, req.Storage, name)
		if err != nil {
			return nil, err
		}
		if bundle == nil {
			continue
		}
		roles := make([]*access.Role, len(bundle.Parts))
		parts := make([]map[string]interface{}, 0, len(bundle.Parts))
		usable := true
		for i, p := range bundle.Parts {
			role, err := b.store.Roles.Get(ctx, req.Storage, p.Role)
			if err != nil {
				return nil, err
			}
			if role == nil {
				usable = false
				continue
			}
			roles[i] = role
			resources, permission := p.Resources, p.Permission
			if len(resources) == 0 {
				resources = role.Resources
			}
			if permission == "" && len(role.Permissions) > 0 {
				permission = role.Permissions[0]
			}
			parts = append(parts, map[string]interface{}{"role": p.Role, "resources": resources, "permission": permission,
				"approvers": access.NonNil(role.Approvers), "approval_mode": role.ApprovalModeSetting(), "required_approvals": role.RequiredApprovalCount()})
		}
		if !usable || access.CheckBundleRoles(bundle.Parts, roles) != "" {
			continue // a bundle whose roles changed cannot be asked for until an operator fixes it
		}
		strict, _ := access.StrictestOf(roles)
		out = append(out, map[string]interface{}{"name": name, "description": bundle.Description, "ttl": int64(bundle.TTL.Seconds()),
			"require_justification": strict.RequireJustification, "parts": parts})
	}
	return &logical.Response{Data: map[string]interface{}{"bundles": out}}, nil
}
