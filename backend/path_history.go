package backend

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/apono-io/vault-plugin-apono/backend/resource"
	"github.com/apono-io/vault-plugin-apono/backend/store"
	"github.com/apono-io/vault-plugin-apono/internal/textsafe"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// History: every grant that ends keeps a compact record (who, what, permission, when it
// started and ended, how it ended, the request and its approvers, break-glass) for
// history_retention (default 90 days), so that "who had access to kv/app/db last month"
// has an answer once Vault's leases are gone. Records are indexed by when they ended, by
// requester, by resource and by role (store/pages.go), and removed by the periodic job through
// the index of when they ended: both cost what is due.

// maxCSVRows bounds a format=csv answer: it holds every matching row, or, past this many,
// is a 400 that says how to export in parts. A variable for tests.
var maxCSVRows = 10000

func pathHistory(b *aponoBackend) []*framework.Path {
	fields := func(withRequester bool) map[string]*framework.FieldSchema {
		f := map[string]*framework.FieldSchema{
			"since":    {Type: framework.TypeString, Query: true, Description: "Only grants live at or after this time (RFC 3339)."},
			"until":    {Type: framework.TypeString, Query: true, Description: "Only grants live before this time (RFC 3339)."},
			"resource": {Type: framework.TypeString, Query: true, Description: "Only grants that covered this resource (the resource itself, or a folder above it): who had access to kv/app/db."},
			"role":     {Type: framework.TypeLowerCaseString, Query: true, Description: "Only grants of this role."},
			"format": {Type: framework.TypeString, Query: true, Default: "json", AllowedValues: []interface{}{"json", "csv"},
				Description: fmt.Sprintf("json (a page at a time: limit, after, next_after), or csv: every matching row in one text/csv answer, for an auditor (at most %d; limit and after are for json). A CSV cell starting with = + - @, tab, CR or ' gets a leading ' so that a spreadsheet shows it as text (drop it for the true value).", maxCSVRows)},
		}
		if withRequester {
			f["requester"] = &framework.FieldSchema{Type: framework.TypeString, Query: true,
				Description: "Only grants of this requester: a person's entity ID, or the requester a service stated."}
		}
		return withPageFields(f)
	}
	return []*framework.Path{
		{
			Pattern:      "history/?$",
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: "apono", OperationSuffix: "history"},
			Fields:       fields(true),
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{Callback: b.pathHistoryRead, DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "read"}},
			},
			HelpSynopsis:    "Ended grants: who had access to what, when, and how it ended.",
			HelpDescription: pathHistoryHelp,
		},
		{
			Pattern:      "my/history/?$",
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: "apono", OperationSuffix: "my-history"},
			Fields:       fields(false),
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{Callback: b.pathHistoryRead, DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "read"}},
			},
			HelpSynopsis:    "The caller's own ended grants.",
			HelpDescription: pathHistoryHelp,
		},
	}
}

const pathHistoryHelp = `
history lists ended grants, the newest end first, a page at a time (limit, after,
next_after): who (requester), what (resources, permission), when (issued_at, ended_at),
how it ended (expired, revoked, swept), the request and its approvers, break-glass.
Filter with since and until (grants live in that time), requester, resource (the
resource or a folder above it) and role. format=csv answers every matching row in one
text/csv answer (no paging: limit and after are for json); more than 10000 rows is a 400,
export them in parts with since and until. A CSV cell that starts with = + - @, tab, CR
or ' is prefixed with ' so that a spreadsheet shows it as text, not a formula (drop that
first ' for the true value); json keeps the true value. auto_approved_by names the rule that approved a grant's request.
my/history is a person's own. Records stay for history_retention (config, default 90
days).
`

var historyColumns = []string{"grant_id", "role", "requester", "requester_entity_id", "requester_kind", "resources", "permission",
	"issued_at", "ended_at", "ended", "request_id", "approvers", "break_glass", "justification", "auto_approved_by", "requested_by", "bundle"}

func historyRow(h *store.HistoryRecord) []string {
	return []string{h.GrantID, h.Role, h.Requester, h.RequesterEntity, h.RequesterKind, strings.Join(h.Resources, " "), h.Permission,
		access.FormatTime(h.IssuedAt), access.FormatTime(h.EndedAt), h.Ended, h.RequestID, strings.Join(h.Approvers, " "), fmt.Sprint(h.BreakGlass), h.Justification, h.AutoApprovedBy, h.RequestedBy, h.Bundle}
}

func historyData(h *store.HistoryRecord) map[string]interface{} {
	out := map[string]interface{}{}
	for i, v := range historyRow(h) {
		out[historyColumns[i]] = v
	}
	out["resources"], out["approvers"], out["break_glass"] = h.Resources, access.NonNil(h.Approvers), h.BreakGlass
	out["parts"] = access.GrantPartsData(h.Parts)
	return out
}

