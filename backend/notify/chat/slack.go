package chat

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Slack's Block Kit limits (docs.slack.dev, reference/block-kit). A text over its limit
// makes Slack refuse the whole message, so each is cut with an ellipsis first.
const (
	slackMaxBlocks     = 50
	slackMaxSection    = 3000 // section text
	slackMaxField      = 2000 // one section field
	slackMaxFields     = 10   // fields in one section
	slackMaxHeader     = 150
	slackMaxButtonText = 75
	slackMaxContext    = 2000 // one context element (our own bound; Slack allows 3000 mrkdwn)
	slackMaxFallback   = 4000 // the notification text
)

type slackMessage struct {
	Text   string       `json:"text"`
	Blocks []slackBlock `json:"blocks"`
}

type slackBlock struct {
	Type     string      `json:"type"`
	Text     *slackText  `json:"text,omitempty"`
	Fields   []slackText `json:"fields,omitempty"`
	Elements []any       `json:"elements,omitempty"`
}

type slackText struct {
	Type     string `json:"type"`
	Text     string `json:"text"`
	Emoji    *bool  `json:"emoji,omitempty"`
	Verbatim bool   `json:"verbatim,omitempty"`
}

type slackButton struct {
	Type     string    `json:"type"`
	Text     slackText `json:"text"`
	URL      string    `json:"url"`
	ActionID string    `json:"action_id"`
	Style    string    `json:"style,omitempty"`
}

// Slack renders ev as an incoming-webhook message: a header, the summary, the facts as
// label/value rows, a button to the portal and a context line, with a text fallback for
// notifications. Every value from ev is in a plain_text object, so Slack parses no
// mrkdwn, link or mention in it; mrkdwn holds only this package's labels and dates.
func Slack(ev Event) ([]byte, error) {
	m := build(ev)
	msg := slackMessage{Text: fit(slackPieces(m.fallback), slackMaxFallback)}
	add := func(b slackBlock) { msg.Blocks = append(msg.Blocks, b) }

	header := slackPlain(m.headline, slackMaxHeader)
	add(slackBlock{Type: "header", Text: &header})
	text := slackPlain(m.summary, slackMaxSection)
	add(slackBlock{Type: "section", Text: &text})

	// Label/value pairs fill a section's two columns row by row. A message has some 15
	// facts at most, but the block limit holds whatever build returns.
	const perSection = slackMaxFields / 2
	const otherBlocks = 4 // header, summary, actions, context
	for i := 0; i < len(m.facts) && i/perSection < slackMaxBlocks-otherBlocks; i += perSection {
		var fields []slackText
		for _, f := range m.facts[i:min(i+perSection, len(m.facts))] {
			value := slackPlain(f.value, slackMaxField)
			if !f.when.IsZero() {
				value = slackMrkdwn(slackDate(f.when))
			}
			fields = append(fields, slackMrkdwn("*"+fit(slackPieces(f.label), slackMaxField-2)+"*"), value)
		}
		add(slackBlock{Type: "section", Fields: fields})
	}

	if m.url != "" {
		add(slackBlock{Type: "actions", Elements: []any{slackButton{
			Type:     "button",
			Text:     slackPlain(m.action, slackMaxButtonText),
			URL:      m.url,
			ActionID: "open_portal",
			Style:    "primary",
		}}})
	}

	var context []any
	if m.footer != "" {
		context = append(context, slackPlain(m.footer, slackMaxContext))
	}
	if !m.at.IsZero() {
		context = append(context, slackMrkdwn(slackDate(m.at)))
	}
	if len(context) > 0 {
		add(slackBlock{Type: "context", Elements: context})
	}
	return encode(msg)
}

func slackPlain(s string, max int) slackText {
	no := false // ":smile:" in a justification stays text too
	return slackText{Type: "plain_text", Text: fit(slackPieces(s), max), Emoji: &no}
}

// slackMrkdwn is only for text this package writes; verbatim stops Slack from turning
// words in it into links or mentions.
func slackMrkdwn(s string) slackText {
	return slackText{Type: "mrkdwn", Text: s, Verbatim: true}
}

// slackDate shows t in each reader's own time zone, with UTC where a client cannot.
func slackDate(t time.Time) string {
	return fmt.Sprintf("<!date^%d^{date_short_pretty} at {time}|%s>", t.Unix(), utcTime(t))
}

// slackPieces escapes what Slack reads as markup even in plain text: &, < and > (as
// Slack asks: "&amp;", "&lt;", "&gt;"), so "<!channel>" or "<http://x|y>" stays text;
// and "@here", "@channel", "@everyone" get an invisible word joiner after the "@", so
// no client's auto-parsing makes them a broadcast.
func slackPieces(s string) []string {
	rs := []rune(s)
	out := make([]string, len(rs))
	for i, r := range rs {
		switch r {
		case '&':
			out[i] = "&amp;"
		case '<':
			out[i] = "&lt;"
		case '>':
			out[i] = "&gt;"
		case '@':
			out[i] = "@"
			rest := strings.ToLower(string(rs[i+1 : min(i+9, len(rs))]))
			for _, word := range []string{"here", "channel", "everyone"} {
				if strings.HasPrefix(rest, word) {
					out[i] = "@\u2060"
				}
			}
		default:
			out[i] = string(r)
		}
	}
	return out
}

// encode marshals without Go's HTML escaping: the services read JSON, not HTML, and
// "\u003c" would only make bodies bigger and harder to read.
func encode(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
