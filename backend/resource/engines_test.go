package resource

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/vaultapi"
)

// engineMounts is fuzzMounts with the plugin's own mount of its real type: without the
// own-mount check, a path prefix over it would make it a path resource.
func engineMounts() map[string]vaultapi.MountInfo {
	m := fuzzMounts()
	m["apono/"] = vaultapi.MountInfo{Type: "vault-plugin-apono"}
	return m
}

// engineOptions allow path resources below consul/creds/ and nomad/, and (as config
// validation never would) below the plugin's own mount and sys/.
var engineOptions = Options{OwnMount: "apono/", PathPrefixes: []string{"consul/creds/", "nomad/", "apono/", "sys/"}}

func TestResolveEnginesAndPaths(t *testing.T) {
	mounts := engineMounts()
	good := []struct {
		name string
		want Ref
	}{
		{"database/creds/ro", Ref{Name: "database/creds/ro", Type: TypeDatabase, Mount: "database", Path: "ro", Endpoint: "creds"}},
		{"database/static-creds/app", Ref{Name: "database/static-creds/app", Type: TypeDatabase, Mount: "database", Path: "app", Endpoint: "static-creds"}},
		{"team/db/creds/ro", Ref{Name: "team/db/creds/ro", Type: TypeDatabase, Mount: "team/db", Path: "ro", Endpoint: "creds"}},
		{"pki/issue/web", Ref{Name: "pki/issue/web", Type: TypePKI, Mount: "pki", Path: "web", Endpoint: "issue"}},
		{"pki/sign/web", Ref{Name: "pki/sign/web", Type: TypePKI, Mount: "pki", Path: "web", Endpoint: "sign"}},
		{"pki-int/issue/a.b", Ref{Name: "pki-int/issue/a.b", Type: TypePKI, Mount: "pki-int", Path: "a.b", Endpoint: "issue"}},
		{"ssh/sign/ops", Ref{Name: "ssh/sign/ops", Type: TypeSSH, Mount: "ssh", Path: "ops", Endpoint: "sign"}},
		{"ssh/creds/otp", Ref{Name: "ssh/creds/otp", Type: TypeSSH, Mount: "ssh", Path: "otp", Endpoint: "creds"}},
		{"consul/creds/app", Ref{Name: "consul/creds/app", Type: TypePath, Mount: "consul", Path: "creds/app"}},
		{"consul/creds/*", Ref{Name: "consul/creds/*", Type: TypePath, Mount: "consul", Path: "creds", Folder: true}},
		{"consul/creds/team/*", Ref{Name: "consul/creds/team/*", Type: TypePath, Mount: "consul", Path: "creds/team", Folder: true}},
		{"nomad/creds/x", Ref{Name: "nomad/creds/x", Type: TypePath, Mount: "nomad", Path: "creds/x"}},
	}
	for _, tc := range good {
		got, err := Resolve(tc.name, mounts, engineOptions)
		if err != nil || got != tc.want {
			t.Errorf("Resolve(%q) = %+v, %v; want %+v", tc.name, got, err, tc.want)
		}
	}

	const engineShape = "followed by one role name"
	bad := []struct{ name, wantErr string }{
		{"database/creds/a/b", engineShape},
		{"database/creds/*", engineShape},
		{"database/*", engineShape},
		{"database/creds", engineShape},
		{"database/roles/ro", engineShape},
		{"pki/roles/x", `one of issue, sign followed by one role name, e.g. pki/issue/<role>`},
		{"pki/issue/*", engineShape},
		{"pki/issue/web/extra", engineShape},
		{"ssh/issue/x", `one of sign, creds followed by one role name, e.g. ssh/sign/<role>`},
		{"ssh/sign/*", engineShape},
		{"team/db/static-creds/a/*", engineShape},
		// Path resources: only below an allowed prefix, never a whole mount.
		{"consul/acl/token", "below none of the config's grantable_path_prefixes (consul/creds/, nomad/, apono/, sys/)"},
		{"consul/creds", "below none of the config's grantable_path_prefixes"},
		{"consul/*", "below none of the config's grantable_path_prefixes"},
		{"kv1/app/db", `on mount "kv1/" of type kv version 1 and below none`},
		{"nomad/*", "names a whole mount"},
		// Never the plugin's own mount or sys/, whatever the prefixes say.
		{"apono/config", `inside this plugin's own mount "apono/"`},
		{"apono/roles/*", `inside this plugin's own mount "apono/"`},
		{"sys/policies/acl/x", "nothing under sys/ can be granted"},
		{"vault/x", "is not under any mounted secrets engine"},
	}
	for _, tc := range bad {
		got, err := Resolve(tc.name, mounts, engineOptions)
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("Resolve(%q) = %+v, %v; want an error containing %q", tc.name, got, err, tc.wantErr)
		}
	}

	// No prefix at all: no path resource, and the error says so.
	if _, err := Resolve("consul/creds/app", mounts, Options{OwnMount: "apono/"}); err == nil ||
		!strings.Contains(err.Error(), "grantable_path_prefixes (none is)") {
		t.Errorf("consul/creds/app without prefixes: %v, want a refusal naming the empty prefix list", err)
	}
}

