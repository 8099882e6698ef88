// Package sweep is the background cleanup, run by the backend's periodic job on the active
// node: open requests past their deadline expire (tidy.go), ended requests and history past
// their retention go, and, as the backstop behind Vault's own lease revocation, it removes, with grants.Remove, this mount's grants
// whose end has passed and the users, policies and entities no grant record explains,
// and entities earlier versions left. It only ever touches names this mount makes, and
// deletes nothing record-less it has not seen twice, far enough apart that no issue in
// flight can be mistaken for an orphan.
package sweep

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/config"
	"github.com/apono-io/vault-plugin-apono/backend/grants"
	"github.com/apono-io/vault-plugin-apono/backend/notify"
	"github.com/apono-io/vault-plugin-apono/backend/store"
	"github.com/apono-io/vault-plugin-apono/backend/vaultapi"
	"github.com/apono-io/vault-plugin-apono/internal/keylock"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// The orphan sweeper is the backstop behind Vault's own lease revocation: it deletes this
// mount's users and policies whose grant has ended or that no grant record explains.
//
// The rule, for a name N = the mount's prefix + <16 hex grant ID> (grants.IDFromName) (nothing else is ever touched):
//   - A grant record whose expires_at + ExpiryGrace has passed is removed with
//     grants.Remove (policy, user, record), whether or not its user still exists. This
//     covers a lease Vault marked irrevocable and a crash after the record but before Vault
//     stored the lease. The record is read again under the grant's lock first, so a renewal
//     that just moved expires_at wins.
//   - A user of the configured userpass mount, or a policy (when LIST sys/policies/acl is
//     allowed), named N with no grant record and no pending WAL entry for its grant is
//     deleted (user and policy of that name) only when a previous sweep, at least
//     w.RecordlessMinAge earlier, already saw it record-less and WAL-less, and it still
//     has no record under the grant's lock. Vault is listed before storage is read: an
//     object that is listed was created after its WAL entry was written, and the WAL entry
//     is deleted only after the record is stored, so an issue in flight is never mistaken
//     for an orphan.
//   - Anything else (other mounts' prefixes, names not of that form, users of an earlier
//     userpass mount without a record) is left alone.

const (
	// DefaultInterval is how often the sweeper runs at most; Vault revokes leases on time
	// itself, so the backstop need not be fast.
	DefaultInterval = 5 * time.Minute
	// ExpiryGrace lets Vault's own revocation of an expired lease go first, and
	// absorbs clock skew between the node that issued a grant and the one sweeping.
	ExpiryGrace = time.Minute
)

// Deps is what a Sweeper is built from; all of it is shared with the rest of the backend.
type Deps struct {
	Logger func() hclog.Logger
	Grants *grants.Grants
	// Locks are the per-grant locks grants.Grants uses too.
	Locks         *keylock.Set
	Index         *store.Indexes
	Caps          *vaultapi.CapabilityCache
	AuthAccessors *vaultapi.AuthAccessorCache
	// Client returns the backend's Vault client.
	Client func(ctx context.Context, s logical.Storage) (vaultapi.Client, error)
	// Revoked prepares the grant.revoked event of a grant before its record goes, and
	// returns what sends it with a reason; nil when nothing receives events.
	Revoked func(ctx context.Context, s logical.Storage, grantID string) (send func(reason string))
	// Store writes requests; RequestLock is the lock of one request, shared with the paths
	// that change it.
	Store       *store.Store
	RequestLock func(id string) sync.Locker
	// Config reads the plugin's config (nil before apono/config is written).
	Config func(ctx context.Context, s logical.Storage) (*config.Config, error)
	// Emit sends an access-flow event to the configured destinations.
	Emit func(ctx context.Context, cfg *config.Config, ev notify.Event)
	// RecordlessMinAge is how long a record-less object must stay record-less before it is
	// deleted: as long as a WAL entry must be old before Vault rolls it back.
	RecordlessMinAge time.Duration
}

