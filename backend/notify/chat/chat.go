// Package chat renders access-flow events as Slack and Microsoft Teams webhook messages.
package chat

import (
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/apono-io/vault-plugin-apono/internal/textsafe"
)

// Event types: the one list, which notify names its events from. A type not listed here
// still renders, as a generic update.
const (
	RequestCreated      = "request.created"
	RequestApproval     = "request.approval" // one approval, more needed
	RequestApproved     = "request.approved" // the approval rule is met
	RequestAutoApproved = "request.auto_approved"
	RequestDenied       = "request.denied"
	RequestCancelled    = "request.cancelled"
	RequestExpired      = "request.expired"
	RequestReminded     = "request.reminded"
	RequestEscalated    = "request.escalated"
	GrantIssued         = "grant.issued"
	GrantRevoked        = "grant.revoked"
	GrantBreakGlass     = "grant.break_glass"
)

// Event is everything a chat message may show. It has no field for a password, token or
// secret_id on purpose: a format can only render what is here. Every string is treated as
// untrusted text; empty fields and zero times are left out of the message.
type Event struct {
	Type          string
	Mount         string // the plugin's mount, "apono/"
	RequestID     string
	GrantID       string
	Role          string
	Requester     string // display name as people know it
	Actor         string // who approved, denied, cancelled or revoked
	Reason        string // the actor's reason
	Justification string // the requester's reason
	Resources     []string
	Permission    string
	TTL           time.Duration // how long the access lasts
	Approvers     []string      // who can approve
	Approvals     string        // progress, "1/2 approvals"
	// ExpiresAt is when the request expires (request.created, request.approval,
	// request.expired), the pickup deadline (request.approved) or when the grant ends
	// (grant.*), as the type says.
	ExpiresAt  time.Time
	PickupBy   time.Time // pickup deadline of an approved request; ExpiresAt stands in when zero
	BreakGlass bool
	PortalURL  string // opens this request in the access portal; no button when empty or not http(s)
	Time       time.Time
}

// Caps on each value before a format escapes it: a message stays readable and far below
// the services' limits whatever one field holds. The backend's own input caps (1024
// characters for justification and reason) fit, so real text is not cut.
const (
	maxNameLen      = 120  // requester, actor, role, permission, one resource, one approver
	maxIDLen        = 80   // request and grant IDs, mount
	maxFreeTextLen  = 1024 // justification, reason
	maxListLen      = 300  // a summarised list; five times that (all "&" escaped) still fits a Slack field
	maxListNames    = 5    // names a summary shows before "and N more"
	maxPortalURLLen = 3000 // Slack's limit for a button url; a cut URL would be a broken link
)

// fact is one labelled value; a time fact has when instead of value, so each format can
// show it its own way (Slack: in the reader's time zone).
type fact struct {
	label string
	value string
	when  time.Time
}

// message is what both formats show, built once from an Event: values are sanitised and
// capped here, escaped and fitted to each service's limits by the format.
type message struct {
	headline string // "Access request: app-db"
	fallback string // headline and summary in one line, for notifications
	summary  string // one sentence: who, what, how long, what happens next
	facts    []fact
	action   string // button label
	url      string // checked portal URL, or "" for no button
	footer   string // mount, request and grant IDs
	at       time.Time
}

// kind is the wording that differs between event types.
type kind struct {
	title    string
	actor    string // label of Actor
	deadline string // label of ExpiresAt (PickupBy for approvals)
	action   string
}

var kinds = map[string]kind{
	RequestCreated:      {title: "Access request", actor: "By", deadline: "Request expires", action: "Review request"},
	RequestApproval:     {title: "Approval recorded", actor: "Approved by", deadline: "Request expires", action: "Review request"},
	RequestApproved:     {title: "Request approved", actor: "Approved by", deadline: "Pick up by", action: "Pick up access"},
	RequestAutoApproved: {title: "Request approved automatically", actor: "Approved by", deadline: "Pick up by", action: "Pick up access"},
	RequestDenied:       {title: "Request denied", actor: "Denied by", deadline: "Request expires", action: "Open request"},
	RequestCancelled:    {title: "Request cancelled", actor: "Cancelled by", deadline: "Request expires", action: "Open request"},
	RequestExpired:      {title: "Request expired", actor: "By", deadline: "Expired at", action: "Open request"},
	RequestReminded:     {title: "Still waiting for approval", actor: "By", deadline: "Request expires", action: "Review request"},
	RequestEscalated:    {title: "Request escalated", actor: "By", deadline: "Request expires", action: "Review request"},
	GrantIssued:         {title: "Access granted", actor: "By", deadline: "Access ends", action: "Open in portal"},
	GrantRevoked:        {title: "Access ended", actor: "Revoked by", deadline: "Was due to end", action: "Open in portal"},
	GrantBreakGlass:     {title: "Break-glass access", actor: "By", deadline: "Access ends", action: "Review in portal"},
}

// genericKind is for types this package does not know yet.
var genericKind = kind{title: "Access update", actor: "By", deadline: "Until", action: "Open in portal"}

