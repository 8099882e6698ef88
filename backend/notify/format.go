package notify

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/notify/chat"
)

// The bodies a notification target receives: the event as stored (json, signed when the
// target has a secret), or a chat message made from it (chat/) for a Slack incoming
// webhook or a Microsoft Teams Workflows webhook. A message is made from the event's
// fields only, which never hold a password, token or secret_id.

const (
	NotifyFormatJSON  = "json"
	NotifyFormatSlack = "slack"
	NotifyFormatTeams = "teams"
)

var NotifyFormats = []string{NotifyFormatJSON, NotifyFormatSlack, NotifyFormatTeams}

// FormatBody is what a target of format receives for the stored event body.
func FormatBody(format string, body []byte) ([]byte, error) {
	if format == "" || format == NotifyFormatJSON {
		return body, nil
	}
	var ev Event
	if err := json.Unmarshal(body, &ev); err != nil {
		return nil, err
	}
	m := ChatEvent(&ev)
	switch format {
	case NotifyFormatSlack:
		return chat.Slack(m)
	case NotifyFormatTeams:
		return chat.Teams(m)
	}
	return nil, fmt.Errorf("unknown format %q", format)
}

// ChatEvent is ev as the chat formats take it.
func ChatEvent(ev *Event) chat.Event {
	when := func(s string) time.Time {
		t, _ := time.Parse(time.RFC3339Nano, s)
		return t
	}
	m := chat.Event{
		Type: ev.Type, Mount: ev.Mount, RequestID: ev.RequestID, GrantID: ev.GrantID, Role: ev.Role,
		Requester: ev.Requester, Reason: ev.Reason, Justification: ev.Justification,
		Resources: ev.Resources, Permission: ev.Permission, TTL: time.Duration(ev.TTL) * time.Second,
		Approvers: ev.Approvers, Approvals: ev.Approvals, ExpiresAt: when(ev.ExpiresAt), PickupBy: when(ev.PickupBy),
		BreakGlass: ev.BreakGlass, PortalURL: ev.PortalLink, Time: when(ev.Time),
	}
	if ev.RequesterName != "" {
		m.Requester = ev.RequesterName
	}
	if ev.Type == EventRequestEscalated && len(ev.EscalatedTo) > 0 {
		m.Approvers = ev.EscalatedTo // "now also asked of" them
	}
	if ev.Actor != nil {
		m.Actor = ev.Actor.Person()
	}
	return m
}
