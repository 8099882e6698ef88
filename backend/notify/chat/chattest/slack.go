package chattest

import (
	"fmt"
	"regexp"
)

// Slack's limits for incoming-webhook messages (docs.slack.dev, reference/block-kit).
const (
	SlackMaxBlocks         = 50
	SlackMaxSectionText    = 3000
	SlackMaxFieldText      = 2000
	SlackMaxFields         = 10
	SlackMaxHeaderText     = 150
	SlackMaxContextElems   = 10
	SlackMaxActionElems    = 25
	SlackMaxButtonText     = 75
	SlackMaxButtonURL      = 3000
	SlackMaxButtonValue    = 2000
	SlackMaxID             = 255  // block_id, action_id
	SlackMaxFallbackText   = 4000 // Slack cuts longer text; a notification never needs more
	slackTextObjectMaxText = 3000
)

// slackTopKeys are the fields an incoming webhook takes.
var slackTopKeys = []string{"text", "blocks", "attachments", "thread_ts", "mrkdwn", "unfurl_links", "unfurl_media", "parse", "link_names", "username", "icon_emoji", "icon_url", "channel", "metadata"}

// slackMention matches what would notify people: broadcasts (<!here>, <!channel>,
// <!everyone>), user groups, users and channels. Messages of this plugin mention no one,
// so one in a body means untrusted text was passed to Slack as markup.
var slackMention = regexp.MustCompile(`<(!here|!channel|!everyone|!subteam\^|@[UW]|#C)`)

// ValidateSlack checks a Slack incoming-webhook body: JSON object with known top-level
// fields; text or blocks; at most 50 blocks of type header, section, context, actions or
// divider with their required fields; text objects plain_text or mrkdwn with a non-empty
// text within the limit of where they are; buttons with text and url within limits;
// block_id and action_id unique and at most 255 characters; and no mention (see
// slackMention). The error names every problem by its path in the body.
func ValidateSlack(body []byte) error {
	top, err := decodeObject(body)
	if err != nil {
		return fmt.Errorf("slack: %w", err)
	}
	v := &slackChecker{blockIDs: map[string]string{}, actionIDs: map[string]string{}}
	v.allowKeys("message", top, slackTopKeys...)
	text, hasText := v.str("message", top, "text", false)
	_, hasBlocks := top["blocks"]
	_, hasAttachments := top["attachments"]
	if !hasBlocks && !hasAttachments && text == "" {
		v.failf("message", "needs a non-empty text, or blocks")
	}
	if hasText {
		if n := textLen(text); n > SlackMaxFallbackText {
			v.failf("message.text", "is %d characters; at most %d", n, SlackMaxFallbackText)
		}
		v.noMention("message.text", text)
	}
	if hasBlocks {
		if blocks, ok := v.array("message.blocks", top["blocks"]); ok {
			if len(blocks) == 0 {
				v.failf("message.blocks", "is empty; leave it out or add a block")
			}
			if len(blocks) > SlackMaxBlocks {
				v.failf("message.blocks", "has %d blocks; at most %d", len(blocks), SlackMaxBlocks)
			}
			for i, b := range blocks {
				v.block(fmt.Sprintf("blocks[%d]", i), b)
			}
		}
	}
	if hasAttachments {
		if atts, ok := v.array("message.attachments", top["attachments"]); ok {
			for i, a := range atts {
				v.object(fmt.Sprintf("attachments[%d]", i), a)
			}
		}
	}
	return v.err()
}

type slackChecker struct {
	checker
	blockIDs, actionIDs map[string]string // id -> path of its first use
}

func (v *slackChecker) block(path string, raw any) {
	b, ok := v.object(path, raw)
	if !ok {
		return
	}
	typ, ok := v.str(path, b, "type", true)
	if !ok {
		return
	}
	v.uniqueID(path, b, "block_id", v.blockIDs)
	switch typ {
	case "header":
		v.allowKeys(path, b, "type", "block_id", "text")
		v.requiredText(path, b, "text", "plain_text", SlackMaxHeaderText)
	case "section":
		v.allowKeys(path, b, "type", "block_id", "text", "fields", "accessory", "expand")
		_, hasText := b["text"]
		_, hasFields := b["fields"]
		if !hasText && !hasFields {
			v.failf(path, "a section needs text or fields")
		}
		if hasText {
			v.requiredText(path, b, "text", "", SlackMaxSectionText)
		}
		if hasFields {
			if fields, ok := v.array(path+".fields", b["fields"]); ok {
				if len(fields) == 0 || len(fields) > SlackMaxFields {
					v.failf(path+".fields", "has %d fields; 1 to %d allowed", len(fields), SlackMaxFields)
				}
				for i, f := range fields {
					v.textObject(fmt.Sprintf("%s.fields[%d]", path, i), f, "", SlackMaxFieldText)
				}
			}
		}
		if acc, ok := b["accessory"]; ok {
			v.button(path+".accessory", acc)
		}
		v.boolean(path, b, "expand")
	case "context":
		v.allowKeys(path, b, "type", "block_id", "elements")
		elems := v.elements(path, b, SlackMaxContextElems)
		for i, e := range elems {
			epath := fmt.Sprintf("%s.elements[%d]", path, i)
			if m, ok := e.(map[string]any); ok && m["type"] == "image" {
				v.allowKeys(epath, m, "type", "image_url", "alt_text")
				v.str(epath, m, "image_url", true)
				v.str(epath, m, "alt_text", true)
				continue
			}
			v.textObject(epath, e, "", slackTextObjectMaxText)
		}
	case "actions":
		v.allowKeys(path, b, "type", "block_id", "elements")
		for i, e := range v.elements(path, b, SlackMaxActionElems) {
			v.button(fmt.Sprintf("%s.elements[%d]", path, i), e)
		}
	case "divider":
		v.allowKeys(path, b, "type", "block_id")
	default:
		v.failf(path+".type", "unknown block type %q (known: header, section, context, actions, divider)", typ)
	}
}