// Sweeper is the sweeper and its memory; the memory lives only as long as this node is
// active, which is fine: a new active node starts by sweeping and needs two sweeps to
// delete record-less objects. Build it with New.
type Sweeper struct {
	Deps

	mu      sync.Mutex
	lastRun time.Time
	// Interval overrides DefaultInterval when positive (APONO_SWEEP_INTERVAL, tests).
	Interval time.Duration
	// Now is the clock; nil means time.Now (tests move it).
	Now func() time.Time
	// suspects are the record-less objects seen so far.
	suspects sightings
	// legacy is the same for entities earlier versions left (legacy.go).
	legacy sightings
}

// New returns the sweeper of one backend.
func New(d Deps) *Sweeper { return &Sweeper{Deps: d} }

// sightings maps each suspect to when a sweep first saw it, for the rule that a suspect
// is removed only when seen again at least w.RecordlessMinAge later.
type sightings map[string]time.Time

// secondSighting records a first sighting of key, and reports whether key was first seen
// at least minAge ago, long enough to be removed now.
func (s sightings) secondSighting(key string, now time.Time, minAge time.Duration) bool {
	first, seen := s[key]
	if !seen {
		s[key] = now
		return false
	}
	return now.Sub(first) >= minAge
}

// forgetAllBut drops suspects not seen in this sweep: something explained them.
func (s sightings) forgetAllBut(seen map[string]bool) {
	for key := range s {
		if !seen[key] {
			delete(s, key)
		}
	}
}

func (w *Sweeper) clock() time.Time {
	if w.Now != nil {
		return w.Now()
	}
	return time.Now()
}

// Result says what one sweep removed.
type Result struct {
	Expired    []string // grant IDs whose records had expired
	Recordless []string // names of users/policies that no record explained
	Legacy     []string // grant user names whose entity an earlier version left behind
}

// IfDue runs the sweeper when DefaultInterval has passed since its last run.
func (w *Sweeper) IfDue(ctx context.Context, s logical.Storage) error {
	st := w
	st.mu.Lock()
	defer st.mu.Unlock()
	now := st.clock()
	interval := st.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	if !st.lastRun.IsZero() && now.Sub(st.lastRun) < interval {
		return nil
	}
	cfg, err := config.Get(ctx, s)
	if err != nil {
		return err
	}
	if cfg == nil {
		return nil // nothing can have been created without a config
	}
	st.lastRun = now
	client, err := w.Client(ctx, s)
	if err != nil {
		return fmt.Errorf("orphan sweep: %w", err)
	}
	res, err := w.orphans(ctx, s, client, cfg.UserpassMount, now)
	if w.Grants != nil {
		w.Grants.Metrics.Swept("expired_grant", len(res.Expired))
		w.Grants.Metrics.Swept("recordless_object", len(res.Recordless))
		w.Grants.Metrics.Swept("legacy_entity", len(res.Legacy))
	}
	if len(res.Expired) > 0 || len(res.Recordless) > 0 || len(res.Legacy) > 0 {
		w.Logger().Info("orphan sweep removed grants", "expired_grants", res.Expired, "recordless_objects", res.Recordless,
			"legacy_entities", res.Legacy)
	}
	return err
}

