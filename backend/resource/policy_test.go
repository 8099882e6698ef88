package resource

import (
	"reflect"
	"testing"
)

func TestPolicyRenderingPerPermission(t *testing.T) {
	mounts := fuzzMounts()
	cases := []struct {
		resource, permission string
		want                 map[string][]string
	}{
		{"kv/app/db", "read", map[string][]string{
			"kv/data/app/db":     {"read"},
			"kv/metadata/app/db": {"read"},
		}},
		{"kv/app/*", "read", map[string][]string{
			"kv/data/app/*":     {"read"},
			"kv/metadata/app/*": {"list", "read"},
		}},
		{"kv/*", "read", map[string][]string{
			"kv/data/*":     {"read"},
			"kv/metadata/*": {"list", "read"},
		}},
		{"kv/app/db", "admin", map[string][]string{
			"kv/data/app/db":     {"create", "delete", "patch", "read", "update"},
			"kv/metadata/app/db": {"create", "delete", "patch", "read", "update"},
			"kv/delete/app/db":   {"update"},
			"kv/undelete/app/db": {"update"},
			"kv/destroy/app/db":  {"update"},
		}},
		{"transit/payments", "encrypt", map[string][]string{"transit/encrypt/payments": {"update"}}},
		{"transit/payments", "decrypt", map[string][]string{"transit/decrypt/payments": {"update"}}},
		{"transit/payments", "encrypt-decrypt", map[string][]string{
			"transit/encrypt/payments": {"update"},
			"transit/decrypt/payments": {"update"},
		}},
		{"transit/payments", "sign-verify", map[string][]string{
			"transit/sign/payments":     {"update"},
			"transit/sign/payments/*":   {"update"},
			"transit/verify/payments":   {"update"},
			"transit/verify/payments/*": {"update"},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.resource+"/"+tc.permission, func(t *testing.T) {
			ref, err := Resolve(tc.resource, mounts, Options{OwnMount: "apono/"})
			if err != nil {
				t.Fatal(err)
			}
			p, err := GrantPolicy([]Ref{ref}, tc.permission, Bounds{})
			if err != nil {
				t.Fatal(err)
			}
			got := map[string][]string{}
			for path, rule := range p.Path {
				got[path] = rule.Capabilities
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %v\nwant %v", got, tc.want)
			}
		})
	}
}

func TestPolicyRejectsPermissionOfOtherType(t *testing.T) {
	ref, err := Resolve("transit/payments", fuzzMounts(), Options{OwnMount: "apono/"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := GrantPolicy([]Ref{ref}, "read", Bounds{}); err == nil {
		t.Fatal("read on a transit key was accepted")
	}
}
