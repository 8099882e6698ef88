// Package chattest checks chat webhook bodies against the shapes Slack and Microsoft Teams accept.
package chattest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"sort"
	"strings"
	"unicode/utf16"
)

// checker collects every problem, each named by its JSON path, so one run shows all that
// is wrong with a body rather than the first thing.
type checker struct {
	errs []error
}

func (c *checker) failf(path, format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
}

func (c *checker) err() error { return errors.Join(c.errs...) }

// decodeObject decodes body as exactly one JSON object.
func decodeObject(body []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("body is not JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("body has data after the JSON value")
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("body is a JSON %s, not an object", kind(v))
	}
	return m, nil
}

// allowKeys fails for every key of m not in allowed: a misspelt or unsupported field is
// either refused by the service or silently dropped, and neither is what was meant.
func (c *checker) allowKeys(path string, m map[string]any, allowed ...string) {
	var extra []string
	for k := range m {
		if !slices.Contains(allowed, k) {
			extra = append(extra, k)
		}
	}
	sort.Strings(extra)
	for _, k := range extra {
		c.failf(path, "unknown field %q (allowed: %s)", k, strings.Join(allowed, ", "))
	}
}

func (c *checker) object(path string, v any) (map[string]any, bool) {
	m, ok := v.(map[string]any)
	if !ok {
		c.failf(path, "must be an object, got %s", kind(v))
	}
	return m, ok
}

func (c *checker) array(path string, v any) ([]any, bool) {
	a, ok := v.([]any)
	if !ok {
		c.failf(path, "must be an array, got %s", kind(v))
	}
	return a, ok
}

// str returns m[key] as a string; a missing key fails only when required.
func (c *checker) str(path string, m map[string]any, key string, required bool) (string, bool) {
	v, ok := m[key]
	if !ok {
		if required {
			c.failf(path, "missing %q", key)
		}
		return "", false
	}
	s, ok := v.(string)
	if !ok {
		c.failf(path+"."+key, "must be a string, got %s", kind(v))
	}
	return s, ok
}

func (c *checker) boolean(path string, m map[string]any, key string) {
	if v, ok := m[key]; ok {
		if _, isBool := v.(bool); !isBool {
			c.failf(path+"."+key, "must be true or false, got %s", kind(v))
		}
	}
}

// oneOf checks an optional string field against its allowed values.
func (c *checker) oneOf(path string, m map[string]any, key string, fold bool, allowed ...string) {
	s, ok := c.str(path, m, key, false)
	if !ok {
		return
	}
	for _, a := range allowed {
		if s == a || (fold && strings.EqualFold(s, a)) {
			return
		}
	}
	c.failf(path+"."+key, "is %q; allowed: %s", s, strings.Join(allowed, ", "))
}

// webURL fails unless s is an absolute http(s) URL with a host, what a link button opens.
func (c *checker) webURL(path, s string) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		c.failf(path, "must be an absolute http(s) URL, got %q", clip(s))
	}
}

// textLen counts UTF-16 units, never fewer than the characters a service counts.
func textLen(s string) int {
	n := 0
	for _, r := range s {
		n += utf16.RuneLen(r)
	}
	return n
}

func kind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case json.Number:
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

// clip keeps error messages short when a value is long.
func clip(s string) string {
	if r := []rune(s); len(r) > 60 {
		return string(r[:60]) + "…"
	}
	return s
}
