package backend

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

const (
	grantStoragePrefix  = "grant/"
	maxRequesterLen     = 256
	maxJustificationLen = 1024
	grantIDPattern      = `[0-9a-f]{16}`
)

// grantRecord is what the plugin keeps about a live grant. It never holds the password.
type grantRecord struct {
	ID            string    `json:"id"`
	Role          string    `json:"role"`
	Requester     string    `json:"requester"`
	Justification string    `json:"justification,omitempty"`
	Resources     []string  `json:"resources"`
	Permission    string    `json:"permission"`
	Username      string    `json:"username"`
	Policy        string    `json:"policy"`
	UserpassMount string    `json:"userpass_mount"`
	IssuedAt      time.Time `json:"issued_at"`
	ExpiresAt     time.Time `json:"expires_at"`
	// MaxExpiresAt is when renewals stop: issue time plus the role's max_ttl.
	MaxExpiresAt time.Time `json:"max_expires_at"`

	// Access flows: the caller's identity entity where it is known, the request the grant
	// was picked up from and its approvals, or break-glass.
	RequesterEntity *identityRef     `json:"requester_entity,omitempty"`
	RequestID       string           `json:"request_id,omitempty"`
	Approvals       []approvalRecord `json:"approvals,omitempty"`
	BreakGlass      bool             `json:"break_glass,omitempty"`

	// EntityName and EntityID name the grant user's identity entity, when the plugin made
	// one (grant_identity.go).
	EntityName string `json:"entity_name,omitempty"`
	EntityID   string `json:"entity_id,omitempty"`
}

func (g *grantRecord) summary() map[string]interface{} {
	return map[string]interface{}{
		"grant_id":       g.ID,
		"role":           g.Role,
		"requester":      g.Requester,
		"justification":  g.Justification,
		"resources":      g.Resources,
		"permission":     g.Permission,
		"username":       g.Username,
		"policy":         g.Policy,
		"userpass_mount": g.UserpassMount,
		"issued_at":      g.IssuedAt.UTC().Format(time.RFC3339),
		"expires_at":     g.ExpiresAt.UTC().Format(time.RFC3339),
		"max_expires_at": g.MaxExpiresAt.UTC().Format(time.RFC3339),
		"request_id":     g.RequestID,
		"entity_name":    g.EntityName,
		"entity_id":      g.EntityID,
		"approvals":      approvalsData(g.Approvals),
		"break_glass":    g.BreakGlass,
		"requester_entity": func() interface{} {
			if g.RequesterEntity == nil {
				return nil
			}
			return g.RequesterEntity.data()
		}(),
	}
}

// approvalsData is each approver and their reason, for reads of grants and requests.
func approvalsData(approvals []approvalRecord) []map[string]interface{} {
	out := make([]map[string]interface{}, 0, len(approvals))
	for _, a := range approvals {
		out = append(out, map[string]interface{}{
			"approver":    a.Approver.EntityName,
			"entity_id":   a.Approver.EntityID,
			"reason":      a.Reason,
			"approved_at": formatTime(a.At),
		})
	}
	return out
}

