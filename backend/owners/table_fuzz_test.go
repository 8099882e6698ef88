package owners

import (
	"net/url"
	"strings"
	"testing"

	"github.com/apono-io/vault-plugin-apono/backend/resource"
)

// A pattern the table accepts is a resource name or the start of one: no "*" but a last
// one, nothing a policy or a storage key could read otherwise, and its storage key gives
// it back unchanged.
func FuzzTablePattern(f *testing.F) {
	for _, s := range []string{
		"database/creds/readonly", "database/*", "database/creds/app-*", "kv/team-a/*", "ssh/sign/*",
		"kv/*/x", "kv/**", "*", "kv*", "sys/*", "auth/x", "kv/a/../b", "kv//a", "kv/a%2Fb", "kv/é", "kv/{{x}}",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if ValidatePattern(p) != nil {
			return
		}
		body, prefix := strings.CutSuffix(p, "*")
		if strings.Contains(body, "*") {
			t.Fatalf("%q: a * before the end", p)
		}
		if !strings.Contains(body, "/") {
			t.Fatalf("%q: no mount and path", p)
		}
		for _, forbidden := range []string{"sys/", "auth/", "identity/", "cubbyhole/"} {
			if strings.HasPrefix(p, forbidden) {
				t.Fatalf("%q: under %s", p, forbidden)
			}
		}
		if len(p) > resource.MaxLen+1 {
			t.Fatalf("%q: too long", p)
		}
		key := strings.TrimPrefix(tableKey(p), TableStoragePrefix)
		if strings.Contains(key, "/") {
			t.Fatalf("%q: storage key %q is a folder", p, key)
		}
		if back, err := url.PathUnescape(key); err != nil || back != p {
			t.Fatalf("%q: storage key %q reads back as %q (%v)", p, key, back, err)
		}
		ix := &TableIndex{exact: map[string]*indexedEntry{}, prefix: map[string]*indexedEntry{}}
		ix.add(&TableEntry{Pattern: p, Approvers: []string{"group:x"}})
		if e := ix.Match(body + "x"); prefix && (e == nil || e.Pattern != p) {
			t.Fatalf("%q does not match %q", p, body+"x")
		}
		if e := ix.Match(p); !prefix && (e == nil || e.Pattern != p) {
			t.Fatalf("%q does not match itself", p)
		}
	})
}
