package access

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// At pickup an approval counts only while its approver is still in the set it approved
// for, as the identity store says now; one who left is a refusal naming them.
func TestApprovalsAreRecheckedAtPickup(t *testing.T) {
	now := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	bob := IdentityRef{EntityID: "e-bob", EntityName: "bob"}
	rec := &Request{
		ID: "r1", Mode: ApprovalModeAnyOf, Required: 1,
		Sets:      []ApproverSet{{Label: "group:kv-owners", Principals: []Principal{{Kind: PrincipalGroup, Name: "kv-owners"}}, Source: SetSourceRole}},
		Approvals: []ApprovalRecord{{Approver: bob, At: now.Add(-time.Hour), Sets: []int{0}}},
	}
	caller := &Identity{EntityID: "e-alice", EntityName: "alice"}
	groups := []string{"kv-owners"}
	lookup := func(ref IdentityRef) (*Identity, error) {
		return &Identity{EntityID: ref.EntityID, EntityName: ref.EntityName, Groups: groups}, nil
	}
	if err := CheckApprovalsStillHold(rec, &Role{}, caller, now, lookup); err != nil {
		t.Fatalf("bob still in kv-owners: %v", err)
	}
	groups = nil
	err := CheckApprovalsStillHold(rec, &Role{}, caller, now, lookup)
	var r *Refused
	if !errors.As(err, &r) || !strings.Contains(r.Msg, "bob") {
		t.Fatalf("bob left kv-owners: %v, want a refusal naming bob", err)
	}
	failing := func(IdentityRef) (*Identity, error) { return nil, errors.New("identity store down") }
	if err := CheckApprovalsStillHold(rec, &Role{}, caller, now, failing); err == nil || errors.As(err, &r) {
		t.Fatalf("lookup failing: %v, want the lookup's error, not a refusal", err)
	}
}
