package access

import (
	"errors"
	"fmt"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/access/window"
)

const DefaultMaxScheduleAhead = 7 * 24 * time.Hour

func (r *Role) MaxScheduleAheadOrDefault() time.Duration {
	return OrDefault(r.MaxScheduleAhead, DefaultMaxScheduleAhead)
}

// ParseTime parses what the stored role holds as text (windows, rule windows).
func (r *Role) ParseTime() error {
	set, err := window.ParseList(r.AccessWindows)
	if err != nil {
		return err
	}
	r.ParsedWindows = set
	for i := range r.AutoApprove {
		if err := r.AutoApprove[i].parse(); err != nil {
			return fmt.Errorf("auto_approve: %w", err)
		}
	}
	return nil
}

// WindowCheck says whether the role's windows let access be had at t: the end of the
// window t is in (zero when the role has none, or its grants are not capped), or a 400
// naming the next window's start.
func (r *Role) WindowCheck(roleName string, t time.Time) (end time.Time, msg string) {
	if r.ParsedWindows.Len() == 0 {
		return time.Time{}, ""
	}
	end, err := r.ParsedWindows.Check(t)
	var closed *window.ClosedError
	if errors.As(err, &closed) {
		return time.Time{}, fmt.Sprintf("role %q: %s", roleName, err)
	}
	if err != nil {
		return time.Time{}, fmt.Sprintf("role %q: %s", roleName, err)
	}
	if r.WindowsNoCap {
		return time.Time{}, ""
	}
	return end, ""
}