// orphans applies the rule above once. The caller holds w.mu.
func (w *Sweeper) orphans(ctx context.Context, s logical.Storage, client vaultapi.Client, userpassMount string, now time.Time) (Result, error) {
	var res Result
	var errs []error

	// 1. Vault first (see the rule): this mount's users, and policies when listable.
	names := map[string]bool{}
	users, usersErr := client.ListUsers(ctx, userpassMount)
	if usersErr != nil {
		errs = append(errs, fmt.Errorf("listing users of auth/%s: %w", userpassMount, usersErr))
	}
	userSet := map[string]bool{}
	for _, u := range users {
		names[u] = true
		userSet[u] = true
	}
	// The seed's policy does not allow this LIST; ask first, so a 403 costs no re-login.
	if w.Caps.Allowed(ctx, client, grants.PolicyListPath, "list") {
		policies, _, err := client.List(ctx, grants.PolicyListPath)
		if err != nil {
			w.Logger().Debug("cannot list ACL policies; sweeping policies through users and records only", "error", err)
		}
		for _, p := range policies {
			names[p] = true
		}
	}

	// Grant entities, when the identity additions allow listing them.
	if w.Caps.Allowed(ctx, client, grants.EntityListPath, "list") {
		entities, _, err := client.List(ctx, grants.EntityListPath)
		if err != nil {
			w.Logger().Debug("cannot list identity entities; sweeping entities through users and records only", "error", err)
		}
		for _, n := range entities {
			names[n] = true
		}
	}

	// 2. Then the WAL, then the records.
	pending, walErr := w.pendingGrantIDs(ctx, s)
	if walErr != nil {
		errs = append(errs, walErr)
	}
	// Which grants have a record: one LIST of their IDs; no record is read for this.
	ids, err := store.ListGrantIDs(ctx, s)
	if err != nil {
		return res, errors.Join(append(errs, err)...)
	}
	records := make(map[string]bool, len(ids))
	for _, id := range ids {
		records[id] = true
	}

	// 3. Grants whose end has passed, from the grant/expiry index: only what is due is read.
	expired, err := w.expiredGrantIDs(ctx, s, now.Add(-ExpiryGrace))
	if err != nil {
		errs = append(errs, err)
	}
	for _, id := range expired {
		removed, err := w.expiredGrant(ctx, s, client, id, now)
		if err != nil {
			errs = append(errs, err)
		}
		if removed {
			res.Expired = append(res.Expired, id)
			delete(records, id)
		}
	}

	// 4. Objects no record explains, on their second sighting. Without a readable WAL
	// nothing record-less is deleted: an issue in flight could not be told apart.
	if walErr != nil {
		return res, errors.Join(errs...)
	}
	st := w
	if st.suspects == nil {
		st.suspects = sightings{}
	}
	seen := map[string]bool{}
	for _, name := range slices.Sorted(maps.Keys(names)) {
		id, ok := w.Grants.IDFromName(name)
		if !ok || records[id] || pending[id] {
			continue
		}
		seen[name] = true
		if !st.suspects.secondSighting(name, now, w.RecordlessMinAge) {
			continue
		}
		removed, err := w.recordless(ctx, s, client, id, name, userpassMount)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		delete(st.suspects, name)
		if removed {
			res.Recordless = append(res.Recordless, name)
		}
	}
	st.suspects.forgetAllBut(seen)

	// 5. Entities earlier versions left, when the users could be listed (a user that
	// exists explains its alias).
	if usersErr == nil {
		legacy, lerr := w.legacyEntities(ctx, s, client, userpassMount, userSet, records, pending, now)
		res.Legacy = legacy
		if lerr != nil {
			errs = append(errs, lerr)
		}
	}
	return res, errors.Join(errs...)
}

