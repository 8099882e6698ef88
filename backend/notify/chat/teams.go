package chat

import (
	"fmt"
	"strings"
)

// Teams limits. Adaptive Cards set no length per text, but a Teams webhook refuses a
// message over 28 KB; the caps per text keep the worst case (every field full of
// 4-byte characters) well under it.
const (
	teamsCardVersion = "1.4" // what Teams renders on every client
	teamsMaxHeadline = 200
	teamsMaxSummary  = 2000
	teamsMaxLabel    = 60
	teamsMaxValue    = 1100 // a full 1024-character justification, with some escapes
	teamsMaxFooter   = 300
	teamsMaxBytes    = 28 << 10
)

type teamsMessage struct {
	Type        string            `json:"type"`
	Attachments []teamsAttachment `json:"attachments"`
}

type teamsAttachment struct {
	ContentType string    `json:"contentType"`
	ContentURL  *string   `json:"contentUrl"` // null: the Workflows webhook expects the key
	Content     teamsCard `json:"content"`
}

type teamsCard struct {
	Type    string         `json:"type"`
	Schema  string         `json:"$schema"`
	Version string         `json:"version"`
	Body    []teamsElement `json:"body"`
	Actions []teamsAction  `json:"actions,omitempty"`
	MSTeams teamsOptions   `json:"msteams"`
}

type teamsElement struct {
	Type     string      `json:"type"`
	Text     string      `json:"text,omitempty"`
	Size     string      `json:"size,omitempty"`
	Weight   string      `json:"weight,omitempty"`
	IsSubtle bool        `json:"isSubtle,omitempty"`
	Wrap     bool        `json:"wrap,omitempty"`
	Facts    []teamsFact `json:"facts,omitempty"`
}

type teamsFact struct {
	Title string `json:"title"`
	Value string `json:"value"`
}

type teamsAction struct {
	Type  string `json:"type"`
	Title string `json:"title"`
	URL   string `json:"url"`
}

type teamsOptions struct {
	Width string `json:"width"`
}

// Teams renders ev as a Teams Workflows webhook message holding one Adaptive Card: the
// headline, the summary, the facts, a context line and an Action.OpenUrl to the portal.
// Teams reads markdown in every TextBlock and fact, so each text is escaped to show as
// written (teamsPieces).
func Teams(ev Event) ([]byte, error) {
	m := build(ev)
	card := teamsCard{
		Type:    "AdaptiveCard",
		Schema:  "http://adaptivecards.io/schemas/adaptive-card.json",
		Version: teamsCardVersion,
		MSTeams: teamsOptions{Width: "Full"}, // facts with long values need the width
	}
	card.Body = append(card.Body,
		teamsElement{Type: "TextBlock", Text: teamsText(m.headline, teamsMaxHeadline), Size: "Large", Weight: "Bolder", Wrap: true},
		teamsElement{Type: "TextBlock", Text: teamsText(m.summary, teamsMaxSummary), Wrap: true},
	)
	if len(m.facts) > 0 {
		var facts []teamsFact
		for _, f := range m.facts {
			value := f.value
			if !f.when.IsZero() {
				value = utcTime(f.when) // Teams does not localise dates in cards
			}
			facts = append(facts, teamsFact{Title: teamsText(f.label, teamsMaxLabel), Value: teamsText(value, teamsMaxValue)})
		}
		card.Body = append(card.Body, teamsElement{Type: "FactSet", Facts: facts})
	}
	footer := m.footer
	if !m.at.IsZero() {
		footer = strings.TrimPrefix(footer+" · "+utcTime(m.at), " · ")
	}
	if footer != "" {
		card.Body = append(card.Body, teamsElement{Type: "TextBlock", Text: teamsText(footer, teamsMaxFooter), Size: "Small", IsSubtle: true, Wrap: true})
	}
	if m.url != "" {
		card.Actions = []teamsAction{{Type: "Action.OpenUrl", Title: teamsText(m.action, teamsMaxLabel), URL: m.url}}
	}
	body, err := encode(teamsMessage{
		Type: "message",
		Attachments: []teamsAttachment{{
			ContentType: "application/vnd.microsoft.card.adaptive",
			Content:     card,
		}},
	})
	if err == nil && len(body) > teamsMaxBytes {
		// The caps make this unreachable (TestTeamsLimits); fail rather than send a body
		// Teams refuses.
		return nil, fmt.Errorf("teams message is %d bytes, over the %d Teams accepts", len(body), teamsMaxBytes)
	}
	return body, err
}

func teamsText(s string, max int) string { return fit(teamsPieces(s), max) }

// teamsMarkup are the characters Teams' markdown acts on anywhere in a text: emphasis,
// strike, code, links, and the angle brackets of autolinks and HTML.
const teamsMarkup = "\\*_~`[]<>"

// teamsPieces backslash-escapes markdown, as CommonMark and the Adaptive Cards parsers
// read it, so "**x**", "_x_" or "[x](http://evil)" show as typed. Two more guards for
// parsers that honour fewer escapes: a list or heading marker is escaped only at the
// start (the only place it acts, as texts hold no line breaks), and "](" gets a
// zero-width space between, so no parser sees a link even where "\]" is not an escape.
func teamsPieces(s string) []string {
	rs := []rune(s)
	out := make([]string, len(rs))
	lead := leadingMarker(rs)
	for i, r := range rs {
		switch {
		case strings.ContainsRune(teamsMarkup, r) || i == lead:
			out[i] = `\` + string(r)
		case r == '(' && i > 0 && rs[i-1] == ']':
			out[i] = "\u200B("
		default:
			out[i] = string(r)
		}
	}
	return out
}

// leadingMarker is the index of the character that makes the start of rs a list item or
// heading ("- x", "+ x", "# x", "1. x", "2) x"), or -1.
func leadingMarker(rs []rune) int {
	if len(rs) == 0 {
		return -1
	}
	switch rs[0] {
	case '-', '+', '#', '=':
		return 0
	}
	i := 0
	for i < len(rs) && rs[i] >= '0' && rs[i] <= '9' {
		i++
	}
	if i > 0 && i < len(rs) && (rs[i] == '.' || rs[i] == ')') {
		return i
	}
	return -1
}
