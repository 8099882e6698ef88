package backend

import (
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode"

	"github.com/apono-io/vault-plugin-apono/internal/textsafe"
)

// The approval rules of access flows. Everything here is pure: who may approve is decided
// from the approver sets frozen into a request when it was made and from the caller's
// identity as Vault knows it at the moment of the call (identity.go).

// Role approval settings.
const (
	approvalNone     = "none"
	approvalRequired = "required"

	approvalModeAnyOf = "any_of"
	approvalModeAllOf = "all_of"

	approverOwner = "owner"

	principalGroup  = "group"
	principalEntity = "entity"

	maxPrincipalNameLen = 128
	maxApprovers        = 32
	maxRequiredApproval = 10
)

// principal is one identity-store name that may approve: a group (internal, or external
// from OIDC/LDAP) or an entity.
type principal struct {
	Kind string `json:"kind"` // principalGroup or principalEntity
	Name string `json:"name"`
}

func (p principal) String() string { return p.Kind + ":" + p.Name }

// parsePrincipal reads "group:<name>", "entity:<name>", or a bare name, which is a group
// (what a KV owner tag or integration_owner usually holds). Names are never put into a
// Vault path or a policy; they are compared with what Vault's identity store reports.
func parsePrincipal(s string) (principal, error) {
	s = strings.TrimSpace(s)
	p := principal{Kind: principalGroup, Name: s}
	if rest, ok := strings.CutPrefix(s, principalGroup+":"); ok {
		p.Name = strings.TrimSpace(rest)
	} else if rest, ok := strings.CutPrefix(s, principalEntity+":"); ok {
		p = principal{Kind: principalEntity, Name: strings.TrimSpace(rest)}
	}
	if p.Name == "" {
		return p, fmt.Errorf("%q names no group or entity (use group:<name> or entity:<name>)", textsafe.Truncate(s))
	}
	if n := len([]rune(p.Name)); n > maxPrincipalNameLen {
		return p, fmt.Errorf("%q is longer than %d characters", textsafe.Truncate(s), maxPrincipalNameLen)
	}
	for _, r := range p.Name {
		if unicode.IsControl(r) || r == unicode.ReplacementChar || r == ',' {
			return p, fmt.Errorf("%q: character %q is not allowed in a group or entity name", textsafe.Truncate(s), r)
		}
	}
	return p, nil
}

