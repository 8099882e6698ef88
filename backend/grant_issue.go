package backend

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/apono-io/vault-plugin-apono/backend/config"
	"github.com/apono-io/vault-plugin-apono/backend/notify"
	"github.com/apono-io/vault-plugin-apono/backend/resource"
	"github.com/apono-io/vault-plugin-apono/backend/store"
	"github.com/apono-io/vault-plugin-apono/backend/vaultapi"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/base62"
	"github.com/hashicorp/vault/sdk/logical"
)

// grantRequest is a validated request to issue a grant.
type grantRequest struct {
	role          string
	resources     []resource.Ref
	permission    string
	ttl           time.Duration
	maxTTL        time.Duration
	requester     string
	justification string
	boundCIDRs    []string

	// grantID, when set, is the ID to issue under (a request reserves it before pickup).
	grantID string
	// callerAccessor is the accessor of the token asking: the lease dies with that token.
	callerAccessor  string
	requesterEntity *access.IdentityRef
	// requesterKind is requesterEntity or requesterStated; statedBy names the token
	// (without an entity) that stated the requester.
	requesterKind, statedBy string
	requestID               string
	approvals               []access.ApprovalRecord
	// autoApprovedBy names the auto_approve rule that approved the request.
	autoApprovedBy string
	breakGlass     bool
	// breakGlassKey counts the grant among its requester's live break-glass grants.
	breakGlassKey string
	// windowEnd, when set, is the end of the access window the grant starts in: it ends
	// then at the latest. windows are the role's; windowsIgnored marks break-glass
	// outside them.
	windowEnd      time.Time
	windows        []string
	windowsIgnored bool
	// lifetimeApproved marks a maxTTL that is the lifetime approved for the request the
	// grant is picked up from. approvedEnd, when set, is the latest a grant picked up from
	// a scheduled request may last to (start_at plus the approved ttl).
	lifetimeApproved bool
	approvedEnd      time.Time
}

// newGrantID returns a random 64-bit ID. It is not checked against stored grants: the
// chance that it equals a live grant's is about n/1.8e19 for n live grants, and checking
// cost every grant a storage round trip through Vault.
func newGrantID() (string, error) {
	buf := make([]byte, 8)
	if _, err := rand.Read(buf); err != nil {
		return "", err
	}
	return hex.EncodeToString(buf), nil
}

// grantObjectName is the name of both the userpass user and the ACL policy of a grant.
func (b *aponoBackend) grantObjectName(grantID string) string {
	return b.namePrefix + grantID
}

func (b *aponoBackend) generatePassword(ctx context.Context, cfg *config.Config) (string, error) {
	if cfg.PasswordPolicy != "" {
		return b.System().GeneratePasswordFromPolicy(ctx, cfg.PasswordPolicy)
	}
	return base62.Random(32)
}

