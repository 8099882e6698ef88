package access

import "time"

// Grant is what the plugin keeps about a live grant. It never holds the password.
type Grant struct {
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
	// MaxExpiresAt is when renewals stop: issue time plus the role's max_ttl for a grant
	// written directly; for one picked up from a request, the end that was approved (issue
	// time plus the request's ttl, or start_at plus ttl for a scheduled one). Records
	// stored before approvals capped it hold the role's max_ttl. Approved extensions go
	// past it (ExtendedUntil).
	MaxExpiresAt time.Time `json:"max_expires_at"`
	// LifetimeApproved marks a MaxExpiresAt that is the end approved for the grant's
	// request (false: the role's max_ttl, as in every record stored before).
	LifetimeApproved bool `json:"lifetime_approved,omitempty"`

	// Access flows: the caller's identity entity where it is known, the request the grant
	// was picked up from and its approvals, or break-glass.
	RequesterEntity *IdentityRef     `json:"requester_entity,omitempty"`
	RequestID       string           `json:"request_id,omitempty"`
	Approvals       []ApprovalRecord `json:"approvals,omitempty"`
	BreakGlass      bool             `json:"break_glass,omitempty"`
	// AutoApprovedBy names the auto_approve rule that approved the request (it has no
	// Approvals then).
	AutoApprovedBy string `json:"auto_approved_by,omitempty"`
	// RequesterKind is requesterEntity (the requester is the caller's entity) or
	// requesterStated (a token without an entity, a service, named the requester:
	// StatedBy is that token's display name). Empty in records stored before: stated.
	RequesterKind string `json:"requester_kind,omitempty"`
	StatedBy      string `json:"requester_stated_by,omitempty"`
	// BreakGlassKey is the storage key counting this grant among its requester's live
	// break-glass grants of the role (path_break_glass.go).
	BreakGlassKey string `json:"break_glass_key,omitempty"`
	// Windows are the role's access windows when it was issued: renewals outside them are
	// refused. WindowEnd caps it (windows_cap_grants); WindowsIgnored marks break-glass.
	Windows        []string  `json:"windows,omitempty"`
	WindowEnd      time.Time `json:"window_end,omitempty"`
	WindowsIgnored bool      `json:"windows_ignored,omitempty"`
	// ExtendedUntil is the end approved extensions allow (grants.ApplyExtension), past MaxExpiresAt.
	ExtendedUntil time.Time   `json:"extended_until,omitempty"`
	Extensions    []Extension `json:"extensions,omitempty"`

	// EntityName and EntityID name the grant user's identity entity, when the plugin made
	// one (package grants).
	EntityName string `json:"entity_name,omitempty"`
	EntityID   string `json:"entity_id,omitempty"`

	// RequestedBy is who asked for the grant's request on behalf of its requester, the
	// grantee (on_behalf.go); nil when the requester asked themself.
	RequestedBy *IdentityRef `json:"requested_by,omitempty"`

	// Bundle names the bundle the grant was picked up from (Role is then
	// BundleRoleName(Bundle)); Parts are its role entries, each granted with its permission.
	Bundle string      `json:"bundle,omitempty"`
	Parts  []GrantPart `json:"parts,omitempty"`
}

// GrantPart is one role entry of a bundle's grant.
type GrantPart struct {
	Role       string   `json:"role"`
	Resources  []string `json:"resources"`
	Permission string   `json:"permission"`
}

// GrantPartsData is what reads show of a bundle grant's parts.
func GrantPartsData(parts []GrantPart) []map[string]interface{} {
	out := make([]map[string]interface{}, 0, len(parts))
	for _, p := range parts {
		out = append(out, map[string]interface{}{"role": p.Role, "resources": NonNil(p.Resources), "permission": p.Permission})
	}
	return out
}

func (g *Grant) Summary() map[string]interface{} {
	return map[string]interface{}{
		"grant_id":            g.ID,
		"role":                g.Role,
		"requester":           g.Requester,
		"justification":       g.Justification,
		"resources":           g.Resources,
		"permission":          g.Permission,
		"username":            g.Username,
		"policy":              g.Policy,
		"userpass_mount":      g.UserpassMount,
		"issued_at":           g.IssuedAt.UTC().Format(time.RFC3339),
		"expires_at":          g.ExpiresAt.UTC().Format(time.RFC3339),
		"max_expires_at":      g.MaxExpiresAt.UTC().Format(time.RFC3339),
		"lifetime_approved":   g.LifetimeApproved,
		"request_id":          g.RequestID,
		"entity_name":         g.EntityName,
		"entity_id":           g.EntityID,
		"approvals":           ApprovalsData(g.Approvals),
		"auto_approved_by":    g.AutoApprovedBy,
		"break_glass":         g.BreakGlass,
		"requester_kind":      g.RequesterKindOrStated(),
		"access_windows":      NonNil(g.Windows),
		"window_end":          FormatTime(g.WindowEnd),
		"windows_ignored":     g.WindowsIgnored,
		"extended_until":      FormatTime(g.ExtendedUntil),
		"extensions":          ExtensionsData(g.Extensions),
		"requester_stated_by": g.StatedBy,
		"requester_entity": func() interface{} {
			if g.RequesterEntity == nil {
				return nil
			}
			return g.RequesterEntity.Data()
		}(),
		"bundle": g.Bundle,
		"parts":  GrantPartsData(g.Parts),
		"requested_by": func() interface{} {
			if g.RequestedBy == nil {
				return nil
			}
			return g.RequestedBy.Data()
		}(),
	}
}

// Who a grant's requester is.
const (
	RequesterEntity = "entity" // the caller's identity entity
	RequesterStated = "stated" // named by a token without an entity (a service)
)

// RequesterName is the requester as people know them.
func (g *Grant) RequesterName() string {
	if g.RequesterEntity != nil && g.RequesterKindOrStated() == RequesterEntity {
		return g.RequesterEntity.Person()
	}
	return g.Requester
}

func (g *Grant) RequesterKindOrStated() string {
	if g.RequesterKind == "" {
		return RequesterStated
	}
	return g.RequesterKind
}

func ExtensionsData(exts []Extension) []map[string]interface{} {
	out := make([]map[string]interface{}, 0, len(exts))
	for _, x := range exts {
		out = append(out, map[string]interface{}{"request_id": x.RequestID, "until": FormatTime(x.Until),
			"approvals": ApprovalsData(x.Approvals), "approved_at": FormatTime(x.At)})
	}
	return out
}

// ApprovalsData is each approver and their reason, for reads of grants and requests.
func ApprovalsData(approvals []ApprovalRecord) []map[string]interface{} {
	out := make([]map[string]interface{}, 0, len(approvals))
	for _, a := range approvals {
		out = append(out, map[string]interface{}{
			"approver":    a.Approver.EntityName,
			"name":        a.Approver.Person(),
			"entity_id":   a.Approver.EntityID,
			"reason":      a.Reason,
			"approved_at": FormatTime(a.At),
		})
	}
	return out
}