// expiredGrantIDs are the grants whose expiry entry is before until; an entry without
// its record (a crash between the two) is removed here.
func (w *Sweeper) expiredGrantIDs(ctx context.Context, s logical.Storage, until time.Time) ([]string, error) {
	var keys []string
	if err := w.Index.Set("grant/expiry").ScanRange(ctx, s, "", store.TimeBound(until), func(k string) bool {
		keys = append(keys, k)
		return true
	}); err != nil {
		return nil, fmt.Errorf("reading the grant expiry index: %w", err)
	}
	var ids []string
	for _, k := range keys {
		id := store.KeyID(k)
		g, err := store.GetGrant(ctx, s, id)
		if err != nil {
			return ids, err
		}
		if g == nil || !store.ContainsEntry(store.GrantEntries(g), store.Entry{Set: "grant/expiry", Key: k}) {
			if err := w.Index.Set("grant/expiry").Remove(ctx, s, k); err == nil {
				w.Index.Repaired.Add(1)
			}
			continue
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// expiredGrant removes grant id if, read again under its lock, it has still ended.
func (w *Sweeper) expiredGrant(ctx context.Context, s logical.Storage, client vaultapi.Client, id string, now time.Time) (bool, error) {
	defer w.Locks.Lock(id)()
	rec, err := store.GetGrant(ctx, s, id)
	if err != nil || rec == nil || now.Before(rec.ExpiresAt.Add(ExpiryGrace)) {
		return false, err
	}
	if !w.Grants.Owns(rec.Username) || !w.Grants.Owns(rec.Policy) {
		return false, fmt.Errorf("grant record %s names user %q and policy %q, which this mount does not own; left alone", id, rec.Username, rec.Policy)
	}
	objs := grants.Objects{GrantID: id, Username: rec.Username, Policy: rec.Policy, UserpassMount: rec.UserpassMount, Entity: rec.EntityName,
		BreakGlassKey: rec.BreakGlassKey}
	var send func(reason string)
	if w.Revoked != nil {
		send = w.Revoked(ctx, s, id)
	}
	if err := w.Grants.Remove(ctx, client, s, objs, store.EndedSwept); err != nil {
		return false, fmt.Errorf("sweeping expired grant %s: %w", id, err)
	}
	if send != nil {
		send("removed by the orphan sweeper: its lease had not been revoked")
	}
	w.Logger().Info("swept an expired grant that Vault had not revoked", "grant_id", id, "username", rec.Username,
		"expired_at", rec.ExpiresAt.Format(time.RFC3339))
	return true, nil
}

// recordless deletes the user and policy called name if grant id still has no record.
func (w *Sweeper) recordless(ctx context.Context, s logical.Storage, client vaultapi.Client, id, name, userpassMount string) (bool, error) {
	defer w.Locks.Lock(id)()
	rec, err := store.GetGrant(ctx, s, id)
	if err != nil || rec != nil {
		return false, err
	}
	objs := grants.Objects{GrantID: id, Username: name, Policy: name, UserpassMount: userpassMount}
	if w.Grants.EntitiesRemovable(ctx, client) {
		objs.Entity = name
	}
	if err := w.Grants.Remove(ctx, client, s, objs, store.EndedSwept); err != nil {
		return false, fmt.Errorf("sweeping record-less %s: %w", name, err)
	}
	w.Logger().Info("swept a user and policy with no grant record", "name", name)
	return true, nil
}

// pendingGrantIDs is the set of grants with a WAL entry, i.e. an issue in flight or
// awaiting rollback. Any grant WAL entry that cannot be decoded is an error, so the
// caller deletes nothing record-less rather than guess.
func (w *Sweeper) pendingGrantIDs(ctx context.Context, s logical.Storage) (map[string]bool, error) {
	walIDs, err := framework.ListWAL(ctx, s)
	if err != nil {
		return nil, fmt.Errorf("listing WAL: %w", err)
	}
	pending := map[string]bool{}
	for _, walID := range walIDs {
		entry, err := framework.GetWAL(ctx, s, walID)
		if err != nil {
			return nil, fmt.Errorf("reading WAL %s: %w", walID, err)
		}
		if entry == nil || entry.Kind != grants.WALKind {
			continue
		}
		objs, err := grants.DecodeObjects(entry.Data)
		if err != nil {
			return nil, fmt.Errorf("WAL %s: %w", walID, err)
		}
		pending[objs.GrantID] = true
		for _, n := range []string{objs.Username, objs.Policy} {
			if id, ok := w.Grants.IDFromName(n); ok {
				pending[id] = true
			}
		}
	}
	return pending, nil
}
