package resource

// Fuzz tests on the two parsers of user input that end up in a Vault ACL policy. The seed
// corpus (hostile names: quotes, braces, newlines, globs, `..`, templates, look-alikes,
// sys/auth/identity paths) lives in testdata/fuzz/<FuzzName>/ and runs with every
// `go test`; `make fuzz` explores beyond it.

import (
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/apono-io/vault-plugin-apono/backend/vaultapi"
	"github.com/apono-io/vault-plugin-apono/internal/textsafe"
)

// fuzzOwnMount is the plugin's own mount in the fuzz tests.
const fuzzOwnMount = "apono/"

// fuzzMounts is the mounts of the backend's fake Vault plus multi-segment mount paths. The plugin's own
// mount is declared as KV v2 on purpose: it must be refused for being the plugin's mount,
// not merely for its type.
func fuzzMounts() map[string]vaultapi.MountInfo {
	m := map[string]vaultapi.MountInfo{
		"kv/":        {Type: "kv", Version: "2"},
		"kv1/":       {Type: "kv", Version: "1"},
		"transit/":   {Type: "transit"},
		"secret/":    {Type: "kv", Version: "2"},
		"apono/":     {Type: "vault-plugin-apono"},
		"sys/":       {Type: "system"},
		"identity/":  {Type: "identity"},
		"cubbyhole/": {Type: "cubbyhole"},
	}
	m["team/kv/"] = vaultapi.MountInfo{Type: "kv", Version: "2"}
	m["team/transit/"] = vaultapi.MountInfo{Type: "transit"}
	m["kv-old/"] = vaultapi.MountInfo{Type: "kv", Version: "1"}
	m["pki/"] = vaultapi.MountInfo{Type: "pki"}
	m[fuzzOwnMount] = vaultapi.MountInfo{Type: "kv", Version: "2"}
	return m
}

// longestMount is the mount Vault's router would send path to.
func longestMount(path string, mounts map[string]vaultapi.MountInfo) string {
	var best string
	for p := range mounts {
		if strings.HasPrefix(path, p) && len(p) > len(best) {
			best = p
		}
	}
	return best
}

// checkAcceptedName asserts what any name the plugin accepts must look like, independently
// of how ValidateName is written.
func checkAcceptedName(t *testing.T, name string) {
	t.Helper()
	if name == "" || len(name) > MaxLen {
		t.Fatalf("accepted a name of length %d", len(name))
	}
	body := strings.TrimSuffix(name, "/*")
	for _, r := range body {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-@=:~/", r)) {
			t.Fatalf("accepted %q with character %q", name, r)
		}
	}
	for _, bad := range []string{"..", "+", "{{", "}}", "//", "*"} {
		if strings.Contains(body, bad) {
			t.Fatalf("accepted %q containing %q", name, bad)
		}
	}
	if strings.HasPrefix(name, "/") || strings.HasSuffix(body, "/") {
		t.Fatalf("accepted %q with a leading or trailing slash", name)
	}
	for _, seg := range strings.Split(body, "/") {
		if seg == "." || len(seg) > MaxSegmentLen {
			t.Fatalf("accepted %q with segment %q", name, textsafe.Truncate(seg))
		}
	}
	for _, p := range []string{"sys", "auth", "identity", "cubbyhole"} {
		if body == p || strings.HasPrefix(name, p+"/") {
			t.Fatalf("accepted %q under %s/", name, p)
		}
	}
}

