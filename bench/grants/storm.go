package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"
)

// stormResult is what the revocation storm measured.
type stormResult struct {
	mode          string
	issued        int
	issueTime     time.Duration
	ttl           time.Duration // aligned: start of issuing to the common expiry; same-ttl: each grant's TTL
	late          int           // aligned: grants issued too late to meet the common expiry
	firstExpiry   time.Time
	lastExpiry    time.Time
	pollStartLate time.Duration // how long after the first expiry polling began (0: before)

	allGone        bool
	goneAfterLast  time.Duration // last expiry to every user and policy gone
	goneAfterFirst time.Duration
	leftAtLast     int // grants with a user or policy left at the last expiry
	peakBacklog    int // most grants past their expiry with a user or policy left
	leasesLeft     int // leases still listed under the role's prefix at the end
	irrevocable    int // sys/leases/count?type=irrevocable at the end
}

type prefixResult struct {
	issued    int
	issueTime time.Duration
	call      time.Duration // sys/leases/revoke-prefix (synchronous) call
	gone      time.Duration // from the call to every user and policy gone
	allGone   bool
	leases    int
}

// issueMany issues n grants of role with conc workers; ttlFor gives each its TTL.
func (b *bench) issueMany(ctx context.Context, role string, n, conc int, ttlFor func() int) ([]object, time.Duration, error) {
	objs := make([]object, n)
	var mu sync.Mutex
	var errs int
	var firstErr error
	start := time.Now()
	done := 0
	parallel(ctx, conc, n, func(i int) {
		o, err := b.plugin.issue(ctx, role, ttlFor())
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs++
			if firstErr == nil {
				firstErr = err
			}
			return
		}
		objs[i] = o
		if done++; done%200 == 0 {
			progress("  %d/%d grants issued (%.1f/s)", done, n, float64(done)/time.Since(start).Seconds())
		}
	})
	took := time.Since(start)
	if err := ctx.Err(); err != nil {
		return nil, took, err
	}
	if errs > 0 {
		return nil, took, fmt.Errorf("issuing %d grants of role %s: %d failed, first: %w", n, role, errs, firstErr)
	}
	return objs, took, nil
}

