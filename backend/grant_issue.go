package backend

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/base62"
	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/logical"
)

// grantRequest is a validated request to issue a grant.
type grantRequest struct {
	role          string
	resources     []resourceRef
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
	requesterEntity *identityRef
	requestID       string
	approvals       []approvalRecord
	breakGlass      bool
}

// newGrantID returns a random ID that no stored grant uses; IDs are never reused because
// they are random 64-bit values and a collision with a live grant is checked.
func newGrantID(ctx context.Context, s logical.Storage) (string, error) {
	for i := 0; i < 5; i++ {
		buf := make([]byte, 8)
		if _, err := rand.Read(buf); err != nil {
			return "", err
		}
		id := hex.EncodeToString(buf)
		existing, err := s.Get(ctx, grantStoragePrefix+id)
		if err != nil {
			return "", err
		}
		if existing == nil {
			return id, nil
		}
	}
	return "", errors.New("could not find an unused grant ID")
}

// grantObjectName is the name of both the userpass user and the ACL policy of a grant.
func (b *aponoBackend) grantObjectName(grantID string) string {
	return b.namePrefix + grantID
}

func (b *aponoBackend) generatePassword(ctx context.Context, cfg *pluginConfig) (string, error) {
	if cfg.PasswordPolicy != "" {
		return b.System().GeneratePasswordFromPolicy(ctx, cfg.PasswordPolicy)
	}
	return base62.Random(32)
}

// issueGrant creates the policy, then the user, then the record, under a WAL entry, and
// undoes what it did if any step fails.
func (b *aponoBackend) issueGrant(ctx context.Context, s logical.Storage, client vaultClient, cfg *pluginConfig, gr *grantRequest) (*logical.Response, error) {
	policy, err := buildGrantPolicy(gr.resources, gr.permission)
	if err != nil {
		return nil, err // validated already: a failure here is a bug
	}
	rules, err := policy.render()
	if err != nil {
		return nil, err
	}
	id := gr.grantID
	if id == "" {
		if id, err = newGrantID(ctx, s); err != nil {
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
	if capped, warning := b.capAtCallerToken(ctx, client, gr.callerAccessor, gr.ttl, now); warning != "" {
		warnings = append(warnings, warning)
		gr.ttl = capped
	}
	rec := &grantRecord{
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
		BreakGlass:      gr.breakGlass,
	}
	for _, r := range gr.resources {
		rec.Resources = append(rec.Resources, r.Name)
	}
	created := grantObjects{GrantID: id, Username: name, Policy: name, UserpassMount: cfg.UserpassMount}
	if b.grantEntitiesEnabled(ctx, client) {
		created.Entity = name
		rec.EntityName = name
	}

	lock := locksutil.LockForKey(b.grantLocks, id)
	lock.Lock()
	defer lock.Unlock()

	walID, err := framework.PutWAL(ctx, s, walKindGrant, &created)
	if err != nil {
		return nil, fmt.Errorf("writing WAL: %w", err)
	}
	fail := func(step string, cause error) (*logical.Response, error) {
		// Use a fresh context: the request's may be what failed.
		rbCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if rbErr := b.removeGrantObjects(rbCtx, client, s, created); rbErr != nil {
			b.Logger().Error("rolling back a failed grant; the WAL will retry", "grant_id", id, "error", rbErr)
			return nil, fmt.Errorf("%s: %w (rollback pending)", step, cause)
		}
		if err := framework.DeleteWAL(rbCtx, s, walID); err != nil {
			b.Logger().Warn("deleting WAL after rollback", "grant_id", id, "error", err)
		}
		return nil, fmt.Errorf("%s: %w", step, cause)
	}

	if err := client.WritePolicy(ctx, name, rules); err != nil {
		return fail("creating policy "+name, err)
	}
	if err := client.WriteUser(ctx, cfg.UserpassMount, name, userSpec{
		Password:   password,
		Policies:   []string{name},
		TTL:        gr.ttl,
		MaxTTL:     gr.ttl,
		BoundCIDRs: gr.boundCIDRs,
	}); err != nil {
		return fail("creating user "+name, err)
	}
	if created.Entity != "" {
		if rec.EntityID, err = b.createGrantEntity(ctx, client, rec); err != nil {
			return fail("creating identity entity "+name, err)
		}
	}
	if err := putGrant(ctx, s, rec); err != nil {
		return fail("storing grant record", err)
	}
	if err := framework.DeleteWAL(ctx, s, walID); err != nil {
		// A WAL left behind would roll back a live grant: undo it all instead.
		return fail("deleting WAL", err)
	}

	logArgs := []interface{}{"grant_id", id, "role", gr.role, "requester", gr.requester,
		"permission", gr.permission, "resources", rec.Resources, "expires_at", rec.ExpiresAt.Format(time.RFC3339)}
	if gr.requestID != "" {
		logArgs = append(logArgs, "request_id", gr.requestID)
	}
	if gr.breakGlass {
		b.Logger().Warn("BREAK-GLASS grant issued without approval", append(logArgs, "justification", gr.justification)...)
		b.emit(cfg, rec.event(eventBreakGlass))
	} else {
		b.Logger().Info("grant issued", logArgs...)
	}
	b.emit(cfg, rec.event(eventGrantIssued))

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
		"expires_at":     rec.ExpiresAt.Format(time.RFC3339),
		"access_details": cfg.AccessDetails,
	}
	if gr.requestID != "" {
		data["request_id"] = gr.requestID
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