// FuzzResourceName: ValidateName and Resolve never panic; every accepted
// name is plain ASCII path segments with at most a final "/*", never under sys/, auth/,
// identity/, cubbyhole/ or the plugin's own mount; a resolved name is exactly
// mount + "/" + path (+ "/*"), on a KV v2 or Transit mount that Vault would route it to.
func FuzzResourceName(f *testing.F) {
	f.Add("kv/app/db")
	f.Add("kv/app/*")
	f.Add("transit/payments")
	mounts := fuzzMounts()
	f.Fuzz(func(t *testing.T, name string) {
		verr := ValidateName(name)
		if verr == nil {
			checkAcceptedName(t, name)
		}
		ref, err := Resolve(name, mounts, fuzzOwnMount)
		if err != nil {
			return
		}
		if verr != nil {
			t.Fatalf("Resolve accepted %q that ValidateName refuses: %v", name, verr)
		}
		if strings.HasPrefix(name+"/", fuzzOwnMount) || ref.Mount+"/" == fuzzOwnMount {
			t.Fatalf("accepted %q inside the plugin's own mount", name)
		}
		if longestMount(name, mounts) != ref.Mount+"/" {
			t.Fatalf("%q resolved to mount %q, Vault routes it to %q", name, ref.Mount, longestMount(name, mounts))
		}
		m := mounts[ref.Mount+"/"]
		switch ref.Type {
		case TypeKV:
			if m.Type != "kv" || m.Version != "2" {
				t.Fatalf("%q resolved as KV v2 on a %s v%s mount", name, m.Type, m.Version)
			}
		case TypeTransit:
			if m.Type != "transit" || ref.Folder || strings.Contains(ref.Path, "/") {
				t.Fatalf("%q resolved as Transit key %+v on a %s mount", name, ref, m.Type)
			}
		default:
			t.Fatalf("%q resolved to type %q", name, ref.Type)
		}
		if ref.Name != name || rebuildName(ref) != name {
			t.Fatalf("%q resolved to %+v, which names %q", name, ref, rebuildName(ref))
		}
		if !ref.Folder && ref.Path == "" {
			t.Fatalf("%q resolved to a whole mount without being a folder", name)
		}
	})
}

func rebuildName(r Ref) string {
	switch {
	case r.Folder && r.Path == "":
		return r.Mount + "/*"
	case r.Folder:
		return r.Mount + "/" + r.Path + "/*"
	default:
		return r.Mount + "/" + r.Path
	}
}

// fuzzPermissionTable is the permission table, written out independently of policy.go:
// for each permission, the path kinds (KV: below M/<kind>/, Transit: M/<op>/K) and the
// most capabilities each may carry. It is the table plus delete on data/P for
// read-write and admin (`vault kv delete`: the same soft delete as update on delete/P).
var fuzzPermissionTable = map[string]map[string][]string{
	"read": {
		"data":     {"read"},
		"metadata": {"list", "read"},
	},
	"read-write": {
		"data":     {"create", "delete", "patch", "read", "update"},
		"metadata": {"list", "read"},
		"delete":   {"update"},
		"undelete": {"update"},
	},
	"admin": {
		"data":     {"create", "delete", "patch", "read", "update"},
		"metadata": {"create", "delete", "list", "patch", "read", "update"},
		"delete":   {"update"},
		"undelete": {"update"},
		"destroy":  {"update"},
	},
	"encrypt":         {"encrypt": {"update"}},
	"decrypt":         {"decrypt": {"update"}},
	"encrypt-decrypt": {"encrypt": {"update"}, "decrypt": {"update"}},
	"sign-verify":     {"sign": {"update"}, "verify": {"update"}},
}

// fuzzPermissionMinimum is the table as written: what each permission must give.
var fuzzPermissionMinimum = map[string]map[string][]string{
	"read": {
		"data":     {"read"},
		"metadata": {"list", "read"},
	},
	"read-write": {
		"data":     {"create", "patch", "read", "update"},
		"metadata": {"list", "read"},
		"delete":   {"update"},
		"undelete": {"update"},
	},
	"admin": {
		"data":     {"create", "patch", "read", "update"},
		"metadata": {"create", "delete", "list", "patch", "read", "update"},
		"delete":   {"update"},
		"undelete": {"update"},
		"destroy":  {"update"},
	},
	"encrypt":         {"encrypt": {"update"}},
	"decrypt":         {"decrypt": {"update"}},
	"encrypt-decrypt": {"encrypt": {"update"}, "decrypt": {"update"}},
	"sign-verify":     {"sign": {"update"}, "verify": {"update"}},
}

