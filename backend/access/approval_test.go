package access

import (
	"reflect"
	"strings"
	"testing"
)

func TestParsePrincipal(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Principal
		wantErr string
	}{
		{in: "kv-owners", want: Principal{PrincipalGroup, "kv-owners"}},
		{in: "group:Domain Admins", want: Principal{PrincipalGroup, "Domain Admins"}},
		{in: " entity:erin ", want: Principal{PrincipalEntity, "erin"}},
		{in: "group:/okta/team", want: Principal{PrincipalGroup, "/okta/team"}},
		{in: "entity:", wantErr: "names no group or entity"},
		{in: "group:a\nb", wantErr: "not allowed"},
		{in: "group:" + strings.Repeat("x", 129), wantErr: "longer than 128"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParsePrincipal(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("want error %q, got %v (%v)", tc.wantErr, err, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
	list, err := ParsePrincipalList("kv-owners, entity:bob,kv-owners,,group:kv-owners")
	if err != nil || !reflect.DeepEqual(list, []Principal{{PrincipalGroup, "kv-owners"}, {PrincipalEntity, "bob"}}) {
		t.Fatalf("list: %v %v", list, err)
	}
	if _, err := ParsePrincipalList(" , "); err == nil {
		t.Fatal("an empty list must be an error")
	}
}

func TestValidateApprovers(t *testing.T) {
	for in, want := range map[string]string{
		"owner":                    "",
		"group:kv-owners":          "",
		"entity:erin,owner":        "",
		"kv-owners":                "is not an approver",
		"user:bob":                 "is not an approver",
		"group:":                   "names no group",
		"entity:a" + "\x00" + "b":  "not allowed",
		"owner,group:x,entity:y,z": "is not an approver",
	} {
		got := ValidateApprovers(strings.Split(in, ","))
		if (want == "") != (got == "") || !strings.Contains(got, want) {
			t.Errorf("validateApprovers(%q) = %q, want %q", in, got, want)
		}
	}
}

// The approval rules as a table: each case is a rule, the approvals given (approver entity
// and the sets it qualified for when it approved) and whether the request is approved.
func TestApprovalRules(t *testing.T) {
	owners := ApproverSet{Label: "owner of kv/a", Principals: []Principal{{PrincipalGroup, "kv-owners"}}}
	payOwners := ApproverSet{Label: "owner of kv/b", Principals: []Principal{{PrincipalGroup, "pay-owners"}}}
	security := ApproverSet{Label: "group:security", Principals: []Principal{{PrincipalGroup, "security"}}, Source: SetSourceRole}
	owned := func(label, group, source string) ApproverSet {
		return ApproverSet{Label: label, Principals: []Principal{{PrincipalGroup, group}}, Source: source, Owner: true}
	}
	ownedDB := owned("owners of kv/a", "kv-owners", SetSourceMetadata)
	ownedPay := owned("owners of kv/b", "pay-owners", SetSourceMetadata)
	unowned := owned("integration owner of kv/c", "security", SetSourceIntegration)
	folderDB := owned("owners of kv/app/a", "kv-owners", SetSourceMetadata)
	folderPay := owned("owners of kv/app/b", "pay-owners", SetSourceMetadata)
	folderUnowned := owned("integration owner of kv/app/c", "security", SetSourceIntegration)
	legacyOwned := ApproverSet{Label: "owner of kv/a", Principals: []Principal{{PrincipalGroup, "kv-owners"}}, Source: SetSourceMetadata}
	legacyUnowned := ApproverSet{Label: "owner of kv/c", Principals: []Principal{{PrincipalGroup, "security"}}, Source: SetSourceIntegration}
	type given struct {
		entity string
		sets   []int
	}
	for _, tc := range []struct {
		name      string
		rule      ApprovalRule
		approvals []given
		want      bool
		distinct  int
		missing   []string
	}{
		{name: "any_of, nobody yet", rule: ApprovalRule{Mode: ApprovalModeAnyOf, Required: 1, Sets: []ApproverSet{owners}}, want: false},
		{name: "any_of, one approver", rule: ApprovalRule{Mode: ApprovalModeAnyOf, Required: 1, Sets: []ApproverSet{owners}},
			approvals: []given{{"bob", []int{0}}}, want: true, distinct: 1},
		{name: "any_of needs 2, one approver twice", rule: ApprovalRule{Mode: ApprovalModeAnyOf, Required: 2, Sets: []ApproverSet{owners}},
			approvals: []given{{"bob", []int{0}}, {"bob", []int{0}}}, want: false, distinct: 1},
		{name: "any_of needs 2, two approvers", rule: ApprovalRule{Mode: ApprovalModeAnyOf, Required: 2, Sets: []ApproverSet{owners}},
			approvals: []given{{"bob", []int{0}}, {"dave", []int{0}}}, want: true, distinct: 2},
		{name: "any_of, two sets, one from either suffices", rule: ApprovalRule{Mode: ApprovalModeAnyOf, Required: 1, Sets: []ApproverSet{owners, security}},
			approvals: []given{{"erin", []int{1}}}, want: true, distinct: 1},
		{name: "all_of, only the first set", rule: ApprovalRule{Mode: ApprovalModeAllOf, Required: 1, Sets: []ApproverSet{owners, payOwners}},
			approvals: []given{{"bob", []int{0}}}, want: false, distinct: 1, missing: []string{"owner of kv/b"}},
		{name: "all_of, both sets", rule: ApprovalRule{Mode: ApprovalModeAllOf, Required: 1, Sets: []ApproverSet{owners, payOwners}},
			approvals: []given{{"bob", []int{0}}, {"pat", []int{1}}}, want: true, distinct: 2},
		{name: "all_of, one member of both sets covers both", rule: ApprovalRule{Mode: ApprovalModeAllOf, Required: 1, Sets: []ApproverSet{owners, payOwners}},
			approvals: []given{{"both", []int{0, 1}}}, want: true, distinct: 1},
		{name: "all_of with required 2, one member of both sets is not enough", rule: ApprovalRule{Mode: ApprovalModeAllOf, Required: 2, Sets: []ApproverSet{owners, payOwners}},
			approvals: []given{{"both", []int{0, 1}}}, want: false, distinct: 1},
		{name: "an approval that qualified for no set never counts", rule: ApprovalRule{Mode: ApprovalModeAnyOf, Required: 1, Sets: []ApproverSet{owners}},
			approvals: []given{{"carol", nil}}, want: false},
		{name: "required 0 means 1", rule: ApprovalRule{Mode: ApprovalModeAnyOf, Required: 0, Sets: []ApproverSet{owners}},
			approvals: []given{{"bob", []int{0}}}, want: true, distinct: 1},

		// Owner sets (approvers=owner) must each approve, whatever the mode.
		{name: "owners, any_of: one owner does not approve another's resource", rule: ApprovalRule{Mode: ApprovalModeAnyOf, Required: 1, Sets: []ApproverSet{ownedDB, ownedPay}},
			approvals: []given{{"bob", []int{0}}}, want: false, distinct: 1, missing: []string{"owners of kv/b"}},
		{name: "owners, any_of: each owner approves its own", rule: ApprovalRule{Mode: ApprovalModeAnyOf, Required: 1, Sets: []ApproverSet{ownedDB, ownedPay}},
			approvals: []given{{"bob", []int{0}}, {"pat", []int{1}}}, want: true, distinct: 2},
		{name: "owners: the integration owner approves only what has no owner", rule: ApprovalRule{Mode: ApprovalModeAnyOf, Required: 1, Sets: []ApproverSet{ownedDB, unowned}},
			approvals: []given{{"erin", []int{1}}}, want: false, distinct: 1, missing: []string{"owners of kv/a"}},
		{name: "owners: the owned and the unowned each approved", rule: ApprovalRule{Mode: ApprovalModeAnyOf, Required: 1, Sets: []ApproverSet{ownedDB, unowned}},
			approvals: []given{{"erin", []int{1}}, {"bob", []int{0}}}, want: true, distinct: 2},
		{name: "owners: a folder's secrets of two owners and one without", rule: ApprovalRule{Mode: ApprovalModeAnyOf, Required: 1, Sets: []ApproverSet{folderDB, folderPay, folderUnowned}},
			approvals: []given{{"bob", []int{0}}, {"pat", []int{1}}}, want: false, distinct: 2, missing: []string{"integration owner of kv/app/c"}},
		{name: "owners: a folder approved by all three", rule: ApprovalRule{Mode: ApprovalModeAnyOf, Required: 1, Sets: []ApproverSet{folderDB, folderPay, folderUnowned}},
			approvals: []given{{"bob", []int{0}}, {"pat", []int{1}}, {"erin", []int{2}}}, want: true, distinct: 3},
		{name: "owners: a member of two owner sets covers both", rule: ApprovalRule{Mode: ApprovalModeAnyOf, Required: 1, Sets: []ApproverSet{ownedDB, ownedPay}},
			approvals: []given{{"both", []int{0, 1}}}, want: true, distinct: 1},
		{name: "owners: required_approvals counts on top", rule: ApprovalRule{Mode: ApprovalModeAnyOf, Required: 2, Sets: []ApproverSet{ownedDB}},
			approvals: []given{{"bob", []int{0}}}, want: false, distinct: 1},
		{name: "owners: required_approvals on top, two owners of the same set", rule: ApprovalRule{Mode: ApprovalModeAnyOf, Required: 2, Sets: []ApproverSet{ownedDB}},
			approvals: []given{{"bob", []int{0}}, {"dave", []int{0}}}, want: true, distinct: 2},
		{name: "owners beside a role group, any_of: the group is optional", rule: ApprovalRule{Mode: ApprovalModeAnyOf, Required: 1, Sets: []ApproverSet{security, ownedDB}},
			approvals: []given{{"bob", []int{1}}}, want: true, distinct: 1},
		{name: "owners beside a role group, any_of: the group alone is not enough", rule: ApprovalRule{Mode: ApprovalModeAnyOf, Required: 1, Sets: []ApproverSet{security, ownedDB}},
			approvals: []given{{"erin", []int{0}}}, want: false, distinct: 1, missing: []string{"owners of kv/a"}},
		{name: "owners beside a role group, all_of: both", rule: ApprovalRule{Mode: ApprovalModeAllOf, Required: 1, Sets: []ApproverSet{security, ownedDB}},
			approvals: []given{{"bob", []int{1}}}, want: false, distinct: 1, missing: []string{"group:security"}},
		{name: "owners, all_of: every owner set", rule: ApprovalRule{Mode: ApprovalModeAllOf, Required: 1, Sets: []ApproverSet{ownedDB, ownedPay}},
			approvals: []given{{"bob", []int{0}}, {"pat", []int{1}}}, want: true, distinct: 2},
		// A request stored before owner sets were marked is read by its sets' sources.
		{name: "owners of an older request, by source", rule: ApprovalRule{Mode: ApprovalModeAnyOf, Required: 1, Sets: []ApproverSet{legacyOwned, legacyUnowned}},
			approvals: []given{{"erin", []int{1}}}, want: false, distinct: 1, missing: []string{"owner of kv/a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var approvals []ApprovalRecord
			for _, g := range tc.approvals {
				approvals = append(approvals, ApprovalRecord{Approver: IdentityRef{EntityID: "id-" + g.entity, EntityName: g.entity}, Sets: g.sets})
			}
			p := tc.rule.Evaluate(approvals)
			if p.Satisfied != tc.want || p.Distinct != tc.distinct {
				t.Fatalf("got satisfied=%v distinct=%d (%s); want %v, %d", p.Satisfied, p.Distinct, p, tc.want, tc.distinct)
			}
			if tc.missing != nil && !reflect.DeepEqual(p.Missing, tc.missing) {
				t.Fatalf("missing %v, want %v", p.Missing, tc.missing)
			}
		})
	}
}

func TestQualifyingSets(t *testing.T) {
	sets := []ApproverSet{
		{Label: "group:kv-owners", Principals: []Principal{{PrincipalGroup, "kv-owners"}}},
		{Label: "entity:erin", Principals: []Principal{{PrincipalEntity, "erin"}}},
		{Label: "owner of kv/x", Principals: []Principal{{PrincipalGroup, "security"}, {PrincipalEntity, "bob"}}},
	}
	for _, tc := range []struct {
		id   Identity
		want []int
	}{
		{Identity{EntityName: "bob", Groups: []string{"kv-owners"}}, []int{0, 2}},
		{Identity{EntityName: "erin", Groups: []string{"security"}}, []int{1, 2}},
		{Identity{EntityName: "carol"}, nil},
		// A group's name is matched exactly, never as a prefix or case-folded.
		{Identity{EntityName: "x", Groups: []string{"kv-owners-2", "KV-OWNERS"}}, nil},
	} {
		if got := QualifyingSets(&tc.id, sets); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s %v: got %v, want %v", tc.id.EntityName, tc.id.Groups, got, tc.want)
		}
	}
}
