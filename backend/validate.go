package backend

import (
	"fmt"
	"sort"
	"strings"

	"github.com/apono-io/vault-plugin-apono/internal/textsafe"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// rejectUnknownFields turns a parameter the path does not define into a 400. Vault only
// warns about unknown parameters; on paths that create access, a misspelt or smuggled
// field (token_policies=root) must not be silently dropped while the write succeeds.
func rejectUnknownFields(req *logical.Request, fields map[string]*framework.FieldSchema) *logical.Response {
	var unknown []string
	for k := range req.Data {
		if _, ok := fields[k]; !ok {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	allowed := make([]string, 0, len(fields))
	for k := range fields {
		if k != "name" && k != "role" { // taken from the path, not the body
			allowed = append(allowed, k)
		}
	}
	sort.Strings(allowed)
	return logical.ErrorResponse(fmt.Sprintf("unknown field(s) %s (allowed: %s)",
		textsafe.Truncate(strings.Join(unknown, ", ")), strings.Join(allowed, ", ")))
}

// checkRequester keeps the requester an identity-like string: an email, a user or
// display name. Quotes, braces, '=' and control characters have no place in one and are
// what smuggling attempts are made of.
func checkRequester(v string) string {
	if m := checkFreeText("requester", v, maxRequesterLen); m != "" {
		return m
	}
	for _, r := range v {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("@._+- ", r)
		if !ok {
			return fmt.Sprintf("requester: character %q is not allowed (allowed: letters, digits, space and @ . _ + -)", r)
		}
	}
	return ""
}
