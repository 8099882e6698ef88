package chat

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/apono-io/vault-plugin-apono/backend/notify/chat/chattest"
)

func TestTeamsGolden(t *testing.T) {
	checkGolden(t, "teams.golden", Teams, chattest.ValidateTeams)
}

// teamsMarkupLeft returns the first markdown a Teams client could act on in s: an
// unescaped markup character, "](" (a link, for parsers that ignore "\]"), or a list or
// heading marker at the start.
func teamsMarkupLeft(s string) string {
	rs := []rune(s)
	if i := leadingMarker(rs); i >= 0 && (i == 0 || rs[i-1] != '\\') {
		return "leading " + string(rs[:i+1])
	}
	for i := 0; i < len(rs); i++ {
		switch {
		case rs[i] == '\\':
			i++ // the escaped character
		case strings.ContainsRune(teamsMarkup, rs[i]):
			return "unescaped " + string(rs[i])
		case rs[i] == '(' && i > 0 && rs[i-1] == ']':
			return "](" + " link"
		}
	}
	return ""
}

// TestTeamsHostile: whatever the fields hold, Teams gets a body it takes and every text
// shows as written: no markdown, link, line break or invisible character from input.
func TestTeamsHostile(t *testing.T) {
	for _, typ := range allTypes {
		body, err := Teams(hostileEvent(typ))
		if err != nil {
			t.Fatal(err)
		}
		if err := chattest.ValidateTeams(body); err != nil {
			t.Errorf("%s: %v", typ, err)
		}
		var texts []string
		for _, s := range shownStrings(t, body) {
			if s.key == "url" {
				continue
			}
			texts = append(texts, s.text)
			if left := teamsMarkupLeft(s.text); left != "" {
				t.Errorf("%s: %s in %q", typ, left, s.text)
			}
			if strings.ContainsAny(s.text, "\n\r\t\u202E") {
				t.Errorf("%s: %q keeps a line break, tab or direction change from input", typ, s.text)
			}
		}
		for _, shownAsText := range []string{`\[click\]` + "\u200B" + `(http://evil.example)`, `\*\*strong\*\*`, `\_it\_`, `\<img src=x onerror=alert(1)\>`, `\\\\`} {
			if !strings.Contains(strings.Join(texts, "\n"), shownAsText) {
				t.Errorf("%s: body does not show %q as text", typ, shownAsText)
			}
		}
	}
}

func TestTeamsEscapesListMarkersAtTheStart(t *testing.T) {
	for in, want := range map[string]string{
		"- item":     `\- item`,
		"+ item":     `\+ item`,
		"# title":    `\# title`,
		"12. item":   `12\. item`,
		"3) item":    `3\) item`,
		"a - b":      "a - b",
		"12 items":   "12 items",
		"v1.2":       "v1.2",
		"[a](b)":     `\[a\]` + "\u200B(b)",
		`back\slash`: `back\\slash`,
	} {
		if got := teamsText(in, 100); got != want {
			t.Errorf("teamsText(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestTeamsLimits: every field far past its cap, with the characters that make a body
// biggest (3 bytes for one UTF-16 unit; a backslash becomes 4 bytes), stays a body Teams
// takes, under 28 KB.
func TestTeamsLimits(t *testing.T) {
	for _, char := range []string{"€", `\`, `"`, "😀", "*", "x"} {
		for _, typ := range allTypes {
			body, err := Teams(bigEvent(typ, char, portal))
			if err != nil {
				t.Fatalf("%s with %q: %v", typ, char, err)
			}
			if err := chattest.ValidateTeams(body); err != nil {
				t.Errorf("%s with %q: %v", typ, char, err)
			}
			var msg struct {
				Attachments []struct {
					Content struct {
						Body []struct {
							Text string `json:"text"`
						} `json:"body"`
					} `json:"content"`
				} `json:"attachments"`
			}
			if err := json.Unmarshal(body, &msg); err != nil {
				t.Fatal(err)
			}
			if h := msg.Attachments[0].Content.Body[0].Text; !strings.HasSuffix(h, ellipsis) {
				t.Errorf("%s: the headline %q is not cut with an ellipsis", typ, h)
			}
			if !andMore.Match(body) {
				t.Errorf("%s: 64 resources are not summarised", typ)
			}
			t.Logf("%s with %q: %d bytes", typ, char, len(body))
		}
	}
}