// elements returns b.elements after checking it holds 1 to max entries.
func (v *slackChecker) elements(path string, b map[string]any, max int) []any {
	raw, ok := b["elements"]
	if !ok {
		v.failf(path, "missing %q", "elements")
		return nil
	}
	elems, ok := v.array(path+".elements", raw)
	if ok && (len(elems) == 0 || len(elems) > max) {
		v.failf(path+".elements", "has %d elements; 1 to %d allowed", len(elems), max)
	}
	return elems
}

func (v *slackChecker) button(path string, raw any) {
	b, ok := v.object(path, raw)
	if !ok {
		return
	}
	if typ, _ := b["type"].(string); typ != "button" {
		v.failf(path+".type", "is %q; only button elements are known here", b["type"])
		return
	}
	v.allowKeys(path, b, "type", "text", "url", "action_id", "value", "style", "confirm", "accessibility_label")
	v.requiredText(path, b, "text", "plain_text", SlackMaxButtonText)
	if u, ok := v.str(path, b, "url", false); ok {
		if n := textLen(u); n > SlackMaxButtonURL {
			v.failf(path+".url", "is %d characters; at most %d", n, SlackMaxButtonURL)
		}
		v.webURL(path+".url", u)
	}
	if s, ok := v.str(path, b, "value", false); ok && textLen(s) > SlackMaxButtonValue {
		v.failf(path+".value", "is %d characters; at most %d", textLen(s), SlackMaxButtonValue)
	}
	v.oneOf(path, b, "style", false, "primary", "danger")
	v.uniqueID(path, b, "action_id", v.actionIDs)
}

func (v *slackChecker) requiredText(path string, m map[string]any, key, wantType string, max int) {
	raw, ok := m[key]
	if !ok {
		v.failf(path, "missing %q", key)
		return
	}
	v.textObject(path+"."+key, raw, wantType, max)
}

// textObject checks a composition text object; wantType "" takes either type.
func (v *slackChecker) textObject(path string, raw any, wantType string, max int) {
	t, ok := v.object(path, raw)
	if !ok {
		return
	}
	v.allowKeys(path, t, "type", "text", "emoji", "verbatim")
	typ, _ := v.str(path, t, "type", true)
	switch {
	case typ != "plain_text" && typ != "mrkdwn":
		v.failf(path+".type", "is %q; a text object is plain_text or mrkdwn", typ)
	case wantType != "" && typ != wantType:
		v.failf(path+".type", "is %q; here it must be %s", typ, wantType)
	}
	if _, ok := t["emoji"]; ok && typ != "plain_text" {
		v.failf(path+".emoji", "is only allowed on plain_text")
	}
	if _, ok := t["verbatim"]; ok && typ != "mrkdwn" {
		v.failf(path+".verbatim", "is only allowed on mrkdwn")
	}
	v.boolean(path, t, "emoji")
	v.boolean(path, t, "verbatim")
	text, ok := v.str(path, t, "text", true)
	if !ok {
		return
	}
	if len(text) == 0 {
		v.failf(path+".text", "is empty; Slack needs at least 1 character")
	}
	if n := textLen(text); n > max {
		v.failf(path+".text", "is %d characters; at most %d here", n, max)
	}
	v.noMention(path+".text", text)
}

func (v *slackChecker) noMention(path, text string) {
	if m := slackMention.FindString(text); m != "" {
		v.failf(path, "holds a mention %q…; messages here mention no one, so it is untrusted text parsed as markup", m)
	}
}

// uniqueID checks an optional block_id or action_id: a non-empty string of at most 255
// characters, not used before in the message.
func (v *slackChecker) uniqueID(path string, m map[string]any, key string, seen map[string]string) {
	id, ok := v.str(path, m, key, false)
	if !ok {
		return
	}
	switch {
	case id == "":
		v.failf(path+"."+key, "is empty")
	case textLen(id) > SlackMaxID:
		v.failf(path+"."+key, "is %d characters; at most %d", textLen(id), SlackMaxID)
	case seen[id] != "":
		v.failf(path+"."+key, "%q is already used at %s; it must be unique", id, seen[id])
	default:
		seen[id] = path
	}
}
