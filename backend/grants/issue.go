package grants

import (
	"context"
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

// Request is a validated request to issue a grant.
type Request struct {
	Role          string
	Resources     []resource.Ref
	Permission    string
	TTL           time.Duration
	MaxTTL        time.Duration
	Requester     string
	Justification string
	BoundCIDRs    []string

	// GrantID, when set, is the ID to issue under (a request reserves it before pickup).
	GrantID string
	// CallerAccessor is the accessor of the token asking: the lease dies with that token.
	CallerAccessor  string
	RequesterEntity *access.IdentityRef
	// RequesterKind is access.RequesterEntity or access.RequesterStated; StatedBy names
	// the token (without an entity) that stated the requester.
	RequesterKind, StatedBy string
	RequestID               string
	Approvals               []access.ApprovalRecord
	// AutoApprovedBy names the auto_approve rule that approved the request.
	AutoApprovedBy string
	BreakGlass     bool
	// BreakGlassKey counts the grant among its requester's live break-glass grants.
	BreakGlassKey string
	// WindowEnd, when set, is the end of the access window the grant starts in: it ends
	// then at the latest. Windows are the role's; WindowsIgnored marks break-glass
	// outside them.
	WindowEnd      time.Time
	Windows        []string
	WindowsIgnored bool
	// LifetimeApproved marks a MaxTTL that is the lifetime approved for the request the
	// grant is picked up from. ApprovedEnd, when set, is the latest a grant picked up from
	// a scheduled request may last to (start_at plus the approved ttl).
	LifetimeApproved bool
	ApprovedEnd      time.Time
	// RequestedBy is who asked for the request on behalf of the requester (the grantee).
	RequestedBy *access.IdentityRef
	// Bundle names the bundle a grant is picked up from; Parts are its role entries, each
	// granted with its own permission (Resources are then every part's, Permission says
	// which permissions in all).
	Bundle string
	Parts  []Part
}

// Part is one role entry of a bundle's grant.
type Part struct {
	Role       string
	Resources  []resource.Ref
	Permission string
}

// policyParts are the resources and permissions the grant's policy holds.
func (gr *Request) policyParts() []resource.Part {
	if len(gr.Parts) == 0 {
		return []resource.Part{{Resources: gr.Resources, Permission: gr.Permission}}
	}
	out := make([]resource.Part, 0, len(gr.Parts))
	for _, p := range gr.Parts {
		out = append(out, resource.Part{Resources: p.Resources, Permission: p.Permission})
	}
	return out
}

// Issued is what an issue returns to the caller: the lease's data (with the password) and
// internal data (Objects, for renew and revoke), its TTLs and the warnings for the caller.
type Issued struct {
	Data, Internal map[string]interface{}
	TTL, MaxTTL    time.Duration
	Warnings       []string
}

func (g *Grants) generatePassword(ctx context.Context, cfg *config.Config) (string, error) {
	if cfg.PasswordPolicy != "" {
		return g.System().GeneratePasswordFromPolicy(ctx, cfg.PasswordPolicy)
	}
	return base62.Random(32)
}

// Issue creates the grant's user, entity and policy (createGrantObjects), then its
// record, and undoes what it did if any step fails.
func (g *Grants) Issue(ctx context.Context, s logical.Storage, client vaultapi.Client, cfg *config.Config, gr *Request) (*Issued, error) {
	began := time.Now()
	var err error
	id := gr.GrantID
	if id == "" {
		if id, err = NewID(); err != nil {
			return nil, err
		}
	}
	password, err := g.generatePassword(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("generating password: %w", err)
	}

	name := g.ObjectName(id)
	now := time.Now().UTC()
	var warnings []string
	if !gr.ApprovedEnd.IsZero() {
		left := max(gr.ApprovedEnd.Sub(now).Truncate(time.Second), time.Second)
		gr.TTL, gr.MaxTTL = min(gr.TTL, left), min(gr.MaxTTL, left)
	}
	if ttl, maxTTL, warning := capAtWindow(gr.WindowEnd, now, gr.TTL, gr.MaxTTL); warning != "" || maxTTL != gr.MaxTTL {
		gr.TTL, gr.MaxTTL = ttl, maxTTL
		if warning != "" {
			warnings = append(warnings, warning)
		}
	}
	if capped, warning := g.CapAtCallerToken(ctx, client, gr.CallerAccessor, gr.TTL, now); warning != "" {
		warnings = append(warnings, warning)
		gr.TTL = capped
	}
	// The policy is made last: a certificate's bounds are the grant's end.
	bounded, err := g.boundedPolicy(ctx, client, gr.policyParts(), name, now, now.Add(gr.TTL))
	if err != nil {
		return nil, err
	}
	rules := bounded.Rules
	warnings = append(warnings, bounded.Warnings...)
	rec := &access.Grant{
		ID:            id,
		Role:          gr.Role,
		Requester:     gr.Requester,
		Justification: gr.Justification,
		Permission:    gr.Permission,
		Username:      name,
		Policy:        name,
		UserpassMount: cfg.UserpassMount,
		IssuedAt:      now,
		ExpiresAt:     now.Add(gr.TTL),
		MaxExpiresAt:  now.Add(gr.MaxTTL),

		RequesterEntity: gr.RequesterEntity,
		RequestID:       gr.RequestID,
		Approvals:       gr.Approvals,
		AutoApprovedBy:  gr.AutoApprovedBy,
		BreakGlass:      gr.BreakGlass,
		RequesterKind:   gr.RequesterKind,
		StatedBy:        gr.StatedBy,
		BreakGlassKey:   gr.BreakGlassKey,
		Windows:         gr.Windows,
		WindowEnd:       gr.WindowEnd,
		WindowsIgnored:  gr.WindowsIgnored,

		LifetimeApproved: gr.LifetimeApproved,
		RequestedBy:      gr.RequestedBy,
		Bundle:           gr.Bundle,
	}
	for _, r := range gr.Resources {
		rec.Resources = append(rec.Resources, r.Name)
	}
	for _, p := range gr.Parts {
		part := access.GrantPart{Role: p.Role, Permission: p.Permission}
		for _, r := range p.Resources {
			part.Resources = append(part.Resources, r.Name)
		}
		rec.Parts = append(rec.Parts, part)
	}
	created := Objects{GrantID: id, Username: name, Policy: name, UserpassMount: cfg.UserpassMount, BreakGlassKey: gr.BreakGlassKey,
		RevokeLoginsRequired: resource.LeasesOutliveUser(gr.Resources)}
	if g.EntitiesEnabled(ctx, client) {
		created.Entity = name
		rec.EntityName = name
	}

	defer g.Locks.Lock(id)()

	user := vaultapi.UserSpec{
		Password:   password,
		Policies:   []string{name},
		TTL:        gr.TTL,
		MaxTTL:     gr.TTL,
		BoundCIDRs: gr.BoundCIDRs,
	}
	// The SSH signing deadline is stored before the policy exists: a crash after the
	// policy is made must not leave a grant that signs until its end.
	if d := bounded.Deadline; d != nil {
		d.GrantID = id
		if err := PutSignDeadline(ctx, s, d); err != nil {
			return nil, fmt.Errorf("storing the SSH signing deadline: %w", err)
		}
	}
	walID, err := g.create(ctx, s, client, cfg, created, rec, rules, user)
	if err != nil {
		return nil, err
	}
	// The WAL entry goes after the response: a rollback that finds the grant's record and
	// every one of its objects only drops the entry (the backend's WAL rollback).
	g.Background.Add(1)
	go func() {
		defer g.Background.Done()
		dctx, cancel := context.WithTimeout(g.Lifetime, 30*time.Second)
		defer cancel()
		if err := framework.DeleteWAL(dctx, s, walID); err != nil {
			g.logger().Warn("deleting the WAL entry of an issued grant; Vault's rollback will drop it", "grant_id", id, "error", err)
		}
	}()

	g.Metrics.GrantIssued(issuedVia(gr), time.Since(began))

	logArgs := []interface{}{"grant_id", id, "role", gr.Role, "requester", gr.Requester, "requester_kind", rec.RequesterKindOrStated(),
		"permission", gr.Permission, "resources", rec.Resources, "expires_at", rec.ExpiresAt.Format(time.RFC3339)}
	if rec.StatedBy != "" {
		logArgs = append(logArgs, "requester_stated_by", rec.StatedBy)
	}
	if gr.RequestID != "" {
		logArgs = append(logArgs, "request_id", gr.RequestID)
	}
	if gr.BreakGlass {
		g.logger().Warn("BREAK-GLASS grant issued without approval", append(logArgs, "justification", gr.Justification)...)
		g.Emit(ctx, cfg, notify.GrantEvent(rec, notify.EventBreakGlass))
	} else {
		g.logger().Info("grant issued", logArgs...)
	}
	g.Emit(ctx, cfg, notify.GrantEvent(rec, notify.EventGrantIssued))

	data := map[string]interface{}{
		"grant_id":       id,
		"role":           gr.Role,
		"username":       name,
		"password":       password,
		"policy":         name,
		"login_path":     "auth/" + cfg.UserpassMount + "/login/" + name,
		"resources":      rec.Resources,
		"permission":     gr.Permission,
		"requester":      gr.Requester,
		"requester_kind": rec.RequesterKindOrStated(),
		"expires_at":     rec.ExpiresAt.Format(time.RFC3339),
		"access_details": cfg.AccessDetails,
	}
	if gr.RequestID != "" {
		data["request_id"] = gr.RequestID
	}
	if gr.AutoApprovedBy != "" {
		data["auto_approved_by"] = gr.AutoApprovedBy
	}
	if gr.Bundle != "" {
		data["bundle"] = gr.Bundle
		data["parts"] = access.GrantPartsData(rec.Parts)
	}
	if gr.BreakGlass {
		data["break_glass"] = true
	}
	if rec.EntityID != "" {
		data["entity_id"] = rec.EntityID
		data["entity_name"] = rec.EntityName
	}
	internal := map[string]interface{}{
		"grant_id":       id,
		"role":           gr.Role,
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
	if created.RevokeLoginsRequired {
		internal["revoke_logins_required"] = true
	}
	if gr.CallerAccessor != "" {
		internal["token_accessor"] = gr.CallerAccessor
	}
	return &Issued{Data: data, Internal: internal, TTL: gr.TTL, MaxTTL: gr.MaxTTL, Warnings: warnings}, nil
}

// create makes a grant's objects in Vault and stores its record, in chains that run
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
func (g *Grants) create(ctx context.Context, s logical.Storage, client vaultapi.Client, cfg *config.Config, objs Objects,
	rec *access.Grant, rules string, user vaultapi.UserSpec,
) (walID string, err error) {
	type step struct {
		what string
		err  error
	}
	results := make(chan step, 2)
	go func() {
		if err := g.hashedUser(ctx, client, cfg, &user); err != nil {
			results <- step{"hashing the password of user " + objs.Username, err}
			return
		}
		err := client.WriteUser(ctx, objs.UserpassMount, objs.Username, user)
		results <- step{"creating user " + objs.Username, err}
	}()
	entries := store.GrantEntries(rec) // before rec gains its EntityID below
	indexed := make(chan error, 1)
	go func() { indexed <- g.Index.Apply(ctx, s, entries, true) }()
	go func() {
		if objs.Entity != "" {
			id, err := g.createEntity(ctx, client, rec)
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
	walID, err = framework.PutWAL(ctx, s, WALKind, &objs)
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
			return "", g.leaveToWAL(s, objs, f.what, f.err)
		}
	}
	return "", g.rollBack(client, s, objs, walID, failed[0].what, failed[0].err)
}

// leaveToWAL ends an issue that a call into Vault gave up on (vaultCallTimeout):
// Vault is sealing, stepping down or overloaded. Removing the objects now would mean
// more calls that wait as long, holding up a seal or step-down again; and a create that
// timed out here may still be carried out by Vault afterwards, which an immediate
// removal would miss. So only the record goes (in the plugin's storage, which the seal
// does not block): without it Vault's rollback of the WAL entry, after
// walRollbackMinAge, removes every object. No credentials were returned, so nobody can
// use what is left until then.
func (g *Grants) leaveToWAL(s logical.Storage, objs Objects, step string, cause error) error {
	ctx, cancel := context.WithTimeout(context.Background(), vaultapi.CallTimeout)
	defer cancel()
	if err := g.DeleteRecord(ctx, s, objs.GrantID, ""); err != nil {
		g.logger().Error("deleting the record of a grant whose issue timed out; the sweeper removes it after its expiry",
			"grant_id", objs.GrantID, "error", err)
	}
	g.logger().Warn("Vault did not answer in time; the unfinished grant is left to the rollback of its WAL entry",
		"grant_id", objs.GrantID, "step", step, "timeout", vaultapi.CallTimeout)
	return fmt.Errorf("%s: %w (Vault did not answer within %s; rollback pending)", step, cause, vaultapi.CallTimeout)
}

// rollBack removes what a failed issue made and deletes its WAL entry; if the removal
// fails too, the WAL entry stays for Vault's rollback (or, without one, the sweeper finds
// the user and the entity).
func (g *Grants) rollBack(client vaultapi.Client, s logical.Storage, objs Objects, walID, step string, cause error) error {
	// A fresh context: the request's may be what failed.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := g.Remove(ctx, client, s, objs, ""); err != nil {
		g.logger().Error("rolling back a failed grant; the WAL will retry", "grant_id", objs.GrantID, "error", err)
		return fmt.Errorf("%s: %w (rollback pending)", step, cause)
	}
	if walID != "" {
		if err := framework.DeleteWAL(ctx, s, walID); err != nil {
			g.logger().Warn("deleting WAL after rollback", "grant_id", objs.GrantID, "error", err)
		}
	}
	return fmt.Errorf("%s: %w", step, cause)
}

// capAtWindow shortens ttl (and maxTTL) so the grant ends when the window it starts in
// does; the warning says so.
func capAtWindow(windowEnd, now time.Time, ttl, maxTTL time.Duration) (time.Duration, time.Duration, string) {
	if windowEnd.IsZero() {
		return ttl, maxTTL, ""
	}
	left := windowEnd.Sub(now).Truncate(time.Second)
	if left < time.Second {
		left = time.Second
	}
	warning := ""
	if ttl > left {
		warning = fmt.Sprintf("the access window this grant started in ends at %s: the grant ends then, after %s, not after the %s asked for (windows_cap_grants)",
			windowEnd.UTC().Format(time.RFC3339), left, ttl)
		ttl = left
	}
	if maxTTL > left {
		maxTTL = left
	}
	return ttl, maxTTL, warning
}

// issuedVia names how a grant was approved, for the metrics.
func issuedVia(gr *Request) string {
	switch {
	case gr.BreakGlass:
		return "break_glass"
	case gr.AutoApprovedBy != "":
		return "auto_approved"
	case gr.RequestID != "":
		return "request"
	}
	return "direct"
}
