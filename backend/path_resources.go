package backend

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/config"
	"github.com/apono-io/vault-plugin-apono/backend/discovery"
	"github.com/apono-io/vault-plugin-apono/internal/textsafe"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

const (
	defaultResourcesLimit = 1000
	maxResourcesLimit     = 10000
)

func pathResources(b *aponoBackend) *framework.Path {
	return &framework.Path{
		Pattern: "resources/?$",
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: "apono",
			OperationSuffix: "resources",
		},
		Fields: map[string]*framework.FieldSchema{
			"type": {
				Type:        framework.TypeString,
				Description: "Only resources of this type: kv, transit, database, pki or ssh.",
				Query:       true,
			},
			"mount": {
				Type:        framework.TypeString,
				Description: "Only resources on this mount, e.g. kv.",
				Query:       true,
			},
			"prefix": {
				Type:        framework.TypeString,
				Description: "Only resources whose name starts with this, e.g. kv/app/.",
				Query:       true,
			},
			"role": {
				Type:        framework.TypeLowerCaseString,
				Description: "Only resources the role can grant: its resources and what lies below its folders.",
				Query:       true,
			},
			"after": {
				Type:        framework.TypeString,
				Description: "Paging: only resources whose name sorts after this one; pass the previous page's next_after.",
				Query:       true,
			},
			"limit": {
				Type:        framework.TypeInt,
				Description: fmt.Sprintf("Paging: at most this many resources (1 to %d). Default: %d.", maxResourcesLimit, defaultResourcesLimit),
				Query:       true,
			},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				Callback: b.pathResourcesRead,
				DisplayAttrs: &framework.DisplayAttributes{
					OperationVerb: "read",
				},
			},
			logical.ListOperation: &framework.PathOperation{
				Callback: b.pathResourcesList,
				DisplayAttrs: &framework.DisplayAttributes{
					OperationVerb: "list",
				},
			},
		},
		HelpSynopsis:    "The resources found by the last sync, filtered and paged.",
		HelpDescription: pathResourcesHelp,
	}
}

const pathResourcesHelp = `
Returns the current snapshot written by sync (or by the periodic refresh), sorted by
name. A read returns the entries under "resources"; a LIST returns the names as keys and
the entries as key_info. Each name can be pasted into a role's or a grant's resources.
Filter with type (kv, transit, database, pki, ssh), mount and prefix (the start of the name); page with limit
and after: when more entries match, next_after is set, and passing it as after returns the
next page, so every entry is returned exactly once. synced_at says when the snapshot was
taken. When no snapshot exists yet, the request runs a sync first. A filter sent empty
(role=) is a 400, not "no filter": a policy may require role (required_parameters) and
rely on it.
`

// resourceQuery is a validated filter and page over the snapshot.
type resourceQuery struct {
	typ, mount, prefix, after string
	limit                     int
	// role, when set, is the resources of the role the entries must be grantable from.
	role []string
}

func parseResourceQuery(d *framework.FieldData) (resourceQuery, string) {
	q := resourceQuery{
		typ:    strings.ToLower(strings.TrimSpace(d.Get("type").(string))),
		mount:  strings.Trim(strings.TrimSpace(d.Get("mount").(string)), "/"),
		prefix: d.Get("prefix").(string),
		after:  d.Get("after").(string),
		limit:  defaultResourcesLimit,
	}
	if q.typ != "" && !slices.Contains(config.DiscoverableTypes, q.typ) {
		return q, fmt.Sprintf("type %q is not a resource type (allowed: %s)", textsafe.Truncate(q.typ), strings.Join(config.DiscoverableTypes, ", "))
	}
	if v, ok := d.GetOk("limit"); ok {
		q.limit = v.(int)
		if q.limit < 1 || q.limit > maxResourcesLimit {
			return q, fmt.Sprintf("limit must be between 1 and %d, got %d", maxResourcesLimit, q.limit)
		}
	}
	return q, ""
}

func (q *resourceQuery) matches(e *discovery.Entry) bool {
	return e.Name > q.after &&
		(q.typ == "" || e.Type == q.typ) &&
		(q.mount == "" || e.Mount == q.mount) &&
		strings.HasPrefix(e.Name, q.prefix)
}

// namePrefixes are prefixes every matching name has; names are sorted, so the matches
// lie between the first name with all of them and the first name past one of them.
func (q *resourceQuery) namePrefixes() []string {
	var ps []string
	if q.prefix != "" {
		ps = append(ps, q.prefix)
	}
	if q.mount != "" {
		ps = append(ps, q.mount+"/")
	}
	return ps
}

// query returns up to q.limit matching entries in name order, and whether more match.
// It reads only the chunks that can hold matches.
func query(ctx context.Context, s logical.Storage, h *discovery.SnapshotHeader, q resourceQuery) ([]discovery.Entry, bool, error) {
	lower := q.after
	prefixes := q.namePrefixes()
	for _, p := range prefixes {
		if p > lower {
			lower = p
		}
	}
	first := sort.Search(len(h.Chunks), func(i int) bool {
		return h.Chunks[i].Last > q.after && h.Chunks[i].Last >= lower
	})
	var out []discovery.Entry
	for i := first; i < len(h.Chunks); i++ {
		entries, err := discovery.LoadSnapshotChunk(ctx, s, h, i)
		if err != nil {
			return nil, false, err
		}
		for j := range entries {
			e := &entries[j]
			for _, p := range prefixes {
				if e.Name > p && !strings.HasPrefix(e.Name, p) {
					return out, false, nil // past every name with prefix p
				}
			}
			if !q.matches(e) {
				continue
			}
			if len(out) == q.limit {
				return out, true, nil
			}
			out = append(out, *e)
		}
	}
	return out, false, nil
}

