package backend

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/apono-io/vault-plugin-apono/backend/notify"
	"github.com/apono-io/vault-plugin-apono/backend/notify/chat/chattest"
	"github.com/hashicorp/vault/sdk/logical"
)

// Named targets get the events they ask for, each in its format, beside notify_url; a
// chat message links to the request in the portal and holds no password.
func TestNotifyTargetsGetTheirFormats(t *testing.T) {
	legacy, slack, teams, grantsOnly := newHookReceiver(t), newHookReceiver(t), newHookReceiver(t), newHookReceiver(t)
	f := newFlowEnv(t)
	f.mustOK(t, logical.UpdateOperation, "config", map[string]interface{}{
		"notify_url": legacy.srv.URL + "/hook", "notify_secret": "legacy-key", "portal_url": "https://vault.example.com/v1/apono/ui/",
	})
	f.mustOK(t, logical.CreateOperation, "notify/chat-slack", map[string]interface{}{"url": slack.srv.URL + "/services/T/B/secretpath", "format": "slack"})
	f.mustOK(t, logical.CreateOperation, "notify/chat-teams", map[string]interface{}{"url": teams.srv.URL + "/workflows/x", "format": "teams"})
	f.mustOK(t, logical.CreateOperation, "notify/audit", map[string]interface{}{"url": grantsOnly.srv.URL, "secret": "audit-key", "events": "grant.*"})
	read := f.mustOK(t, logical.ReadOperation, "notify/chat-slack", nil).Data
	if read["url"] != "http://"+strings.TrimPrefix(slack.srv.URL, "http://")+"/..." || read["format"] != "slack" || read["secret"] != nil {
		t.Fatalf("target read: %v", read)
	}
	if keys := f.mustOK(t, logical.ListOperation, "notify/", nil).Data["keys"].([]string); strings.Join(keys, ",") != "audit,chat-slack,chat-teams" {
		t.Fatalf("targets: %v", keys)
	}
	for _, bad := range []struct {
		data map[string]interface{}
		want string
	}{
		{map[string]interface{}{"url": "http://hooks.example.com/x"}, "loopback"},
		{map[string]interface{}{"url": slack.srv.URL, "format": "xml"}, `format "xml" is not allowed`},
		{map[string]interface{}{"url": slack.srv.URL, "events": "grant.everything"}, "is not an event type"},
		{map[string]interface{}{}, "url is required"},
	} {
		f.mustBadRequest(t, logical.CreateOperation, "notify/bad", bad.data, bad.want)
	}

	f.mustOK(t, logical.CreateOperation, "roles/app", map[string]interface{}{"resources": "kv/app/db", "approval": "required", "approvers": "owner"})
	id := f.request(t, "app", map[string]interface{}{"justification": "<!channel> [click](http://evil.example)"})
	f.mustAs(t, f.bob, logical.UpdateOperation, "requests/"+id+"/approve", map[string]interface{}{"reason": "ok"})
	grant := f.mustAs(t, f.alice, logical.UpdateOperation, "requests/"+id+"/grant", nil)
	password := grant.Data["password"].(string)

	types := func(a []hookAttempt) []string {
		var out []string
		for _, x := range a {
			out = append(out, x.typ)
		}
		return out
	}
	want := []string{notify.EventRequestCreated, notify.EventRequestApproved, notify.EventGrantIssued}
	for name, h := range map[string]*hookReceiver{"legacy": legacy, "slack": slack, "teams": teams} {
		got := h.waitFor(t, name, func(a []hookAttempt) bool { return len(a) >= 3 })
		if strings.Join(types(got), ",") != strings.Join(want, ",") {
			t.Fatalf("%s got %v, want %v", name, types(got), want)
		}
		for _, a := range got {
			if strings.Contains(a.body, password) {
				t.Fatalf("%s: a body holds the grant's password: %s", name, a.body)
			}
		}
	}
	got := grantsOnly.waitFor(t, "grant.* target", func(a []hookAttempt) bool { return len(a) >= 1 })
	if strings.Join(types(got), ",") != notify.EventGrantIssued || got[0].signature != notify.SignBody("audit-key", []byte(got[0].body)) {
		t.Fatalf("the grant.* target got %v (signature %q)", types(got), got[0].signature)
	}
	for _, a := range slack.got() {
		if err := chattest.ValidateSlack([]byte(a.body)); err != nil {
			t.Fatalf("slack body of %s: %v\n%s", a.typ, err, a.body)
		}
		if a.signature != "" {
			t.Fatalf("a slack target without a secret got a signature")
		}
	}
	for _, a := range teams.got() {
		if err := chattest.ValidateTeams([]byte(a.body)); err != nil {
			t.Fatalf("teams body of %s: %v\n%s", a.typ, err, a.body)
		}
	}
	created := slack.got()[0].body
	if !strings.Contains(created, "https://vault.example.com/v1/apono/ui/#/requests/"+id) || !strings.Contains(created, "&lt;!channel&gt;") {
		t.Fatalf("the slack message lacks the portal link or shows the justification as markup: %s", created)
	}
	var legacyEv map[string]interface{}
	if err := json.Unmarshal([]byte(legacy.got()[0].body), &legacyEv); err != nil || legacyEv["portal_link"] != "https://vault.example.com/v1/apono/ui/#/requests/"+id || legacyEv["requester_name"] != "alice" {
		t.Fatalf("json event: %v %v", legacyEv, err)
	}
	health := f.mustOK(t, logical.ReadOperation, "health", nil).Data
	if _, ok := health["notify_targets"].(map[string]interface{})["chat-teams"]; !ok {
		t.Fatalf("health lacks the targets: %v", health["notify_targets"])
	}
	f.mustOK(t, logical.DeleteOperation, "notify/chat-teams", nil)
	if keys := f.mustOK(t, logical.ListOperation, "notify/", nil).Data["keys"].([]string); len(keys) != 2 {
		t.Fatalf("after delete: %v", keys)
	}
}
