package backend

import (
	"fmt"
	"net/http"
	"sort"

	"github.com/hashicorp/vault/sdk/logical"
)

// errNoEntity is the 400 for a token without an identity entity.
const errNoEntity = "this token has no identity entity (the root token, or a token made with auth/token/create, has none): " +
	"log in through an auth method (userpass, OIDC, LDAP, ...) so that Vault knows who is asking"

// callerIdentity asks Vault's identity store who made req: the entity's name and every
// group it belongs to (direct, inherited, and external groups that OIDC or LDAP logins
// keep up to date). msg is a 400 for a caller without an entity.
func (b *aponoBackend) callerIdentity(req *logical.Request) (id *identity, msg string, err error) {
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
	id = &identity{EntityID: entity.ID, EntityName: entity.Name, DisplayName: req.DisplayName}
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

// forbidden is a 403 that says why; Vault relays the message to the caller.
func forbidden(format string, args ...interface{}) error {
	return logical.CodedError(http.StatusForbidden, fmt.Sprintf(format, args...))
}