// issueGrant creates the grant's user, entity and policy (createGrantObjects), then its
// record, and undoes what it did if any step fails.
func (b *aponoBackend) issueGrant(ctx context.Context, s logical.Storage, client vaultapi.Client, cfg *config.Config, gr *grantRequest) (*logical.Response, error) {
	policy, err := resource.GrantPolicy(gr.resources, gr.permission)
	if err != nil {
		return nil, err // validated already: a failure here is a bug
	}
	rules, err := policy.Render()
	if err != nil {
		return nil, err
	}
	id := gr.grantID
	if id == "" {
		if id, err = newGrantID(); err != nil {
			return nil, err
		}
	}
	password, err := b.generatePassword(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("generating password: %w", err)
	}

	name := b.grantObjectName(id)
	now := time.Now().UTC()
	var warnings []string
	if !gr.approvedEnd.IsZero() {
		left := max(gr.approvedEnd.Sub(now).Truncate(time.Second), time.Second)
		gr.ttl, gr.maxTTL = min(gr.ttl, left), min(gr.maxTTL, left)
	}
	if ttl, maxTTL, warning := capAtWindow(gr.windowEnd, now, gr.ttl, gr.maxTTL); warning != "" || maxTTL != gr.maxTTL {
		gr.ttl, gr.maxTTL = ttl, maxTTL
		if warning != "" {
			warnings = append(warnings, warning)
		}
	}
	if capped, warning := b.capAtCallerToken(ctx, client, gr.callerAccessor, gr.ttl, now); warning != "" {
		warnings = append(warnings, warning)
		gr.ttl = capped
	}
	rec := &access.Grant{
		ID:            id,
		Role:          gr.role,
		Requester:     gr.requester,
		Justification: gr.justification,
		Permission:    gr.permission,
		Username:      name,
		Policy:        name,
		UserpassMount: cfg.UserpassMount,
		IssuedAt:      now,
		ExpiresAt:     now.Add(gr.ttl),
		MaxExpiresAt:  now.Add(gr.maxTTL),

		RequesterEntity: gr.requesterEntity,
		RequestID:       gr.requestID,
		Approvals:       gr.approvals,
		AutoApprovedBy:  gr.autoApprovedBy,
		BreakGlass:      gr.breakGlass,
		RequesterKind:   gr.requesterKind,
		StatedBy:        gr.statedBy,
		BreakGlassKey:   gr.breakGlassKey,
		Windows:         gr.windows,
		WindowEnd:       gr.windowEnd,
		WindowsIgnored:  gr.windowsIgnored,

		LifetimeApproved: gr.lifetimeApproved,
	}
	for _, r := range gr.resources {
		rec.Resources = append(rec.Resources, r.Name)
	}
	created := grantObjects{GrantID: id, Username: name, Policy: name, UserpassMount: cfg.UserpassMount, BreakGlassKey: gr.breakGlassKey}
	if b.grantEntitiesEnabled(ctx, client) {
		created.Entity = name
		rec.EntityName = name
	}

	defer b.grantLocks.Lock(id)()

	user := vaultapi.UserSpec{
		Password:   password,
		Policies:   []string{name},
		TTL:        gr.ttl,
		MaxTTL:     gr.ttl,
		BoundCIDRs: gr.boundCIDRs,
	}
	walID, err := b.createGrant(ctx, s, client, cfg, created, rec, rules, user)
	if err != nil {
		return nil, err
	}
	// The WAL entry goes after the response: a rollback that finds the grant's record and
	// every one of its objects only drops the entry (walRollback).
	b.background.Add(1)
	go func() {
		defer b.background.Done()
		dctx, cancel := context.WithTimeout(b.lifetime, 30*time.Second)
		defer cancel()
		if err := framework.DeleteWAL(dctx, s, walID); err != nil {
			b.Logger().Warn("deleting the WAL entry of an issued grant; Vault's rollback will drop it", "grant_id", id, "error", err)
		}
	}()

	logArgs := []interface{}{"grant_id", id, "role", gr.role, "requester", gr.requester, "requester_kind", rec.RequesterKindOrStated(),
		"permission", gr.permission, "resources", rec.Resources, "expires_at", rec.ExpiresAt.Format(time.RFC3339)}
	if rec.StatedBy != "" {
		logArgs = append(logArgs, "requester_stated_by", rec.StatedBy)
	}
	if gr.requestID != "" {
		logArgs = append(logArgs, "request_id", gr.requestID)
	}
	if gr.breakGlass {
		b.Logger().Warn("BREAK-GLASS grant issued without approval", append(logArgs, "justification", gr.justification)...)
		b.emit(ctx, cfg, notify.GrantEvent(rec, notify.EventBreakGlass))
	} else {
		b.Logger().Info("grant issued", logArgs...)
	}
	b.emit(ctx, cfg, notify.GrantEvent(rec, notify.EventGrantIssued))

	data := map[string]interface{}{
		"grant_id":       id,
		"role":           gr.role,
		"username":       name,
		"password":       password,
		"policy":         name,
		"login_path":     "auth/" + cfg.UserpassMount + "/login/" + name,
		"resources":      rec.Resources,
		"permission":     gr.permission,
		"requester":      gr.requester,
		"requester_kind": rec.RequesterKindOrStated(),
		"expires_at":     rec.ExpiresAt.Format(time.RFC3339),
		"access_details": cfg.AccessDetails,
	}
	if gr.requestID != "" {
		data["request_id"] = gr.requestID
	}
	if gr.autoApprovedBy != "" {
		data["auto_approved_by"] = gr.autoApprovedBy
	}
	if gr.breakGlass {
		data["break_glass"] = true
	}
	if rec.EntityID != "" {
		data["entity_id"] = rec.EntityID
		data["entity_name"] = rec.EntityName
	}
	internal := map[string]interface{}{
		"grant_id":       id,
		"role":           gr.role,
		"username":       name,
		"policy":         name,
		"userpass_mount": cfg.UserpassMount,
	}
	if created.Entity != "" {
		internal["entity"] = created.Entity
	}
	if created.BreakGlassKey != "" {
		internal["break_glass_key"] = created.BreakGlassKey
	}
	if gr.callerAccessor != "" {
		internal["token_accessor"] = gr.callerAccessor
	}
	resp := b.Secret(secretGrantType).Response(data, internal)
	resp.Secret.TTL = gr.ttl
	resp.Secret.MaxTTL = gr.maxTTL
	resp.Secret.Renewable = true
	for _, w := range warnings {
		resp.AddWarning(w)
	}
	return resp, nil
}

