package backend

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/apono-io/vault-plugin-apono/backend/config"
	"github.com/apono-io/vault-plugin-apono/backend/resource"
	"github.com/apono-io/vault-plugin-apono/backend/vaultapi"
)

// Approver sets of a request, resolved when it is made. Each role approver that names a
// group or entity is one set. "owner" adds one set per distinct list of owners among the
// requested resources: a KV secret's owners are what its owner_metadata_key tag names
// (read fresh now); a folder's are the owners of the folder itself (the tag of the secret
// named like it, kv/app for kv/app/*, where there is one) and of every secret below it;
// whatever names no owner (a Transit key, a secret without the tag, an empty folder)
// is owned by integration_owner. Every owner set must approve (approval.go), so no owner
// approves for another's resource and the integration owner approves only what has none.

// resolveApproverSets returns the request's approver sets; notes say where an owner could
// not be read and integration_owner stood in; msg is a 400.
// A preview (dry_run) may use a folder's owners read in the last folderOwnersCacheTTL.
func (b *aponoBackend) resolveApproverSets(ctx context.Context, cfg *config.Config, role *access.Role, resources []resource.Ref, client vaultapi.Client, preview bool,
) (sets []access.ApproverSet, notes []string, msg string, err error) {
	for _, a := range role.Approvers {
		if a == access.ApproverOwner {
			continue
		}
		p, perr := access.ParsePrincipal(a)
		if perr != nil {
			return nil, nil, "role approvers: " + perr.Error(), nil
		}
		sets = append(sets, access.ApproverSet{Label: p.String(), Principals: []access.Principal{p}, Source: access.SetSourceRole})
	}
	if slices.Contains(role.Approvers, access.ApproverOwner) {
		owners, ownerNotes, msg, err := b.resourceOwnerSets(ctx, cfg, resources, client, preview)
		if err != nil || msg != "" {
			return nil, nil, msg, err
		}
		sets = append(sets, owners...)
		notes = ownerNotes
	}
	if len(sets) == 0 {
		return nil, nil, "the role names no approvers", nil
	}
	return sets, notes, "", nil
}

// resourceOwnerSets reads the owners of every resource (see the top of this file) and
// returns one set per distinct list of owners.
func (b *aponoBackend) resourceOwnerSets(ctx context.Context, cfg *config.Config, resources []resource.Ref, client vaultapi.Client, preview bool,
) (sets []access.ApproverSet, notes []string, msg string, err error) {
	col := newOwnerCollector(cfg.OwnerMetadataKey, cfg.IntegrationOwner)
	for _, ref := range resources {
		switch {
		case ref.Type != resource.TypeKV || cfg.OwnerMetadataKey == "":
			col.unowned(ref.Name, "")
		case !ref.Folder:
			tag, note, err := readOwnerTag(ctx, client, cfg.OwnerMetadataKey, ref.Mount, ref.Path, ref.Name)
			if err != nil {
				return nil, nil, "", err
			}
			col.claim(ref.Name, tag, note)
		default:
			msg, err := b.folderOwners(ctx, client, cfg, col, ref, preview)
			if err != nil || msg != "" {
				return nil, nil, msg, err
			}
		}
	}
	return col.result()
}

// readOwnerTag reads the owner tag of the KV v2 secret mount/path (name is how the
// request names it, for notes). A secret that does not exist, or whose metadata the
// management policy may not read, has no tag; the note says the latter.
func readOwnerTag(ctx context.Context, client vaultapi.Client, key, mount, path, name string) (tag, note string, err error) {
	// Only validated names, or keys Vault itself listed below a validated folder, reach here.
	data, rerr := client.Read(ctx, mount+"/metadata/"+path)
	switch {
	case rerr == nil:
		return ownerTag(data, key), "", nil
	case vaultapi.IsStatus(rerr, http.StatusForbidden):
		return "", fmt.Sprintf("%s: the management policy may not read %s/metadata/..., so its owner tag is unknown; integration_owner approves instead", name, mount), nil
	default:
		return "", "", fmt.Errorf("reading the owner of %s: %w", name, vaultapi.Redact(rerr))
	}
}

// ownerTag is custom_metadata[key] of a KV v2 metadata read, or "".
func ownerTag(metadata map[string]interface{}, key string) string {
	cm, _ := metadata["custom_metadata"].(map[string]interface{})
	v, _ := cm[key].(string)
	return strings.TrimSpace(v)
}

// ownerCollector turns owner tags into approver sets, the same way for a request
// (owners.go) and for apono/sync's entries (discovery_kv.go): one set per distinct list
// of owners, integration_owner for whatever names none or whose tag is not usable.
type ownerCollector struct {
	key, integration string
	sets             []access.ApproverSet
	index            map[string]int // by source and canonical principals
	notes            []string
	// unownedNames are the resources integration_owner must approve because nobody
	// could: it may not be set.
	unownedNames []string
}

func newOwnerCollector(key, integration string) *ownerCollector {
	return &ownerCollector{key: key, integration: integration, index: map[string]int{}}
}

