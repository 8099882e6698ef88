package access

import (
	"testing"
	"time"
)

// A bundle request is approved when every part's own rule is: one part's approvers never
// approve another part, each part counts its own required_approvals, and an escalation
// set stands in for every part's non-owner sets (not its owner sets).
func TestBundlePartsAreApprovedEachByItsOwnRule(t *testing.T) {
	group := func(label, name string) ApproverSet {
		return ApproverSet{Label: label, Principals: []Principal{{Kind: PrincipalGroup, Name: name}}, Source: SetSourceRole}
	}
	owner := ApproverSet{Label: "owners of kv/app/db", Principals: []Principal{{Kind: PrincipalGroup, Name: "kv-owners"}}, Source: SetSourceMetadata, Owner: true}
	escalation := ApproverSet{Label: "escalation", Principals: []Principal{{Kind: PrincipalEntity, Name: "carol"}}, Source: SetSourceEscalation, Escalation: true}
	req := &Request{
		Sets: []ApproverSet{group("ops", "ops"), owner},
		Parts: []RequestPart{
			{Role: "ops-role", Mode: ApprovalModeAnyOf, Required: 2, Sets: []int{0}},
			{Role: "db-role", Mode: ApprovalModeAnyOf, Required: 1, Sets: []int{1}},
		},
	}
	approve := func(who string, sets ...int) {
		req.Approvals = append(req.Approvals, ApprovalRecord{Approver: IdentityRef{EntityID: who, EntityName: who}, At: time.Now(), Sets: sets})
	}
	state := func() (bool, bool, bool) {
		_, parts := req.Rule().evaluateParts(req.Approvals)
		return req.Rule().Evaluate(req.Approvals).Satisfied, parts[0].Satisfied, parts[1].Satisfied
	}
	approve("o1", 0)
	if all, p0, p1 := state(); all || p0 || p1 {
		t.Fatalf("one ops approval of two: all %v, parts %v %v", all, p0, p1)
	}
	approve("o2", 0)
	if all, p0, p1 := state(); all || !p0 || p1 {
		t.Fatalf("two ops approvals: all %v, parts %v %v", all, p0, p1)
	}
	// The owner's part is untouched by the ops approvals; the view of the part says so too.
	if got := req.Part(1).Rule().Evaluate(req.Part(1).Approvals); got.Satisfied || got.Distinct != 0 {
		t.Fatalf("owner part view: %+v", got)
	}
	approve("owner", 1)
	if all, _, _ := state(); !all {
		t.Fatal("every part approved, the request is not")
	}

	// Escalation stands in for the ops part (a non-owner set) but never for the owner.
	// (As for one role, required_approvals still counts people: with 2, one escalation
	// approver is not enough.)
	req.Approvals = nil
	req.Parts[0].Required = 1
	req.Sets = append(req.Sets, escalation)
	approve("carol", 2)
	if all, p0, p1 := state(); all || !p0 || p1 {
		t.Fatalf("escalation approval: all %v, parts %v %v (it stands in for ops, not the owner)", all, p0, p1)
	}
	req.Sets[2].ForOwners = true
	if all, _, _ := state(); !all {
		t.Fatal("escalation standing in for owners did not approve the owner part")
	}
}
