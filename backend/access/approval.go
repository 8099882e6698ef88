// Package access holds the pure rules of access flows: principals (group:, entity:), the
// approver sets frozen into a request, the caller's identity as Vault knows it at the
// moment of a call, and when a request's approvals add up. Nothing here calls Vault, reads
// storage or sends events: callers pass values in and get decisions back.
package access

import (
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode"

	"github.com/apono-io/vault-plugin-apono/internal/textsafe"
)

// Role approval settings.
const (
	ApprovalNone     = "none"
	ApprovalRequired = "required"

	ApprovalModeAnyOf = "any_of"
	ApprovalModeAllOf = "all_of"

	ApproverOwner = "owner"

	PrincipalGroup  = "group"
	PrincipalEntity = "entity"

	MaxPrincipalNameLen = 128
	MaxApprovers        = 32
	MaxRequiredApproval = 10
)

// Principal is one identity-store name that may approve: a group (internal, or external
// from OIDC/LDAP) or an entity.
type Principal struct {
	Kind string `json:"kind"` // principalGroup or principalEntity
	Name string `json:"name"`
}

func (p Principal) String() string { return p.Kind + ":" + p.Name }

// ParsePrincipal reads "group:<name>", "entity:<name>", or a bare name, which is a group
// (what a KV owner tag or integration_owner usually holds). Names are never put into a
// Vault path or a policy; they are compared with what Vault's identity store reports.
func ParsePrincipal(s string) (Principal, error) {
	s = strings.TrimSpace(s)
	p := Principal{Kind: PrincipalGroup, Name: s}
	if rest, ok := strings.CutPrefix(s, PrincipalGroup+":"); ok {
		p.Name = strings.TrimSpace(rest)
	} else if rest, ok := strings.CutPrefix(s, PrincipalEntity+":"); ok {
		p = Principal{Kind: PrincipalEntity, Name: strings.TrimSpace(rest)}
	}
	if p.Name == "" {
		return p, fmt.Errorf("%q names no group or entity (use group:<name> or entity:<name>)", textsafe.Truncate(s))
	}
	if n := len([]rune(p.Name)); n > MaxPrincipalNameLen {
		return p, fmt.Errorf("%q is longer than %d characters", textsafe.Truncate(s), MaxPrincipalNameLen)
	}
	for _, r := range p.Name {
		if unicode.IsControl(r) || r == unicode.ReplacementChar || r == ',' {
			return p, fmt.Errorf("%q: character %q is not allowed in a group or entity name", textsafe.Truncate(s), r)
		}
	}
	return p, nil
}

// ParsePrincipalList reads a comma-separated list of principals (an owner tag or
// integration_owner may name several).
func ParsePrincipalList(s string) ([]Principal, error) {
	var out []Principal
	seen := map[Principal]bool{}
	for _, part := range strings.Split(s, ",") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		p, err := ParsePrincipal(part)
		if err != nil {
			return nil, err
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%q names no group or entity", textsafe.Truncate(s))
	}
	return out, nil
}

// ValidateApprovers checks a role's approvers field: group:<name>, entity:<name> or owner.
func ValidateApprovers(approvers []string) string {
	if len(approvers) > MaxApprovers {
		return fmt.Sprintf("approvers: at most %d entries are allowed, got %d", MaxApprovers, len(approvers))
	}
	for _, a := range approvers {
		if a == ApproverOwner {
			continue
		}
		if !strings.HasPrefix(a, PrincipalGroup+":") && !strings.HasPrefix(a, PrincipalEntity+":") {
			return fmt.Sprintf("approvers: %q is not an approver (allowed: group:<identity group name>, entity:<entity name>, owner)", textsafe.Truncate(a))
		}
		if _, err := ParsePrincipal(a); err != nil {
			return "approvers: " + err.Error()
		}
	}
	return ""
}

