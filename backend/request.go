package backend

import (
	"context"
	"fmt"
	"regexp"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/hashicorp/vault/sdk/logical"
)

// An access request as stored, its statuses, and how it reads in responses and events.
// The paths that act on requests are in path_requests.go.

const (
	requestStoragePrefix = "request/"
	requestIDPattern     = `[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`
	maxReasonLen         = 1024
)

var requestIDRe = regexp.MustCompile("^" + requestIDPattern + "$")

func getRequest(ctx context.Context, s logical.Storage, id string) (*access.Request, error) {
	entry, err := s.Get(ctx, requestStoragePrefix+id)
	if err != nil || entry == nil {
		return nil, err
	}
	r := &access.Request{}
	if err := entry.DecodeJSON(r); err != nil {
		return nil, fmt.Errorf("decoding request %q: %w", id, err)
	}
	return r, nil
}

func putRequest(ctx context.Context, s logical.Storage, r *access.Request) error {
	entry, err := logical.StorageEntryJSON(requestStoragePrefix+r.ID, r)
	if err != nil {
		return err
	}
	return s.Put(ctx, entry)
}

// endedMessage explains why an ended request accepts no more actions.
func endedMessage(rec *access.Request, status string) string {
	switch status {
	case access.StatusGranted:
		return fmt.Sprintf("request %s was already picked up as grant %s", rec.ID, rec.GrantID)
	case access.StatusDenied:
		by := ""
		if rec.Decision != nil {
			by = " by " + rec.Decision.By.EntityName
		}
		return fmt.Sprintf("request %s was denied%s", rec.ID, by)
	case access.StatusCancelled:
		return fmt.Sprintf("request %s was cancelled by its requester", rec.ID)
	case access.StatusExpired:
		if rec.Status == access.StatusApproved || !rec.PickupBy.IsZero() {
			return fmt.Sprintf("request %s expired: it was approved but not picked up by %s (pickup_ttl)", rec.ID, access.FormatTime(rec.PickupBy))
		}
		return fmt.Sprintf("request %s expired unapproved at %s (request_ttl)", rec.ID, access.FormatTime(rec.ExpiresAt))
	}
	return fmt.Sprintf("request %s is %s", rec.ID, status)
}