// expectedPolicy is the policy table gives for refs and permission: each path with its caps.
// capsForResource is a table row for one resource: a single KV secret gets no list on its
// metadata, which would name the keys of a folder of the same name.
func capsForResource(r Ref, kind string, caps []string) []string {
	if r.Type != TypeKV || r.Folder || kind != "metadata" {
		return caps
	}
	out := make([]string, 0, len(caps))
	for _, c := range caps {
		if c != "list" {
			out = append(out, c)
		}
	}
	return out
}

func expectedPolicy(refs []Ref, permission string, table map[string]map[string][]string) map[string][]string {
	want := map[string]map[string]bool{}
	add := func(path string, caps []string) {
		if want[path] == nil {
			want[path] = map[string]bool{}
		}
		for _, c := range caps {
			want[path][c] = true
		}
	}
	for _, r := range refs {
		for kind, caps := range table[permission] {
			caps = capsForResource(r, kind, caps)
			switch {
			case r.Type == TypeKV && r.Folder && r.Path == "":
				add(r.Mount+"/"+kind+"/*", caps)
			case r.Type == TypeKV && r.Folder:
				add(r.Mount+"/"+kind+"/"+r.Path+"/*", caps)
			case r.Type == TypeKV:
				add(r.Mount+"/"+kind+"/"+r.Path, caps)
			case r.Type == TypeTransit:
				add(r.Mount+"/"+kind+"/"+r.Path, caps)
				if kind == "sign" || kind == "verify" {
					// sign/K/<hash algorithm> and verify/K/<hash algorithm>
					add(r.Mount+"/"+kind+"/"+r.Path+"/*", caps)
				}
			}
		}
	}
	out := map[string][]string{}
	for p, set := range want {
		for c := range set {
			out[p] = append(out[p], c)
		}
		sort.Strings(out[p])
	}
	return out
}

// pathWithinResource reports whether a policy path lies exactly within resource r: under
// its mount, one of the operation kinds the permission allows, then the secret itself, the
// folder glob, or a Transit key (plus the hash-algorithm glob for sign/verify).
func pathWithinResource(path string, r Ref, permission string) bool {
	rest, ok := strings.CutPrefix(path, r.Mount+"/")
	if !ok {
		return false
	}
	kind, tail, ok := strings.Cut(rest, "/")
	if !ok || fuzzPermissionTable[permission][kind] == nil {
		return false
	}
	switch {
	case r.Type == TypeKV && r.Folder && r.Path == "":
		return tail == "*"
	case r.Type == TypeKV && r.Folder:
		return tail == r.Path+"/*"
	case r.Type == TypeKV:
		return tail == r.Path
	case r.Type == TypeTransit:
		return tail == r.Path || (kind == "sign" || kind == "verify") && tail == r.Path+"/*"
	}
	return false
}