// createGrant makes a grant's objects in Vault and stores its record, in chains that run
// at once, because on a busy Vault every call into Vault (a storage call most of all: a
// gRPC round trip) waits its turn behind the bcrypt work of other requests:
//   - the user, its password hashed first where Vault takes a hash: it gives no access
//     without its policy (a user naming a policy that does not exist yet has none), and
//     if this process dies before the WAL entry is written, the sweeper finds it by
//     listing users;
//   - the entity, its alias, then the grant's record: the sweeper finds an entity by
//     listing them, and a record by reading storage;
//   - the record's index entries (an entry whose record is missing is skipped and
//     repaired when read; a record whose entries a crash cut short gets them from the
//     rollback of the WAL entry, walRollback, and the sweeper finds it through them);
//   - the WAL entry, then the policy: a policy cannot be listed under the vendor's
//     management policy, so it is only ever made under a WAL entry.
//
// On any failure it removes what it made (record included) and returns the error.
func (b *aponoBackend) createGrant(ctx context.Context, s logical.Storage, client vaultapi.Client, cfg *config.Config, objs grantObjects,
	rec *access.Grant, rules string, user vaultapi.UserSpec,
) (walID string, err error) {
	type step struct {
		what string
		err  error
	}
	results := make(chan step, 2)
	go func() {
		if err := b.hashedUser(ctx, client, cfg, &user); err != nil {
			results <- step{"hashing the password of user " + objs.Username, err}
			return
		}
		err := client.WriteUser(ctx, objs.UserpassMount, objs.Username, user)
		results <- step{"creating user " + objs.Username, err}
	}()
	entries := store.GrantEntries(rec) // before rec gains its EntityID below
	indexed := make(chan error, 1)
	go func() { indexed <- b.idx.Apply(ctx, s, entries, true) }()
	go func() {
		if objs.Entity != "" {
			id, err := b.createGrantEntity(ctx, client, rec)
			if err != nil {
				results <- step{"creating identity entity " + objs.Entity, err}
				return
			}
			rec.EntityID = id // rec is read by the caller only after both results are in
		}
		err := store.PutGrant(ctx, s, rec)
		if ierr := <-indexed; err == nil && ierr != nil {
			results <- step{"indexing grant record", ierr}
			return
		}
		results <- step{"storing grant record", err}
	}()
	var failed []step
	walID, err = framework.PutWAL(ctx, s, walKindGrant, &objs)
	if err != nil {
		failed = append(failed, step{"writing WAL", err})
		walID = ""
	} else if err := client.WritePolicy(ctx, objs.Policy, rules); err != nil {
		failed = append(failed, step{"creating policy " + objs.Policy, err})
	}
	for i := 0; i < 2; i++ {
		if r := <-results; r.err != nil {
			failed = append(failed, r)
		}
	}
	if len(failed) == 0 {
		return walID, nil
	}
	for _, f := range failed {
		if walID != "" && errors.Is(f.err, context.DeadlineExceeded) {
			return "", b.leaveIssueToWAL(s, objs, f.what, f.err)
		}
	}
	return "", b.rollBackIssue(client, s, objs, walID, failed[0].what, failed[0].err)
}

// leaveIssueToWAL ends an issue that a call into Vault gave up on (vaultCallTimeout):
// Vault is sealing, stepping down or overloaded. Removing the objects now would mean
// more calls that wait as long, holding up a seal or step-down again; and a create that
// timed out here may still be carried out by Vault afterwards, which an immediate
// removal would miss. So only the record goes (in the plugin's storage, which the seal
// does not block): without it Vault's rollback of the WAL entry, after
// walRollbackMinAge, removes every object. No credentials were returned, so nobody can
// use what is left until then.
func (b *aponoBackend) leaveIssueToWAL(s logical.Storage, objs grantObjects, step string, cause error) error {
	ctx, cancel := context.WithTimeout(context.Background(), vaultapi.CallTimeout)
	defer cancel()
	if err := b.deleteGrantRecord(ctx, s, objs.GrantID, ""); err != nil {
		b.Logger().Error("deleting the record of a grant whose issue timed out; the sweeper removes it after its expiry",
			"grant_id", objs.GrantID, "error", err)
	}
	b.Logger().Warn("Vault did not answer in time; the unfinished grant is left to the rollback of its WAL entry",
		"grant_id", objs.GrantID, "step", step, "timeout", vaultapi.CallTimeout)
	return fmt.Errorf("%s: %w (Vault did not answer within %s; rollback pending)", step, cause, vaultapi.CallTimeout)
}

// rollBackIssue removes what a failed issue made and deletes its WAL entry; if the removal
// fails too, the WAL entry stays for Vault's rollback (or, without one, the sweeper finds
// the user and the entity).
func (b *aponoBackend) rollBackIssue(client vaultapi.Client, s logical.Storage, objs grantObjects, walID, step string, cause error) error {
	// A fresh context: the request's may be what failed.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.removeGrantObjects(ctx, client, s, objs, ""); err != nil {
		b.Logger().Error("rolling back a failed grant; the WAL will retry", "grant_id", objs.GrantID, "error", err)
		return fmt.Errorf("%s: %w (rollback pending)", step, cause)
	}
	if walID != "" {
		if err := framework.DeleteWAL(ctx, s, walID); err != nil {
			b.Logger().Warn("deleting WAL after rollback", "grant_id", objs.GrantID, "error", err)
		}
	}
	return fmt.Errorf("%s: %w", step, cause)
}