// claim records that resource is owned by what tag names; an empty or unusable tag makes
// integration_owner its owner. note, when set, says why the tag is unknown.
func (c *ownerCollector) claim(resource, tag, note string) {
	if note != "" {
		c.notes = append(c.notes, note)
	}
	if tag == "" {
		c.unowned(resource, "")
		return
	}
	owners, err := access.ParsePrincipalList(tag)
	if err != nil {
		c.unowned(resource, fmt.Sprintf("%s: its %s tag is not usable (%s); integration_owner approves instead", resource, c.key, err))
		return
	}
	c.add(access.SetSourceMetadata, owners, resource, tag)
}

// unowned records that integration_owner owns resource (note says why, when it is not
// simply that the resource names no owner).
func (c *ownerCollector) unowned(resource, note string) {
	if note != "" {
		c.notes = append(c.notes, note)
	}
	owners, err := access.ParsePrincipalList(c.integration)
	if c.integration == "" || err != nil {
		c.unownedNames = append(c.unownedNames, resource)
		return
	}
	c.add(access.SetSourceIntegration, owners, resource, c.integration)
}

func (c *ownerCollector) add(source string, owners []access.Principal, resource, raw string) {
	key := source + "|" + canonicalPrincipals(owners)
	i, ok := c.index[key]
	if !ok {
		i = len(c.sets)
		c.index[key] = i
		c.sets = append(c.sets, access.ApproverSet{Principals: owners, Source: source, Owner: true, Raw: raw})
	}
	s := &c.sets[i]
	s.ResourceCount++
	if resource != "" && len(s.Resources) < access.MaxSetResources {
		s.Resources = append(s.Resources, resource)
	}
}

// result is the owner sets with their labels; msg is a 400 when integration_owner had to
// approve something and is not set (or not usable).
func (c *ownerCollector) result() (sets []access.ApproverSet, notes []string, msg string, err error) {
	if len(c.unownedNames) > 0 {
		if c.integration == "" {
			return nil, nil, fmt.Sprintf("resource %q names no owner and integration_owner is not set in config, so nobody could approve it", c.unownedNames[0]), nil
		}
		_, perr := access.ParsePrincipalList(c.integration)
		return nil, nil, "", fmt.Errorf("integration_owner in config: %w", perr)
	}
	for i := range c.sets {
		c.sets[i].Label = ownerSetLabel(c.sets[i])
	}
	return c.sets, access.Dedupe(c.notes), "", nil
}

// ownerSetLabel names an owner set for people: "owners of kv/app/db",
// "integration owner of kv/app/scratch and 3 more".
func ownerSetLabel(s access.ApproverSet) string {
	what := "owners of "
	if s.Source == access.SetSourceIntegration {
		what = "integration owner of "
	}
	names := strings.Join(s.Resources, ", ")
	if more := s.ResourceCount - len(s.Resources); more > 0 {
		names += fmt.Sprintf(" and %d more", more)
	}
	if names == "" {
		return strings.TrimSuffix(what, " of ")
	}
	return what + names
}

// canonicalPrincipals is principals sorted and joined: two sets with the same owners
// have the same one, whatever order their tags list them in.
func canonicalPrincipals(ps []access.Principal) string {
	names := make([]string, 0, len(ps))
	for _, p := range ps {
		names = append(names, p.String())
	}
	sort.Strings(names)
	return strings.Join(names, ",")
}

// checkOwnersUnchanged is the 403 for a pickup whose resources have owners now that did
// not approve: a secret added below a requested folder since, or a tag an operator
// changed. The grant's policy would cover what they own, so they are asked again.
func (b *aponoBackend) checkOwnersUnchanged(ctx context.Context, cfg *config.Config, rec *access.Request, resources []resource.Ref, client vaultapi.Client) error {
	approvedOwners := map[string]bool{}
	hasOwners := false
	covered := map[int]bool{}
	for _, a := range rec.Approvals {
		for _, i := range a.Sets {
			covered[i] = true
		}
	}
	for i, s := range rec.Sets {
		if s.Source == access.SetSourceRole {
			continue
		}
		hasOwners = true
		// A rule's approval stands for every owner set the request had.
		if covered[i] || rec.AutoApprovedBy != "" {
			approvedOwners[s.Source+"|"+canonicalPrincipals(s.Principals)] = true
		}
	}
	if !hasOwners {
		return nil
	}
	now, _, msg, err := b.resourceOwnerSets(ctx, cfg, resources, client, false)
	if err != nil {
		return err
	}
	if msg != "" {
		return forbidden("request %s cannot be picked up: %s", rec.ID, msg)
	}
	for _, s := range now {
		if !approvedOwners[s.Source+"|"+canonicalPrincipals(s.Principals)] {
			return forbidden("request %s cannot be picked up: the owners of what it grants changed since it was approved, and %s (%s) did not approve it; ask for the access again",
				rec.ID, s.Label, strings.Join(access.ApproverNames([]access.ApproverSet{s}), ", "))
		}
	}
	return nil
}
