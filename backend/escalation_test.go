package backend

import (
	"testing"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/apono-io/vault-plugin-apono/backend/store"
	"github.com/hashicorp/vault/sdk/logical"
)

// at moves the periodic job's clock to d after now and runs it.
func (f *flowEnv) tidyAt(t *testing.T, at time.Time) {
	t.Helper()
	f.b.sweeper.Now = func() time.Time { return at }
	if err := f.b.sweeper.TidyRequests(f.ctx, f.storage); err != nil {
		t.Fatal(err)
	}
}

func TestEscalationFieldsAreChecked(t *testing.T) {
	f := newFlowEnv(t)
	base := map[string]interface{}{"resources": "kv/app/db", "approval": "required", "approvers": "entity:erin"}
	with := func(extra map[string]interface{}) map[string]interface{} {
		out := map[string]interface{}{}
		for k, v := range base {
			out[k] = v
		}
		for k, v := range extra {
			out[k] = v
		}
		return out
	}
	for want, extra := range map[string]map[string]interface{}{
		"remind_after must be at least 1m0s":         {"remind_after": "30s"},
		"escalate_after and escalate_to go together": {"escalate_after": "1h"},
		"escalate_to: \"erin\" is not":               {"escalate_after": "1h", "escalate_to": "erin"},
		"must be shorter than request_ttl":           {"escalate_after": "25h", "escalate_to": "entity:carol"},
		"escalation_stands_in_for_owners needs":      {"escalation_stands_in_for_owners": true},
	} {
		f.mustBadRequest(t, logical.CreateOperation, "roles/bad", with(extra), want)
	}
	if resp, _ := f.do(t, logical.ReadOperation, "roles/bad", nil); resp != nil {
		t.Fatalf("a refused role was stored: %v", resp.Data)
	}
	f.mustOK(t, logical.CreateOperation, "roles/ok", with(map[string]interface{}{"remind_after": "1h", "escalate_after": "2h", "escalate_to": "entity:carol"}))
	d := f.mustOK(t, logical.ReadOperation, "roles/ok", nil).Data
	if d["remind_after"] != int64(3600) || d["escalate_after"] != int64(7200) || len(d["escalate_to"].([]string)) != 1 {
		t.Fatalf("role read: %v", d)
	}
}

// A request nobody decides is reminded once, then escalated once; the escalation
// approver approves in place of the role's approvers, and not before the escalation.
func TestReminderThenEscalationApproves(t *testing.T) {
	f := newFlowEnv(t)
	f.mustOK(t, logical.CreateOperation, "roles/esc", map[string]interface{}{
		"resources": "kv/app/db", "approval": "required", "approvers": "entity:erin", "approval_mode": "all_of",
		"remind_after": "1h", "escalate_after": "2h", "escalate_to": "entity:carol",
	})
	id := f.request(t, "esc", nil)
	rec, _ := store.GetRequest(f.ctx, f.storage, id)
	created := rec.CreatedAt
	f.mustForbiddenAs(t, f.carol, "requests/"+id+"/approve", "not an approver")

	f.tidyAt(t, created.Add(30*time.Minute))
	if rec, _ = store.GetRequest(f.ctx, f.storage, id); !rec.RemindedAt.IsZero() {
		t.Fatal("reminded before remind_after")
	}
	f.tidyAt(t, created.Add(61*time.Minute))
	rec, _ = store.GetRequest(f.ctx, f.storage, id)
	reminded := rec.RemindedAt
	if reminded.IsZero() || !rec.EscalatedAt.IsZero() {
		t.Fatalf("after remind_after: reminded %v, escalated %v", rec.RemindedAt, rec.EscalatedAt)
	}
	// Once: a second run finds nothing to do.
	f.tidyAt(t, created.Add(62*time.Minute))
	if rec, _ = store.GetRequest(f.ctx, f.storage, id); !rec.RemindedAt.Equal(reminded) {
		t.Fatal("reminded twice")
	}
	f.mustForbiddenAs(t, f.carol, "requests/"+id+"/approve", "not an approver")

	f.tidyAt(t, created.Add(121*time.Minute))
	rec, _ = store.GetRequest(f.ctx, f.storage, id)
	if rec.EscalatedAt.IsZero() || len(rec.Sets) != 2 || !rec.Sets[1].Escalation {
		t.Fatalf("after escalate_after: %+v", rec)
	}
	f.tidyAt(t, created.Add(122*time.Minute))
	if again, _ := store.GetRequest(f.ctx, f.storage, id); len(again.Sets) != 2 {
		t.Fatalf("escalated twice: %d sets", len(again.Sets))
	}
	d := f.mustAs(t, f.alice, logical.ReadOperation, "requests/"+id, nil).Data
	if d["escalated_at"] == "" || d["reminded_at"] == "" {
		t.Fatalf("the request does not show its reminder and escalation: %v", d)
	}
	resp := f.mustAs(t, f.carol, logical.UpdateOperation, "requests/"+id+"/approve", nil)
	if resp.Data["status"] != access.StatusApproved {
		t.Fatalf("the escalation approver's approval: %v", resp.Data)
	}
	// The pickup's checks (approvals still hold, owners unchanged) accept it.
	f.mustAs(t, f.alice, logical.UpdateOperation, "requests/"+id+"/grant", nil)
}

// Escalation never takes an owner's veto unless the role says so.
func TestEscalationKeepsOwnersVeto(t *testing.T) {
	for _, standIn := range []bool{false, true} {
		f := newFlowEnv(t)
		f.mustOK(t, logical.CreateOperation, "roles/own", map[string]interface{}{
			"resources": "kv/app/db", "approval": "required", "approvers": "owner",
			"escalate_after": "1h", "escalate_to": "entity:carol", "escalation_stands_in_for_owners": standIn,
		})
		id := f.request(t, "own", nil)
		rec, _ := store.GetRequest(f.ctx, f.storage, id)
		f.tidyAt(t, rec.CreatedAt.Add(61*time.Minute))
		status := f.mustAs(t, f.carol, logical.UpdateOperation, "requests/"+id+"/approve", nil).Data["status"]
		want := access.StatusPending
		if standIn {
			want = access.StatusApproved
		}
		if status != want {
			t.Fatalf("stands in for owners %v: status %v, want %s", standIn, status, want)
		}
		if standIn {
			f.mustAs(t, f.alice, logical.UpdateOperation, "requests/"+id+"/grant", nil)
		}
	}
}
