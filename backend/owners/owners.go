// Package owners turns owner tags into approver sets: it reads a KV v2 secret's owner tag
// (custom_metadata[owner_metadata_key]) and collects one set per distinct list of owners,
// with the operator's owners table (table.go) for whatever has no tag and
// integration_owner for whatever neither names, the same way for a request and for
// apono/sync. Resolver gives a request its approver sets (the role's, and the owners of
// every secret asked for, folders read level by level within bounds) and checks at pickup
// that the owners are still those who approved. It decides no approval; access does.
package owners

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/apono-io/vault-plugin-apono/backend/vaultapi"
)

// ReadOwnerTag reads the owner tag of the KV v2 secret mount/path (name is how the
// request names it, for notes). A secret that does not exist, or whose metadata the
// management policy may not read, has no tag; the note says the latter.
func ReadOwnerTag(ctx context.Context, client vaultapi.Client, key, mount, path, name string) (tag, note string, err error) {
	// Only validated names, or keys Vault itself listed below a validated folder, reach here.
	data, rerr := client.Read(ctx, mount+"/metadata/"+path)
	switch {
	case rerr == nil:
		return OwnerTag(data, key), "", nil
	case vaultapi.IsStatus(rerr, http.StatusForbidden):
		return "", fmt.Sprintf("%s: the management policy may not read %s/metadata/..., so its owner tag is unknown; integration_owner approves instead", name, mount), nil
	default:
		return "", "", fmt.Errorf("reading the owner of %s: %w", name, vaultapi.Redact(rerr))
	}
}

// OwnerTag is custom_metadata[key] of a KV v2 metadata read, or "".
func OwnerTag(metadata map[string]interface{}, key string) string {
	cm, _ := metadata["custom_metadata"].(map[string]interface{})
	v, _ := cm[key].(string)
	return strings.TrimSpace(v)
}

// Collector turns owner tags into approver sets, the same way for a request
// (resolve.go) and for apono/sync's entries (discovery/kv.go): one set per distinct list
// of owners; the owners table's entry for what has no tag; integration_owner for
// whatever neither names, or whose tag is not usable or could not be read.
type Collector struct {
	key, integration string
	table            *TableIndex
	Sets             []access.ApproverSet
	index            map[string]int // by source and canonical principals
	notes            []string
	// UnownedNames are the resources integration_owner must approve because nobody
	// could: it may not be set.
	UnownedNames []string
}

func NewCollector(key, integration string) *Collector {
	return &Collector{key: key, integration: integration, index: map[string]int{}}
}

// WithTable makes the collector give what has no owner tag the owners of its entry in
// ix (the owners table); nil is an empty table.
func (c *Collector) WithTable(ix *TableIndex) *Collector {
	c.table = ix
	return c
}

// Claim records that resource is owned by what tag names. Without a tag (note empty) its
// owners are the table's (Untagged); when note says why the tag is unknown, or the tag
// is not usable, integration_owner is its owner: the tag might name someone else.
func (c *Collector) Claim(resource, tag, note string) {
	if note != "" {
		c.notes = append(c.notes, note)
	}
	if tag == "" && note != "" {
		c.Unowned(resource, "")
		return
	}
	if tag == "" {
		c.Untagged(resource)
		return
	}
	owners, err := access.ParsePrincipalList(tag)
	if err != nil {
		c.Unowned(resource, fmt.Sprintf("%s: its %s tag is not usable (%s); integration_owner approves instead", resource, c.key, err))
		return
	}
	c.add(access.SetSourceMetadata, owners, resource, tag)
}

// Untagged records the owners of resource, which carries no owner tag (any type but
// KV, a KV secret without the tag, an empty folder): the owners table's entry for it
// (exact name, else longest prefix), else integration_owner.
func (c *Collector) Untagged(resource string) {
	e := c.table.match(resource)
	switch {
	case e == nil:
		c.Unowned(resource, "")
	case e.principals == nil:
		c.Unowned(resource, fmt.Sprintf("%s: the owners table entry %s names no usable approver; integration_owner approves instead", resource, e.Pattern))
	default:
		c.add(access.SetSourceTable, e.principals, resource, strings.Join(e.Approvers, ","))
	}
}

// Unowned records that integration_owner owns resource (note says why, when it is not
// simply that the resource names no owner): nothing names its owners, or they are
// unknown.
func (c *Collector) Unowned(resource, note string) {
	if note != "" {
		c.notes = append(c.notes, note)
	}
	owners, err := access.ParsePrincipalList(c.integration)
	if c.integration == "" || err != nil {
		c.UnownedNames = append(c.UnownedNames, resource)
		return
	}
	c.add(access.SetSourceIntegration, owners, resource, c.integration)
}

func (c *Collector) add(source string, owners []access.Principal, resource, raw string) {
	key := source + "|" + CanonicalPrincipals(owners)
	i, ok := c.index[key]
	if !ok {
		i = len(c.Sets)
		c.index[key] = i
		c.Sets = append(c.Sets, access.ApproverSet{Principals: owners, Source: source, Owner: true, Raw: raw})
	}
	s := &c.Sets[i]
	s.ResourceCount++
	if resource != "" && len(s.Resources) < access.MaxSetResources {
		s.Resources = append(s.Resources, resource)
	}
}

// Result is the owner sets with their labels; msg is a 400 when integration_owner had to
// approve something and is not set (or not usable).
func (c *Collector) Result() (sets []access.ApproverSet, notes []string, msg string, err error) {
	if len(c.UnownedNames) > 0 {
		if c.integration == "" {
			return nil, nil, fmt.Sprintf("resource %q names no owner and integration_owner is not set in config, so nobody could approve it", c.UnownedNames[0]), nil
		}
		_, perr := access.ParsePrincipalList(c.integration)
		return nil, nil, "", fmt.Errorf("integration_owner in config: %w", perr)
	}
	for i := range c.Sets {
		c.Sets[i].Label = OwnerSetLabel(c.Sets[i])
	}
	return c.Sets, access.Dedupe(c.notes), "", nil
}

// OwnerSetLabel names an owner set for people: "owners of kv/app/db",
// "integration owner of kv/app/scratch and 3 more".
func OwnerSetLabel(s access.ApproverSet) string {
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

// CanonicalPrincipals is principals sorted and joined: two sets with the same owners
// have the same one, whatever order their tags list them in.
func CanonicalPrincipals(ps []access.Principal) string {
	names := make([]string, 0, len(ps))
	for _, p := range ps {
		names = append(names, p.String())
	}
	sort.Strings(names)
	return strings.Join(names, ",")
}
