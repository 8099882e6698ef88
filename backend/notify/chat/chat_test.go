package chat

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from what the formats render now")

var (
	at        = time.Date(2025, 3, 4, 9, 30, 0, 0, time.UTC)
	portal    = "https://vault.example.com/ui/apono/requests/7f3c9a2e-5b1d-4c8e-9a6f-2d4e8b1c0a35"
	requestID = "7f3c9a2e-5b1d-4c8e-9a6f-2d4e8b1c0a35"
	grantID   = "c41d2e7f-0a9b-4e3c-8d5f-6b7a1e2c3d49"
)

// request is an access request as the backend would describe it, before any decision.
func request(typ string) Event {
	return Event{
		Type:          typ,
		Mount:         "apono/",
		RequestID:     requestID,
		Role:          "app-db",
		Requester:     "alice (userpass-alice)",
		Justification: "INC-42: restore the orders table",
		Resources:     []string{"kv/app/db", "kv/app/config"},
		Permission:    "read",
		TTL:           time.Hour,
		Approvers:     []string{"group:kv-owners", "entity:erin"},
		ExpiresAt:     at.Add(24 * time.Hour),
		PortalURL:     portal,
		Time:          at,
	}
}

// events covers every type the backend sends, the ones it may send later, and the edges
// of each (no portal link, nothing but a type, 64 resources).
func events() []struct {
	name string
	ev   Event
} {
	approval := request(RequestApproval)
	approval.Actor, approval.Reason, approval.Approvals = "bob (userpass-bob)", "ok for INC-42", "1/2 approvals"

	approved := request(RequestApproved)
	approved.Actor, approved.Reason, approved.Approvals = "erin", "second approval", "2/2 approvals"
	approved.ExpiresAt, approved.PickupBy = at.Add(time.Hour), at.Add(time.Hour)

	auto := request(RequestAutoApproved)
	auto.ExpiresAt, auto.PickupBy = time.Time{}, at.Add(time.Hour)

	denied := request(RequestDenied)
	denied.Actor, denied.Reason = "erin", "use the read-only role app-db-ro"

	cancelled := request(RequestCancelled)
	cancelled.Actor = cancelled.Requester

	cancelledByOther := request(RequestCancelled)
	cancelledByOther.Actor = "admin"

	expired := request(RequestExpired)
	expired.Approvals = "1/2 approvals"

	issued := request(GrantIssued)
	issued.GrantID, issued.ExpiresAt, issued.Approvers = grantID, at.Add(time.Hour), nil

	breakGlassIssued := issued
	breakGlassIssued.BreakGlass, breakGlassIssued.RequestID = true, ""

	revoked := issued
	revoked.Type, revoked.Actor, revoked.Reason = GrantRevoked, "root", "incident closed"

	breakGlass := request(GrantBreakGlass)
	breakGlass.GrantID, breakGlass.RequestID, breakGlass.ExpiresAt, breakGlass.Approvers = grantID, "", at.Add(time.Hour), nil
	breakGlass.BreakGlass, breakGlass.TTL = true, 30*time.Minute

	extension := request("extension.requested")
	extension.TTL, extension.ExpiresAt = 2*time.Hour+30*time.Minute, at.Add(3*time.Hour)

	noPortal := request(RequestCreated)
	noPortal.PortalURL = ""

	many := request(RequestCreated)
	many.Resources = nil
	for i := range 64 {
		many.Resources = append(many.Resources, fmt.Sprintf("kv/app/service-%02d", i))
	}

	return []struct {
		name string
		ev   Event
	}{
		{"request.created", request(RequestCreated)},
		{"request.approval", approval},
		{"request.approved", approved},
		{"request.auto_approved", auto},
		{"request.denied", denied},
		{"request.cancelled by the requester", cancelled},
		{"request.cancelled by someone else", cancelledByOther},
		{"request.expired", expired},
		{"grant.issued", issued},
		{"grant.issued by break glass", breakGlassIssued},
		{"grant.revoked", revoked},
		{"grant.break_glass", breakGlass},
		{"extension.requested (a type not known yet)", extension},
		{"request.created without a portal link", noPortal},
		{"request.created with 64 resources", many},
		{"only a type", Event{Type: RequestDenied}},
		{"no type at all", Event{Requester: "alice"}},
	}
}

// checkGolden compares each case's body, indented, with testdata/<file>; -update
// rewrites it.
func checkGolden(t *testing.T, file string, render func(Event) ([]byte, error), validate func([]byte) error) {
	t.Helper()
	var all bytes.Buffer
	for _, tc := range events() {
		body, err := render(tc.ev)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if err := validate(body); err != nil {
			t.Errorf("%s: the service would refuse the body:\n%v\n%s", tc.name, err, body)
		}
		var pretty bytes.Buffer
		if err := json.Indent(&pretty, body, "", "  "); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		fmt.Fprintf(&all, "=== %s\n%s\n\n", tc.name, pretty.Bytes())
	}
	path := filepath.Join("testdata", file)
	if *update {
		if err := os.WriteFile(path, all.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./backend/notify/chat/ -update to write it)", err)
	}
	if !bytes.Equal(all.Bytes(), want) {
		t.Errorf("%s differs from what renders now; if the change is meant, run go test ./backend/notify/chat/ -update and review the diff.\n%s",
			path, firstDifference(string(want), all.String()))
	}
}

