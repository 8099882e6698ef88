package chattest

import (
	"encoding/json"
	"strings"
	"testing"
)

// validSlack uses every block type and field the validator knows, so each broken variant
// below differs from a body that passes in one thing only.
const validSlack = `{
  "text": "Access request: app-db. alice asks for read access to kv/app/db for 1 hour.",
  "unfurl_links": false,
  "blocks": [
    {"type": "header", "text": {"type": "plain_text", "text": "Access request: app-db", "emoji": false}},
    {"type": "section", "block_id": "summary", "text": {"type": "plain_text", "text": "alice asks for read access."}},
    {"type": "section", "fields": [
      {"type": "mrkdwn", "text": "*Requester*", "verbatim": true},
      {"type": "plain_text", "text": "alice"}
    ], "accessory": {"type": "button", "text": {"type": "plain_text", "text": "More"}, "url": "https://portal.example/r/1", "action_id": "more"}},
    {"type": "divider"},
    {"type": "actions", "elements": [
      {"type": "button", "text": {"type": "plain_text", "text": "Review request"}, "url": "https://portal.example/r/1", "action_id": "open_portal", "style": "primary"}
    ]},
    {"type": "context", "elements": [
      {"type": "plain_text", "text": "apono/ · request 1"},
      {"type": "mrkdwn", "text": "<!date^1741080600^{date_short_pretty} at {time}|2025-03-04 09:30 UTC>"},
      {"type": "image", "image_url": "https://portal.example/logo.png", "alt_text": "apono"}
    ]}
  ]
}`

const validTeams = `{
  "type": "message",
  "attachments": [{
    "contentType": "application/vnd.microsoft.card.adaptive",
    "contentUrl": null,
    "content": {
      "type": "AdaptiveCard",
      "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
      "version": "1.4",
      "body": [
        {"type": "TextBlock", "text": "Access request: app-db", "size": "Large", "weight": "Bolder", "wrap": true},
        {"type": "FactSet", "facts": [{"title": "Requester", "value": "alice"}]},
        {"type": "ColumnSet", "columns": [{"type": "Column", "width": "auto", "items": [{"type": "TextBlock", "text": "left", "isSubtle": true}]}]}
      ],
      "actions": [{"type": "Action.OpenUrl", "title": "Review request", "url": "https://portal.example/r/1"}],
      "msteams": {"width": "Full"}
    }
  }]
}`

type mutation struct {
	name    string
	change  func(m map[string]any)
	wantErr string // a part of the error that names what is wrong
}

// at walks a decoded body by keys and indexes: at(m, "blocks", 0, "text").
func at(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			v = v.(map[string]any)[k]
		case int:
			v = v.([]any)[k]
		}
	}
	return v
}

func obj(v any, path ...any) map[string]any { return at(v, path...).(map[string]any) }

func runMutations(t *testing.T, valid string, validate func([]byte) error, cases []mutation) {
	t.Helper()
	if err := validate([]byte(valid)); err != nil {
		t.Fatalf("the valid body fails: %v", err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var m map[string]any
			if err := json.Unmarshal([]byte(valid), &m); err != nil {
				t.Fatal(err)
			}
			tc.change(m)
			body, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			err = validate(body)
			if err == nil {
				t.Fatalf("passes; want an error with %q", tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q does not say %q", err, tc.wantErr)
			}
		})
	}
}

