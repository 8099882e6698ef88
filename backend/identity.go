package backend

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/apono-io/vault-plugin-apono/backend/grants"
	"github.com/apono-io/vault-plugin-apono/backend/vaultapi"
	"github.com/hashicorp/vault/sdk/logical"
)

// errNoEntity is the 400 for a token without an identity entity.
const errNoEntity = "this token has no identity entity (the root token, or a token made with auth/token/create, has none): " +
	"log in through an auth method (userpass, OIDC, LDAP, ...) so that Vault knows who is asking"

// callerIdentity asks Vault's identity store who made req: the entity's name and every
// group it belongs to (direct, inherited, and external groups that OIDC or LDAP logins
// keep up to date). msg is a 400 for a caller without an entity.
func (b *aponoBackend) callerIdentity(req *logical.Request) (id *access.Identity, msg string, err error) {
	if req.EntityID == "" {
		return nil, errNoEntity, nil
	}
	sys := b.System()
	entity, err := sys.EntityInfo(req.EntityID)
	if err != nil {
		return nil, "", fmt.Errorf("looking up the caller's entity: %w", err)
	}
	if entity == nil {
		return nil, errNoEntity, nil
	}
	if entity.Disabled {
		return nil, "", logical.CodedError(http.StatusForbidden, "the caller's identity entity is disabled")
	}
	groups, err := sys.GroupsForEntity(req.EntityID)
	if err != nil {
		return nil, "", fmt.Errorf("looking up the caller's groups: %w", err)
	}
	id = &access.Identity{EntityID: entity.ID, EntityName: entity.Name, DisplayName: req.DisplayName, Name: personName(entity, req.DisplayName)}
	if id.EntityID == "" {
		id.EntityID = req.EntityID
	}
	for _, g := range groups {
		if g != nil && g.Name != "" {
			id.Groups = append(id.Groups, g.Name)
		}
	}
	sort.Strings(id.Groups)
	return id, "", nil
}

// generatedEntityName is the name Vault gives an entity a login made: entity_ and 8 hex.
var generatedEntityName = regexp.MustCompile(`^entity_[0-9a-f]{8}$`)

// personName is how people know the caller: the entity's name when someone set it, else
// the name the caller logged in with (the alias whose name the token's display name ends
// with: userpass-alice is alice), else the entity's name.
func personName(entity *logical.Entity, displayName string) string {
	if !generatedEntityName.MatchString(entity.Name) || len(entity.Aliases) == 0 {
		return entity.Name
	}
	for _, a := range entity.Aliases {
		if a != nil && a.Name != "" && (displayName == a.Name || strings.HasSuffix(displayName, "-"+a.Name)) {
			return a.Name
		}
	}
	if a := entity.Aliases[0]; a != nil && a.Name != "" {
		return a.Name
	}
	return entity.Name
}

// forbidden is a 403 that says why; Vault relays the message to the caller.
func forbidden(format string, args ...interface{}) error {
	return logical.CodedError(http.StatusForbidden, fmt.Sprintf(format, args...))
}

// forbiddenIfRefused answers a rule's refusal (access.Refused) with a 403; other errors
// pass as they are.
func forbiddenIfRefused(err error) error {
	var r *access.Refused
	if errors.As(err, &r) {
		return logical.CodedError(http.StatusForbidden, r.Msg)
	}
	return err
}

// callerEntity is the caller's entity as stored with what it does, without its groups;
// nil for a token without an entity.
func (b *aponoBackend) callerEntity(req *logical.Request) (*access.IdentityRef, error) {
	if req.EntityID == "" {
		return nil, nil
	}
	entity, err := b.System().EntityInfo(req.EntityID)
	if err != nil {
		return nil, fmt.Errorf("looking up the caller's entity: %w", err)
	}
	if entity == nil {
		// The token names an entity Vault no longer knows: still nobody else.
		return &access.IdentityRef{EntityID: req.EntityID, EntityName: req.EntityID, DisplayName: req.DisplayName}, nil
	}
	if entity.Disabled {
		return nil, logical.CodedError(http.StatusForbidden, "the caller's identity entity is disabled")
	}
	ref := access.IdentityRef{EntityID: entity.ID, EntityName: entity.Name, DisplayName: req.DisplayName, Name: personName(entity, req.DisplayName)}
	if ref.EntityID == "" {
		ref.EntityID = req.EntityID
	}
	return &ref, nil
}

// checkApproverToken refuses an approval or denial, with a 403 that says why, when the
// request's rule has approver_max_token_age and the caller's token is older than that or
// was not made by a login: group membership (external groups above all) is refreshed
// at login, so an old token may carry a membership the IdP has since taken away, and a
// token made with auth/token/create from it would look new.
func (b *aponoBackend) checkApproverToken(ctx context.Context, req *logical.Request, rec *access.Request, now time.Time) error {
	maxAge := rec.ApproverMaxTokenAge
	if maxAge <= 0 {
		return nil
	}
	if req.ClientTokenAccessor == "" {
		return forbidden("role %q needs approvers to have logged in within %s (approver_max_token_age), and this token has no accessor to check (a batch token?): log in again", rec.Role, maxAge)
	}
	client, err := b.getClient(ctx, req.Storage)
	if err != nil {
		return err
	}
	if !b.caps.Allowed(ctx, client, grants.TokenLookupPath, "update") {
		return fmt.Errorf("role %q has approver_max_token_age, which needs update on %s in the management policy (testdata/apono-identity.hcl; see apono/health): "+
			"no approval is accepted until it is granted", rec.Role, grants.TokenLookupPath)
	}
	life, err := b.tokenLifetimes.Lookup(ctx, client, req.ClientTokenAccessor)
	if err != nil {
		return fmt.Errorf("looking up the approver's token: %w", vaultapi.Redact(err))
	}
	if strings.HasPrefix(life.Path, "auth/token/") {
		return forbidden("role %q needs approvers to have logged in within %s (approver_max_token_age), and this token was made by %s, not by a login: log in again through your auth method",
			rec.Role, maxAge, life.Path)
	}
	if life.CreationTime.IsZero() {
		return forbidden("role %q needs approvers to have logged in within %s (approver_max_token_age), and Vault gave no creation time for this token: log in again", rec.Role, maxAge)
	}
	if age := now.Sub(life.CreationTime); age > maxAge {
		return forbidden("role %q needs approvers to have logged in within %s (approver_max_token_age); this token was made %s ago, at %s: log in again",
			rec.Role, maxAge, age.Truncate(time.Second), access.FormatTime(life.CreationTime))
	}
	return nil
}

// identityOf is who ref is now: its entity's name and groups as Vault knows them.
func (b *aponoBackend) identityOf(ref access.IdentityRef) (*access.Identity, error) {
	sys := b.System()
	id := &access.Identity{EntityID: ref.EntityID, EntityName: ref.EntityName}
	entity, err := sys.EntityInfo(ref.EntityID)
	if err != nil {
		return nil, fmt.Errorf("looking up approver %s: %w", ref.EntityName, err)
	}
	if entity == nil || entity.Disabled {
		return id, nil // gone or disabled: in no group
	}
	id.EntityName = entity.Name
	groups, err := sys.GroupsForEntity(ref.EntityID)
	if err != nil {
		return nil, fmt.Errorf("looking up approver %s's groups: %w", ref.EntityName, err)
	}
	for _, g := range groups {
		if g != nil {
			id.Groups = append(id.Groups, g.Name)
		}
	}
	return id, nil
}