// currentSnapshot returns the snapshot header, running a first sync when there is none.
// resp is set when that sync answered with an error for the caller.
func (b *aponoBackend) currentSnapshot(ctx context.Context, req *logical.Request) (*discovery.SnapshotHeader, *logical.Response, error) {
	h, err := discovery.LoadSnapshotHeader(ctx, req.Storage)
	if err != nil || h != nil {
		return h, nil, err
	}
	// A sync writes storage: a performance standby hands the request to the active node.
	if !b.WriteSafeReplicationState() {
		return nil, nil, logical.ErrPerfStandbyPleaseForward
	}
	ctx, cancel := requestSyncContext(ctx, defaultRequestSyncTimeout)
	defer cancel()
	if err := b.lockSync(ctx); err != nil {
		return nil, nil, err
	}
	defer b.syncMu.Unlock()
	// Look again: another request may have synced while this one waited.
	if h, err = discovery.LoadSnapshotHeader(ctx, req.Storage); err != nil || h != nil {
		return h, nil, err
	}
	resp, err := b.syncResponse(ctx, req.Storage, defaultRequestSyncTimeout)
	if err != nil || (resp != nil && resp.IsError()) {
		return nil, resp, err
	}
	h, err = discovery.LoadSnapshotHeader(ctx, req.Storage)
	if err == nil && h == nil {
		err = fmt.Errorf("sync stored no snapshot")
	}
	return h, nil, err
}

// resourcesPage runs the query of a read or a LIST.
func (b *aponoBackend) resourcesPage(ctx context.Context, req *logical.Request, d *framework.FieldData) (*discovery.SnapshotHeader, []discovery.Entry, bool, *logical.Response, error) {
	b.rememberMount(req)
	q, msg := parseResourceQuery(d)
	if msg != "" {
		return nil, nil, false, logical.ErrorResponse(msg), nil
	}
	h, resp, err := b.currentSnapshot(ctx, req)
	if err != nil || resp != nil {
		return nil, nil, false, resp, err
	}
	if name := d.Get("role").(string); name != "" {
		role, err := b.store.Roles.Get(ctx, req.Storage, name)
		if err != nil {
			return nil, nil, false, nil, err
		}
		if role == nil {
			return nil, nil, false, logical.ErrorResponse(fmt.Sprintf("role %q does not exist", name)), nil
		}
		q.role = role.Resources
		entries, more, err := queryRole(ctx, req.Storage, h, q)
		return h, entries, more, nil, err
	}
	entries, more, err := query(ctx, req.Storage, h, q)
	return h, entries, more, nil, err
}

// queryRole is query for the entries a role can grant: one query per role resource, with
// the resource (or its folder) as a prefix, so only the chunks that hold them are read.
func queryRole(ctx context.Context, s logical.Storage, h *discovery.SnapshotHeader, q resourceQuery) ([]discovery.Entry, bool, error) {
	seen := map[string]bool{}
	var all []discovery.Entry
	more := false
	for _, r := range q.role {
		sub := q
		sub.role = nil
		sub.limit = q.limit + 1
		base := strings.TrimSuffix(r, "*")
		exact := base == r // one secret or key: only that name
		switch {
		case strings.HasPrefix(base, q.prefix):
			sub.prefix = base
		case strings.HasPrefix(q.prefix, base) && !exact:
			// the caller's prefix is narrower and inside the folder
		default:
			continue
		}
		entries, subMore, err := query(ctx, s, h, sub)
		if err != nil {
			return nil, false, err
		}
		if !exact {
			more = more || subMore
		}
		for _, e := range entries {
			if exact && e.Name != r {
				continue
			}
			if !seen[e.Name] {
				seen[e.Name] = true
				all = append(all, e)
			}
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Name < all[j].Name })
	if len(all) > q.limit {
		return all[:q.limit], true, nil
	}
	return all, more, nil
}

func (b *aponoBackend) pathResourcesRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	h, entries, more, resp, err := b.resourcesPage(ctx, req, d)
	if err != nil || resp != nil {
		return resp, err
	}
	list := make([]map[string]interface{}, 0, len(entries))
	for i := range entries {
		list = append(list, entries[i].ResponseData())
	}
	data := map[string]interface{}{
		"resources":         list,
		"synced_at":         h.SyncedAt.UTC().Format(time.RFC3339Nano),
		"total":             h.Total,
		"skipped":           skippedData(h.Skipped),
		"skipped_count":     h.SkippedCount,
		"ungrantable_count": h.UngrantableCount,
	}
	if more {
		data["next_after"] = entries[len(entries)-1].Name
	}
	return &logical.Response{Data: data}, nil
}

func (b *aponoBackend) pathResourcesList(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	h, entries, more, resp, err := b.resourcesPage(ctx, req, d)
	if err != nil || resp != nil {
		return resp, err
	}
	keys := make([]string, 0, len(entries))
	info := make(map[string]interface{}, len(entries))
	for i := range entries {
		keys = append(keys, entries[i].Name)
		info[entries[i].Name] = entries[i].ResponseData()
	}
	resp = logical.ListResponseWithInfo(keys, info)
	resp.Data["synced_at"] = h.SyncedAt.UTC().Format(time.RFC3339Nano)
	if more {
		next := entries[len(entries)-1].Name
		resp.Data["next_after"] = next
		resp.AddWarning(fmt.Sprintf("more resources match: pass after=%s (next_after) for the next page", next))
	}
	return resp, nil
}
