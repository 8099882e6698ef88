package access

import (
	"fmt"
	"strings"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/access/window"
)

// Refused is a rule's refusal of what a person asked: the paths answer it with a 403.
type Refused struct{ Msg string }

func (e *Refused) Error() string { return e.Msg }

func refused(format string, args ...interface{}) error {
	return &Refused{Msg: fmt.Sprintf(format, args...)}
}

// CheckApprovalsStillHold is the refusal (a *Refused) of a pickup whose approvals no longer carry it:
// each approver's membership is read again (identityOf: from Vault's identity store) (someone who left
// an approver group since approving no longer counts for it), and an automatically
// approved request must still match its rule at now, the moment the access starts (for
// a scheduled request too: the rule approved access starting at start_at, and a pickup
// after its windows closed is not what it approved). It matters most for scheduled
// requests, approved days before their start.
func CheckApprovalsStillHold(rec *Request, role *Role, caller *Identity, now time.Time, identityOf func(IdentityRef) (*Identity, error)) error {
	if rec.AutoApprovedBy != "" {
		for i := range role.AutoApprove {
			r := &role.AutoApprove[i]
			if r.Name != rec.AutoApprovedBy {
				continue
			}
			a := AutoApproval{Requester: caller, Resources: rec.Resources, Permission: rec.Permission, Ttl: rec.TTL, At: now, Sets: rec.Sets}
			if MatchAutoApprove([]AutoApproveRule{*r}, a) != nil {
				return nil
			}
			if anyTime := *r; r.ParsedWindows.Len() > 0 {
				anyTime.ParsedWindows = window.Set{}
				if MatchAutoApprove([]AutoApproveRule{anyTime}, a) != nil {
					return refused("request %s was approved by rule %q, which approves access only inside its windows (%s), and none is open now (%s): "+
						"a pickup is the start of the access, so pick it up while one is open, or ask again",
						rec.ID, r.Name, r.ParsedWindows, now.UTC().Format(time.RFC3339))
				}
			}
		}
		return refused("request %s was approved by rule %q, which no longer approves it (the rule changed, or %s's groups did): ask again",
			rec.ID, rec.AutoApprovedBy, caller.Label())
	}
	var still []ApprovalRecord
	var lapsed []string
	for _, a := range rec.Approvals {
		who, err := identityOf(a.Approver)
		if err != nil {
			return err
		}
		sets := QualifyingSets(who, rec.Sets)
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
		return refused("request %s cannot be picked up: the approval of %s no longer counts (no longer in the approver group as Vault's identity store knows it now), so it is %s; ask again",
			rec.ID, strings.Join(lapsed, ", "), p)
	}
	return nil
}