// A prefix over a KV v2, Transit, database, PKI or SSH mount does not make a name that
// misses the engine's shape a path resource.
func TestPathPrefixesDoNotLoosenEngineShapes(t *testing.T) {
	opts := Options{OwnMount: "apono/", PathPrefixes: []string{"database/", "pki/", "ssh/", "transit/", "kv/"}}
	for _, name := range []string{"database/config/pg", "database/creds/a/b", "pki/roles/web", "pki/root/sign-intermediate", "ssh/config/ca", "transit/keys/k/rotate", "transit/a/*"} {
		if ref, err := Resolve(name, engineMounts(), opts); err == nil {
			t.Errorf("Resolve(%q) = %+v with prefixes %v, want a refusal", name, ref, opts.PathPrefixes)
		}
	}
	want := Ref{Name: "kv/app/db", Type: TypeKV, Mount: "kv", Path: "app/db"}
	if ref, err := Resolve("kv/app/db", engineMounts(), opts); err != nil || ref != want {
		t.Errorf("Resolve(kv/app/db) = %+v, %v; want %+v", ref, err, want)
	}
}

// A prefix above the plugin's own mount passes config validation (it is a prefix of
// other mounts too); Resolve still refuses the own mount below it.
func TestOwnMountBelowAnAllowedPrefix(t *testing.T) {
	mounts := map[string]vaultapi.MountInfo{
		"team/apono/":  {Type: "vault-plugin-apono"},
		"team/consul/": {Type: "consul"},
	}
	opts := Options{OwnMount: "team/apono/", PathPrefixes: []string{"team/"}}
	if err := ValidatePathPrefix("team/", opts.OwnMount); err != nil {
		t.Fatalf("ValidatePathPrefix(team/) = %v", err)
	}
	if ref, err := Resolve("team/apono/config", mounts, opts); err == nil || !strings.Contains(err.Error(), "own mount") {
		t.Errorf("Resolve(team/apono/config) = %+v, %v; want the own mount refused", ref, err)
	}
	want := Ref{Name: "team/consul/creds/x", Type: TypePath, Mount: "team/consul", Path: "creds/x"}
	if ref, err := Resolve("team/consul/creds/x", mounts, opts); err != nil || ref != want {
		t.Errorf("Resolve(team/consul/creds/x) = %+v, %v; want %+v", ref, err, want)
	}
}

func TestEngineEndpoints(t *testing.T) {
	want := map[string][]string{
		TypeDatabase: {"creds", "static-creds"},
		TypePKI:      {"issue", "sign"},
		TypeSSH:      {"sign", "creds"},
		TypeKV:       nil,
		TypeTransit:  nil,
		TypePath:     nil,
	}
	for typ, w := range want {
		if got := EngineEndpoints(typ); !reflect.DeepEqual(got, w) {
			t.Errorf("EngineEndpoints(%s) = %v, want %v", typ, got, w)
		}
	}
	for typ, perm := range map[string]string{TypeDatabase: "creds", TypePKI: "issue", TypeSSH: "ssh", TypePath: "path-read"} {
		if DefaultPermission[typ] != perm {
			t.Errorf("DefaultPermission[%s] = %q, want %q", typ, DefaultPermission[typ], perm)
		}
	}
	if got := PermissionsFor(TypePath); !reflect.DeepEqual(got, []string{"path-read", "path-update", "path-write"}) {
		t.Errorf("PermissionsFor(path) = %v", got)
	}
}

