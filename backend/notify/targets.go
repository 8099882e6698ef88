package notify

import (
	"context"
	"fmt"
	"strings"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/hashicorp/vault/sdk/logical"
)

const (
	NotifyTargetPrefix = "notify/target/"
	NotifyQueuePrefix  = "notify-queue/"
	NotifyOtherPrefix  = "notify-other/"
	MaxNotifyTargets   = 32
)

// notifyTargetEntry is a target as stored.
type Target struct {
	Name   string   `json:"name"`
	URL    string   `json:"url"`
	Format string   `json:"format"`
	Secret string   `json:"secret,omitempty"`
	CACert string   `json:"ca_cert,omitempty"`
	Events []string `json:"events,omitempty"` // empty: every type
}

// EventTypes are the types a target may ask for; "request.*" and "grant.*" take a family.
var EventTypes = []string{EventRequestCreated, EventRequestApproval, EventRequestApproved, access.EventRequestAutoApproved, EventRequestDenied,
	EventRequestCancelled, EventRequestExpired, EventGrantIssued, EventGrantRevoked, EventBreakGlass}

func (t *Target) Wants(typ string) bool {
	if len(t.Events) == 0 {
		return true
	}
	for _, e := range t.Events {
		if e == typ || (strings.HasSuffix(e, ".*") && strings.HasPrefix(typ, strings.TrimSuffix(e, "*"))) {
			return true
		}
	}
	return false
}

func GetTarget(ctx context.Context, s logical.Storage, name string) (*Target, error) {
	entry, err := s.Get(ctx, NotifyTargetPrefix+name)
	if err != nil || entry == nil {
		return nil, err
	}
	t := &Target{}
	if err := entry.DecodeJSON(t); err != nil {
		return nil, fmt.Errorf("decoding notification target %q: %w", name, err)
	}
	return t, nil
}
