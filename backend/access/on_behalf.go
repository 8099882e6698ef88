package access

import (
	"fmt"
	"strings"
	"unicode"

	"github.com/apono-io/vault-plugin-apono/internal/textsafe"
)

// On behalf: a person a role's on_behalf_allowed names asks for access for someone else,
// the grantee (requests/<role> with for=<entity name>). The request is the grantee's:
// Requester is the grantee, who alone picks it up and sees it as theirs, and RequestedBy
// is who asked. Neither may approve or deny it; either may cancel it.

// ValidatePrincipals checks a role's list of group:<name> and entity:<name> (field names
// it in the message); "" when it is fine.
func ValidatePrincipals(field string, list []string) string {
	if len(list) > MaxApprovers {
		return fmt.Sprintf("%s: at most %d entries are allowed, got %d", field, MaxApprovers, len(list))
	}
	for _, a := range list {
		if !strings.HasPrefix(a, PrincipalGroup+":") && !strings.HasPrefix(a, PrincipalEntity+":") {
			return fmt.Sprintf("%s: %q is not a principal (allowed: group:<identity group name>, entity:<entity name>)", field, textsafe.Truncate(a))
		}
		if _, err := ParsePrincipal(a); err != nil {
			return field + ": " + err.Error()
		}
	}
	return ""
}

// MayRequestOnBehalf reports whether id is in the role's on_behalf_allowed (its entity,
// or one of its groups, external groups included).
func (r *Role) MayRequestOnBehalf(id *Identity) bool {
	for _, s := range r.OnBehalfAllowed {
		if p, err := ParsePrincipal(s); err == nil && id.MemberOf(p) {
			return true
		}
	}
	return false
}

// CheckGranteeName checks the for field of a request: an identity entity's name; msg is
// a 400.
func CheckGranteeName(name string) string {
	const rule = "for names the person the access is for: the name of their identity entity (vault read identity/entity/name/<name>)"
	if name == "" {
		return rule + "; it is empty"
	}
	if n := len([]rune(name)); n > MaxPrincipalNameLen {
		return fmt.Sprintf("%s; %q is longer than %d characters", rule, textsafe.Truncate(name), MaxPrincipalNameLen)
	}
	for _, c := range name {
		if unicode.IsControl(c) || c == unicode.ReplacementChar || c == '/' || c == ',' {
			return fmt.Sprintf("%s; character %q is not allowed in it", rule, c)
		}
	}
	return ""
}

// OnBehalf reports whether someone other than the requester asked for the request.
func (r *Request) OnBehalf() bool {
	return r.RequestedBy != nil && r.RequestedBy.EntityID != "" && r.RequestedBy.EntityID != r.Requester.EntityID
}

// IsParty reports whether entityID asked for the request or is its requester (the
// grantee of a request made on behalf): such a person never approves or denies it.
func (r *Request) IsParty(entityID string) bool {
	return entityID != "" && (r.Requester.EntityID == entityID || r.OnBehalf() && r.RequestedBy.EntityID == entityID)
}

// requestedByData is who asked, for reads and list entries: empty when the requester
// asked themself.
func (r *Request) requestedByData(out map[string]interface{}) {
	out["requested_by"], out["requested_by_name"], out["requested_by_entity_id"], out["on_behalf"] = "", "", "", false
	if r.OnBehalf() {
		out["requested_by"] = r.RequestedBy.EntityName
		out["requested_by_name"] = r.RequestedBy.Person()
		out["requested_by_entity_id"] = r.RequestedBy.EntityID
		out["on_behalf"] = true
	}
}
