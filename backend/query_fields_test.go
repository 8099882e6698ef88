package backend

import (
	"regexp"
	"sort"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

// Every query field of every read and LIST, sent empty, is a 400 naming it: never "no
// filter" (resources role= would list every resource to a policy that requires role).
func TestEmptyQueryFieldsAreRefused(t *testing.T) {
	f := newFlowEnv(t)
	f.mustOK(t, logical.CreateOperation, "roles/app", map[string]interface{}{"resources": "kv/app/db", "approval": "required", "approvers": "owner"})
	id := f.request(t, "app", nil)
	// A concrete path for each pattern with query fields; every such pattern must be here.
	concrete := []string{"grants/", "my/grants/", "requests/", "requests/" + id, "audit/requests/", "history/", "my/history/", "resources/"}
	covered := 0
	for _, p := range f.b.Backend.Paths {
		var query []string
		for name, fs := range p.Fields {
			if fs.Query {
				query = append(query, name)
			}
		}
		if len(query) == 0 {
			continue
		}
		sort.Strings(query)
		re := regexp.MustCompile(p.Pattern)
		path := ""
		for _, c := range concrete {
			if re.MatchString(c) {
				path = c
			}
		}
		if path == "" {
			t.Fatalf("no concrete path in this test for %s (query fields %v)", p.Pattern, query)
		}
		covered++
		for _, op := range []logical.Operation{logical.ReadOperation, logical.ListOperation} {
			if p.Operations[op] == nil {
				continue
			}
			for _, q := range query {
				for _, empty := range []string{"", "  "} {
					who := f.alice
					if path == "audit/requests/" || path == "history/" || path == "grants/" {
						who = ""
					}
					want := q + " must not be empty"
					if empty != "" {
						want = q // a typed field (limit, wait, mine) fails Vault's own conversion first, still a 400 naming it
					}
					f.mustBadRequestAs(t, who, op, path, map[string]interface{}{q: empty}, want)
				}
			}
		}
	}
	if covered != len(concrete) {
		t.Fatalf("%d patterns with query fields, %d concrete paths", covered, len(concrete))
	}
	// Sent with a value, or left out, the filters work as before.
	f.mustAs(t, f.alice, logical.ReadOperation, "requests", map[string]interface{}{"role": "app"})
	f.mustAs(t, f.alice, logical.ReadOperation, "requests/"+id, nil)
}
