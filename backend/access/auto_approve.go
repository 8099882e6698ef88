package access

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/access/window"
	"github.com/apono-io/vault-plugin-apono/backend/resource"
	"github.com/apono-io/vault-plugin-apono/internal/textsafe"
	"github.com/hashicorp/go-secure-stdlib/parseutil"
)

// Automatic approval: a role's auto_approve rules approve a request that matches one of
// them at once, recorded with the rule's name in place of an approver and its own event
// (request.auto_approved); one that matches none goes to people as always. The rules are
// pure: they take the request and the requester as Vault knows them now.

const MaxAutoApproveRules = 16

const EventRequestAutoApproved = "request.auto_approved"

// AutoApproveRule is one rule as stored.
type AutoApproveRule struct {
	Name        string        `json:"name"`
	Groups      []string      `json:"groups,omitempty"`
	Entities    []string      `json:"entities,omitempty"`
	Resources   []string      `json:"resources"`
	Permissions []string      `json:"permissions,omitempty"` // empty: any of the role's
	MaxTTL      time.Duration `json:"max_ttl,omitempty"`     // 0: the role's
	Windows     []string      `json:"windows,omitempty"`     // empty: any time
	// ParsedWindows is Windows parsed (ParseAutoApprove).
	ParsedWindows window.Set `json:"-"`
}

func (r *AutoApproveRule) parse() error {
	set, err := window.ParseList(r.Windows)
	if err != nil {
		return fmt.Errorf("rule %q: %w", r.Name, err)
	}
	r.ParsedWindows = set
	return nil
}

// ParseAutoApprove reads the auto_approve field (JSON); msg is a 400.
func ParseAutoApprove(raw string) ([]AutoApproveRule, string) {
	raw = strings.TrimSpace(raw)
	if raw == "" || raw == "[]" {
		return nil, ""
	}
	var in []struct {
		Name        string      `json:"name"`
		Groups      []string    `json:"groups"`
		Entities    []string    `json:"entities"`
		Resources   []string    `json:"resources"`
		Permissions []string    `json:"permissions"`
		MaxTTL      interface{} `json:"max_ttl"`
		Windows     []string    `json:"windows"`
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return nil, fmt.Sprintf("not a JSON list of rules with name, groups, entities, resources, permissions, max_ttl and windows: %s", err)
	}
	if len(in) > MaxAutoApproveRules {
		return nil, fmt.Sprintf("at most %d rules are allowed, got %d", MaxAutoApproveRules, len(in))
	}
	seen := map[string]bool{}
	var out []AutoApproveRule
	for _, r := range in {
		if !RoleNameRe.MatchString(r.Name) || seen[r.Name] {
			return nil, fmt.Sprintf("rule name %q must be unique and %s", textsafe.Truncate(r.Name), RoleNameRule)
		}
		seen[r.Name] = true
		rule := AutoApproveRule{Name: r.Name, Groups: Dedupe(r.Groups), Entities: Dedupe(r.Entities), Resources: Dedupe(r.Resources),
			Permissions: Dedupe(r.Permissions), Windows: r.Windows}
		if len(rule.Groups)+len(rule.Entities) == 0 {
			return nil, fmt.Sprintf("rule %q names no groups or entities: who may it approve for?", r.Name)
		}
		for _, n := range append(append([]string{}, rule.Groups...), rule.Entities...) {
			if _, err := ParsePrincipal(n); err != nil || strings.Contains(n, ":") {
				return nil, fmt.Sprintf("rule %q: %q is not a group or entity name", r.Name, textsafe.Truncate(n))
			}
		}
		if len(rule.Resources) == 0 {
			return nil, fmt.Sprintf("rule %q names no resources", r.Name)
		}
		for _, res := range rule.Resources {
			if err := resource.ValidateName(res); err != nil {
				return nil, fmt.Sprintf("rule %q: %s", r.Name, err)
			}
		}
		for _, p := range rule.Permissions {
			if _, ok := resource.PermissionTypes[p]; !ok {
				return nil, fmt.Sprintf("rule %q: %q is not a permission level (allowed: %s)", r.Name, textsafe.Truncate(p), resource.KnownPermissions())
			}
		}
		if r.MaxTTL != nil {
			d, err := parseutil.ParseDurationSecond(r.MaxTTL)
			if err != nil || d <= 0 {
				return nil, fmt.Sprintf("rule %q: max_ttl %v is not a positive duration such as 1h", r.Name, r.MaxTTL)
			}
			rule.MaxTTL = d
		}
		if err := rule.parse(); err != nil {
			return nil, err.Error()
		}
		rule.Windows = rule.ParsedWindows.Strings()
		out = append(out, rule)
	}
	return out, ""
}

// CheckRulesWithinRole is a 400 when a rule names a resource the role cannot grant.
func CheckRulesWithinRole(role *Role) string {
	for _, r := range role.AutoApprove {
		for _, res := range r.Resources {
			if !NameCoveredBy(res, role.Resources) {
				return fmt.Sprintf("auto_approve: rule %q names %q, which is not among the role's resources (%s)", r.Name, res, strings.Join(role.Resources, ", "))
			}
		}
	}
	return ""
}

// NameCoveredBy reports whether resource name is one of names or lies below one of their
// folders (kv/app/* covers kv/app/db and kv/app/sub/*).
func NameCoveredBy(name string, names []string) bool {
	for _, n := range names {
		if n == name {
			return true
		}
		if base, ok := strings.CutSuffix(n, "*"); ok && strings.HasPrefix(name, base) {
			return true
		}
	}
	return false
}

func AutoApproveData(rules []AutoApproveRule) []map[string]interface{} {
	out := make([]map[string]interface{}, 0, len(rules))
	for _, r := range rules {
		out = append(out, map[string]interface{}{
			"name": r.Name, "groups": NonNil(r.Groups), "entities": NonNil(r.Entities), "resources": r.Resources,
			"permissions": NonNil(r.Permissions), "max_ttl": int64(r.MaxTTL.Seconds()), "windows": NonNil(r.Windows),
		})
	}
	return out
}

// AutoApproval is what a rule is asked to approve.
type AutoApproval struct {
	Requester  *Identity
	Resources  []string // the request's resource names
	Permission string
	Ttl        time.Duration
	At         time.Time // when the access would start
	Sets       []ApproverSet
}

// MatchAutoApprove is the first rule that approves a, or nil. A requester who may
// approve the request themselves (a member of one of its approver sets) is never
// approved by a rule: that would be self-approval by another name.
func MatchAutoApprove(rules []AutoApproveRule, a AutoApproval) *AutoApproveRule {
	if len(QualifyingSets(a.Requester, a.Sets)) > 0 {
		return nil
	}
	for i := range rules {
		r := &rules[i]
		who := false
		for _, g := range r.Groups {
			who = who || a.Requester.MemberOf(Principal{Kind: PrincipalGroup, Name: g})
		}
		for _, e := range r.Entities {
			who = who || a.Requester.MemberOf(Principal{Kind: PrincipalEntity, Name: e})
		}
		if !who {
			continue
		}
		what := len(a.Resources) > 0
		for _, res := range a.Resources {
			what = what && NameCoveredBy(res, r.Resources)
		}
		if !what || (len(r.Permissions) > 0 && !slices.Contains(r.Permissions, a.Permission)) || (r.MaxTTL > 0 && a.Ttl > r.MaxTTL) {
			continue
		}
		if r.ParsedWindows.Len() > 0 {
			if open, _ := r.ParsedWindows.At(a.At); !open {
				continue
			}
		}
		return r
	}
	return nil
}
