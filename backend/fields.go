package backend

import (
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/apono-io/vault-plugin-apono/backend/grants"
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

const (
	maxRequesterLen     = 256
	maxJustificationLen = 1024
)

// grantInputFromFields reads resources, permission, ttl and justification; msg is a 400.
func grantInputFromFields(d *framework.FieldData) (in grants.Input, msg string) {
	if v, ok := d.GetOk("resources"); ok {
		in.Resources = access.Dedupe(v.([]string))
		if len(in.Resources) == 0 {
			return in, "resources: give at least one resource, or leave the field out for all of the role's"
		}
	}
	if v, ok := d.GetOk("permission"); ok {
		in.Permission = v.(string)
		if in.Permission == "" {
			return in, "permission: give a permission level, or leave the field out for the role's default"
		}
	}
	if v, ok := d.GetOk("ttl"); ok {
		if v.(int) < 0 {
			return in, "ttl must not be negative"
		}
		in.TTL = time.Duration(v.(int)) * time.Second
	}
	if v, ok := d.GetOk("justification"); ok {
		in.Justification = v.(string)
		if m := checkFreeText("justification", in.Justification, maxJustificationLen); m != "" {
			return in, m
		}
	}
	return in, ""
}

// checkFreeText bounds a free-text field and keeps control characters (newlines that
// would forge audit-log lines, escapes) out of it, and the characters that make text read
// other than it is (bidirectional controls such as U+202E, zero-width ones such as
// U+200B: textsafe's list, the one the chat formats drop).
func checkFreeText(field, v string, max int) string {
	if n := len([]rune(v)); n > max {
		return fmt.Sprintf("%s is %d characters; at most %d are allowed", field, n, max)
	}
	for _, r := range v {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return fmt.Sprintf("%s must not contain control characters such as newlines (found %q)", field, r)
		}
		if textsafe.Hidden(r) {
			return fmt.Sprintf("%s must not contain invisible or direction-changing characters (found %U): they make text read other than it is; write it plainly", field, r)
		}
	}
	return ""
}
