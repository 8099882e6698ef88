package chattest

import (
	"fmt"
	"regexp"
)

// Teams Workflows webhook: one Adaptive Card in a message.
const (
	TeamsContentType = "application/vnd.microsoft.card.adaptive"
	TeamsCardSchema  = "http://adaptivecards.io/schemas/adaptive-card.json"
	TeamsMaxBytes    = 28 << 10 // Teams refuses larger webhook messages
)

var cardVersion = regexp.MustCompile(`^[1-9][0-9]*\.[0-9]+$`)

var (
	teamsCardKeys    = []string{"type", "$schema", "version", "body", "actions", "msteams", "fallbackText", "speak", "lang", "minHeight", "verticalContentAlignment", "selectAction", "rtl", "backgroundImage", "metadata"}
	commonElemKeys   = []string{"type", "id", "spacing", "separator", "isVisible", "height"}
	textBlockKeys    = append([]string{"text", "wrap", "size", "weight", "color", "isSubtle", "maxLines", "horizontalAlignment", "fontType", "style"}, commonElemKeys...)
	factSetKeys      = append([]string{"facts"}, commonElemKeys...)
	columnSetKeys    = append([]string{"columns", "style", "bleed", "minHeight", "horizontalAlignment", "selectAction"}, commonElemKeys...)
	columnKeys       = append([]string{"items", "width", "style", "bleed", "minHeight", "verticalContentAlignment", "selectAction", "backgroundImage", "rtl"}, commonElemKeys...)
	openURLKeys      = []string{"type", "title", "url", "id", "iconUrl", "style", "tooltip", "isEnabled", "mode"}
	maxElementDepth  = 4 // ColumnSet in ColumnSet; deeper is not a card anyone sends
	teamsSizes       = []string{"Default", "Small", "Medium", "Large", "ExtraLarge"}
	teamsWeights     = []string{"Default", "Lighter", "Bolder"}
	teamsColors      = []string{"Default", "Dark", "Light", "Accent", "Good", "Warning", "Attention"}
	teamsAlignments  = []string{"Left", "Center", "Right"}
	teamsSpacings    = []string{"Default", "None", "Small", "Medium", "Large", "ExtraLarge", "Padding"}
	teamsColumnTypes = []string{"Column"}
)

// ValidateTeams checks a Teams Workflows webhook body: at most 28 KB; {"type":"message",
// "attachments":[one {"contentType":"application/vnd.microsoft.card.adaptive",
// "contentUrl":null,"content":card}]}; the card with type AdaptiveCard, the $schema
// above, a version; a non-empty body of TextBlock (non-empty text), FactSet (facts of
// string title and non-empty string value) and ColumnSet (Columns of such elements);
// actions only Action.OpenUrl with a title and an absolute http(s) url. The error names
// every problem by its path in the body.
func ValidateTeams(body []byte) error {
	if len(body) > TeamsMaxBytes {
		return fmt.Errorf("teams: body is %d bytes; Teams takes at most %d", len(body), TeamsMaxBytes)
	}
	top, err := decodeObject(body)
	if err != nil {
		return fmt.Errorf("teams: %w", err)
	}
	c := &checker{}
	c.allowKeys("message", top, "type", "attachments")
	if typ, ok := c.str("message", top, "type", true); ok && typ != "message" {
		c.failf("message.type", "is %q; must be \"message\"", typ)
	}
	raw, ok := top["attachments"]
	if !ok {
		c.failf("message", "missing %q", "attachments")
		return c.err()
	}
	atts, ok := c.array("message.attachments", raw)
	if !ok {
		return c.err()
	}
	if len(atts) != 1 {
		c.failf("message.attachments", "has %d attachments; must hold exactly one card", len(atts))
	}
	for i, a := range atts {
		teamsAttachment(c, fmt.Sprintf("attachments[%d]", i), a)
	}
	return c.err()
}