func pathGrants(b *aponoBackend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern: "grants/" + framework.GenericNameRegex("role") + "$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: "apono",
				OperationVerb:   "grant",
				OperationSuffix: "access",
			},
			Fields: map[string]*framework.FieldSchema{
				"role": {
					Type:        framework.TypeLowerCaseString,
					Description: "Role to grant from.",
					Required:    true,
				},
				"resources": {
					Type:        framework.TypeCommaStringSlice,
					Description: "Resources to grant: a subset of the role's (a role folder kv/app/* also covers kv/app/db). Default: all of the role's.",
				},
				"permission": {
					Type:        framework.TypeString,
					Description: "Permission level, one of the role's permissions. Default: the role's first.",
				},
				"ttl": {
					Type:        framework.TypeDurationSecond,
					Description: "How long the access lasts. Default: the role's ttl; capped at its max_ttl.",
				},
				"requester": {
					Type:        framework.TypeString,
					Description: fmt.Sprintf("Who the access is for, e.g. an email (at most %d characters). Default: the caller's display name.", maxRequesterLen),
				},
				"justification": {
					Type:        framework.TypeString,
					Description: fmt.Sprintf("Why the access is needed (at most %d characters). Required when the role says so, and for break-glass.", maxJustificationLen),
				},
				"request_id": {
					Type: framework.TypeString,
					Description: "Pick up the grant of an approved access request of this role (only its requester, once). The request fixes " +
						"resources, permission and ttl. The same as writing requests/<id>/grant, but the lease is under grants/<role>/, " +
						"so vault lease revoke -prefix <mount>/grants/<role> ends it with the role's other grants.",
					DisplayAttrs: &framework.DisplayAttributes{Name: "Request ID"},
				},
				"break_glass": {
					Type: framework.TypeBool,
					Description: "On a role with approval=required and break_glass=true: skip approval in an emergency. Needs a justification " +
						"and a caller with an identity entity; the grant is capped at the role's break_glass_max_ttl and marked as break-glass.",
					Default: false,
				},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.UpdateOperation: &framework.PathOperation{
					Callback:                    b.pathGrantIssue,
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
				},
			},
			HelpSynopsis:    "Grant just-in-time access from a role.",
			HelpDescription: pathGrantIssueHelp,
		},
		{
			Pattern: "grants/" + framework.GenericNameRegex("role") + "/(?P<grant_id>" + grantIDPattern + ")$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: "apono",
				OperationSuffix: "grant",
			},
			Fields: map[string]*framework.FieldSchema{
				"role":     {Type: framework.TypeLowerCaseString, Description: "Role the grant was issued from.", Required: true},
				"grant_id": {Type: framework.TypeString, Description: "ID of the grant.", Required: true},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{Callback: b.pathGrantRead},
			},
			HelpSynopsis:    "Read one active grant (never its password).",
			HelpDescription: "Who a grant is for, what it gives, and until when. The password is never stored.",
		},
		{
			Pattern: "grants/?$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: "apono",
				OperationSuffix: "grants",
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ListOperation: &framework.PathOperation{Callback: b.pathGrantList},
			},
			HelpSynopsis:    "List active grants.",
			HelpDescription: "Keys are <role>/<grant_id> (read them at grants/<key>); key_info says who, what, which role and until when.",
		},
	}
}

const pathGrantIssueHelp = `
Writing grants/<role> creates a userpass user whose only policy is a new apono-* ACL
policy giving the requested permission on the requested resources, and returns its
username and password as a lease. Renewing the lease extends the access up to the role's
max_ttl. When the lease expires or is revoked, the user and the policy are deleted, which
also cuts every token the user logged in with.

A role with approval=required refuses direct grants: ask at requests/<role> and, once
approved, pick the grant up here with request_id=<id> (or at requests/<id>/grant; here,
the lease is under grants/<role>/ like every other grant of the role, so one
vault lease revoke -prefix ends them all). If the role allows break-glass,
break_glass=true with a justification grants at once, capped at break_glass_max_ttl.
`

// event describes the grant for notify_url.
func (g *grantRecord) event(typ string) event {
	return event{
		Type: typ, GrantID: g.ID, Role: g.Role, RequestID: g.RequestID,
		Requester: g.Requester, RequesterEntity: g.RequesterEntity,
		Justification: g.Justification, Resources: g.Resources, Permission: g.Permission,
		ExpiresAt: g.ExpiresAt.UTC().Format(time.RFC3339), BreakGlass: g.BreakGlass,
	}
}

func getGrant(ctx context.Context, s logical.Storage, id string) (*grantRecord, error) {
	entry, err := s.Get(ctx, grantStoragePrefix+id)
	if err != nil {
		return nil, err
	}
	if entry == nil {
		return nil, nil
	}
	g := &grantRecord{}
	if err := entry.DecodeJSON(g); err != nil {
		return nil, fmt.Errorf("decoding grant %q: %w", id, err)
	}
	return g, nil
}

func putGrant(ctx context.Context, s logical.Storage, g *grantRecord) error {
	entry, err := logical.StorageEntryJSON(grantStoragePrefix+g.ID, g)
	if err != nil {
		return err
	}
	return s.Put(ctx, entry)
}

func listGrantIDs(ctx context.Context, s logical.Storage) ([]string, error) {
	return s.List(ctx, grantStoragePrefix)
}

func (b *aponoBackend) pathGrantRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	b.rememberMount(req)
	g, err := getGrant(ctx, req.Storage, d.Get("grant_id").(string))
	if err != nil {
		return nil, err
	}
	if g == nil || g.Role != d.Get("role").(string) {
		return nil, nil
	}
	return &logical.Response{Data: g.summary()}, nil
}

func (b *aponoBackend) pathGrantList(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	b.rememberMount(req)
	ids, err := listGrantIDs(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(ids))
	info := make(map[string]interface{}, len(ids))
	for _, id := range ids {
		g, err := getGrant(ctx, req.Storage, id)
		if err != nil {
			return nil, err
		}
		if g == nil {
			continue // revoked between the list and the read
		}
		key := g.Role + "/" + g.ID
		keys = append(keys, key)
		info[key] = g.summary()
	}
	return logical.ListResponseWithInfo(keys, info), nil
}

