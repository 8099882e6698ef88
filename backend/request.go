package backend

import (
	"fmt"

	"github.com/apono-io/vault-plugin-apono/backend/access"
)

// An access request as stored, its statuses, and how it reads in responses and events.
// The paths that act on requests are in path_requests.go.

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