func (b *aponoBackend) pathHistoryRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	b.rememberMount(req)
	requester, _ := d.Raw["requester"].(string)
	if strings.HasPrefix(req.Path, "my/") {
		me, err := b.callerEntity(req)
		if err != nil {
			return nil, err
		}
		if me == nil {
			return logical.ErrorResponse(errNoEntity + "; an operator reads every grant's history at " + req.MountPoint + "history"), nil
		}
		requester = me.EntityID
	}
	since, msg := parseOptionalTime("since", d.Get("since").(string))
	if msg == "" {
		var until time.Time
		until, msg = parseOptionalTime("until", d.Get("until").(string))
		if msg == "" {
			return b.historyAnswer(ctx, req, d, requester, since, until)
		}
	}
	return logical.ErrorResponse(msg), nil
}

func parseOptionalTime(field, raw string) (time.Time, string) {
	if strings.TrimSpace(raw) == "" {
		return time.Time{}, ""
	}
	t, err := time.Parse(time.RFC3339, strings.TrimSpace(raw))
	if err != nil {
		return time.Time{}, fmt.Sprintf("%s %q is not an RFC 3339 time such as 2026-11-01T00:00:00Z", field, textsafe.Truncate(raw))
	}
	return t, ""
}

func (b *aponoBackend) historyAnswer(ctx context.Context, req *logical.Request, d *framework.FieldData, requester string, since, until time.Time) (*logical.Response, error) {
	var sets []string
	role := d.Get("role").(string)
	resName := strings.TrimSpace(d.Get("resource").(string))
	format := d.Get("format").(string)
	if format != "json" && format != "csv" {
		return logical.ErrorResponse(fmt.Sprintf("format %q is not allowed (allowed: json, csv)", textsafe.Truncate(format))), nil
	}
	switch {
	case requester != "":
		sets = []string{"hist/requester/e" + store.EntityKey(requester), "hist/requester/s" + store.HashedName(requester)}
	case resName != "":
		if err := resource.ValidateName(resName); err != nil {
			return logical.ErrorResponse("resource: " + err.Error()), nil
		}
		// The resource and every folder above it.
		sets = []string{"hist/resource/" + store.HashedName(resName)}
		parts := strings.Split(strings.TrimSuffix(resName, "/*"), "/")
		for i := len(parts) - 1; i >= 1; i-- {
			sets = append(sets, "hist/resource/"+store.HashedName(strings.Join(parts[:i], "/")+"/*"))
		}
	case role != "":
		sets = []string{"hist/role/" + role}
	default:
		sets = []string{"hist/all"}
	}
	if format == "csv" {
		for _, field := range []string{"limit", "after"} {
			if _, ok := d.Raw[field]; ok {
				return logical.ErrorResponse(fmt.Sprintf("%s: format=csv is not paged: it answers every matching row at once (at most %d); limit and after page format=json", field, maxCSVRows)), nil
			}
		}
	}
	limit, msg := store.CheckLimit(d.Get("limit").(int))
	if msg != "" {
		return logical.ErrorResponse(msg), nil
	}
	after, msg := store.DecodeCursor("history", d.Get("after").(string))
	if msg != "" {
		return logical.ErrorResponse(msg), nil
	}
	if err := b.store.Ready(ctx, req.Storage); err != nil {
		return nil, err
	}
	page := func(after string, limit int) ([]*store.HistoryRecord, string, error) {
		return b.store.HistoryPage(ctx, req.Storage, sets, after, since, limit, func(h *store.HistoryRecord) bool {
			return (until.IsZero() || h.IssuedAt.Before(until)) && (since.IsZero() || !h.EndedAt.Before(since)) &&
				(role == "" || h.Role == role) && (resName == "" || access.NameCoveredBy(resName, h.Resources) || slices.Contains(h.Resources, resName)) &&
				(requester == "" || h.RequesterEntity == requester || (h.RequesterKind != access.RequesterEntity && h.Requester == requester))
		})
	}
	if format == "csv" {
		return historyCSV(page)
	}
	recs, next, err := page(after, limit)
	if err != nil {
		return nil, err
	}
	rows := make([]map[string]interface{}, 0, len(recs))
	for _, h := range recs {
		rows = append(rows, historyData(h))
	}
	resp := &logical.Response{Data: map[string]interface{}{"history": rows}}
	addNextPage(resp, "history", next)
	return resp, nil
}

// historyCSV answers every row page finds, page after page, as CSV: an auditor's
// "curl ... > access.csv" gets everything or a 400, never a silent first page. More than
// maxCSVRows rows, or more than maxCSVScanPages pages read, is the 400.
func historyCSV(page func(after string, limit int) ([]*store.HistoryRecord, string, error)) (*logical.Response, error) {
	tooMany := logical.ErrorResponse(fmt.Sprintf("format=csv: more than %d ended grants match, or too many records had to be read to find them; "+
		"export them in parts with since and until (a month at a time, say: a grant live across a boundary is in both parts, under one grant_id), "+
		"narrow with requester, resource or role, or read format=json a page at a time with limit and after", maxCSVRows))
	var rows [][]string
	after := ""
	for pages := 0; ; pages++ {
		if pages == store.MaxCSVScanPages {
			return tooMany, nil
		}
		recs, next, err := page(after, maxCSVRows+1-len(rows))
		if err != nil {
			return nil, err
		}
		for _, h := range recs {
			rows = append(rows, historyRow(h))
		}
		if len(rows) > maxCSVRows {
			return tooMany, nil
		}
		if next == "" {
			return csvResponse(historyColumns, rows)
		}
		after = next
	}
}