func TestValidateSlack(t *testing.T) {
	long := func(n int) string { return strings.Repeat("x", n) }
	button := func(m map[string]any) map[string]any { return obj(m, "blocks", 4, "elements", 0) }
	runMutations(t, validSlack, ValidateSlack, []mutation{
		{"unknown top-level field", func(m map[string]any) { m["type"] = "message" }, `message: unknown field "type"`},
		{"no text and no blocks", func(m map[string]any) { delete(m, "text"); delete(m, "blocks") }, "needs a non-empty text, or blocks"},
		{"text not a string", func(m map[string]any) { m["text"] = 42 }, "message.text: must be a string, got number"},
		{"fallback too long", func(m map[string]any) { m["text"] = long(4001) }, "message.text: is 4001 characters; at most 4000"},
		{"mention in fallback", func(m map[string]any) { m["text"] = "hi <!channel>" }, `message.text: holds a mention "<!channel"`},
		{"blocks not an array", func(m map[string]any) { m["blocks"] = map[string]any{} }, "message.blocks: must be an array, got object"},
		{"empty blocks", func(m map[string]any) { m["blocks"] = []any{} }, "message.blocks: is empty"},
		{"51 blocks", func(m map[string]any) {
			var blocks []any
			for range 51 {
				blocks = append(blocks, map[string]any{"type": "divider"})
			}
			m["blocks"] = blocks
		}, "has 51 blocks; at most 50"},
		{"unknown block type", func(m map[string]any) { obj(m, "blocks", 3)["type"] = "rich_text" }, `blocks[3].type: unknown block type "rich_text"`},
		{"block without type", func(m map[string]any) { delete(obj(m, "blocks", 3), "type") }, `blocks[3]: missing "type"`},
		{"unknown block field", func(m map[string]any) { obj(m, "blocks", 3)["text"] = "x" }, `blocks[3]: unknown field "text"`},
		{"header in mrkdwn", func(m map[string]any) { obj(m, "blocks", 0, "text")["type"] = "mrkdwn" }, "blocks[0].text.type: is \"mrkdwn\"; here it must be plain_text"},
		{"header too long", func(m map[string]any) { obj(m, "blocks", 0, "text")["text"] = long(151) }, "blocks[0].text.text: is 151 characters; at most 150"},
		{"header counts UTF-16 units", func(m map[string]any) { obj(m, "blocks", 0, "text")["text"] = strings.Repeat("😀", 76) }, "is 152 characters; at most 150"},
		{"header without text", func(m map[string]any) { delete(obj(m, "blocks", 0), "text") }, `blocks[0]: missing "text"`},
		{"empty text", func(m map[string]any) { obj(m, "blocks", 1, "text")["text"] = "" }, "blocks[1].text.text: is empty"},
		{"text object of unknown type", func(m map[string]any) { obj(m, "blocks", 1, "text")["type"] = "markdown" }, "a text object is plain_text or mrkdwn"},
		{"emoji on mrkdwn", func(m map[string]any) { obj(m, "blocks", 2, "fields", 0)["emoji"] = true }, "fields[0].emoji: is only allowed on plain_text"},
		{"verbatim on plain_text", func(m map[string]any) { obj(m, "blocks", 1, "text")["verbatim"] = true }, "blocks[1].text.verbatim: is only allowed on mrkdwn"},
		{"section text too long", func(m map[string]any) { obj(m, "blocks", 1, "text")["text"] = long(3001) }, "blocks[1].text.text: is 3001 characters; at most 3000"},
		{"section with neither text nor fields", func(m map[string]any) { delete(obj(m, "blocks", 1), "text") }, "blocks[1]: a section needs text or fields"},
		{"field too long", func(m map[string]any) { obj(m, "blocks", 2, "fields", 1)["text"] = long(2001) }, "blocks[2].fields[1].text: is 2001 characters; at most 2000"},
		{"11 fields", func(m map[string]any) {
			var fields []any
			for range 11 {
				fields = append(fields, map[string]any{"type": "plain_text", "text": "x"})
			}
			obj(m, "blocks", 2)["fields"] = fields
		}, "blocks[2].fields: has 11 fields; 1 to 10 allowed"},
		{"mention in a field", func(m map[string]any) { obj(m, "blocks", 2, "fields", 1)["text"] = "<@U123>" }, `blocks[2].fields[1].text: holds a mention "<@U"`},
		{"accessory not a button", func(m map[string]any) { obj(m, "blocks", 2, "accessory")["type"] = "image" }, `blocks[2].accessory.type: is "image"; only button`},
		{"button text too long", func(m map[string]any) { obj(button(m), "text")["text"] = long(76) }, "blocks[4].elements[0].text.text: is 76 characters; at most 75"},
		{"button text in mrkdwn", func(m map[string]any) { obj(button(m), "text")["type"] = "mrkdwn" }, "here it must be plain_text"},
		{"button without text", func(m map[string]any) { delete(button(m), "text") }, `blocks[4].elements[0]: missing "text"`},
		{"button url too long", func(m map[string]any) { button(m)["url"] = "https://portal.example/" + long(3000) }, "blocks[4].elements[0].url: is 3023 characters; at most 3000"},
		{"button url not a web URL", func(m map[string]any) { button(m)["url"] = "javascript:alert(1)" }, "blocks[4].elements[0].url: must be an absolute http(s) URL"},
		{"button style", func(m map[string]any) { button(m)["style"] = "green" }, `blocks[4].elements[0].style: is "green"; allowed: primary, danger`},
		{"duplicate action_id", func(m map[string]any) { button(m)["action_id"] = "more" }, `action_id: "more" is already used at blocks[2].accessory`},
		{"action_id too long", func(m map[string]any) { button(m)["action_id"] = long(256) }, "action_id: is 256 characters; at most 255"},
		{"duplicate block_id", func(m map[string]any) { obj(m, "blocks", 3)["block_id"] = "summary" }, `blocks[3].block_id: "summary" is already used at blocks[1]`},
		{"block_id too long", func(m map[string]any) { obj(m, "blocks", 3)["block_id"] = long(256) }, "blocks[3].block_id: is 256 characters; at most 255"},
		{"empty actions", func(m map[string]any) { obj(m, "blocks", 4)["elements"] = []any{} }, "blocks[4].elements: has 0 elements; 1 to 25 allowed"},
		{"actions without elements", func(m map[string]any) { delete(obj(m, "blocks", 4), "elements") }, `blocks[4]: missing "elements"`},
		{"context element not text", func(m map[string]any) { obj(m, "blocks", 5)["elements"].([]any)[0] = "text" }, "blocks[5].elements[0]: must be an object, got string"},
		{"11 context elements", func(m map[string]any) {
			var elems []any
			for range 11 {
				elems = append(elems, map[string]any{"type": "plain_text", "text": "x"})
			}
			obj(m, "blocks", 5)["elements"] = elems
		}, "blocks[5].elements: has 11 elements; 1 to 10 allowed"},
		{"every problem is reported", func(m map[string]any) {
			obj(m, "blocks", 0, "text")["text"] = ""
			obj(m, "blocks", 3)["type"] = "video"
		}, "blocks[0].text.text: is empty; Slack needs at least 1 character\nblocks[3].type: unknown block type"},
	})
	for _, body := range []string{``, `[]`, `{"text":"a"} {}`, `{"text": "a"`} {
		if err := ValidateSlack([]byte(body)); err == nil || !strings.HasPrefix(err.Error(), "slack: body") {
			t.Errorf("ValidateSlack(%q) = %v, want an error about the body", body, err)
		}
	}
}

