package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// The access-flow tests run on their own mount of the plugin (flowsMount) in the shared
// Vault, with real identities: userpass users who log in, so Vault gives each an entity,
// and identity groups made with identity/group.
//
//	alice  the requester
//	bob    in kv-owners
//	dave   in kv-owners
//	carol  in no group
//	erin   in security, the integration owner
//
// Every one of them holds the requester and the approver policies of the README, so a
// refusal they meet is the plugin's decision, not Vault's ACL.

const (
	flowsMount      = "apono-flows"
	flowsHookSecret = "flows-hook-signing-key"
)

type person struct {
	name, password, token, entityID string
}

type flowsFixture struct {
	e        *env
	people   map[string]*person
	hook     *eventReceiver
	secretID string // the mount's AppRole secret_id: no event may hold it
}

var (
	flowsOnce sync.Once
	flowsFix  *flowsFixture
	flowsErr  error
)

// flowsEnv sets the fixture up once for every access-flow test.
func flowsEnv(t *testing.T) *flowsFixture {
	t.Helper()
	flowsOnce.Do(func() { flowsFix, flowsErr = newFlowsFixture(t, shared) })
	if flowsErr != nil {
		t.Fatal("access-flow fixture: ", flowsErr)
	}
	return flowsFix
}

func newFlowsFixture(t *testing.T, e *env) (*flowsFixture, error) {
	fix := &flowsFixture{e: e, people: map[string]*person{}, hook: newEventReceiver(flowsHookSecret)}
	var failed error
	must := func(args ...string) string {
		if failed != nil {
			return ""
		}
		out, _, err := e.s.CLI("", args...)
		failed = err
		return out
	}
	must("secrets", "enable", "-path="+flowsMount, "-plugin-version="+e.setup.Version, "vault-plugin-apono")
	fix.secretID = strings.TrimSpace(must("write", "-f", "-field=secret_id", "auth/approle/role/apono-plugin/secret-id"))
	must("write", flowsMount+"/config", "vault_addr="+e.s.URL(), "role_id="+e.setup.RoleID, "secret_id="+fix.secretID,
		"owner_metadata_key=owner", "integration_owner=security",
		"notify_url="+fix.hook.URL(), "notify_secret="+flowsHookSecret)
	for name, rules := range map[string]string{"flows-requester": requesterPolicy(t, flowsMount), "flows-approver": approverPolicy(t, flowsMount)} {
		if _, _, err := e.s.CLIWithStdin("", rules, "policy", "write", name, "-"); err != nil && failed == nil {
			failed = err
		}
	}
	for _, name := range []string{"alice", "bob", "carol", "dave", "erin"} {
		p := &person{name: name, password: "pw-" + name + "-Zq81"}
		must("write", "auth/userpass/users/"+name, "password="+p.password, "token_policies=flows-requester,flows-approver")
		out := must("login", "-no-store", "-format=json", "-method=userpass", "username="+name, "password="+p.password)
		if failed != nil {
			return nil, failed
		}
		var login struct {
			Auth struct {
				ClientToken string `json:"client_token"`
				EntityID    string `json:"entity_id"`
			} `json:"auth"`
		}
		if err := json.Unmarshal([]byte(out), &login); err != nil || login.Auth.EntityID == "" {
			return nil, fmt.Errorf("login of %s gave no entity: %v %s", name, err, out)
		}
		p.token, p.entityID = login.Auth.ClientToken, login.Auth.EntityID
		// Vault names a login's entity entity_<id>; give it the person's name so that roles
		// can say entity:<name>.
		must("write", "identity/entity/id/"+p.entityID, "name="+name)
		fix.people[name] = p
	}
	must("write", "identity/group", "name=kv-owners", "member_entity_ids="+fix.people["bob"].entityID+","+fix.people["dave"].entityID)
	must("write", "identity/group", "name=security", "member_entity_ids="+fix.people["erin"].entityID)
	return fix, failed
}

// requesterPolicy and approverPolicy are the README's policies (testdata/), moved from
// the apono/ mount to mount.
func requesterPolicy(t *testing.T, mount string) string {
	return policyForMount(t, "access-requester.hcl", mount)
}

func approverPolicy(t *testing.T, mount string) string {
	return policyForMount(t, "access-approver.hcl", mount)
}

func policyForMount(t *testing.T, file, mount string) string {
	t.Helper()
	rules := testdataFile(t, file)
	if !strings.Contains(rules, `"apono/`) {
		t.Fatalf("%s names no apono/ path", file)
	}
	return strings.ReplaceAll(rules, `"apono/`, `"`+mount+`/`)
}

// as runs the CLI as a person and decodes its JSON output.
func (f *flowsFixture) as(t *testing.T, who string, args ...string) map[string]interface{} {
	t.Helper()
	return f.e.jsonOut(t, f.people[who].token, args...)
}

