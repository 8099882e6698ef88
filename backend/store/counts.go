package store

import (
	"context"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/hashicorp/vault/sdk/logical"
)

// Counts are what apono/metrics reads from the indexes when scraped.
type Counts struct {
	LiveGrants, PendingRequests, ApprovedRequests int
	// OldestPending is when the oldest pending request was made (zero: none pending).
	OldestPending time.Time
}

// Counts reads the live grants and open requests from the indexes; ok is false while the
// indexes are still being built (the numbers would be short).
func (st *Store) Counts(ctx context.Context, s logical.Storage) (c Counts, ok bool, err error) {
	select {
	case <-st.Index.Ready:
	default:
		return c, false, nil
	}
	if c.LiveGrants, err = st.Index.Set("grant/all").Count(ctx, s); err != nil {
		return c, false, err
	}
	if c.ApprovedRequests, err = st.Index.Set("req/status/"+access.StatusApproved).Count(ctx, s); err != nil {
		return c, false, err
	}
	// Newest first: the last key is the oldest request.
	last := ""
	err = st.Index.Set("req/status/"+access.StatusPending).Scan(ctx, s, "", func(key string) bool {
		c.PendingRequests++
		last = key
		return true
	})
	if err != nil {
		return c, false, err
	}
	if last != "" {
		c.OldestPending = NewestFirstTime(last)
	}
	return c, true, nil
}

// NewestFirstTime is the time a NewestFirstKey was made from (zero for another key).
func NewestFirstTime(key string) time.Time {
	hex, _, _ := strings.Cut(key, ".")
	v, err := strconv.ParseUint(hex, 16, 64)
	if err != nil || v > math.MaxInt64 {
		return time.Time{}
	}
	return time.Unix(0, math.MaxInt64-int64(v)).UTC()
}
