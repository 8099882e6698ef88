package backend

import (
	"testing"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/hashicorp/vault/sdk/logical"
)

// Free text people write (justifications, reasons) with a character that shows nothing
// or reorders the text around it is a 400 naming the field, and changes nothing.
func TestHiddenCharactersInFreeTextAreRefused(t *testing.T) {
	f := newFlowEnv(t)
	f.mustOK(t, logical.CreateOperation, "roles/app", map[string]interface{}{
		"resources": "kv/app/db", "approval": "required", "approvers": "owner", "break_glass": true,
	})
	id := f.request(t, "app", map[string]interface{}{"justification": "INC-1 über café"})
	for _, bad := range []string{"\u202E", "\u202A", "\u2066", "\u2069", "\u200E", "\u200F", "\u061C", "\u200B", "\u200C", "\u200D", "\u2060", "\uFEFF"} {
		text := "INC-1234 " + bad + "lanoitisop"
		f.mustBadRequestAs(t, f.alice, logical.UpdateOperation, "requests/app", map[string]interface{}{"justification": text}, "justification must not contain invisible or direction-changing characters")
		f.mustBadRequestAs(t, f.alice, logical.UpdateOperation, "break-glass/app", map[string]interface{}{"justification": text}, "justification must not contain invisible")
		f.mustBadRequestAs(t, f.bob, logical.UpdateOperation, "requests/"+id+"/approve", map[string]interface{}{"reason": text}, "reason must not contain invisible")
		f.mustBadRequestAs(t, f.bob, logical.UpdateOperation, "requests/"+id+"/deny", map[string]interface{}{"reason": text}, "reason must not contain invisible")
		f.mustBadRequestAs(t, f.alice, logical.UpdateOperation, "requests/"+id+"/cancel", map[string]interface{}{"reason": text}, "reason must not contain invisible")
	}
	if s := f.status(t, id); s != access.StatusPending {
		t.Fatalf("the request after refused decisions: %s", s)
	}
	keys, _ := f.mustAs(t, "", logical.ListOperation, "audit/requests/", nil).Data["keys"].([]string)
	if len(keys) != 1 {
		t.Fatalf("refused requests were stored: %v", keys)
	}
	if grants, _ := f.mustOK(t, logical.ListOperation, "grants/", nil).Data["keys"].([]string); len(grants) != 0 {
		t.Fatalf("a refused break-glass issued a grant: %v", grants)
	}
	// Text in any script, with accents and emoji, is fine.
	f.mustAs(t, f.bob, logical.UpdateOperation, "requests/"+id+"/approve", map[string]interface{}{"reason": "Freigabe für café, 好的 ✅"})
}