// ApproverSet is one group of principals whose approval the rules count together: a role
// approver (one group or entity), or the owners of some of the requested resources.
type ApproverSet struct {
	// Label says where the set came from: "group:kv-owners", "owners of kv/app/db".
	Label      string      `json:"label"`
	Principals []Principal `json:"principals"`
	// Source is "role", "custom_metadata", "owners_table" or "integration_owner".
	Source string `json:"source"`
	// Owner marks the owners of resources (approvers=owner): such a set must approve
	// whatever approval_mode says, and only its own members approve for it.
	Owner bool `json:"owner,omitempty"`
	// Resources are the requested resources (or, for a folder, the secrets below it) this
	// set owns: at most maxSetResources names, ResourceCount in all.
	Resources     []string `json:"resources,omitempty"`
	ResourceCount int      `json:"resource_count,omitempty"`
	// Raw is the owner tag or integration_owner as written, for apono/sync's owner.
	Raw string `json:"-"`
	// Escalation marks the set escalation added (escalation.go): its approval stands in
	// for every set that is not an owner set, and for owner sets too with ForOwners. It
	// never has to approve on its own.
	Escalation bool `json:"escalation,omitempty"`
	ForOwners  bool `json:"for_owners,omitempty"`
}

// MaxSetResources bounds the resource names kept in one approver set: a folder may hold
// a thousand secrets of one owner.
const MaxSetResources = 20

// MustApprove reports whether the set needs an approval of its own under mode: every set
// under all_of, and owner sets always. Requests stored before owner sets were marked have
// only their source to say so.
func (s ApproverSet) MustApprove(mode string) bool {
	if s.Escalation {
		return false
	}
	return mode == ApprovalModeAllOf || s.Owner || s.Source == SetSourceMetadata || s.Source == SetSourceIntegration
}

// ownerSet is a set of resource owners (old requests say so by their source only).
func (s ApproverSet) ownerSet() bool {
	return s.Owner || s.Source == SetSourceMetadata || s.Source == SetSourceIntegration
}

// Identity is a caller as Vault's identity store knows it at the moment of a call.
type Identity struct {
	EntityID    string   `json:"entity_id"`
	EntityName  string   `json:"entity_name"`
	DisplayName string   `json:"display_name,omitempty"`
	Name        string   `json:"name,omitempty"` // personName
	Groups      []string `json:"-"`              // names of the entity's groups, inherited and external included
}

// Ref is the part of an identity that is stored with a request or grant.
func (id *Identity) Ref() IdentityRef {
	return IdentityRef{EntityID: id.EntityID, EntityName: id.EntityName, DisplayName: id.DisplayName, Name: id.Name}
}

// IdentityRef is who did something, as stored.
type IdentityRef struct {
	EntityID    string `json:"entity_id"`
	EntityName  string `json:"entity_name"`
	DisplayName string `json:"display_name,omitempty"`
	// Name is how people know the person (personName); empty in older records.
	Name string `json:"name,omitempty"`
}

// Person is the name to show people: Name, or the entity name in older records.
func (r IdentityRef) Person() string {
	if r.Name != "" {
		return r.Name
	}
	return r.EntityName
}

// Label names the identity for people: its name and, where it says more, the display
// name of the login ("carol (userpass-carol)").
func (r IdentityRef) Label() string {
	if r.DisplayName == "" || r.DisplayName == r.Person() {
		return r.Person()
	}
	return r.Person() + " (" + r.DisplayName + ")"
}

func (id *Identity) Label() string { return id.Ref().Label() }

func (r IdentityRef) Data() map[string]interface{} {
	return map[string]interface{}{"entity_id": r.EntityID, "entity_name": r.EntityName, "display_name": r.DisplayName, "name": r.Person()}
}

// MemberOf reports whether id belongs to p.
func (id *Identity) MemberOf(p Principal) bool {
	switch p.Kind {
	case PrincipalEntity:
		return id.EntityName == p.Name
	case PrincipalGroup:
		for _, g := range id.Groups {
			if g == p.Name {
				return true
			}
		}
	}
	return false
}