func (b *aponoBackend) pathGrantIssue(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	b.rememberMount(req)
	if resp := rejectUnknownFields(req, d.Schema); resp != nil {
		return resp, nil
	}
	roleName := d.Get("role").(string)
	if id, ok := d.GetOk("request_id"); ok {
		return b.pickUpAtRole(ctx, req, d, roleName, id.(string))
	}
	role, cfg, msg, err := b.roleAndConfig(ctx, req.Storage, roleName)
	if err != nil || msg != "" {
		return errorOrBadRequest(err, msg)
	}
	in, msg := grantInputFromFields(d)
	if msg != "" {
		return logical.ErrorResponse(msg), nil
	}

	breakGlass := d.Get("break_glass").(bool)
	var caller *identity
	switch {
	case role.approvalRequired() && !breakGlass:
		hint := ""
		if role.BreakGlass {
			hint = ", or in an emergency write break_glass=true with a justification"
		}
		return logical.ErrorResponse(fmt.Sprintf("role %q requires approval: ask for access with vault write %srequests/%s (resources, permission, ttl, justification), then pick the grant up with vault write %sgrants/%s request_id=<request_id> once approved%s",
			roleName, req.MountPoint, roleName, req.MountPoint, roleName, hint)), nil
	case breakGlass && !role.approvalRequired():
		return logical.ErrorResponse(fmt.Sprintf("break_glass: role %q does not require approval, so there is nothing to skip; leave break_glass out", roleName)), nil
	case breakGlass && !role.BreakGlass:
		return logical.ErrorResponse(fmt.Sprintf("break_glass: role %q does not allow break-glass; ask at %srequests/%s", roleName, req.MountPoint, roleName)), nil
	case breakGlass:
		if strings.TrimSpace(in.justification) == "" {
			return logical.ErrorResponse("justification is required for break-glass: say why approval cannot wait"), nil
		}
		if _, sent := d.GetOk("requester"); sent {
			return logical.ErrorResponse("requester: not allowed with break_glass; the requester is the caller's identity entity"), nil
		}
		var msg string
		if caller, msg, err = b.callerIdentity(req); err != nil || msg != "" {
			return errorOrBadRequest(err, "break_glass: "+msg)
		}
	}

	client, err := b.getClient(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	gr, warnings, msg, err := b.resolveGrant(ctx, roleName, role, in, client)
	if err != nil {
		return nil, err
	}
	if msg != "" {
		return logical.ErrorResponse(msg), nil
	}
	if v, ok := d.GetOk("requester"); ok {
		gr.requester = v.(string)
		if m := checkRequester(gr.requester); m != "" {
			return logical.ErrorResponse(m), nil
		}
	} else {
		gr.requester = req.DisplayName
	}
	gr.callerAccessor = req.ClientTokenAccessor
	if breakGlass {
		ref := caller.ref()
		gr.requesterEntity = &ref
		gr.requester = caller.EntityName
		gr.breakGlass = true
		if limit := role.breakGlassMaxTTL(); gr.ttl > limit || gr.maxTTL > limit {
			if gr.ttl > limit {
				warnings = append(warnings, fmt.Sprintf("break-glass grants last at most %s (the role's break_glass_max_ttl); ttl capped", limit))
				gr.ttl = limit
			}
			gr.maxTTL = limit
		}
	}

	resp, err := b.issueGrant(ctx, req.Storage, client, cfg, gr)
	if err != nil {
		return nil, err
	}
	for _, w := range warnings {
		resp.AddWarning(w)
	}
	return resp, nil
}

// roleAndConfig reads what every grant and request needs first: the role and the config;
// msg is a 400 when either is missing.
func (b *aponoBackend) roleAndConfig(ctx context.Context, s logical.Storage, roleName string) (*roleEntry, *pluginConfig, string, error) {
	role, err := b.role(ctx, s, roleName)
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

// errorOrBadRequest returns err if set, else a 400 with msg.
func errorOrBadRequest(err error, msg string) (*logical.Response, error) {
	if err != nil {
		return nil, err
	}
	return logical.ErrorResponse(msg), nil
}

// grantInput is what a caller asks for, before it is checked against the role and mounts.
type grantInput struct {
	resources     []string      // nil: all of the role's
	permission    string        // "": the role's first
	ttl           time.Duration // 0: the role's
	justification string
}

// grantInputFromFields reads resources, permission, ttl and justification; msg is a 400.
func grantInputFromFields(d *framework.FieldData) (in grantInput, msg string) {
	if v, ok := d.GetOk("resources"); ok {
		in.resources = dedupe(v.([]string))
		if len(in.resources) == 0 {
			return in, "resources: give at least one resource, or leave the field out for all of the role's"
		}
	}
	if v, ok := d.GetOk("permission"); ok {
		in.permission = v.(string)
		if in.permission == "" {
			return in, "permission: give a permission level, or leave the field out for the role's default"
		}
	}
	if v, ok := d.GetOk("ttl"); ok {
		if v.(int) < 0 {
			return in, "ttl must not be negative"
		}
		in.ttl = time.Duration(v.(int)) * time.Second
	}
	if v, ok := d.GetOk("justification"); ok {
		in.justification = v.(string)
		if m := checkFreeText("justification", in.justification, maxJustificationLen); m != "" {
			return in, m
		}
	}
	return in, ""
}

// resolveGrant checks in against the role and Vault's mounts; msg is a 400 for the
// caller, err an internal failure.
func (b *aponoBackend) resolveGrant(ctx context.Context, roleName string, role *roleEntry, in grantInput, client vaultClient,
) (gr *grantRequest, warnings []string, msg string, err error) {
	gr = &grantRequest{role: roleName, boundCIDRs: role.TokenBoundCIDRs, justification: in.justification}

	requested := role.Resources
	if in.resources != nil {
		requested = in.resources
	}
	for _, r := range requested {
		if err := validateResourceName(r); err != nil {
			return nil, nil, "resources: " + err.Error(), nil
		}
	}

	gr.permission = role.Permissions[0]
	if in.permission != "" {
		gr.permission = in.permission
		if !contains(role.Permissions, gr.permission) {
			return nil, nil, fmt.Sprintf("permission %q is not allowed by role %q (allowed: %s)", truncateForError(gr.permission), roleName, strings.Join(role.Permissions, ", ")), nil
		}
	}
	if role.RequireJustification && strings.TrimSpace(gr.justification) == "" {
		return nil, nil, fmt.Sprintf("justification is required by role %q", roleName), nil
	}

	gr.ttl, gr.maxTTL, warnings = b.grantTTLs(role, in.ttl)

	// Resolve against the mounts as they are now (read at most grantMountsTTL ago): a mount
	// may have changed since the role was written.
	mounts, err := b.grantMounts.get(ctx, client)
	if err != nil {
		return nil, nil, "", fmt.Errorf("reading sys/mounts: %w", err)
	}
	roleRefs := make([]resourceRef, 0, len(role.Resources))
	for _, r := range role.Resources {
		ref, err := resolveResource(r, mounts, b.ownMountPath())
		if err != nil {
			return nil, nil, fmt.Sprintf("role %q can no longer be granted: %s", roleName, err), nil
		}
		roleRefs = append(roleRefs, ref)
	}
	for _, r := range requested {
		ref, err := resolveResource(r, mounts, b.ownMountPath())
		if err != nil {
			return nil, nil, "resources: " + err.Error(), nil
		}
		if !coveredBy(ref, roleRefs) {
			return nil, nil, fmt.Sprintf("resources: %q is not among role %q's resources (%s)", r, roleName, strings.Join(role.Resources, ", ")), nil
		}
		gr.resources = append(gr.resources, ref)
	}
	for _, ref := range gr.resources {
		if permissionTypes[gr.permission] != ref.Type {
			return nil, nil, fmt.Sprintf("permission %q does not apply to %s resource %q (allowed for it: %s); ask for the resources separately",
				gr.permission, ref.Type, ref.Name, strings.Join(permissionsFor(ref.Type), ", ")), nil
		}
	}
	return gr, warnings, "", nil
}

// grantTTLs picks the grant's TTL and max TTL from the request (0: the role's), the role
// and the mount.
func (b *aponoBackend) grantTTLs(role *roleEntry, requested time.Duration) (ttl, maxTTL time.Duration, warnings []string) {
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
func coveredBy(ref resourceRef, role []resourceRef) bool {
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

// checkFreeText bounds a free-text field and keeps control characters (newlines that
// would forge audit-log lines, escapes) out of it.
func checkFreeText(field, v string, max int) string {
	if n := len([]rune(v)); n > max {
		return fmt.Sprintf("%s is %d characters; at most %d are allowed", field, n, max)
	}
	for _, r := range v {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return fmt.Sprintf("%s must not contain control characters such as newlines (found %q)", field, r)
		}
	}
	return ""
}

func contains(list []string, v string) bool {
	for _, s := range list {
		if s == v {
			return true
		}
	}
	return false
}
