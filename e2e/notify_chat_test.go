package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/notify/chat/chattest"
)

// chatReceiver is a local webhook that keeps every body and checks it as the service of
// its format would (chattest), or, for json, checks its signature.
type chatReceiver struct {
	srv    *httptest.Server
	format string
	secret string

	mu     sync.Mutex
	bodies map[string][]string // by X-Apono-Event
	bad    []string
}

func newChatReceiver(t *testing.T, format, secret string) *chatReceiver {
	r := &chatReceiver{format: format, secret: secret, bodies: map[string][]string{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		var err error
		switch format {
		case "slack":
			err = chattest.ValidateSlack(body)
		case "teams":
			err = chattest.ValidateTeams(body)
		default:
			mac := hmac.New(sha256.New, []byte(secret))
			mac.Write(body)
			if !hmac.Equal([]byte(req.Header.Get("X-Apono-Signature-256")), []byte("sha256="+hex.EncodeToString(mac.Sum(nil)))) {
				err = io.ErrUnexpectedEOF
			}
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if err != nil {
			r.bad = append(r.bad, err.Error()+": "+string(body))
			http.Error(w, "refused", http.StatusBadRequest)
			return
		}
		typ := req.Header.Get("X-Apono-Event")
		r.bodies[typ] = append(r.bodies[typ], string(body))
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *chatReceiver) waitFor(t *testing.T, typ, contains string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r.mu.Lock()
		for _, b := range r.bodies[typ] {
			if strings.Contains(b, contains) {
				r.mu.Unlock()
				return b
			}
		}
		bad := append([]string(nil), r.bad...)
		r.mu.Unlock()
		if len(bad) > 0 {
			t.Fatalf("the %s receiver refused bodies: %v", r.format, bad)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s %s body with %q after 30 s", r.format, typ, contains)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Slack, Teams and json targets each get the steps of a flow in a body their service
// accepts (json: signed), saying who asks for what and linking to the request in the
// portal; decisions tell the requester what happened; no body holds a password, token
// or secret_id. A script waits for approval with read wait=.
func TestNotifyTargetsCarryTheFlowToChat(t *testing.T) {
	a := attacksEnv(t)
	e := a.e
	const mount = "apono-chat"
	var failed error
	a.enableMount(t, mount, &failed)
	if failed != nil {
		t.Fatal(failed)
	}
	for name, file := range map[string]string{"chat-requester": "access-requester.hcl", "chat-approver": "access-approver.hcl"} {
		e.writePolicy(t, name, policyForMount(t, file, mount))
	}
	for _, who := range []string{"alice", "bob", "erin"} {
		e.root(t, "write", "identity/entity/id/"+a.people[who].entityID, "policies=attacks-requester,attacks-approver,chat-requester,chat-approver")
	}
	slack, teams, hook := newChatReceiver(t, "slack", ""), newChatReceiver(t, "teams", ""), newChatReceiver(t, "json", "chat-json-key")
	e.root(t, "write", mount+"/config", "portal_url=https://vault.example.com/v1/"+mount+"/ui/")
	e.root(t, "write", mount+"/notify/team-slack", "format=slack", "url="+slack.srv.URL+"/services/T0/B0/secret-part")
	e.root(t, "write", mount+"/notify/team-teams", "format=teams", "url="+teams.srv.URL+"/workflows/secret-part")
	e.root(t, "write", mount+"/notify/siem", "format=json", "url="+hook.srv.URL+"/in", "secret=chat-json-key")
	if read := e.jsonOut(t, "", "read", mount+"/notify/team-slack")["data"].(map[string]interface{}); strings.Contains(jsonString(t, read), "secret-part") {
		t.Fatalf("a target read shows the webhook path: %v", read)
	}
	u := uniqueName(t)
	e.root(t, "kv", "put", "kv/"+u+"/db", "v=1")
	e.root(t, "kv", "metadata", "put", "-custom-metadata=owner=kv-owners", "kv/"+u+"/db")
	e.root(t, "write", mount+"/roles/"+u, "resources=kv/"+u+"/db", "approval=required", "approvers=owner", "ttl=15m")

	id := a.ask(t, mount, u, "justification=INC-77 <b>hostile</b> <!channel>")["request_id"].(string)
	link := "https://vault.example.com/v1/" + mount + "/ui/#/requests/" + id
	for _, r := range []*chatReceiver{slack, teams} {
		body := r.waitFor(t, "request.created", id)
		for _, want := range []string{link, "alice", "kv/" + u + "/db", "15 minutes", "group:kv-owners"} {
			if !strings.Contains(body, want) {
				t.Fatalf("the %s message of a new request lacks %q: %s", r.format, want, body)
			}
		}
	}
	if b := slack.waitFor(t, "request.created", id); strings.Contains(b, "<!channel>") || strings.Contains(b, "<b>") {
		t.Fatalf("the slack message shows the justification as markup: %s", b)
	}
	if b := hook.waitFor(t, "request.created", id); !strings.Contains(b, `"portal_link":"`+link+`"`) {
		t.Fatalf("the json event lacks the portal link: %s", b)
	}

	// alice's script waits for the approval; bob approves meanwhile.
	waited := make(chan string, 1)
	go func() {
		out, _, err := e.s.CLI(a.people["alice"].token, "read", "-field=status", mount+"/requests/"+id, "wait=50s")
		if err != nil {
			out = err.Error()
		}
		waited <- strings.TrimSpace(out)
	}()
	time.Sleep(time.Second)
	begin := time.Now()
	a.as(t, "bob", "write", mount+"/requests/"+id+"/approve", "reason=fine")
	select {
	case s := <-waited:
		if s != "approved" {
			t.Fatalf("the waiting read answered %q", s)
		}
		if took := time.Since(begin); took > 10*time.Second {
			t.Fatalf("the waiting read answered %s after the approval", took)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the waiting read never answered")
	}
	for _, r := range []*chatReceiver{slack, teams} {
		if body := r.waitFor(t, "request.approved", id); !strings.Contains(body, "Pick up") || !strings.Contains(body, link) {
			t.Fatalf("the %s message of an approval lacks the pickup link: %s", r.format, body)
		}
	}
	g := e.grantAs(t, a.people["alice"].token, mount+"/requests/"+id+"/grant")

	denied := a.ask(t, mount, u)["request_id"].(string)
	a.as(t, "bob", "write", mount+"/requests/"+denied+"/deny", "reason=use the read-only role")
	for _, r := range []*chatReceiver{slack, teams} {
		if body := r.waitFor(t, "request.denied", denied); !strings.Contains(body, "use the read-only role") {
			t.Fatalf("the %s message of a denial lacks the reason: %s", r.format, body)
		}
	}
	slack.waitFor(t, "grant.issued", id)
	e.root(t, "lease", "revoke", "-sync", g.LeaseID)
	teams.waitFor(t, "grant.revoked", id)
	for _, r := range []*chatReceiver{slack, teams, hook} {
		r.mu.Lock()
		for typ, bodies := range r.bodies {
			for _, b := range bodies {
				for name, secret := range map[string]string{"grant password": g.Password, "alice's token": a.people["alice"].token, "secret_id": a.secretID} {
					if strings.Contains(b, secret) {
						r.mu.Unlock()
						t.Fatalf("a %s %s body holds the %s", r.format, typ, name)
					}
				}
			}
		}
		r.mu.Unlock()
	}
	health := e.jsonOut(t, "", "read", mount+"/health")["data"].(map[string]interface{})
	if targets, _ := health["notify_targets"].(map[string]interface{}); len(targets) != 3 {
		t.Fatalf("health's notify_targets: %v", health["notify_targets"])
	}
}
