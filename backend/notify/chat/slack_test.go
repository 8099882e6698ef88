package chat

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/notify/chat/chattest"
)

func TestSlackGolden(t *testing.T) {
	checkGolden(t, "slack.golden", Slack, chattest.ValidateSlack)
}

// hostile is text people could type into a justification, a reason, a display name or
// a resource name, to make a message do more than show it.
var hostile = []string{
	`<img src=x onerror=alert(1)>`,
	`"><script>alert(1)</script>`,
	`<!channel> <!here|here> <!everyone> <!subteam^S123>`,
	`<@U123> <#C123|general>`,
	`<http://evil.example|click>`,
	`[click](http://evil.example)`,
	"*bold* _it_ ~x~ `code` ```block```",
	`**strong** __under__ ~~gone~~`,
	`&amp; &lt; & < >`,
	`@here @channel @Everyone`,
	`- list item`, `1. ordered`, `2) ordered`, `# heading`, `> quote`,
	"line1\nline2\r\n\ttab",
	"\u202Eevil\u202C zero\u200Bwidth",
	`:smile: \*escaped\* \\`,
}

func hostileEvent(typ string) Event {
	all := strings.Join(hostile, " ")
	return Event{
		Type: typ, Mount: all, RequestID: all, GrantID: all, Role: all, Requester: all, Actor: all,
		Reason: all, Justification: all, Resources: hostile, Permission: all, TTL: time.Hour,
		Approvers: hostile, Approvals: all, ExpiresAt: at, PickupBy: at.Add(time.Minute),
		PortalURL: `https://portal.example/r?q="><script>alert(1)</script>&x=<!channel>`, Time: at,
	}
}

var allTypes = []string{RequestCreated, RequestApproval, RequestApproved, RequestAutoApproved, RequestDenied,
	RequestCancelled, RequestExpired, GrantIssued, GrantRevoked, GrantBreakGlass, "extension.<!here>*x*"}

var (
	slackLabel     = regexp.MustCompile(`^\*[A-Za-z ]+\*$`)
	slackDateRe    = regexp.MustCompile(`^<!date\^[0-9]+\^\{date_short_pretty\} at \{time\}\|[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2} UTC>$`)
	slackEntity    = regexp.MustCompile(`&(amp|lt|gt);`)
	andMore        = regexp.MustCompile(` and [0-9]+ more"`) // ends a value: the count is never cut off
	slackBroadcast = regexp.MustCompile(`(?i)@(here|channel|everyone)`)
)

// TestSlackHostile: whatever the fields hold, Slack gets a body it takes, user text is
// only ever in plain_text with &, < and > escaped, and mrkdwn holds only this package's
// labels and dates.
func TestSlackHostile(t *testing.T) {
	for _, typ := range allTypes {
		body, err := Slack(hostileEvent(typ))
		if err != nil {
			t.Fatal(err)
		}
		if err := chattest.ValidateSlack(body); err != nil {
			t.Errorf("%s: %v", typ, err)
		}
		var msg struct {
			Text   string            `json:"text"`
			Blocks []json.RawMessage `json:"blocks"`
		}
		if err := json.Unmarshal(body, &msg); err != nil {
			t.Fatal(err)
		}
		checkSlackPlain(t, typ+" fallback", msg.Text)
		for _, obj := range slackTextObjects(t, body) {
			switch obj.Type {
			case "mrkdwn":
				if !slackLabel.MatchString(obj.Text) && !slackDateRe.MatchString(obj.Text) {
					t.Errorf("%s: mrkdwn %q is not one of the package's labels or dates", typ, obj.Text)
				}
			case "plain_text":
				checkSlackPlain(t, typ, obj.Text)
				if obj.Emoji == nil || *obj.Emoji {
					t.Errorf("%s: plain_text %q turns :name: into emoji", typ, obj.Text)
				}
			}
		}
		for _, shownAsText := range []string{"&lt;!channel&gt;", "&lt;img src=x onerror=alert(1)&gt;", "[click](http://evil.example)", "*bold* _it_", "@\u2060here"} {
			if !strings.Contains(string(body), shownAsText) {
				t.Errorf("%s: body does not show %q as text", typ, shownAsText)
			}
		}
	}
}

