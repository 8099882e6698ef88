package owners

import (
	"strings"
	"testing"

	"github.com/apono-io/vault-plugin-apono/backend/access"
)

// One set per distinct list of owners; what names none, or names something unusable, is
// the integration owner's; the same owners in another order are the same set.
func TestCollectorMakesOneSetPerOwnerList(t *testing.T) {
	c := NewCollector("owner", "group:security")
	c.Claim("kv/app/db", "group:kv-owners", "")
	c.Claim("kv/app/cache", "group:kv-owners", "")
	c.Claim("kv/app/pay", "entity:bob,group:kv-owners", "")
	c.Claim("kv/app/pay2", "group:kv-owners, entity:bob", "")
	c.Claim("kv/app/scratch", "", "")
	c.Claim("kv/app/bad", "group:", "")
	sets, notes, msg, err := c.Result()
	if err != nil || msg != "" {
		t.Fatalf("result: %q %v", msg, err)
	}
	if len(sets) != 3 {
		t.Fatalf("want 3 sets (kv-owners, bob+kv-owners, integration owner), got %d: %+v", len(sets), sets)
	}
	byLabel := map[string]access.ApproverSet{}
	for _, s := range sets {
		if !s.Owner || s.Label == "" {
			t.Fatalf("an owner set must be marked and labelled: %+v", s)
		}
		byLabel[s.Source+" "+CanonicalPrincipals(s.Principals)] = s
	}
	if s := byLabel[access.SetSourceMetadata+" "+CanonicalPrincipals([]access.Principal{{Kind: access.PrincipalGroup, Name: "kv-owners"}})]; s.ResourceCount != 2 {
		t.Fatalf("kv-owners' set: %+v", s)
	}
	integ := byLabel[access.SetSourceIntegration+" "+CanonicalPrincipals([]access.Principal{{Kind: access.PrincipalGroup, Name: "security"}})]
	if integ.ResourceCount != 2 || strings.Join(integ.Resources, ",") != "kv/app/scratch,kv/app/bad" {
		t.Fatalf("the integration owner's set: %+v", integ)
	}
	if len(notes) != 1 || !strings.Contains(notes[0], "kv/app/bad") {
		t.Fatalf("the unusable tag is noted: %v", notes)
	}
}

// Without an integration owner, an unowned resource has nobody to approve it: a 400.
func TestCollectorWithoutIntegrationOwnerRefusesTheUnowned(t *testing.T) {
	c := NewCollector("owner", "")
	c.Claim("kv/app/db", "group:kv-owners", "")
	c.Claim("kv/app/scratch", "", "")
	if _, _, msg, err := c.Result(); err != nil || !strings.Contains(msg, "kv/app/scratch") || !strings.Contains(msg, "integration_owner") {
		t.Fatalf("want a 400 naming the resource and integration_owner, got %q %v", msg, err)
	}
}

func TestOwnerTagReadsTheCustomMetadataKey(t *testing.T) {
	md := map[string]interface{}{"custom_metadata": map[string]interface{}{"owner": "  group:kv-owners ", "team": "x"}}
	if got := OwnerTag(md, "owner"); got != "group:kv-owners" {
		t.Fatalf("OwnerTag = %q", got)
	}
	if OwnerTag(md, "missing") != "" || OwnerTag(map[string]interface{}{}, "owner") != "" {
		t.Fatal("a missing key or custom_metadata is no tag")
	}
}
