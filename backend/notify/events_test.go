package notify

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/access"
)

// A bundle's request and grant events name the bundle and every part's resources.
func TestBundleEventsNameTheBundleAndEachResource(t *testing.T) {
	now := time.Now()
	req := &access.Request{ID: "r", Role: access.BundleRoleName("oncall"), Bundle: "oncall", Status: access.StatusPending,
		Resources: []string{"kv/app/db", "transit/payments"}, Permission: "read, encrypt", ExpiresAt: now.Add(time.Hour)}
	grant := &access.Grant{ID: "g", Role: req.Role, Bundle: "oncall", Resources: req.Resources, Permission: req.Permission, IssuedAt: now, ExpiresAt: now.Add(time.Hour)}
	for _, ev := range []Event{RequestEvent(req, EventRequestCreated, now, nil, ""), GrantEvent(grant, EventGrantIssued)} {
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{`"bundle":"oncall"`, `"role":"bundle:oncall"`, `"resources":["kv/app/db","transit/payments"]`} {
			if !strings.Contains(string(b), want) {
				t.Fatalf("%s event lacks %s: %s", ev.Type, want, b)
			}
		}
	}
}
