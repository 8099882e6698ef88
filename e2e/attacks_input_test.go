package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/apono-io/vault-plugin-apono/internal/testvault"
)

// Attacks on the plugin's input: empty filters, text that reads other than it is, and one
// person holding unbounded work (waiting reads, dry runs). They run on the attack mount
// (attacks_env_test.go) with people who hold the README's policies.

// apiCall sends one HTTP request to Vault as token and returns the status and body: what
// a script or the portal sees, without the CLI in between (the CLI retries a 429).
func apiCall(t *testing.T, e *env, token, method, path string, query url.Values, body interface{}) (int, string) {
	t.Helper()
	u := e.s.URL() + "/v1/" + path
	if query != nil {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = strings.NewReader(string(b))
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Vault-Token", token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

// An empty role is not "no filter": a person whose policy lets them read resources only
// with role (the README's access-requester.hcl, required_parameters = ["role"]) sends
// role= to list every resource, with owners, of every mount. Every way of sending it is a
// 400 naming role, and nothing is listed; with a real role they see only its resources.
// The other filters of the people's paths are refused the same way.
func TestAttackEmptyFilterIsRefused(t *testing.T) {
	a := attacksEnv(t)
	e := a.e
	u := uniqueName(t)
	e.root(t, "kv", "put", "kv/"+u+"/db", "v=1")
	e.root(t, "kv", "metadata", "put", "-custom-metadata=owner=kv-owners", "kv/"+u+"/db")
	// A secret no role grants: the inventory role= would have shown.
	e.root(t, "kv", "put", "kv/"+u+"-hidden/payroll", "v=1")
	e.root(t, "kv", "metadata", "put", "-custom-metadata=owner=pay-owners", "kv/"+u+"-hidden/payroll")
	a.attackRole(t, attacksMount, u, "resources=kv/"+u+"/db", "approval=required", "approvers=owner")
	e.root(t, "write", "-f", attacksMount+"/sync")
	// Only the README's requester policy, nothing else.
	p := e.person(t, "empty-filter-person", "attacks-requester")

	noLeak := func(what, out string) {
		t.Helper()
		if strings.Contains(out, u+"-hidden") || strings.Contains(out, "pay-owners") {
			t.Fatalf("%s listed a resource no role grants:\n%s", what, out)
		}
	}
	// The CLI: vault read <mount>/resources role= (and role with spaces only).
	for _, arg := range []string{"role=", "role=  "} {
		out, stderr, err := e.s.CLI(p.token, "read", "-format=json", attacksMount+"/resources", arg)
		if err == nil || !strings.Contains(stderr, "Code: 400") || !strings.Contains(stderr, "role must not be empty") {
			t.Fatalf("vault read resources %s: want a 400 naming role, got err=%v\n%s\n%s", arg, err, out, stderr)
		}
		noLeak("vault read resources "+arg, out+stderr)
	}
	// The API: GET ?role= (and with the other filters empty too).
	for _, q := range []url.Values{{"role": {""}}, {"role": {""}, "prefix": {""}}, {"role": {""}, "limit": {"5"}}} {
		code, body := apiCall(t, e, p.token, http.MethodGet, attacksMount+"/resources", q, nil)
		if code != http.StatusBadRequest || !strings.Contains(body, "must not be empty") {
			t.Fatalf("GET resources?%s: want a 400 naming the empty field, got %d %s", q.Encode(), code, body)
		}
		noLeak("GET resources?"+q.Encode(), body)
	}
	// Vault's own check still refuses leaving role out.
	a.refusedToken(t, p.name, p.token, 403, "permission denied", "read", attacksMount+"/resources")

	// With the role's name: only what the role grants.
	v := e.jsonOut(t, p.token, "read", attacksMount+"/resources", "role="+u)
	var names []string
	for _, en := range v["data"].(map[string]interface{})["resources"].([]interface{}) {
		names = append(names, en.(map[string]interface{})["name"].(string))
	}
	if strings.Join(names, ",") != "kv/"+u+"/db" {
		t.Fatalf("resources of role %s: %v", u, names)
	}
	noLeak("resources role="+u, jsonString(t, v))

	// The other filters people send: an empty one is a 400 naming it, never everything.
	for _, c := range []struct {
		path, field string
	}{
		{attacksMount + "/requests", "role"},
		{attacksMount + "/requests", "status"},
		{attacksMount + "/requests", "mine"},
		{attacksMount + "/requests", "can_approve"},
		{attacksMount + "/requests", "after"},
		{attacksMount + "/my/grants", "limit"},
	} {
		code, body := apiCall(t, e, p.token, http.MethodGet, c.path, url.Values{c.field: {""}}, nil)
		if code != http.StatusBadRequest || !strings.Contains(body, c.field+" must not be empty") {
			t.Fatalf("GET %s?%s=: want a 400 naming %s, got %d %s", c.path, c.field, c.field, code, body)
		}
	}
	// And the operator's paths, with the root token.
	for _, c := range []struct{ path, field string }{
		{attacksMount + "/audit/requests", "role"},
		{attacksMount + "/grants", "requester"},
		{attacksMount + "/history", "resource"},
		{attacksMount + "/history", "role"},
	} {
		method := http.MethodGet
		q := url.Values{c.field: {""}}
		if c.path == attacksMount+"/grants" {
			q.Set("list", "true")
		}
		code, body := apiCall(t, e, e.s.RootToken, method, c.path, q, nil)
		if code != http.StatusBadRequest || !strings.Contains(body, c.field+" must not be empty") {
			t.Fatalf("GET %s?%s=: want a 400 naming %s, got %d %s", c.path, c.field, c.field, code, body)
		}
	}
}

// auditRequestIDs lists, as the operator, the IDs of every request for role.
func auditRequestIDs(t *testing.T, e *env, role string) []string {
	t.Helper()
	v := e.jsonOut(t, "", "read", attacksMount+"/audit/requests", "role="+role)
	var ids []string
	for _, r := range v["data"].(map[string]interface{})["requests"].([]interface{}) {
		ids = append(ids, r.(map[string]interface{})["request_id"].(string))
	}
	return ids
}

// Text that reads other than it is: a justification or a reason with a right-to-left
// override (U+202E) or a zero-width space (U+200B) would show approvers and the portal
// something else than what was written. Both are a 400 naming the field, through the CLI
// and the API, and nothing is stored: no request is made, a pending one stays pending.
func TestAttackBidiTextIsRefused(t *testing.T) {
	a := attacksEnv(t)
	e := a.e
	u := uniqueName(t)
	e.root(t, "kv", "put", "kv/"+u+"/db", "v=1")
	e.root(t, "kv", "metadata", "put", "-custom-metadata=owner=kv-owners", "kv/"+u+"/db")
	a.attackRole(t, attacksMount, u, "resources=kv/"+u+"/db", "approval=required", "approvers=owner", "break_glass=true")
	alice, bob := a.people["alice"], a.people["bob"]
	tricks := map[string]string{
		"U+202E": "INC-4711 fix \u202Egnp.exe",     // shows as "INC-4711 fix exe.png"
		"U+200B": "INC-47\u200B11 approved by sec", // "INC-4711" that no search finds
	}
	for name, text := range tricks {
		a.refused(t, "alice", 400, "justification must not contain invisible or direction-changing characters",
			"write", attacksMount+"/requests/"+u, "justification="+text)
		code, body := apiCall(t, e, alice.token, http.MethodPost, attacksMount+"/requests/"+u, nil, map[string]interface{}{"justification": text})
		if code != http.StatusBadRequest || !strings.Contains(body, "justification must not contain") {
			t.Fatalf("request with %s in the justification over the API: %d %s", name, code, body)
		}
		code, body = apiCall(t, e, alice.token, http.MethodPost, attacksMount+"/break-glass/"+u, nil, map[string]interface{}{"justification": text})
		if code != http.StatusBadRequest || !strings.Contains(body, "justification must not contain") {
			t.Fatalf("break-glass with %s in the justification: %d %s", name, code, body)
		}
	}
	if ids := auditRequestIDs(t, e, u); len(ids) != 0 {
		t.Fatalf("refused requests were stored: %v", ids)
	}

	id := a.ask(t, attacksMount, u, "justification=INC-4711 über café")["request_id"].(string)
	for name, text := range tricks {
		a.refused(t, "bob", 400, "reason must not contain invisible or direction-changing characters",
			"write", attacksMount+"/requests/"+id+"/approve", "reason="+text)
		for _, action := range []string{"approve", "deny"} {
			code, body := apiCall(t, e, bob.token, http.MethodPost, attacksMount+"/requests/"+id+"/"+action, nil, map[string]interface{}{"reason": text})
			if code != http.StatusBadRequest || !strings.Contains(body, "reason must not contain") {
				t.Fatalf("%s with %s in the reason: %d %s", action, name, code, body)
			}
		}
		code, body := apiCall(t, e, alice.token, http.MethodPost, attacksMount+"/requests/"+id+"/cancel", nil, map[string]interface{}{"reason": text})
		if code != http.StatusBadRequest || !strings.Contains(body, "reason must not contain") {
			t.Fatalf("cancel with %s in the reason: %d %s", name, code, body)
		}
	}
	if s := a.as(t, "alice", "read", attacksMount+"/requests/"+id)["data"].(map[string]interface{}); s["status"] != "pending" || jsonString(t, s["approvals"]) != "[]" && s["approvals"] != nil {
		t.Fatalf("after refused decisions the request is %v with approvals %v", s["status"], s["approvals"])
	}
	if ids := auditRequestIDs(t, e, u); len(ids) != 1 || ids[0] != id {
		t.Fatalf("requests of the role: %v, want only %s", ids, id)
	}
	// Plain text in any script still goes through.
	if s := a.as(t, "bob", "write", attacksMount+"/requests/"+id+"/approve", "reason=ok für café, 好的")["data"].(map[string]interface{})["status"]; s != "approved" {
		t.Fatalf("a plain reason: %v", s)
	}
	a.as(t, "alice", "write", "-f", attacksMount+"/requests/"+id+"/cancel")
}

// One person holds at most 8 reads waiting with wait= (each used to read storage every
// second): the 9th is a 429 at once, over the API and through the CLI; a waiting read is
// woken by the approval itself, well before its wait ends; once the reads have answered,
// a new one is accepted.
func TestAttackWaitersAreCapped(t *testing.T) {
	const perPerson = 8 // maxWaitersPerPerson
	a := attacksEnv(t)
	e := a.e
	u := uniqueName(t)
	e.root(t, "kv", "put", "kv/"+u+"/db", "v=1")
	e.root(t, "kv", "metadata", "put", "-custom-metadata=owner=kv-owners", "kv/"+u+"/db")
	a.attackRole(t, attacksMount, u, "resources=kv/"+u+"/db", "approval=required", "approvers=owner")
	p := e.person(t, "waiter-person", "attacks-requester")
	v := e.jsonOut(t, p.token, "write", "-f", attacksMount+"/requests/"+u)
	id, _ := v["data"].(map[string]interface{})["request_id"].(string)
	if id == "" {
		t.Fatalf("request: %v", v)
	}
	path := attacksMount + "/requests/" + id
	type answer struct {
		code int
		body string
		at   time.Time
	}
	answers := make(chan answer, perPerson)
	for i := 0; i < perPerson; i++ {
		go func() {
			for start := time.Now(); ; {
				code, body := apiCallNoFatal(e, p.token, path, url.Values{"wait": {"60"}})
				// A probe below may hold a place for its second: come back for it.
				if code == http.StatusTooManyRequests && time.Since(start) < 50*time.Second {
					time.Sleep(100 * time.Millisecond)
					continue
				}
				answers <- answer{code, body, time.Now()}
				return
			}
		}()
	}
	// Once all of them wait, one more is refused at once. Probe with a short wait: while
	// fewer wait, the probe is accepted and answers after 1s.
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, body := apiCall(t, e, p.token, http.MethodGet, path, url.Values{"wait": {"1"}}, nil)
		if code == http.StatusTooManyRequests {
			break
		}
		if code != http.StatusOK || time.Now().After(deadline) {
			t.Fatalf("probe while the reads start: %d %s", code, body)
		}
		time.Sleep(500 * time.Millisecond) // room for a waiter the probe held back to come in
	}
	start := time.Now()
	code, body := apiCall(t, e, p.token, http.MethodGet, path, url.Values{"wait": {"60"}}, nil)
	if took := time.Since(start); code != http.StatusTooManyRequests || !strings.Contains(body, "at most 8 at a time") || took > 10*time.Second {
		t.Fatalf("read %d waiting: want a 429 at once, got %d after %s: %s", perPerson+1, code, took, body)
	}
	// The CLI sees the 429 too (after the retries Vault's client makes on a 429).
	if out, stderr, err := e.s.CLI(p.token, "read", path, "wait=60"); err == nil || !strings.Contains(stderr, "Code: 429") {
		t.Fatalf("vault read wait=60 as the 9th: want a 429, got err=%v\n%s\n%s", err, out, stderr)
	}

	approveStart := time.Now()
	a.as(t, "bob", "write", "-f", path+"/approve")
	approved := time.Now()
	for i := 0; i < perPerson; i++ {
		select {
		case ans := <-answers:
			if ans.code != http.StatusOK || !strings.Contains(ans.body, `"status":"approved"`) || !strings.Contains(ans.body, `"status_changed":true`) {
				t.Fatalf("a waiting read answered %d %s", ans.code, ans.body)
			}
			// Woken by the approval: well before the 60s wait and the 10s fallback read.
			if lag := ans.at.Sub(approveStart); lag > 5*time.Second {
				t.Fatalf("a waiting read answered %s after the approval began (%s after it returned)", lag, ans.at.Sub(approved))
			} else if i == perPerson-1 {
				t.Logf("the last of %d waiting reads answered %s after the approval began (%s after the CLI returned)", perPerson, ans.at.Sub(approveStart), ans.at.Sub(approved))
			}
		case <-time.After(60 * time.Second):
			t.Fatal("the waiting reads did not answer the approval")
		}
	}
	// Room again: a new waiting read is accepted (and answers unchanged after its wait).
	code, body = apiCall(t, e, p.token, http.MethodGet, path, url.Values{"wait": {"1"}}, nil)
	if code != http.StatusOK || !strings.Contains(body, `"status_changed":false`) {
		t.Fatalf("a waiting read after the others answered: %d %s", code, body)
	}
	e.jsonOut(t, p.token, "write", "-f", path+"/cancel") // the request ends here
}

// apiCallNoFatal is a GET for a goroutine: no t.Fatal off the test's goroutine.
func apiCallNoFatal(e *env, token, path string, query url.Values) (int, string) {
	req, err := http.NewRequest(http.MethodGet, e.s.URL()+"/v1/"+path+"?"+query.Encode(), nil)
	if err != nil {
		return 0, err.Error()
	}
	req.Header.Set("X-Vault-Token", token)
	resp, err := (&http.Client{Timeout: 2 * time.Minute}).Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

// metadataReads counts the reads of kv/metadata/<prefix>... in Vault's audit log.
func metadataReads(t *testing.T, e *env, prefix string) int {
	t.Helper()
	raw, err := os.ReadFile(e.s.AuditPath)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var entry struct {
			Type    string `json:"type"`
			Request struct {
				Operation string `json:"operation"`
				Path      string `json:"path"`
			} `json:"request"`
		}
		if json.Unmarshal([]byte(line), &entry) == nil && entry.Type == "request" &&
			entry.Request.Operation == "read" && strings.HasPrefix(entry.Request.Path, "kv/metadata/"+prefix) {
			n++
		}
	}
	return n
}

// dry_run=true on a folder role read every secret's metadata below the folder on each
// call, and counts against no bound: one requester could keep the plugin reading. Vault's
// audit log shows the plugin's reads: the first preview reads the folder, the next ones
// (many, quickly) read none of it, and a real request still reads every owner fresh.
func TestAttackDryRunsAreBounded(t *testing.T) {
	const secrets = 12
	e := ownVault(t, testvault.Options{FileAudit: true})
	e.root(t, "write", "apono/config", "owner_metadata_key=owner", "integration_owner=security")
	e.root(t, "write", "identity/group", "name=kv-owners")
	e.root(t, "write", "identity/group", "name=security")
	for i := 0; i < secrets; i++ {
		path := fmt.Sprintf("kv/big/s%02d", i)
		e.root(t, "kv", "put", path, "v=1")
		e.root(t, "kv", "metadata", "put", "-custom-metadata=owner=kv-owners", path)
	}
	e.root(t, "write", "apono/roles/big", "resources=kv/big/*", "approval=required", "approvers=owner")
	e.writePolicy(t, "requester", testdataFile(t, "access-requester.hcl"))
	p := e.person(t, "dana", "requester")
	preview := func() map[string]interface{} {
		t.Helper()
		v := e.jsonOut(t, p.token, "write", "apono/requests/big", "dry_run=true")
		data, _ := v["data"].(map[string]interface{})
		if data["status"] != "preview" || !strings.Contains(jsonString(t, data["approvers"]), "group:kv-owners") {
			t.Fatalf("preview: %v", v)
		}
		return data
	}

	before := metadataReads(t, e, "big/")
	preview()
	first := metadataReads(t, e, "big/") - before
	if first < secrets {
		t.Fatalf("the first preview read %d metadata of kv/big/, want at least the %d secrets'", first, secrets)
	}
	for i := 0; i < 15; i++ {
		preview()
	}
	if again := metadataReads(t, e, "big/") - before - first; again != 0 {
		t.Fatalf("15 more previews read %d metadata of kv/big/, want none", again)
	}
	// A request reads the owners fresh.
	mid := metadataReads(t, e, "big/")
	v := e.jsonOut(t, p.token, "write", "-f", "apono/requests/big")
	if data, _ := v["data"].(map[string]interface{}); data["status"] != "pending" {
		t.Fatalf("request: %v", v)
	}
	if fresh := metadataReads(t, e, "big/") - mid; fresh < secrets {
		t.Fatalf("a request read %d metadata of kv/big/, want every secret's (%d)", fresh, secrets)
	}
}
