package backend

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// A query field (a filter or a page bound of a read or a LIST) sent with an empty value
// is a 400, never "no filter". Vault's required_parameters only checks that a parameter
// is present, so a policy such as
//
//	path "apono/resources" { capabilities = ["read"] required_parameters = ["role"] }
//
// relies on role being a real role: read apono/resources role= must not list every
// resource. The rule holds for every query field of every path, so a filter added later
// cannot forget it.

// guardQueryFields wraps the read and LIST callbacks of every path that has query fields
// with rejectEmptyQueryFields.
func guardQueryFields(paths []*framework.Path) {
	for _, p := range paths {
		var query []string
		for name, f := range p.Fields {
			if f.Query {
				query = append(query, name)
			}
		}
		if len(query) == 0 {
			continue
		}
		sort.Strings(query)
		for op, h := range p.Operations {
			po, ok := h.(*framework.PathOperation)
			if !ok || po.Callback == nil || (op != logical.ReadOperation && op != logical.ListOperation) {
				continue
			}
			next := po.Callback
			po.Callback = func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
				if resp := rejectEmptyQueryFields(req, query); resp != nil {
					return resp, nil
				}
				return next(ctx, req, d)
			}
		}
	}
}

// rejectEmptyQueryFields is the 400 for the first of fields (sorted) that req sends with
// an empty value: "", only spaces, or a list holding one.
func rejectEmptyQueryFields(req *logical.Request, fields []string) *logical.Response {
	for _, k := range fields {
		v, sent := req.Data[k]
		if sent && emptyQueryValue(v) {
			return logical.ErrorResponse(fmt.Sprintf("%s must not be empty: give it a value, or leave %s out (an empty %s is not \"no filter\")", k, k, k))
		}
	}
	return nil
}

func emptyQueryValue(v interface{}) bool {
	switch v := v.(type) {
	case nil:
		return true
	case string:
		return strings.TrimSpace(v) == ""
	case []string:
		if len(v) == 0 {
			return true
		}
		for _, s := range v {
			if strings.TrimSpace(s) == "" {
				return true
			}
		}
	case []interface{}:
		if len(v) == 0 {
			return true
		}
		for _, e := range v {
			if emptyQueryValue(e) {
				return true
			}
		}
	}
	return false
}