func firstDifference(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return fmt.Sprintf("line %d:\nwant %s\ngot  %s", i+1, wl, gl)
		}
	}
	return ""
}

// TestEventHasOnlyDisplayFields keeps Event closed: a format renders only Event's
// fields, so no credential can reach a chat message unless a field for it is added.
// A new field fails here until someone has decided it may be shown in a channel.
func TestEventHasOnlyDisplayFields(t *testing.T) {
	str, list, when := reflect.TypeOf(""), reflect.TypeOf([]string{}), reflect.TypeOf(time.Time{})
	allowed := map[string]reflect.Type{
		"Type": str, "Mount": str, "RequestID": str, "GrantID": str, "Role": str, "Requester": str,
		"Actor": str, "Reason": str, "Justification": str, "Resources": list, "Permission": str,
		"TTL": reflect.TypeOf(time.Duration(0)), "Approvers": list, "Approvals": str,
		"ExpiresAt": when, "PickupBy": when, "BreakGlass": reflect.TypeOf(false), "PortalURL": str, "Time": when,
	}
	credential := regexp.MustCompile(`(?i)pass|token|secret|key|cred|auth`)
	typ := reflect.TypeOf(Event{})
	for i := range typ.NumField() {
		f := typ.Field(i)
		if credential.MatchString(f.Name) {
			t.Errorf("Event.%s looks like a credential; chat messages must never carry one", f.Name)
		}
		if want, ok := allowed[f.Name]; !ok || f.Type != want {
			t.Errorf("Event.%s (%s) is not a reviewed display field; decide whether it may show in a channel, then list it here", f.Name, f.Type)
		}
	}
	if typ.NumField() != len(allowed) {
		t.Errorf("Event has %d fields, %d are listed", typ.NumField(), len(allowed))
	}
}

// marker is the text put in every string field, so a test can take it out again.
var marker = regexp.MustCompile(`Qz[A-Za-z0-9]+Qz`)

// markerEvent has every string field, and every entry of a list field, set to a marker
// naming the field.
func markerEvent(typ string) Event {
	var ev Event
	v := reflect.ValueOf(&ev).Elem()
	for i := range v.NumField() {
		name := v.Type().Field(i).Name
		switch f := v.Field(i); f.Kind() {
		case reflect.String:
			f.SetString("Qz" + name + "Qz")
		case reflect.Slice:
			f.Set(reflect.ValueOf([]string{"Qz" + name + "0Qz", "Qz" + name + "1Qz"}))
		}
	}
	ev.Type, ev.PortalURL = typ, "https://portal.example/QzPortalURLQz"
	ev.TTL, ev.BreakGlass = 90*time.Minute, true
	ev.ExpiresAt, ev.PickupBy, ev.Time = at.Add(time.Hour), at.Add(2*time.Hour), at
	return ev
}

// ownWords is every word the formats write themselves. TestMessagesHoldOnlyEventText
// fails on any other word, so a message cannot show text that came from anywhere but
// Event's fields; a new wording adds its words here.
var ownWords = strings.Fields(`
	a A access Access after an An and approval Approval approvals Approvals Approved approved
	approve are grant s
	approver asks at automatically be break Break by By can Cancelled cancelled changes date
	days day denied Denied due Duration end ended ends event Event Expired expired expires
	Expires flow for from get glass granted has hour hours in is it Justification longer
	minute minutes minutes more needed no of on Open open or Permission pick Pick picked
	portal pretty Reason recorded Request request Requester Resources Review Revoked revoked
	Role second seconds short Someone The the time to Until up update used UTC Was was who
	Who with without yes
`)

func TestMessagesHoldOnlyEventText(t *testing.T) {
	own := map[string]bool{}
	for _, w := range ownWords {
		own[w] = true
	}
	word := regexp.MustCompile(`[A-Za-z]+`)
	types := []string{RequestCreated, RequestApproval, RequestApproved, RequestAutoApproved, RequestDenied,
		RequestCancelled, RequestExpired, GrantIssued, GrantRevoked, GrantBreakGlass, "QzTypeQz"}
	formats := map[string]func(Event) ([]byte, error){"slack": Slack, "teams": Teams}
	for _, typ := range types {
		ev := markerEvent(typ)
		for name, render := range formats {
			body, err := render(ev)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range shownStrings(t, body) {
				if s.key == "url" {
					if s.text != ev.PortalURL {
						t.Errorf("%s %s: url %q is not the PortalURL", name, typ, s.text)
					}
					continue
				}
				for _, w := range word.FindAllString(marker.ReplaceAllString(s.text, " "), -1) {
					if !own[w] {
						t.Errorf("%s %s: %q in %q is neither from an Event field nor one of ownWords", name, typ, w, s.text)
					}
				}
			}
		}
	}
}

