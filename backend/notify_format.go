package backend

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
	notifyFormatJSON  = "json"
	notifyFormatSlack = "slack"
	notifyFormatTeams = "teams"
)

var notifyFormats = []string{notifyFormatJSON, notifyFormatSlack, notifyFormatTeams}

// formatBody is what a target of format receives for the stored event body.
func formatBody(format string, body []byte) ([]byte, error) {
	if format == "" || format == notifyFormatJSON {
		return body, nil
	}
	var ev event
	if err := json.Unmarshal(body, &ev); err != nil {
		return nil, err
	}
	m := chatEvent(&ev)
	switch format {
	case notifyFormatSlack:
		return chat.Slack(m)
	case notifyFormatTeams:
		return chat.Teams(m)
	}
	return nil, fmt.Errorf("unknown format %q", format)
}

// chatEvent is ev as the chat formats take it.
func chatEvent(ev *event) chat.Event {
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
	if ev.Actor != nil {
		m.Actor = ev.Actor.Person()
	}
	return m
}