// refused runs the CLI as who, expects an HTTP error with the given code, and returns
// Vault's message.
func (f *flowsFixture) refused(t *testing.T, who string, code int, want string, args ...string) {
	t.Helper()
	token := ""
	if who != "root" {
		token = f.people[who].token
	}
	f.refusedToken(t, who, token, code, want, args...)
}

// refusedToken is refused for a token of someone outside the fixture's people.
func (f *flowsFixture) refusedToken(t *testing.T, who, token string, code int, want string, args ...string) {
	t.Helper()
	stderr := f.e.mustFail(t, token, args...)
	if !strings.Contains(stderr, fmt.Sprintf("Code: %d", code)) {
		t.Fatalf("vault %s as %s: want HTTP %d, got:\n%s", strings.Join(args, " "), who, code, stderr)
	}
	if !strings.Contains(stderr, want) {
		t.Fatalf("vault %s as %s: error does not say %q:\n%s", strings.Join(args, " "), who, want, stderr)
	}
}

// request asks for access as alice and returns the request's data.
func (f *flowsFixture) request(t *testing.T, role string, args ...string) map[string]interface{} {
	t.Helper()
	v := f.as(t, "alice", append([]string{"write", "-f", flowsMount + "/requests/" + role}, args...)...)
	data, _ := v["data"].(map[string]interface{})
	if data["status"] != "pending" || data["request_id"] == "" {
		t.Fatalf("new request: %v", v)
	}
	return data
}

func (f *flowsFixture) approve(t *testing.T, who, id string, args ...string) map[string]interface{} {
	t.Helper()
	v := f.as(t, who, append([]string{"write", "-f", flowsMount + "/requests/" + id + "/approve"}, args...)...)
	data, _ := v["data"].(map[string]interface{})
	return data
}

// status reads the request as an operator does (audit/requests/<id>, root token here).
func (f *flowsFixture) status(t *testing.T, id string) string {
	t.Helper()
	v := f.e.jsonOut(t, "", "read", flowsMount+"/audit/requests/"+id)
	s, _ := v["data"].(map[string]interface{})["status"].(string)
	return s
}

// pickUp turns alice's approved request into a grant.
func (f *flowsFixture) pickUp(t *testing.T, id string) grant {
	t.Helper()
	g := f.e.grantAs(t, f.people["alice"].token, flowsMount+"/requests/"+id+"/grant")
	if g.Data["request_id"] != id {
		t.Fatalf("pickup of %s answered for request %v", id, g.Data["request_id"])
	}
	return g
}

// eventReceiver is the local webhook the plugin POSTs events to; it keeps every event
// whose signature verifies, and counts the ones that do not.
type eventReceiver struct {
	srv    *httptest.Server
	secret string

	mu       sync.Mutex
	events   []receivedEvent
	bad      int
	status   int // when not 0, every POST is answered with it (a receiver that is down)
	attempts int // every POST
}

type receivedEvent struct {
	body   string
	fields map[string]interface{}
}

func newEventReceiver(secret string) *eventReceiver {
	r := &eventReceiver{secret: secret}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		mac := hmac.New(sha256.New, []byte(r.secret))
		mac.Write(body)
		want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
		r.mu.Lock()
		defer r.mu.Unlock()
		r.attempts++
		if r.status != 0 {
			http.Error(w, "down", r.status)
			return
		}
		if !hmac.Equal([]byte(req.Header.Get("X-Apono-Signature-256")), []byte(want)) {
			r.bad++
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var fields map[string]interface{}
		if err := json.Unmarshal(body, &fields); err != nil {
			r.bad++
			http.Error(w, "not JSON", http.StatusBadRequest)
			return
		}
		r.events = append(r.events, receivedEvent{body: string(body), fields: fields})
	}))
	return r
}

func (r *eventReceiver) URL() string { return r.srv.URL + "/hook" }

// matching returns the events for which match is true.
func (r *eventReceiver) matching(match func(map[string]interface{}) bool) []receivedEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []receivedEvent
	for _, ev := range r.events {
		if match(ev.fields) {
			out = append(out, ev)
		}
	}
	return out
}

// waitFor polls until an event of type typ matching match arrives.
func (r *eventReceiver) waitFor(t *testing.T, timeout time.Duration, typ string, match func(map[string]interface{}) bool) receivedEvent {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := r.matching(func(f map[string]interface{}) bool { return f["type"] == typ && match(f) })
		if len(got) > 0 {
			return got[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s event after %s", typ, timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// setStatus makes the receiver answer every POST with status (0: take events again).
func (r *eventReceiver) setStatus(status int) {
	r.mu.Lock()
	r.status = status
	r.mu.Unlock()
}

func (r *eventReceiver) attemptCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.attempts
}

func (r *eventReceiver) badCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.bad
}

// jsonString is v as compact JSON, for assertions on nested values.
func jsonString(t *testing.T, v interface{}) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