func checkSlackPlain(t *testing.T, where, s string) {
	t.Helper()
	if strings.ContainsAny(s, "<>") {
		t.Errorf("%s: %q has an unescaped < or >", where, s)
	}
	if n := strings.Count(s, "&"); n != len(slackEntity.FindAllString(s, -1)) {
		t.Errorf("%s: %q has an & that is not an escape", where, s)
	}
	if slackBroadcast.MatchString(s) {
		t.Errorf("%s: %q has a broadcast Slack may parse", where, s)
	}
	if strings.ContainsAny(s, "\n\r\t\u202E\u200B") {
		t.Errorf("%s: %q keeps a line break, tab, or invisible character from input", where, s)
	}
}

type slackTextObject struct {
	Type  string `json:"type"`
	Text  string `json:"text"`
	Emoji *bool  `json:"emoji"`
}

// slackTextObjects finds every text object of a body, wherever it is.
func slackTextObjects(t *testing.T, body []byte) []slackTextObject {
	t.Helper()
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatal(err)
	}
	var out []slackTextObject
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if typ, _ := x["type"].(string); typ == "plain_text" || typ == "mrkdwn" {
				raw, _ := json.Marshal(x)
				var obj slackTextObject
				_ = json.Unmarshal(raw, &obj)
				out = append(out, obj)
				return
			}
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(v)
	return out
}

// bigEvent has every field past any limit: long names, 64 long resources and approvers,
// text that escaping makes five times longer, and characters that count twice.
func bigEvent(typ, char string, url string) Event {
	long := strings.Repeat(char, 5000)
	var many []string
	for range 64 {
		many = append(many, strings.Repeat(char, 300))
	}
	return Event{
		Type: typ, Mount: long, RequestID: long, GrantID: long, Role: long, Requester: long, Actor: long,
		Reason: long, Justification: long, Resources: many, Permission: long, TTL: 1000 * time.Hour,
		Approvers: many, Approvals: long, ExpiresAt: at, PickupBy: at, BreakGlass: true, PortalURL: url, Time: at,
	}
}

func TestSlackLimits(t *testing.T) {
	exactURL := "https://portal.example/" + strings.Repeat("a", maxPortalURLLen-len("https://portal.example/"))
	for _, char := range []string{"&", "<", "😀", "x", "é"} {
		for _, typ := range allTypes {
			for url, button := range map[string]bool{exactURL: true, exactURL + "a": false} {
				body, err := Slack(bigEvent(typ, char, url))
				if err != nil {
					t.Fatal(err)
				}
				if err := chattest.ValidateSlack(body); err != nil {
					t.Errorf("%s with %q: %v", typ, char, err)
				}
				var msg struct {
					Text   string `json:"text"`
					Blocks []struct {
						Type string           `json:"type"`
						Text *slackTextObject `json:"text"`
					} `json:"blocks"`
				}
				if err := json.Unmarshal(body, &msg); err != nil {
					t.Fatal(err)
				}
				if got := strings.Contains(string(body), `"type":"actions"`); got != button {
					t.Errorf("%s: a %d-character portal URL gives a button: %v, want %v", typ, len(url), got, button)
				}
				if !strings.HasSuffix(msg.Blocks[0].Text.Text, ellipsis) {
					t.Errorf("%s: the header %q is not cut with an ellipsis", typ, msg.Blocks[0].Text.Text)
				}
				if !andMore.Match(body) {
					t.Errorf("%s: 64 resources are not summarised", typ)
				}
				if n := textLen(msg.Text); n > slackMaxFallback {
					t.Errorf("%s: fallback text is %d characters", typ, n)
				}
			}
		}
	}
}