// renderedRules renders p and parses it back, refusing anything but the fields of fuzzRule.
func renderedRules(t *testing.T, p *ACLPolicy) map[string]fuzzRule {
	t.Helper()
	rendered, err := p.Render()
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	var top struct {
		Path map[string]fuzzRule `json:"path"`
	}
	dec := json.NewDecoder(strings.NewReader(rendered))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&top); err != nil {
		t.Fatalf("rendered policy does not parse back: %v\n%s", err, rendered)
	}
	if top.Path == nil {
		t.Fatalf("rendered policy has no path object: %s", rendered)
	}
	return top.Path
}

func resolveAll(t *testing.T, names ...string) []Ref {
	t.Helper()
	refs := make([]Ref, 0, len(names))
	for _, n := range names {
		ref, err := Resolve(n, engineMounts(), engineOptions)
		if err != nil {
			t.Fatalf("Resolve(%q): %v", n, err)
		}
		refs = append(refs, ref)
	}
	return refs
}

func TestGrantPolicyEnginesAndPaths(t *testing.T) {
	// 05:04:05 at UTC+2, with a fraction the policy drops: not_after is pinned in UTC.
	end := time.Date(2030, 1, 2, 5, 4, 5, 700_000_000, time.FixedZone("UTC+2", 2*3600))
	const endValue = "2030-01-02T03:04:05Z"
	pkiRule := func() fuzzRule {
		return fuzzRule{
			Capabilities:       []string{"update"},
			AllowedParameters:  map[string][]interface{}{"*": {}, "not_after": {endValue}},
			RequiredParameters: []string{"not_after"},
			DeniedParameters:   map[string][]interface{}{"ttl": {}},
		}
	}
	caps := func(c ...string) fuzzRule { return fuzzRule{Capabilities: c} }
	cases := []struct {
		name       string
		resources  []string
		permission string
		bounds     Bounds
		want       map[string]fuzzRule
	}{
		{"database creds", []string{"database/creds/ro"}, "creds", Bounds{},
			map[string]fuzzRule{"database/creds/ro": caps("read")}},
		{"database static and dynamic", []string{"database/static-creds/app", "team/db/creds/ro"}, "creds", Bounds{},
			map[string]fuzzRule{"database/static-creds/app": caps("read"), "team/db/creds/ro": caps("read")}},
		{"pki issue", []string{"pki/issue/web"}, "issue", Bounds{NotAfter: map[string]time.Time{"pki/issue/web": end}},
			map[string]fuzzRule{"pki/issue/web": pkiRule()}},
		{"pki sign and issue", []string{"pki/sign/web", "pki-int/issue/web"}, "issue",
			Bounds{NotAfter: map[string]time.Time{"pki/sign/web": end, "pki-int/issue/web": end}},
			map[string]fuzzRule{"pki/sign/web": pkiRule(), "pki-int/issue/web": pkiRule()}},
		{"ssh sign with a ttl bound", []string{"ssh/sign/ops"}, "ssh", Bounds{SSHTTL: map[string]time.Duration{"ssh/sign/ops": 25 * time.Minute}},
			map[string]fuzzRule{"ssh/sign/ops": {
				Capabilities:       []string{"update"},
				AllowedParameters:  map[string][]interface{}{"*": {}, "ttl": {"1500s"}},
				RequiredParameters: []string{"ttl"},
			}}},
		{"ssh sign without a ttl bound signs nothing", []string{"ssh/sign/ops"}, "ssh", Bounds{},
			map[string]fuzzRule{}},
		{"ssh sign bound for another role", []string{"ssh/sign/ops", "ssh/creds/otp"}, "ssh",
			Bounds{SSHTTL: map[string]time.Duration{"ssh/sign/dev": time.Minute}},
			map[string]fuzzRule{"ssh/creds/otp": caps("update")}},
		{"ssh creds needs no bound", []string{"ssh/creds/otp"}, "ssh", Bounds{},
			map[string]fuzzRule{"ssh/creds/otp": caps("update")}},
		{"path read", []string{"consul/creds/app"}, "path-read", Bounds{},
			map[string]fuzzRule{"consul/creds/app": caps("read")}},
		{"path read folder", []string{"consul/creds/*"}, "path-read", Bounds{},
			map[string]fuzzRule{"consul/creds/*": caps("list", "read")}},
		{"path update", []string{"consul/creds/app"}, "path-update", Bounds{},
			map[string]fuzzRule{"consul/creds/app": caps("update")}},
		{"path update folder has no list", []string{"consul/creds/team/*"}, "path-update", Bounds{},
			map[string]fuzzRule{"consul/creds/team/*": caps("update")}},
		{"path write", []string{"nomad/creds/x"}, "path-write", Bounds{},
			map[string]fuzzRule{"nomad/creds/x": caps("create", "delete", "patch", "read", "update")}},
		{"path write folder", []string{"nomad/jobs/*", "consul/creds/app"}, "path-write", Bounds{},
			map[string]fuzzRule{
				"nomad/jobs/*":     caps("create", "delete", "list", "patch", "read", "update"),
				"consul/creds/app": caps("create", "delete", "patch", "read", "update"),
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := GrantPolicy(resolveAll(t, tc.resources...), tc.permission, tc.bounds)
			if err != nil {
				t.Fatal(err)
			}
			if got := renderedRules(t, p); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}

	// SSH signing without its bound leaves exactly an empty policy.
	p, err := GrantPolicy(resolveAll(t, "ssh/sign/ops"), "ssh", Bounds{})
	if err != nil {
		t.Fatal(err)
	}
	if rendered, _ := p.Render(); rendered != `{"path":{}}` {
		t.Errorf("unbounded SSH sign rendered %s", rendered)
	}
}

func TestGrantPolicyEngineRefusals(t *testing.T) {
	cases := []struct {
		resources  []string
		permission string
		bounds     Bounds
		wantErr    string
	}{
		{[]string{"pki/issue/web"}, "issue", Bounds{}, `PKI resource "pki/issue/web" has no not_after bound`},
		{[]string{"pki/issue/web"}, "issue", Bounds{NotAfter: map[string]time.Time{"pki/sign/web": time.Now()}}, "has no not_after bound"},
		{[]string{"pki/sign/web", "pki/issue/web"}, "issue", Bounds{NotAfter: map[string]time.Time{"pki/sign/web": time.Now()}}, `"pki/issue/web" has no not_after bound`},
		{[]string{"database/creds/ro"}, "issue", Bounds{}, `permission "issue" does not apply to database resource "database/creds/ro" (allowed: [creds])`},
		{[]string{"database/creds/ro"}, "read", Bounds{}, "does not apply"},
		{[]string{"ssh/creds/otp"}, "creds", Bounds{}, "(allowed: [ssh])"},
		{[]string{"consul/creds/app"}, "read", Bounds{}, "(allowed: [path-read path-update path-write])"},
		{[]string{"kv/app/db"}, "path-read", Bounds{}, "does not apply"},
		{[]string{"consul/creds/app", "database/creds/ro"}, "path-read", Bounds{}, `database resource "database/creds/ro"`},
	}
	for _, tc := range cases {
		p, err := GrantPolicy(resolveAll(t, tc.resources...), tc.permission, tc.bounds)
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("GrantPolicy(%v, %s) = %v, %v; want an error containing %q", tc.resources, tc.permission, p, err, tc.wantErr)
		}
	}
}

func TestLeasesOutliveUser(t *testing.T) {
	cases := []struct {
		resources []string
		want      bool
	}{
		{nil, false},
		{[]string{"kv/app/db", "kv/app/*", "transit/payments"}, false},
		{[]string{"database/creds/ro"}, true},
		{[]string{"database/static-creds/app"}, true},
		{[]string{"pki/issue/web"}, true},
		{[]string{"ssh/sign/ops"}, true},
		{[]string{"ssh/creds/otp"}, true},
		{[]string{"consul/creds/app"}, true},
		{[]string{"kv/app/db", "transit/payments", "nomad/creds/x"}, true},
	}
	for _, tc := range cases {
		if got := LeasesOutliveUser(resolveAll(t, tc.resources...)); got != tc.want {
			t.Errorf("LeasesOutliveUser(%v) = %v, want %v", tc.resources, got, tc.want)
		}
	}
}

func TestValidatePathPrefix(t *testing.T) {
	for _, p := range []string{"consul/creds/", "nomad/", "kv1/shared/", "x/", "aponox/", "team/apono-2/", "sysx/"} {
		if err := ValidatePathPrefix(p, "apono/"); err != nil {
			t.Errorf("ValidatePathPrefix(%q) = %v, want nil", p, err)
		}
	}
	cases := []struct{ prefix, wantErr string }{
		{"", `must end in "/"`},
		{"consul/creds", `"consul/creds" must end in "/"`},
		{"consul/creds/*", `must end in "/"`},
		{"/", "empty path segment"},
		{"consul//", "empty path segment"},
		{"/consul/", "empty path segment"},
		{"sys/", "nothing under sys/ can be granted"},
		{"sys/policies/", "nothing under sys/ can be granted"},
		{"auth/userpass/", "nothing under auth/ can be granted"},
		{"identity/", "nothing under identity/ can be granted"},
		{"cubbyhole/", "nothing under cubbyhole/ can be granted"},
		{"apono/", `"apono/" is inside this plugin's own mount "apono/"`},
		{"apono/roles/", "inside this plugin's own mount"},
		{"consul/../sys/", `".." segments are not allowed`},
		{"consul/a..b/", `".." is not allowed anywhere`},
		{"consul/*/", `character '*' is not allowed`},
		{"consul/+/", `character '+' is not allowed`},
		{"consul/{{identity.entity.id}}/", `character '{' is not allowed`},
		{"consul/a b/", `character ' ' is not allowed`},
	}
	for _, tc := range cases {
		if err := ValidatePathPrefix(tc.prefix, "apono/"); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("ValidatePathPrefix(%q) = %v, want an error containing %q", tc.prefix, err, tc.wantErr)
		}
	}
}

