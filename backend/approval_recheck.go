package backend

import (
	"fmt"
	"strings"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/apono-io/vault-plugin-apono/backend/access/window"
)

// checkApprovalsStillHold is the 403 for a pickup whose approvals no longer carry it:
// each approver's membership is read again from Vault's identity store (someone who left
// an approver group since approving no longer counts for it), and an automatically
// approved request must still match its rule at now, the moment the access starts (for
// a scheduled request too: the rule approved access starting at start_at, and a pickup
// after its windows closed is not what it approved). It matters most for scheduled
// requests, approved days before their start.
func (b *aponoBackend) checkApprovalsStillHold(rec *access.Request, role *access.Role, caller *access.Identity, now time.Time) error {
	if rec.AutoApprovedBy != "" {
		for i := range role.AutoApprove {
			r := &role.AutoApprove[i]
			if r.Name != rec.AutoApprovedBy {
				continue
			}
			a := access.AutoApproval{Requester: caller, Resources: rec.Resources, Permission: rec.Permission, Ttl: rec.TTL, At: now, Sets: rec.Sets}
			if access.MatchAutoApprove([]access.AutoApproveRule{*r}, a) != nil {
				return nil
			}
			if anyTime := *r; r.ParsedWindows.Len() > 0 {
				anyTime.ParsedWindows = window.Set{}
				if access.MatchAutoApprove([]access.AutoApproveRule{anyTime}, a) != nil {
					return forbidden("request %s was approved by rule %q, which approves access only inside its windows (%s), and none is open now (%s): "+
						"a pickup is the start of the access, so pick it up while one is open, or ask again",
						rec.ID, r.Name, r.ParsedWindows, now.UTC().Format(time.RFC3339))
				}
			}
		}
		return forbidden("request %s was approved by rule %q, which no longer approves it (the rule changed, or %s's groups did): ask again",
			rec.ID, rec.AutoApprovedBy, caller.Label())
	}
	var still []access.ApprovalRecord
	var lapsed []string
	for _, a := range rec.Approvals {
		who, err := b.identityOf(a.Approver)
		if err != nil {
			return err
		}
		sets := access.QualifyingSets(who, rec.Sets)
		var kept []int
		for _, i := range a.Sets {
			for _, j := range sets {
				if i == j {
					kept = append(kept, i)
				}
			}
		}
		if len(kept) < len(a.Sets) {
			lapsed = append(lapsed, a.Approver.Label())
		}
		a.Sets = kept
		still = append(still, a)
	}
	if p := rec.Rule().Evaluate(still); !p.Satisfied {
		return forbidden("request %s cannot be picked up: the approval of %s no longer counts (no longer in the approver group as Vault's identity store knows it now), so it is %s; ask again",
			rec.ID, strings.Join(lapsed, ", "), p)
	}
	return nil
}

// identityOf is who ref is now: its entity's name and groups as Vault knows them.
func (b *aponoBackend) identityOf(ref access.IdentityRef) (*access.Identity, error) {
	sys := b.System()
	id := &access.Identity{EntityID: ref.EntityID, EntityName: ref.EntityName}
	entity, err := sys.EntityInfo(ref.EntityID)
	if err != nil {
		return nil, fmt.Errorf("looking up approver %s: %w", ref.EntityName, err)
	}
	if entity == nil || entity.Disabled {
		return id, nil // gone or disabled: in no group
	}
	id.EntityName = entity.Name
	groups, err := sys.GroupsForEntity(ref.EntityID)
	if err != nil {
		return nil, fmt.Errorf("looking up approver %s's groups: %w", ref.EntityName, err)
	}
	for _, g := range groups {
		if g != nil {
			id.Groups = append(id.Groups, g.Name)
		}
	}
	return id, nil
}