// FuzzPolicyRendering: for any resources and permission that resolveResource and
// GrantPolicy accept, the rendered JSON parses back to exactly {"path": {P:
// {"capabilities": [...]}}}, every path lies within one requested resource on the mount
// Vault routes it to, capabilities are only those of the permission table, no path holds a
// glob other than a folder's or a sign/verify key's final "/*", and nothing is missing:
// exactly the table's paths, each with at least the minimum capabilities.
func FuzzPolicyRendering(f *testing.F) {
	f.Add("kv/app/db", "read")
	f.Add("kv/app/*,kv/*", "admin")
	f.Add("transit/payments", "sign-verify")
	mounts := fuzzMounts()
	f.Fuzz(func(t *testing.T, resources, permission string) {
		names := strings.Split(resources, ",")
		if len(names) > 8 {
			names = names[:8]
		}
		refs := make([]Ref, 0, len(names))
		for _, n := range names {
			ref, err := Resolve(n, mounts, fuzzOwnMount)
			if err != nil {
				return
			}
			refs = append(refs, ref)
		}
		policy, err := GrantPolicy(refs, permission)
		if err != nil {
			return
		}
		if _, ok := fuzzPermissionTable[permission]; !ok {
			t.Fatalf("GrantPolicy accepted unknown permission %q", permission)
		}
		rendered, err := policy.Render()
		if err != nil {
			t.Fatalf("render: %v", err)
		}

		// Parse back: nothing but path -> capabilities (and, on an admin grant's metadata
		// paths, custom_metadata denied) may be in it.
		type rule struct {
			Capabilities     []string                 `json:"capabilities"`
			DeniedParameters map[string][]interface{} `json:"denied_parameters"`
		}
		var top struct {
			Path map[string]rule `json:"path"`
		}
		dec := json.NewDecoder(strings.NewReader(rendered))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&top); err != nil {
			t.Fatalf("rendered policy does not parse back: %v\n%s", err, rendered)
		}
		if top.Path == nil {
			t.Fatalf("rendered policy has no paths: %s", rendered)
		}
		got := map[string][]string{}
		for path, rule := range top.Path {
			if rule.Capabilities == nil {
				t.Fatalf("path %q has no capabilities: %s", path, rendered)
			}
			got[path] = rule.Capabilities
		}

		for path, caps := range got {
			owner := -1
			for i, r := range refs {
				if pathWithinResource(path, r, permission) {
					owner = i
					break
				}
			}
			if owner < 0 {
				t.Fatalf("policy path %q lies within none of %v (permission %s)", path, names, permission)
			}
			r := refs[owner]
			if longestMount(path, mounts) != r.Mount+"/" {
				t.Fatalf("policy path %q for %q is routed to mount %q", path, r.Name, longestMount(path, mounts))
			}
			body := strings.TrimSuffix(path, "/*")
			if strings.ContainsAny(body, "*+\"'{}\\ \n\r\t") || strings.Contains(path, "..") {
				t.Fatalf("policy path %q holds a glob, template or quote", path)
			}
			if body != path && !(r.Folder || r.Type == TypeTransit) {
				t.Fatalf("policy path %q ends in a glob for non-folder %q", path, r.Name)
			}
			kind := strings.SplitN(strings.TrimPrefix(path, r.Mount+"/"), "/", 2)[0]
			denied := top.Path[path].DeniedParameters
			if permission == "admin" && kind == "metadata" {
				if len(denied) != 1 || denied["custom_metadata"] == nil || len(denied["custom_metadata"]) != 0 {
					t.Fatalf("admin path %q must deny custom_metadata (the owner tag), and nothing else: %s", path, rendered)
				}
			} else if denied != nil {
				t.Fatalf("path %q has denied_parameters: %s", path, rendered)
			}
			allowed := map[string]bool{}
			for _, ref := range refs {
				if pathWithinResource(path, ref, permission) {
					for _, c := range capsForResource(ref, kind, fuzzPermissionTable[permission][kind]) {
						allowed[c] = true
					}
				}
			}
			for _, c := range caps {
				if !allowed[c] {
					t.Fatalf("policy path %q has capability %q, not given by %s", path, c, permission)
				}
			}
		}
		// Nothing missing: every path of the table, each with at least the minimum.
		most, least := expectedPolicy(refs, permission, fuzzPermissionTable), expectedPolicy(refs, permission, fuzzPermissionMinimum)
		if !reflect.DeepEqual(slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(most))) {
			t.Fatalf("policy for %v %s has paths\n %v\nwant %v", names, permission, slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(most)))
		}
		for path, caps := range least {
			if missing := missingFrom(got[path], caps); len(missing) > 0 {
				t.Fatalf("policy for %v %s: %s lacks %v", names, permission, path, missing)
			}
		}
	})
}

// missingFrom is what of needs has lacks.
func missingFrom(has, needs []string) []string {
	var missing []string
	for _, c := range needs {
		if !slices.Contains(has, c) {
			missing = append(missing, c)
		}
	}
	return missing
}