func TestValidateTeams(t *testing.T) {
	card := func(m map[string]any) map[string]any { return obj(m, "attachments", 0, "content") }
	body := func(m map[string]any, i int) map[string]any { return obj(card(m), "body", i) }
	runMutations(t, validTeams, ValidateTeams, []mutation{
		{"not a message", func(m map[string]any) { m["type"] = "AdaptiveCard" }, `message.type: is "AdaptiveCard"; must be "message"`},
		{"no type", func(m map[string]any) { delete(m, "type") }, `message: missing "type"`},
		{"unknown top-level field", func(m map[string]any) { m["text"] = "hi" }, `message: unknown field "text"`},
		{"no attachments", func(m map[string]any) { delete(m, "attachments") }, `message: missing "attachments"`},
		{"two attachments", func(m map[string]any) {
			m["attachments"] = append(m["attachments"].([]any), m["attachments"].([]any)[0])
		}, "has 2 attachments; must hold exactly one card"},
		{"wrong content type", func(m map[string]any) { obj(m, "attachments", 0)["contentType"] = "application/json" }, `attachments[0].contentType: is "application/json"`},
		{"contentUrl missing", func(m map[string]any) { delete(obj(m, "attachments", 0), "contentUrl") }, `attachments[0]: missing "contentUrl" (null)`},
		{"contentUrl set", func(m map[string]any) { obj(m, "attachments", 0)["contentUrl"] = "https://x" }, "attachments[0].contentUrl: must be null, got string"},
		{"no content", func(m map[string]any) { delete(obj(m, "attachments", 0), "content") }, `attachments[0]: missing "content"`},
		{"card type", func(m map[string]any) { card(m)["type"] = "HeroCard" }, `content.type: is "HeroCard"; must be "AdaptiveCard"`},
		{"schema", func(m map[string]any) { card(m)["$schema"] = "https://adaptivecards.io/schemas/1.4.json" }, `content.$schema: is "https://adaptivecards.io/schemas/1.4.json"`},
		{"no version", func(m map[string]any) { delete(card(m), "version") }, `content: missing "version"`},
		{"bad version", func(m map[string]any) { card(m)["version"] = "latest" }, `content.version: is "latest"`},
		{"unknown card field", func(m map[string]any) { card(m)["summary"] = "x" }, `content: unknown field "summary"`},
		{"no body", func(m map[string]any) { delete(card(m), "body") }, `content: missing "body"`},
		{"empty body", func(m map[string]any) { card(m)["body"] = []any{} }, "content.body: is empty"},
		{"unknown element", func(m map[string]any) { body(m, 0)["type"] = "Image" }, `content.body[0].type: unknown element type "Image"`},
		{"TextBlock without text", func(m map[string]any) { delete(body(m, 0), "text") }, `content.body[0]: missing "text"`},
		{"TextBlock with empty text", func(m map[string]any) { body(m, 0)["text"] = "" }, "content.body[0].text: is empty"},
		{"TextBlock size", func(m map[string]any) { body(m, 0)["size"] = "Huge" }, `content.body[0].size: is "Huge"`},
		{"TextBlock wrap not bool", func(m map[string]any) { body(m, 0)["wrap"] = "yes" }, "content.body[0].wrap: must be true or false"},
		{"TextBlock unknown field", func(m map[string]any) { body(m, 0)["markdown"] = false }, `content.body[0]: unknown field "markdown"`},
		{"FactSet without facts", func(m map[string]any) { delete(body(m, 1), "facts") }, `content.body[1]: missing "facts"`},
		{"FactSet empty", func(m map[string]any) { body(m, 1)["facts"] = []any{} }, "content.body[1].facts: is empty"},
		{"fact value not a string", func(m map[string]any) { obj(body(m, 1), "facts", 0)["value"] = 3 }, "content.body[1].facts[0].value: must be a string, got number"},
		{"fact value empty", func(m map[string]any) { obj(body(m, 1), "facts", 0)["value"] = "" }, "content.body[1].facts[0].value: is empty"},
		{"fact without title", func(m map[string]any) { delete(obj(body(m, 1), "facts", 0), "title") }, `content.body[1].facts[0]: missing "title"`},
		{"column type", func(m map[string]any) { obj(body(m, 2), "columns", 0)["type"] = "Container" }, `content.body[2].columns[0].type: is "Container"`},
		{"element inside a column", func(m map[string]any) { obj(body(m, 2), "columns", 0, "items", 0)["type"] = "Input.Text" }, `content.body[2].columns[0].items[0].type: unknown element type "Input.Text"`},
		{"action type", func(m map[string]any) { obj(card(m), "actions", 0)["type"] = "Action.Submit" }, `content.actions[0].type: is "Action.Submit"; only Action.OpenUrl`},
		{"action without title", func(m map[string]any) { delete(obj(card(m), "actions", 0), "title") }, `content.actions[0]: missing "title"`},
		{"action url relative", func(m map[string]any) { obj(card(m), "actions", 0)["url"] = "/r/1" }, "content.actions[0].url: must be an absolute http(s) URL"},
		{"action url scheme", func(m map[string]any) { obj(card(m), "actions", 0)["url"] = "javascript:alert(1)" }, "content.actions[0].url: must be an absolute http(s) URL"},
		{"too big", func(m map[string]any) { body(m, 0)["text"] = strings.Repeat("x", TeamsMaxBytes) }, "teams: body is"},
	})
	for _, b := range []string{``, `[]`, `{"type":"message"} x`} {
		if err := ValidateTeams([]byte(b)); err == nil || !strings.HasPrefix(err.Error(), "teams: body") {
			t.Errorf("ValidateTeams(%q) = %v, want an error about the body", b, err)
		}
	}
}
