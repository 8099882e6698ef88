package backend

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/apono-io/vault-plugin-apono/backend/vaultapi"
	"github.com/apono-io/vault-plugin-apono/internal/textsafe"
)

// On behalf (access/on_behalf.go): requests/<role> with for=<entity name> asks for access
// for that person, the grantee. The request is stored as the grantee's (Requester) with
// who asked (RequestedBy), so that everything keyed on the requester (pickup, mine=true,
// max_open_requests, the grant record, my/grants, history) follows the person the access
// is for.

// granteeLookupPath is what the management policy needs read on for for=<name>.
const granteeLookupPath = "identity/entity/name/*"

// grantee answers the for field of a request by caller: nil when it was not sent (the
// caller asks for themself), else the grantee as Vault's identity store knows them now
// (entity, name and groups). msg is a 400; a caller the role does not allow is a 403.
func (b *aponoBackend) grantee(ctx context.Context, client vaultapi.Client, roleName string, role *access.Role,
	caller *access.Identity, raw interface{}, sent bool,
) (*access.Identity, string, error) {
	if !sent {
		return nil, "", nil
	}
	name, _ := raw.(string)
	name = strings.TrimSpace(name)
	if len(role.OnBehalfAllowed) == 0 {
		return nil, "", forbidden("role %q lets nobody ask for access for someone else (its on_behalf_allowed is empty): leave out for to ask for yourself", roleName)
	}
	if !role.MayRequestOnBehalf(caller) {
		return nil, "", forbidden("%s may not ask for access for someone else on role %q: it needs one of %s (on_behalf_allowed; membership as Vault's identity store knows it now)",
			caller.Label(), roleName, strings.Join(role.OnBehalfAllowed, ", "))
	}
	if msg := access.CheckGranteeName(name); msg != "" {
		return nil, msg, nil
	}
	if name == caller.EntityName {
		return nil, fmt.Sprintf("for names %q, the caller: leave out for to ask for yourself", textsafe.Truncate(name)), nil
	}
	data, err := client.Read(ctx, vaultapi.EntityNamePath(name))
	if vaultapi.IsStatus(err, http.StatusForbidden) {
		return nil, "", fmt.Errorf("for=<name> needs read on %s in the plugin's management policy (testdata/apono-identity.hcl): %w", granteeLookupPath, vaultapi.Redact(err))
	}
	if err != nil {
		return nil, "", fmt.Errorf("looking up the entity named in for: %w", vaultapi.Redact(err))
	}
	id, _ := data["id"].(string)
	if id == "" {
		return nil, fmt.Sprintf("for: no identity entity is named %q in Vault (for takes an entity name, as vault read identity/entity/name/<name> finds it)", textsafe.Truncate(name)), nil
	}
	if id == caller.EntityID {
		return nil, fmt.Sprintf("for names %q, the caller: leave out for to ask for yourself", textsafe.Truncate(name)), nil
	}
	sys := b.System()
	entity, err := sys.EntityInfo(id)
	if err != nil {
		return nil, "", fmt.Errorf("looking up the entity named in for: %w", err)
	}
	if entity == nil {
		return nil, fmt.Sprintf("for: no identity entity is named %q in Vault", textsafe.Truncate(name)), nil
	}
	if entity.Disabled {
		return nil, fmt.Sprintf("for: identity entity %q is disabled", textsafe.Truncate(name)), nil
	}
	groups, err := sys.GroupsForEntity(id)
	if err != nil {
		return nil, "", fmt.Errorf("looking up the groups of the entity named in for: %w", err)
	}
	who := &access.Identity{EntityID: id, EntityName: entity.Name, Name: personName(entity, "")}
	if who.EntityName == "" {
		who.EntityName = name
	}
	for _, g := range groups {
		if g != nil && g.Name != "" {
			who.Groups = append(who.Groups, g.Name)
		}
	}
	sort.Strings(who.Groups)
	return who, "", nil
}

// notPartyToDecide is the 403 for the requester, or who asked on their behalf, approving
// or denying (verb) their own request.
func notPartyToDecide(caller *access.Identity, rec *access.Request, verb string) error {
	if !rec.OnBehalf() || !rec.IsParty(caller.EntityID) {
		return nil
	}
	if caller.EntityID == rec.Requester.EntityID {
		return forbidden("request %s asks for access for %s (on behalf, by %s): the person the access is for cannot %s it; one of %s must",
			rec.ID, caller.Label(), rec.RequestedBy.Label(), verb, strings.Join(access.ApproverNames(rec.Sets), ", "))
	}
	return forbidden("%s asked for request %s on behalf of %s and cannot %s it: self-approval never counts; one of %s must",
		caller.Label(), rec.ID, rec.Requester.Label(), verb, strings.Join(access.ApproverNames(rec.Sets), ", "))
}

// notPickupPerson is the 403 for a pickup by anyone but the requester.
func notPickupPerson(caller *access.Identity, rec *access.Request) error {
	if rec.OnBehalf() && caller.EntityID == rec.RequestedBy.EntityID {
		return forbidden("%s asked for request %s on behalf of %s: only %s, whose access it is, may pick up its grant",
			caller.Label(), rec.ID, rec.Requester.Label(), rec.Requester.Label())
	}
	return forbidden("only the requester, %s, may pick up the grant of request %s", rec.Requester.Label(), rec.ID)
}