type shown struct{ key, text string }

// shownStrings is every string of a body a person sees or opens: texts, titles, fact
// values and URLs (not types, schema names or IDs of the JSON shape).
func shownStrings(t *testing.T, body []byte) []shown {
	t.Helper()
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatal(err)
	}
	var out []shown
	var walk func(key string, v any)
	walk = func(key string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				walk(k, e)
			}
		case []any:
			for _, e := range x {
				walk(key, e)
			}
		case string:
			switch key {
			case "text", "title", "value", "url":
				out = append(out, shown{key, x})
			}
		}
	}
	walk("", v)
	return out
}

func TestSummarise(t *testing.T) {
	many := make([]string, 64)
	for i := range many {
		many[i] = fmt.Sprintf("kv/app/%c", 'a'+i%26)
	}
	long := make([]string, 8)
	for i := range long {
		long[i] = strings.Repeat("x", 200)
	}
	for _, tc := range []struct {
		name string
		in   []string
		want string
	}{
		{"none", nil, ""},
		{"one", []string{"kv/app/db"}, "kv/app/db"},
		{"two", []string{"kv/app/a", "kv/app/b"}, "kv/app/a and kv/app/b"},
		{"five", []string{"a", "b", "c", "d", "e"}, "a, b, c, d and e"},
		{"six", []string{"a", "b", "c", "d", "e", "f"}, "a, b, c, d, e and 1 more"},
		{"64", many, "kv/app/a, kv/app/b, kv/app/c, kv/app/d, kv/app/e and 59 more"},
		{"empty entries dropped", []string{"", "a", " "}, "a"},
		{"long names: as many as fit", long, strings.Repeat("x", 119) + "…, " + strings.Repeat("x", 119) + "… and 6 more"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := summarise(tc.in); got != tc.want {
				t.Errorf("summarise = %q, want %q", got, tc.want)
			}
			if n := len([]rune(summarise(tc.in))); n > maxListLen {
				t.Errorf("summary is %d characters, over %d", n, maxListLen)
			}
		})
	}
}

func TestCapText(t *testing.T) {
	for _, tc := range []struct {
		in   string
		max  int
		want string
	}{
		{"  INC-42 ", 100, "INC-42"},
		{"line1\nline2\r\n\tx", 100, "line1 line2 x"},
		{"a\u2028b\u2029c", 100, "a b c"},
		{"\u202Eevil\u202C \u2066x\u2069", 100, "evil x"},
		{"zero\u200Bwidth\u2060\uFEFF", 100, "zerowidth"},
		{"bad \xff utf8", 100, "bad \uFFFD utf8"},
		{"family 👨\u200D👩\u200D👧", 100, "family 👨\u200D👩\u200D👧"}, // the joiner makes one emoji
		{strings.Repeat("é", 10), 5, "éééé…"},
		{"abcd efgh", 6, "abcd…"}, // no space before the ellipsis
		{"abcde", 5, "abcde"},
	} {
		if got := capText(tc.in, tc.max); got != tc.want {
			t.Errorf("capText(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
		}
	}
}

func TestFit(t *testing.T) {
	pieces := slackPieces("a&b")
	if got := fit(pieces, 7); got != "a&amp;b" {
		t.Errorf("fit at the limit = %q, want it whole", got)
	}
	if got := fit(pieces, 6); got != "a…" {
		t.Errorf("fit one short = %q, want %q: an escape is never cut in half", got, "a…")
	}
	if got := fit([]string{"😀", "😀", "😀"}, 5); got != "😀😀…" || textLen(got) != 5 {
		t.Errorf("fit of astral characters = %q (%d units), want 2 of them and an ellipsis", got, textLen(got))
	}
}

func TestHumanDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		time.Second:                     "1 second",
		45 * time.Second:                "45 seconds",
		time.Minute:                     "1 minute",
		90 * time.Minute:                "1 hour 30 minutes",
		8 * time.Hour:                   "8 hours",
		26*time.Hour + time.Minute:      "1 day 2 hours 1 minute",
		61*time.Minute + 40*time.Second: "1 hour 2 minutes",
	} {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%s) = %q, want %q", d, got, want)
		}
	}
}

func TestPortalURL(t *testing.T) {
	for raw, want := range map[string]bool{
		portal:                               true,
		"http://127.0.0.1:8200/ui":           true,
		"":                                   false,
		"javascript:alert(1)":                false,
		"data:text/html,<b>x":                false,
		"/ui/apono/requests/1":               false,
		"https://user:pw@vault.example.com/": false,
		"https://vault.example.com/a b":      false,
		"https://vault.example.com/\n":       false,
		"https://vault.example.com/" + strings.Repeat("a", 3000): false,
	} {
		if got := portalURL(raw) != ""; got != want {
			t.Errorf("portalURL(%q) kept = %v, want %v", clipRunes(raw, 60), got, want)
		}
	}
}
