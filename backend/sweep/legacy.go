package sweep

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/store"
	"github.com/apono-io/vault-plugin-apono/backend/vaultapi"
	"github.com/hashicorp/vault/sdk/logical"
)

// Entities left by earlier versions of the plugin, which did not make grant entities:
// each used grant's first login made an entity (entity_xxxxxxxx) with an alias named after
// the grant user, on the userpass mount. The sweeper removes such an entity when every one
// of these holds, on two sightings at least RecordlessMinAge apart:
//   - the alias is on the configured userpass mount and named like this mount's grants,
//   - no user of that name exists, no grant record or pending WAL entry explains it,
//   - the entity is not a grant entity of this version (its name is not the alias name),
//     was named by Vault (entity_...), and has that one alias and nothing else.
// It needs the legacy additions (testdata/apono-identity-legacy.hcl): LIST on
// identity/entity-alias/id and read and delete on identity/entity/id/*.

const (
	// AliasListPath lists every entity alias (the legacy additions).
	AliasListPath      = "identity/entity-alias/id"
	entityByIDListPath = "identity/entity/id"
)

var uuidRe = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// EntityByIDCheckPath is the path whose capabilities say whether leftover entities can
// be read and deleted.
func EntityByIDCheckPath() string {
	return entityByIDListPath + "/" + "00000000-0000-0000-0000-000000000000"
}

// legacyCleanupEnabled reports whether the management token holds the legacy additions.
func (w *Sweeper) legacyCleanupEnabled(ctx context.Context, client vaultapi.Client) bool {
	return w.Caps.Allowed(ctx, client, AliasListPath, "list") &&
		w.Caps.Allowed(ctx, client, EntityByIDCheckPath(), "read", "delete")
}

// legacyAlias is an alias that may hold an earlier version's entity.
type legacyAlias struct {
	aliasName, entityID string
}

// findLegacyAliases lists the aliases on the userpass mount named like this mount's grants
// whose user is gone and that no record or pending issue explains.
func (w *Sweeper) findLegacyAliases(ctx context.Context, client vaultapi.Client, userpassMount string, users map[string]bool,
	records map[string]bool, pending map[string]bool,
) ([]legacyAlias, error) {
	accessor, err := w.AuthAccessors.Get(ctx, client, userpassMount)
	if err != nil {
		return nil, err
	}
	_, info, err := client.List(ctx, AliasListPath)
	if err != nil {
		return nil, fmt.Errorf("listing entity aliases: %w", err)
	}
	var out []legacyAlias
	for _, raw := range info {
		a, _ := raw.(map[string]interface{})
		name, _ := a["name"].(string)
		acc, _ := a["mount_accessor"].(string)
		canonical, _ := a["canonical_id"].(string)
		id, ok := w.Grants.IDFromName(name)
		if !ok || acc != accessor || !uuidRe.MatchString(canonical) || users[name] || records[id] || pending[id] {
			continue
		}
		out = append(out, legacyAlias{aliasName: name, entityID: canonical})
	}
	return out, nil
}

// legacyEntity deletes the entity of alias if, read again now, it is still an earlier
// version's leftover.
func (w *Sweeper) legacyEntity(ctx context.Context, s logical.Storage, client vaultapi.Client, a legacyAlias) (bool, error) {
	id, _ := w.Grants.IDFromName(a.aliasName)
	defer w.Locks.Lock(id)()
	if rec, err := store.GetGrant(ctx, s, id); err != nil || rec != nil {
		return false, err
	}
	path := entityByIDListPath + "/" + url.PathEscape(a.entityID)
	ent, err := client.Read(ctx, path)
	if err != nil || ent == nil {
		return false, err
	}
	name, _ := ent["name"].(string)
	aliases, _ := ent["aliases"].([]interface{})
	groups, _ := ent["direct_group_ids"].([]interface{})
	policies, _ := ent["policies"].([]interface{})
	if !strings.HasPrefix(name, "entity_") || len(aliases) != 1 || len(groups) != 0 || len(policies) != 0 {
		w.Logger().Debug("left alone: an entity with a grant-named alias that is not only a leftover", "entity", name, "alias", a.aliasName)
		return false, nil
	}
	if alias, _ := aliases[0].(map[string]interface{}); alias["name"] != a.aliasName {
		return false, nil
	}
	if err := client.DeleteByPath(ctx, path); err != nil {
		return false, fmt.Errorf("deleting leftover entity %s of %s: %w", name, a.aliasName, err)
	}
	w.Logger().Info("swept an identity entity an earlier version left behind", "entity", name, "alias", a.aliasName)
	return true, nil
}

// legacyEntities applies the rule above, with the same two-sightings memory as
// record-less objects. The caller holds w.mu.
func (w *Sweeper) legacyEntities(ctx context.Context, s logical.Storage, client vaultapi.Client, userpassMount string,
	users map[string]bool, records map[string]bool, pending map[string]bool, now time.Time,
) ([]string, error) {
	if !w.legacyCleanupEnabled(ctx, client) {
		return nil, nil
	}
	found, err := w.findLegacyAliases(ctx, client, userpassMount, users, records, pending)
	if err != nil {
		return nil, err
	}
	st := w
	if st.legacy == nil {
		st.legacy = sightings{}
	}
	seen := map[string]bool{}
	var removed []string
	var errs []error
	for _, a := range found {
		key := a.entityID + "/" + a.aliasName
		seen[key] = true
		if !st.legacy.secondSighting(key, now, w.RecordlessMinAge) {
			continue
		}
		ok, err := w.legacyEntity(ctx, s, client, a)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		delete(st.legacy, key)
		if ok {
			removed = append(removed, a.aliasName)
		}
	}
	st.legacy.forgetAllBut(seen)
	return removed, errors.Join(errs...)
}