// storm issues N grants that expire together and measures how fast Vault and the plugin
// clean them up.
func (b *bench) storm(ctx context.Context, o *options, rep *report) error {
	ttl := o.ttl
	if ttl == 0 {
		// 1.5 times the time issuing N grants should take at the measured rate, plus slack.
		ttl = 3 * time.Minute
		if perSec, ok := rep.tputPluginWhole.perSecond(); ok {
			est := time.Duration(float64(o.n) / perSec * float64(time.Second))
			ttl = max(est*3/2+15*time.Second, 30*time.Second).Round(time.Second)
		}
	}
	res := &stormResult{mode: o.expiry, ttl: ttl}
	rep.storm = res

	start := time.Now()
	common := start.Add(ttl)
	var mu sync.Mutex
	ttlFor := func() int { return int(ttl.Seconds()) }
	if o.expiry == "aligned" {
		ttlFor = func() int {
			secs := int(math.Ceil(time.Until(common).Seconds()))
			if secs < 5 {
				// Issuing fell behind: this one expires later; measured from the last expiry anyway.
				mu.Lock()
				res.late++
				mu.Unlock()
				secs = 5
			}
			return secs
		}
	}
	progress("revocation storm: issuing %d grants (expiry %s, ttl %s) at concurrency %d", o.n, o.expiry, ttl, o.tputConc)
	objs, took, err := b.issueMany(ctx, roleStorm, o.n, o.tputConc, ttlFor)
	if err != nil {
		return err
	}
	res.issued, res.issueTime = len(objs), took
	res.firstExpiry, res.lastExpiry = objs[0].expires, objs[0].expires
	for _, g := range objs {
		if g.expires.Before(res.firstExpiry) {
			res.firstExpiry = g.expires
		}
		if g.expires.After(res.lastExpiry) {
			res.lastExpiry = g.expires
		}
	}
	if now := time.Now(); now.After(res.firstExpiry) {
		res.pollStartLate = now.Sub(res.firstExpiry)
	}
	progress("  issued in %s; expiries from %s to %s; waiting for Vault to revoke them",
		took.Round(time.Millisecond), res.firstExpiry.Format("15:04:05.000"), res.lastExpiry.Format("15:04:05.000"))

	deadline := res.lastExpiry.Add(o.stormTimeout)
	sawLast := false
	var lastCount int
	for {
		users, policies, err := b.presentObjects(ctx)
		if err != nil {
			return err
		}
		now := time.Now()
		left, backlog := 0, 0
		for _, g := range objs {
			if users[g.user] || policies[g.policy] {
				left++
				if !now.Before(g.expires) {
					backlog++
				}
			}
		}
		res.peakBacklog = max(res.peakBacklog, backlog)
		if !sawLast && !now.Before(res.lastExpiry) {
			sawLast, res.leftAtLast = true, left
		}
		if left != lastCount && left%100 == 0 {
			progress("  %d grants left", left)
		}
		lastCount = left
		if left == 0 {
			res.allGone = true
			res.goneAfterLast = now.Sub(res.lastExpiry)
			res.goneAfterFirst = now.Sub(res.firstExpiry)
			break
		}
		if now.After(deadline) {
			res.goneAfterLast = now.Sub(res.lastExpiry)
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	// Vault deletes a lease right after its Revoke succeeds; give it a moment.
	res.leasesLeft, err = b.waitLeasesGone(ctx, roleStorm, 10*time.Second)
	if err != nil {
		return err
	}
	res.irrevocable, err = b.irrevocableCount(ctx)
	return err
}

// revokePrefix issues N grants and times `vault lease revoke -prefix apono/grants/<role>`.
func (b *bench) revokePrefix(ctx context.Context, o *options, rep *report) error {
	res := &prefixResult{}
	rep.prefix = res
	progress("revoke-prefix: issuing %d grants at concurrency %d", o.n, o.tputConc)
	objs, took, err := b.issueMany(ctx, rolePrefix, o.n, o.tputConc, func() int { return 0 })
	if err != nil {
		return err
	}
	res.issued, res.issueTime = len(objs), took

	progress("  revoking them with sys/leases/revoke-prefix/apono/grants/%s", rolePrefix)
	start := time.Now()
	if err := b.long.Sys().RevokePrefixWithContext(ctx, "apono/grants/"+rolePrefix); err != nil {
		return fmt.Errorf("revoke-prefix: %w", err)
	}
	res.call = time.Since(start)
	for {
		users, policies, err := b.presentObjects(ctx)
		if err != nil {
			return err
		}
		left := 0
		for _, g := range objs {
			if users[g.user] || policies[g.policy] {
				left++
			}
		}
		if left == 0 {
			res.allGone, res.gone = true, time.Since(start)
			break
		}
		if time.Since(start) > o.stormTimeout {
			res.gone = time.Since(start)
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	res.leases, err = b.waitLeasesGone(ctx, rolePrefix, 10*time.Second)
	return err
}

// waitLeasesGone waits up to timeout for no lease to be listed under apono/grants/<role>/
// and returns how many are left.
func (b *bench) waitLeasesGone(ctx context.Context, role string, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	for {
		keys, err := b.listKeys(ctx, "sys/leases/lookup/apono/grants/"+role+"/")
		if err != nil {
			return 0, err
		}
		if len(keys) == 0 || time.Now().After(deadline) {
			return len(keys), nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// irrevocableCount asks Vault how many leases it has marked irrevocable.
func (b *bench) irrevocableCount(ctx context.Context) (int, error) {
	s, err := b.client.Logical().ReadWithDataWithContext(ctx, "sys/leases/count",
		map[string][]string{"type": {"irrevocable"}})
	if err != nil {
		return 0, fmt.Errorf("sys/leases/count: %w", err)
	}
	if s == nil {
		return 0, errors.New("sys/leases/count returned nothing")
	}
	switch n := s.Data["lease_count"].(type) {
	case json.Number:
		v, err := n.Int64()
		return int(v), err
	case float64:
		return int(n), nil
	}
	return 0, fmt.Errorf("sys/leases/count: no lease_count in %v", s.Data)
}