// parsePrincipalList reads a comma-separated list of principals (an owner tag or
// integration_owner may name several).
func parsePrincipalList(s string) ([]principal, error) {
	var out []principal
	seen := map[principal]bool{}
	for _, part := range strings.Split(s, ",") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		p, err := parsePrincipal(part)
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

// validateApprovers checks a role's approvers field: group:<name>, entity:<name> or owner.
func validateApprovers(approvers []string) string {
	if len(approvers) > maxApprovers {
		return fmt.Sprintf("approvers: at most %d entries are allowed, got %d", maxApprovers, len(approvers))
	}
	for _, a := range approvers {
		if a == approverOwner {
			continue
		}
		if !strings.HasPrefix(a, principalGroup+":") && !strings.HasPrefix(a, principalEntity+":") {
			return fmt.Sprintf("approvers: %q is not an approver (allowed: group:<identity group name>, entity:<entity name>, owner)", textsafe.Truncate(a))
		}
		if _, err := parsePrincipal(a); err != nil {
			return "approvers: " + err.Error()
		}
	}
	return ""
}

// approverSet is one group of principals whose approval the rules count together: a role
// approver (one group or entity), or the owners of some of the requested resources.
type approverSet struct {
	// Label says where the set came from: "group:kv-owners", "owners of kv/app/db".
	Label      string      `json:"label"`
	Principals []principal `json:"principals"`
	// Source is "role", "custom_metadata" or "integration_owner".
	Source string `json:"source"`
	// Owner marks the owners of resources (approvers=owner): such a set must approve
	// whatever approval_mode says, and only its own members approve for it.
	Owner bool `json:"owner,omitempty"`
	// Resources are the requested resources (or, for a folder, the secrets below it) this
	// set owns: at most maxSetResources names, ResourceCount in all.
	Resources     []string `json:"resources,omitempty"`
	ResourceCount int      `json:"resource_count,omitempty"`
	// raw is the owner tag or integration_owner as written, for apono/sync's owner.
	raw string
}

// maxSetResources bounds the resource names kept in one approver set: a folder may hold
// a thousand secrets of one owner.
const maxSetResources = 20

// mustApprove reports whether the set needs an approval of its own under mode: every set
// under all_of, and owner sets always. Requests stored before owner sets were marked have
// only their source to say so.
func (s approverSet) mustApprove(mode string) bool {
	return mode == approvalModeAllOf || s.Owner || s.Source == setSourceMetadata || s.Source == setSourceIntegration
}

// identity is a caller as Vault's identity store knows it at the moment of a call.
type identity struct {
	EntityID    string   `json:"entity_id"`
	EntityName  string   `json:"entity_name"`
	DisplayName string   `json:"display_name,omitempty"`
	Name        string   `json:"name,omitempty"` // personName
	Groups      []string `json:"-"`              // names of the entity's groups, inherited and external included
}

// ref is the part of an identity that is stored with a request or grant.
func (id *identity) ref() identityRef {
	return identityRef{EntityID: id.EntityID, EntityName: id.EntityName, DisplayName: id.DisplayName, Name: id.Name}
}

// identityRef is who did something, as stored.
type identityRef struct {
	EntityID    string `json:"entity_id"`
	EntityName  string `json:"entity_name"`
	DisplayName string `json:"display_name,omitempty"`
	// Name is how people know the person (personName); empty in older records.
	Name string `json:"name,omitempty"`
}

// person is the name to show people: Name, or the entity name in older records.
func (r identityRef) person() string {
	if r.Name != "" {
		return r.Name
	}
	return r.EntityName
}

// label names the identity for people: its name and, where it says more, the display
// name of the login ("carol (userpass-carol)").
func (r identityRef) label() string {
	if r.DisplayName == "" || r.DisplayName == r.person() {
		return r.person()
	}
	return r.person() + " (" + r.DisplayName + ")"
}

func (id *identity) label() string { return id.ref().label() }

func (r identityRef) data() map[string]interface{} {
	return map[string]interface{}{"entity_id": r.EntityID, "entity_name": r.EntityName, "display_name": r.DisplayName, "name": r.person()}
}

// memberOf reports whether id belongs to p.
func (id *identity) memberOf(p principal) bool {
	switch p.Kind {
	case principalEntity:
		return id.EntityName == p.Name
	case principalGroup:
		for _, g := range id.Groups {
			if g == p.Name {
				return true
			}
		}
	}
	return false
}

// qualifyingSets returns the indexes of the sets id may approve for.
func qualifyingSets(id *identity, sets []approverSet) []int {
	var out []int
	for i, s := range sets {
		for _, p := range s.Principals {
			if id.memberOf(p) {
				out = append(out, i)
				break
			}
		}
	}
	return out
}

// approvalRecord is one approval: who, why, when, and which approver sets it counted for
// (decided when it was given, from Vault's identity store at that moment).
type approvalRecord struct {
	Approver identityRef `json:"approver"`
	Reason   string      `json:"reason,omitempty"`
	At       time.Time   `json:"at"`
	Sets     []int       `json:"sets"`
}

// approvalRule is what a request needs: mode, count and the approver sets.
type approvalRule struct {
	Mode     string
	Required int
	Sets     []approverSet
}

// approvalProgress says how far a request is from approved.
type approvalProgress struct {
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
func (p approvalProgress) String() string {
	if p.SetsTotal == 0 {
		return fmt.Sprintf("%d/%d approvals", p.Distinct, p.Needed)
	}
	kind := "approver sets"
	if p.Owners {
		kind = "owner sets"
	}
	return fmt.Sprintf("%d/%d approvals, %d/%d %s", p.Distinct, p.Needed, p.SetsCovered, p.SetsTotal, kind)
}

// evaluate applies rule to approvals. Each entity counts once however often it approved.
// A request needs rule.Required distinct approvers from any set and, besides, an approval
// from every set that must approve on its own: every set under all_of, and each owner set
// whatever the mode, so that no owner's resource is granted on another owner's word.
func (rule approvalRule) evaluate(approvals []approvalRecord) approvalProgress {
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
			if i >= 0 && i < len(rule.Sets) {
				covered[i] = true
			}
		}
	}
	p := approvalProgress{Distinct: len(entities), Needed: needed, Owners: rule.Mode != approvalModeAllOf}
	for i, s := range rule.Sets {
		if !s.mustApprove(rule.Mode) {
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

// approverNames is every principal of sets, deduplicated and sorted: "who can approve".
func approverNames(sets []approverSet) []string {
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