func build(ev Event) message {
	k, known := kinds[ev.Type]
	if !known {
		k = genericKind
	}
	requester := capText(ev.Requester, maxNameLen)
	actor := capText(ev.Actor, maxNameLen)
	role := capText(ev.Role, maxNameLen)
	resources := summarise(ev.Resources)
	deadline := ev.ExpiresAt
	if isApproval(ev.Type) && !ev.PickupBy.IsZero() {
		deadline = ev.PickupBy
	}

	m := message{
		headline: k.title,
		action:   k.action,
		url:      portalURL(ev.PortalURL),
		at:       ev.Time,
	}
	if ev.BreakGlass && ev.Type == GrantIssued {
		m.headline = "Access granted (break glass)"
	}
	if role != "" {
		m.headline += ": " + role
	}
	m.summary = summary(ev, known, requester, actor, resources, deadline)
	m.fallback = m.headline + ". " + m.summary

	add := func(label, value string) {
		if value != "" {
			m.facts = append(m.facts, fact{label: label, value: value})
		}
	}
	add("Requester", requester)
	add("Role", role)
	add("Resources", resources)
	add("Permission", capText(ev.Permission, maxNameLen))
	if ev.TTL > 0 {
		add("Duration", humanDuration(ev.TTL))
	}
	add("Justification", capText(ev.Justification, maxFreeTextLen))
	if ev.BreakGlass {
		add("Break glass", "yes, without approval")
	}
	add(k.actor, actor)
	add("Reason", capText(ev.Reason, maxFreeTextLen))
	add("Approvals", capText(ev.Approvals, maxNameLen))
	if pending(ev.Type) || !known {
		add("Who can approve", summarise(ev.Approvers)) // noise once decided
	}
	if !deadline.IsZero() {
		m.facts = append(m.facts, fact{label: k.deadline, when: deadline})
	}
	if !isApproval(ev.Type) && !ev.PickupBy.IsZero() && !ev.PickupBy.Equal(deadline) {
		m.facts = append(m.facts, fact{label: "Pick up by", when: ev.PickupBy})
	}
	if !known {
		add("Event", capText(ev.Type, maxNameLen))
	}

	var footer []string
	if v := capText(ev.Mount, maxIDLen); v != "" {
		footer = append(footer, v)
	}
	if v := capText(ev.RequestID, maxIDLen); v != "" {
		footer = append(footer, "request "+v)
	}
	if v := capText(ev.GrantID, maxIDLen); v != "" {
		footer = append(footer, "grant "+v)
	}
	m.footer = strings.Join(footer, " · ")
	return m
}

func isApproval(typ string) bool { return typ == RequestApproved || typ == RequestAutoApproved }

// pending is a request that still waits for approvers.
func pending(typ string) bool {
	return typ == RequestCreated || typ == RequestApproval || typ == RequestReminded || typ == RequestEscalated
}