// QualifyingSets returns the indexes of the sets id may approve for.
func QualifyingSets(id *Identity, sets []ApproverSet) []int {
	var out []int
	for i, s := range sets {
		for _, p := range s.Principals {
			if id.MemberOf(p) {
				out = append(out, i)
				break
			}
		}
	}
	return out
}

// ApprovalRecord is one approval: who, why, when, and which approver sets it counted for
// (decided when it was given, from Vault's identity store at that moment).
type ApprovalRecord struct {
	Approver IdentityRef `json:"approver"`
	Reason   string      `json:"reason,omitempty"`
	At       time.Time   `json:"at"`
	Sets     []int       `json:"sets"`
}

// ApprovalRule is what a request needs: mode, count and the approver sets.
type ApprovalRule struct {
	Mode     string
	Required int
	Sets     []ApproverSet
	// Parts, for a bundle request, are each part's rule over some of Sets: the request
	// needs every part's approval (bundle.go). Mode and Required are then unused.
	Parts []PartRule
}

// ApprovalProgress says how far a request is from approved.
type ApprovalProgress struct {
	Satisfied bool
	// Distinct is the number of distinct approving entities; Needed is what the rule
	// needs of them (required_approvals).
	Distinct, Needed int
	// SetsCovered of SetsTotal sets that need an approval of their own (every set under
	// all_of, owner sets always) have one.
	SetsCovered, SetsTotal int
	// Owners says the sets that must approve are owner sets only (any_of with owners).
	Owners bool
	// Missing labels the sets that need an approval of their own and have none yet.
	Missing []string
}

// String is the "approvals so far out of those needed" of a list entry.
func (p ApprovalProgress) String() string {
	if p.SetsTotal == 0 {
		return fmt.Sprintf("%d/%d approvals", p.Distinct, p.Needed)
	}
	kind := "approver sets"
	if p.Owners {
		kind = "owner sets"
	}
	return fmt.Sprintf("%d/%d approvals, %d/%d %s", p.Distinct, p.Needed, p.SetsCovered, p.SetsTotal, kind)
}

// Evaluate applies rule to approvals. Each entity counts once however often it approved.
// A request needs rule.Required distinct approvers from any set and, besides, an approval
// from every set that must approve on its own: every set under all_of, and each owner set
// whatever the mode, so that no owner's resource is granted on another owner's word.
func (rule ApprovalRule) Evaluate(approvals []ApprovalRecord) ApprovalProgress {
	if len(rule.Parts) > 0 {
		total, _ := rule.evaluateParts(approvals)
		return total
	}
	needed := rule.Required
	if needed < 1 {
		needed = 1
	}
	entities := map[string]bool{}
	covered := map[int]bool{}
	for _, a := range approvals {
		if len(a.Sets) == 0 || a.Approver.EntityID == "" {
			continue // never stored, but never counted either
		}
		entities[a.Approver.EntityID] = true
		for _, i := range a.Sets {
			if i < 0 || i >= len(rule.Sets) {
				continue
			}
			covered[i] = true
			// An escalation approver approves in place of the sets it stands in for.
			if e := rule.Sets[i]; e.Escalation {
				for j, s := range rule.Sets {
					if !s.ownerSet() || e.ForOwners {
						covered[j] = true
					}
				}
			}
		}
	}
	p := ApprovalProgress{Distinct: len(entities), Needed: needed, Owners: rule.Mode != ApprovalModeAllOf}
	for i, s := range rule.Sets {
		if !s.MustApprove(rule.Mode) {
			continue
		}
		p.SetsTotal++
		if covered[i] {
			p.SetsCovered++
		} else {
			p.Missing = append(p.Missing, s.Label)
		}
	}
	p.Satisfied = p.Distinct >= needed && len(p.Missing) == 0
	return p
}

// ApproverNames is every principal of sets, deduplicated and sorted: "who can approve".
func ApproverNames(sets []ApproverSet) []string {
	seen := map[string]bool{}
	for _, s := range sets {
		for _, p := range s.Principals {
			seen[p.String()] = true
		}
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
