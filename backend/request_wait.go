package backend

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/apono-io/vault-plugin-apono/backend/store"
	"github.com/hashicorp/vault/sdk/logical"
)

// vault read <mount>/requests/<id> wait=<duration> answers when the request's status
// changes (an approval that completes it, a denial, a pickup, its expiry) or, unchanged,
// at the end of the wait, so that a script waits for approval without polling fast.
//
// A waiting read sleeps until it is woken: store.SaveRequest wakes the reads of the request it
// stores on this node, and Invalidate wakes them when another node stored it (a
// performance standby answers reads itself and hears of the active node's writes that
// way); an open request's deadline wakes them for its expiry. A read of storage every
// store.RequestWaitFallback covers a change this process is told of neither way; it is not how
// a change is normally seen.
//
// Waiting reads are bounded: at most store.MaxWaitersPerPerson per person and store.MaxWaiters in all
// on this node; past either, the read is refused at once with a 429.

const maxRequestWait = 60 * time.Second

// errTooManyWaiters is the 429 of a read with wait= past the bounds.
func errTooManyWaiters(mine bool) error {
	if mine {
		return logical.CodedError(http.StatusTooManyRequests, fmt.Sprintf(
			"you already have %d reads waiting with wait= (at most %d at a time): wait for one to answer, or read without wait", store.MaxWaitersPerPerson, store.MaxWaitersPerPerson))
	}
	return logical.CodedError(http.StatusTooManyRequests, fmt.Sprintf(
		"%d reads are waiting with wait= on this node (at most %d): try again shortly, or read without wait", store.MaxWaiters, store.MaxWaiters))
}

// waitForChange is store.WaitForChange with its refusal past the bounds as the 429.
func (b *aponoBackend) waitForChange(ctx context.Context, s logical.Storage, rec *access.Request, person string, wait time.Duration) (*access.Request, bool, error) {
	cur, changed, err := b.store.WaitForChange(ctx, s, rec, person, wait)
	var many *store.TooManyWaiters
	if errors.As(err, &many) {
		return nil, false, errTooManyWaiters(many.Mine)
	}
	return cur, changed, err
}