// summary is the one sentence a person reads first, from values already capped.
func summary(ev Event, known bool, requester, actor, resources string, deadline time.Time) string {
	who, request, theRequest := "Someone", "A request", "a request"
	if requester != "" {
		who, request, theRequest = requester, requester+"'s request", requester+"'s request"
	}
	what := "access"
	if p := capText(ev.Permission, maxNameLen); p != "" {
		what = p + " access"
	}
	if resources != "" {
		what += " to " + resources
	}
	dur := ""
	if ev.TTL > 0 {
		dur = " for " + humanDuration(ev.TTL)
	}
	by := ""
	if actor != "" {
		by = " by " + actor
	}
	pickup := ""
	if !deadline.IsZero() {
		pickup = " Pick up the access by " + utcTime(deadline) + "."
	}
	switch {
	case !known:
		typ := capText(ev.Type, maxNameLen)
		if typ == "" {
			typ = "(no type)"
		}
		subject := what + dur
		if requester != "" {
			subject = requester + ", " + subject
		}
		return "Access-flow event " + typ + ": " + subject + "."
	case ev.Type == RequestCreated:
		return who + " asks for " + what + dur + "."
	case ev.Type == RequestApproval:
		progress := "more approvals are needed"
		if a := capText(ev.Approvals, maxNameLen); a != "" {
			progress = a + ", more are needed"
		}
		return firstNonEmpty(actor, "An approver") + " approved " + theRequest + " for " + what + dur + "; " + progress + "."
	case ev.Type == RequestApproved:
		return request + " for " + what + dur + " is approved" + by + "." + pickup
	case ev.Type == RequestAutoApproved:
		return request + " for " + what + dur + " is approved automatically." + pickup
	case ev.Type == RequestDenied:
		if reason := capText(ev.Reason, maxFreeTextLen); reason != "" {
			return request + " for " + what + " is denied" + by + ": " + reason // the requester's next step
		}
		return request + " for " + what + " is denied" + by + "."
	case ev.Type == RequestCancelled:
		if actor == requester {
			by = "" // "alice's request is cancelled by alice" says nothing more
		}
		return request + " for " + what + " is cancelled" + by + "."
	case ev.Type == RequestReminded:
		progress := ""
		if a := capText(ev.Approvals, maxNameLen); a != "" {
			progress = " (" + a + ")"
		}
		return request + " for " + what + dur + " still waits for approval" + progress + "; nobody has decided it yet."
	case ev.Type == RequestEscalated:
		asked := "more approvers"
		if s := summarise(ev.Approvers); s != "" {
			asked = s
		}
		return "Nobody has decided " + theRequest + " for " + what + dur + " in time: it is now also asked of " + asked + "."
	case ev.Type == RequestExpired:
		return request + " for " + what + " expired; it can no longer be approved or picked up."
	case ev.Type == GrantIssued && ev.BreakGlass:
		return who + " has " + what + dur + ", by break glass without approval."
	case ev.Type == GrantIssued:
		return who + " has " + what + dur + "."
	case ev.Type == GrantRevoked:
		subject := "The " + what
		if requester != "" {
			subject = requester + "'s " + what
		}
		if actor != "" {
			return subject + " has ended, revoked by " + actor + "."
		}
		return subject + " has ended."
	default: // GrantBreakGlass
		return who + " used break glass to get " + what + dur + " without approval."
	}
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// summarise names the entries of a list while they fit in maxListNames names and
// maxListLen characters, then says how many more, so 64 resources fit in a line:
// "kv/app/a, kv/app/b and 62 more".
func summarise(list []string) string {
	var names []string
	for _, v := range list {
		if v = capText(v, maxNameLen); v != "" {
			names = append(names, v)
		}
	}
	if len(names) <= 1 {
		return strings.Join(names, "")
	}
	all := strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
	if len(names) <= maxListNames && utf8.RuneCountInString(all) <= maxListLen {
		return all
	}
	budget := maxListLen - len(" and 9999 more")
	shown, length := 0, 0
	for shown < len(names) && shown < maxListNames {
		n := utf8.RuneCountInString(names[shown]) + len(", ")
		if shown > 0 && length+n > budget {
			break
		}
		length += n
		shown++
	}
	return strings.Join(names[:shown], ", ") + fmt.Sprintf(" and %d more", len(names)-shown)
}

// capText makes untrusted text one safe line and cuts it at max characters with an
// ellipsis: controls and line breaks become spaces (no forged lines or list items),
// invisible and direction-changing characters go (no text that reads other than it is).
func capText(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	var b strings.Builder
	space := false
	for _, r := range s {
		switch {
		case hiddenRune(r):
			continue
		case unicode.IsControl(r) || unicode.IsSpace(r) || r == '\u2028' || r == '\u2029':
			space = true
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(r)
	}
	return clipRunes(b.String(), max)
}

// hiddenRune is a character that shows nothing or reorders what follows (textsafe's one
// list); the formats add their own invisible separators, so none may come from input.
// The zero-width joiner stays: it makes one emoji of several and reorders nothing.
func hiddenRune(r rune) bool {
	return textsafe.Hidden(r) && r != textsafe.ZeroWidthJoiner
}

const ellipsis = "…"

// clipRunes cuts s to at most max characters, the last being an ellipsis when cut.
func clipRunes(s string, max int) string {
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	r := []rune(s)
	return strings.TrimRight(string(r[:max-1]), " ") + ellipsis
}

// fit joins the escaped pieces of s (one per input character, so an escape is never cut
// in half) and cuts at max characters, counted as UTF-16 units: never fewer than the
// characters a service counts, however it counts them.
func fit(pieces []string, max int) string {
	total := 0
	for _, p := range pieces {
		total += textLen(p)
	}
	if total <= max {
		return strings.Join(pieces, "")
	}
	var b strings.Builder
	n := 0
	for _, p := range pieces {
		if n+textLen(p) > max-1 {
			break
		}
		b.WriteString(p)
		n += textLen(p)
	}
	return strings.TrimRight(b.String(), " ") + ellipsis
}

// textLen is the length the services' limits are checked against (UTF-16 units).
func textLen(s string) int {
	n := 0
	for _, r := range s {
		n += utf16.RuneLen(r)
	}
	return n
}

// portalURL returns raw when it is an absolute http(s) URL short enough for a button,
// else "": a message without a button is better than one the service refuses, or a link
// to somewhere other than a web page.
func portalURL(raw string) string {
	if raw == "" || len(raw) > maxPortalURLLen || strings.ContainsFunc(raw, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		return ""
	}
	return raw
}

// utcTime is a time every reader can place, for where a service cannot localise it.
func utcTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }

// humanDuration says 1h30m as "1 hour 30 minutes"; seconds show only under a minute.
func humanDuration(d time.Duration) string {
	if d < time.Minute {
		return plural(int(d.Round(time.Second)/time.Second), "second")
	}
	d = d.Round(time.Minute)
	days, hours, minutes := int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour), int(d%time.Hour/time.Minute)
	var parts []string
	if days > 0 {
		parts = append(parts, plural(days, "day"))
	}
	if hours > 0 {
		parts = append(parts, plural(hours, "hour"))
	}
	if minutes > 0 {
		parts = append(parts, plural(minutes, "minute"))
	}
	return strings.Join(parts, " ")
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}
