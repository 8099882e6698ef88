package owners

import (
	"context"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

// put stores an entry and fails the test on a 400 or an error.
func put(t *testing.T, tb *Table, s logical.Storage, pattern string, approvers ...string) {
	t.Helper()
	msg, err := tb.Put(context.Background(), s, &TableEntry{Pattern: pattern, Approvers: approvers})
	if err != nil || msg != "" {
		t.Fatalf("put %s: %q %v", pattern, msg, err)
	}
}

func TestTablePutGetListDelete(t *testing.T) {
	ctx := context.Background()
	s := &logical.InmemStorage{}
	tb := &Table{}
	put(t, tb, s, "database/creds/readonly", " group:dba ", "entity:erin", "group:dba")
	put(t, tb, s, "kv/team-a/*", "group:team-a")
	put(t, tb, s, "database/*", "group:platform")

	e, err := tb.Get(ctx, s, "database/creds/readonly")
	if err != nil || e == nil {
		t.Fatalf("get: %v %v", e, err)
	}
	if !reflect.DeepEqual(e.Approvers, []string{"group:dba", "entity:erin"}) {
		t.Fatalf("approvers are stored parsed, once each: %v", e.Approvers)
	}
	patterns, err := tb.Patterns(ctx, s)
	if err != nil || !reflect.DeepEqual(patterns, []string{"database/*", "database/creds/readonly", "kv/team-a/*"}) {
		t.Fatalf("patterns (with / and * as written): %v %v", patterns, err)
	}
	keys, _ := s.List(ctx, TableStoragePrefix)
	if len(keys) != 3 {
		t.Fatalf("one storage key per pattern, none a folder: %v", keys)
	}

	ix, err := tb.Index(ctx, s)
	if err != nil || ix.Len() != 3 || ix.Match("database/creds/readonly").Pattern != "database/creds/readonly" {
		t.Fatalf("index: %v %v", ix, err)
	}
	// Update in place: the index follows the write.
	put(t, tb, s, "database/creds/readonly", "group:dba2")
	ix, _ = tb.Index(ctx, s)
	if got := ix.Match("database/creds/readonly").Approvers; !reflect.DeepEqual(got, []string{"group:dba2"}) {
		t.Fatalf("after an update the index says %v", got)
	}
	if err := tb.Delete(ctx, s, "database/creds/readonly"); err != nil {
		t.Fatal(err)
	}
	if e, _ := tb.Get(ctx, s, "database/creds/readonly"); e != nil {
		t.Fatalf("deleted entry still read: %+v", e)
	}
	ix, _ = tb.Index(ctx, s)
	if ix.Len() != 2 || ix.Match("database/creds/readonly").Pattern != "database/*" {
		t.Fatalf("after the delete the prefix owns it: %+v", ix.Match("database/creds/readonly"))
	}
	if err := tb.Delete(ctx, s, "not/there"); err != nil {
		t.Fatalf("deleting a missing entry: %v", err)
	}
}

func TestTableRefusesBadPatternsAndApprovers(t *testing.T) {
	ctx := context.Background()
	s := &logical.InmemStorage{}
	tb := &Table{}
	badPatterns := map[string]string{
		"":                "empty",
		"*":               "not a resource name",
		"kv":              "must name a mount and a path",
		"kv*":             "must name a mount and a path",
		"kv/**":           "only once",
		"kv/*/x":          "only once",
		"kv/a*b":          "only once",
		"sys/*":           "nothing under sys/",
		"sys/policy/x":    "nothing under sys/",
		"auth/token/*":    "nothing under auth/",
		"identity/x":      "nothing under identity/",
		"cubbyhole/x":     "nothing under cubbyhole/",
		"kv//a":           "empty path segment",
		"kv/a/":           "empty path segment",
		"kv/a/../b":       `".." segments`,
		"kv/a b":          "not allowed",
		"kv/{{x}}":        "not allowed",
		"kv/a+b":          "not allowed",
		"kv/" + "\u202e":  "not allowed",
		"database/creds/": "empty path segment",
	}
	for p, want := range badPatterns {
		msg, err := tb.Put(ctx, s, &TableEntry{Pattern: p, Approvers: []string{"group:dba"}})
		if err != nil || !strings.HasPrefix(msg, "pattern: ") || !strings.Contains(msg, want) {
			t.Errorf("pattern %q: got %q %v, want a 400 saying %q", p, msg, err, want)
		}
	}
	badApprovers := map[string][]string{
		"owner":                 {"owner"},
		"not an approver":       {"dba"},
		"names no group":        {"group:"},
		"allowed: group:":       {"user:bob"},
		"not allowed":           {"group:a\nb"},
		"at least one":          {},
		"at most 32 approvers":  manyApprovers(33),
		"at least one group:<n": {" ", ""},
	}
	for want, approvers := range badApprovers {
		msg, err := tb.Put(ctx, s, &TableEntry{Pattern: "database/*", Approvers: approvers})
		if err != nil || !strings.HasPrefix(msg, "approvers: ") || !strings.Contains(msg, want) {
			t.Errorf("approvers %q: got %q %v, want a 400 saying %q", approvers, msg, err, want)
		}
	}
	if keys, _ := s.List(ctx, TableStoragePrefix); len(keys) != 0 {
		t.Fatalf("refused writes stored %v", keys)
	}
	for _, good := range []string{"database/creds/readonly", "database/*", "database/creds/app-*", "kv/team-a/*", "ssh/sign/*", "pki/issue/web", "kv/app/db"} {
		if err := ValidatePattern(good); err != nil {
			t.Errorf("%s: %v", good, err)
		}
	}
}

func manyApprovers(n int) []string {
	var out []string
	for i := 0; i < n; i++ {
		out = append(out, "group:g"+strings.Repeat("x", i))
	}
	return out
}

func TestTableFull(t *testing.T) {
	ctx := context.Background()
	s := &logical.InmemStorage{}
	tb := &Table{}
	for i := 0; i < MaxTableEntries; i++ {
		e, _ := logical.StorageEntryJSON(TableStoragePrefix+"kv%2Fx"+strconv.Itoa(i), TableEntry{})
		if err := s.Put(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if msg, err := tb.Put(ctx, s, &TableEntry{Pattern: "database/*", Approvers: []string{"group:dba"}}); err != nil || !strings.Contains(msg, "the most allowed") {
		t.Fatalf("a full table: %q %v", msg, err)
	}
}

// The exact name first, then the longest prefix; nothing else matches.
func TestTableLookupPrecedence(t *testing.T) {
	ctx := context.Background()
	s := &logical.InmemStorage{}
	tb := &Table{}
	put(t, tb, s, "database/*", "group:platform")
	put(t, tb, s, "database/creds/*", "group:dba")
	put(t, tb, s, "database/creds/app-*", "group:app")
	put(t, tb, s, "database/creds/readonly", "group:readers")
	put(t, tb, s, "kv/team-a/*", "group:team-a")
	put(t, tb, s, "kv/team-a", "group:folder-secret")
	ix, err := tb.Index(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{
		"database/creds/readonly":      "database/creds/readonly",
		"database/creds/readonly2":     "database/creds/*",
		"database/creds/app-web":       "database/creds/app-*",
		"database/creds/app-":          "database/creds/app-*",
		"database/static-creds/rotate": "database/*",
		"kv/team-a/db":                 "kv/team-a/*",
		"kv/team-a/x/*":                "kv/team-a/*",
		"kv/team-a":                    "kv/team-a",
		"kv/team-ab/db":                "",
		"database2/creds/x":            "",
		"pki/issue/web":                "",
	}
	for name, want := range cases {
		got := ""
		if e := ix.Match(name); e != nil {
			got = e.Pattern
		}
		if got != want {
			t.Errorf("Match(%s) = %q, want %q", name, got, want)
		}
	}
	below := []string{}
	for _, e := range ix.Below("database/creds/") {
		below = append(below, e.Pattern)
	}
	if !reflect.DeepEqual(below, []string{"database/creds/app-*", "database/creds/readonly"}) {
		t.Errorf("Below(database/creds/) = %v", below)
	}
	var nilIndex *TableIndex
	if nilIndex.Match("database/creds/x") != nil || nilIndex.Len() != 0 || nilIndex.Below("x/") != nil {
		t.Error("a nil index is an empty table")
	}
}

// Another node's write reaches this node's cached table through Invalidate only.
func TestTableIndexDroppedByInvalidate(t *testing.T) {
	ctx := context.Background()
	s := &logical.InmemStorage{}
	standby, active := &Table{}, &Table{}
	if ix, _ := standby.Index(ctx, s); ix.Len() != 0 {
		t.Fatal("empty table")
	}
	put(t, active, s, "pki/issue/web", "group:pki")
	if ix, _ := standby.Index(ctx, s); ix.Len() != 0 {
		t.Fatal("the standby's cache was expected to be stale before Invalidate")
	}
	if standby.Invalidate("config") {
		t.Fatal("config is not the table's key")
	}
	if !standby.Invalidate(tableKey("pki/issue/web")) {
		t.Fatal("the table's key was not recognised")
	}
	if ix, _ := standby.Index(ctx, s); ix.Match("pki/issue/web") == nil {
		t.Fatal("after Invalidate the standby reads the new entry")
	}
}