// A bundle's policy is exactly the union of its parts' own policies: each path gets the
// capabilities its part's permission gives, and merging the parts adds nothing to any path.
func TestPartsPolicyIsTheUnionOfItsParts(t *testing.T) {
	end := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	bounds := Bounds{NotAfter: map[string]time.Time{"pki/issue/web": end}}
	for _, parts := range [][]Part{
		{{resolveAll(t, "kv/app/db"), "read"}, {resolveAll(t, "transit/payments"), "encrypt"}},
		{{resolveAll(t, "kv/app/db"), "read"}, {resolveAll(t, "kv/app/*"), "read-write"}},
		{{resolveAll(t, "database/creds/ro"), "creds"}, {resolveAll(t, "pki/issue/web"), "issue"}, {resolveAll(t, "kv/app/db"), "admin"}},
	} {
		combined, err := PartsPolicy(parts, bounds)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]map[string]bool{}
		for _, p := range parts {
			alone, err := GrantPolicy(p.Resources, p.Permission, bounds)
			if err != nil {
				t.Fatal(err)
			}
			for path, rule := range alone.Path {
				if want[path] == nil {
					want[path] = map[string]bool{}
				}
				for _, c := range rule.Capabilities {
					want[path][c] = true
				}
			}
		}
		if len(combined.Path) != len(want) {
			t.Fatalf("%v: combined policy has %d paths, its parts %d", parts, len(combined.Path), len(want))
		}
		for path, rule := range combined.Path {
			if len(rule.Capabilities) != len(want[path]) {
				t.Fatalf("%v: %s has %v, its parts give %v", parts, path, rule.Capabilities, want[path])
			}
			for _, c := range rule.Capabilities {
				if !want[path][c] {
					t.Fatalf("%v: %s has %s, which no part gives", parts, path, c)
				}
			}
		}
	}
}