func teamsAttachment(c *checker, path string, raw any) {
	a, ok := c.object(path, raw)
	if !ok {
		return
	}
	c.allowKeys(path, a, "contentType", "contentUrl", "content")
	if ct, ok := c.str(path, a, "contentType", true); ok && ct != TeamsContentType {
		c.failf(path+".contentType", "is %q; must be %q", ct, TeamsContentType)
	}
	if u, ok := a["contentUrl"]; !ok {
		c.failf(path, "missing %q (null)", "contentUrl")
	} else if u != nil {
		c.failf(path+".contentUrl", "must be null, got %s", kind(u))
	}
	rawCard, ok := a["content"]
	if !ok {
		c.failf(path, "missing %q", "content")
		return
	}
	card, ok := c.object(path+".content", rawCard)
	if !ok {
		return
	}
	path += ".content"
	c.allowKeys(path, card, teamsCardKeys...)
	if typ, ok := c.str(path, card, "type", true); ok && typ != "AdaptiveCard" {
		c.failf(path+".type", "is %q; must be \"AdaptiveCard\"", typ)
	}
	if s, ok := c.str(path, card, "$schema", true); ok && s != TeamsCardSchema {
		c.failf(path+".$schema", "is %q; must be %q", s, TeamsCardSchema)
	}
	if ver, ok := c.str(path, card, "version", true); ok && !cardVersion.MatchString(ver) {
		c.failf(path+".version", "is %q; must be a version such as \"1.4\"", ver)
	}
	if rawBody, ok := card["body"]; !ok {
		c.failf(path, "missing %q", "body")
	} else if elems, ok := c.array(path+".body", rawBody); ok {
		if len(elems) == 0 {
			c.failf(path+".body", "is empty")
		}
		for i, e := range elems {
			teamsElement(c, fmt.Sprintf("%s.body[%d]", path, i), e, 0)
		}
	}
	if rawActions, ok := card["actions"]; ok {
		if actions, ok := c.array(path+".actions", rawActions); ok {
			for i, a := range actions {
				teamsAction(c, fmt.Sprintf("%s.actions[%d]", path, i), a)
			}
		}
	}
	if ms, ok := card["msteams"]; ok {
		c.object(path+".msteams", ms)
	}
}

func teamsElement(c *checker, path string, raw any, depth int) {
	e, ok := c.object(path, raw)
	if !ok {
		return
	}
	typ, ok := c.str(path, e, "type", true)
	if !ok {
		return
	}
	c.boolean(path, e, "separator")
	c.boolean(path, e, "isVisible")
	c.oneOf(path, e, "spacing", true, teamsSpacings...)
	switch typ {
	case "TextBlock":
		c.allowKeys(path, e, textBlockKeys...)
		if text, ok := c.str(path, e, "text", true); ok && text == "" {
			c.failf(path+".text", "is empty")
		}
		c.boolean(path, e, "wrap")
		c.boolean(path, e, "isSubtle")
		c.oneOf(path, e, "size", true, teamsSizes...)
		c.oneOf(path, e, "weight", true, teamsWeights...)
		c.oneOf(path, e, "color", true, teamsColors...)
		c.oneOf(path, e, "horizontalAlignment", true, teamsAlignments...)
	case "FactSet":
		c.allowKeys(path, e, factSetKeys...)
		raw, ok := e["facts"]
		if !ok {
			c.failf(path, "missing %q", "facts")
			return
		}
		facts, ok := c.array(path+".facts", raw)
		if !ok {
			return
		}
		if len(facts) == 0 {
			c.failf(path+".facts", "is empty")
		}
		for i, f := range facts {
			fpath := fmt.Sprintf("%s.facts[%d]", path, i)
			fact, ok := c.object(fpath, f)
			if !ok {
				continue
			}
			c.allowKeys(fpath, fact, "title", "value")
			c.str(fpath, fact, "title", true)
			if v, ok := c.str(fpath, fact, "value", true); ok && v == "" {
				c.failf(fpath+".value", "is empty")
			}
		}
	case "ColumnSet":
		c.allowKeys(path, e, columnSetKeys...)
		if depth >= maxElementDepth {
			c.failf(path, "is nested more than %d deep", maxElementDepth)
			return
		}
		raw, ok := e["columns"]
		if !ok {
			c.failf(path, "missing %q", "columns")
			return
		}
		cols, ok := c.array(path+".columns", raw)
		if !ok {
			return
		}
		for i, col := range cols {
			cpath := fmt.Sprintf("%s.columns[%d]", path, i)
			m, ok := c.object(cpath, col)
			if !ok {
				continue
			}
			c.allowKeys(cpath, m, columnKeys...)
			c.oneOf(cpath, m, "type", false, teamsColumnTypes...)
			if _, ok := m["type"]; !ok {
				c.failf(cpath, "missing %q (Column)", "type")
			}
			if rawItems, ok := m["items"]; ok {
				if items, ok := c.array(cpath+".items", rawItems); ok {
					for j, it := range items {
						teamsElement(c, fmt.Sprintf("%s.items[%d]", cpath, j), it, depth+1)
					}
				}
			}
		}
	default:
		c.failf(path+".type", "unknown element type %q (known: TextBlock, FactSet, ColumnSet)", typ)
	}
}

func teamsAction(c *checker, path string, raw any) {
	a, ok := c.object(path, raw)
	if !ok {
		return
	}
	typ, ok := c.str(path, a, "type", true)
	if !ok {
		return
	}
	if typ != "Action.OpenUrl" {
		c.failf(path+".type", "is %q; only Action.OpenUrl is known here", typ)
		return
	}
	c.allowKeys(path, a, openURLKeys...)
	if t, ok := c.str(path, a, "title", true); ok && t == "" {
		c.failf(path+".title", "is empty")
	}
	if u, ok := c.str(path, a, "url", true); ok {
		c.webURL(path+".url", u)
	}
}
