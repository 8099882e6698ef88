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
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/vaultapi"
	"github.com/apono-io/vault-plugin-apono/internal/textsafe"
)

// fuzzOwnMount is the plugin's own mount in the fuzz tests.
const fuzzOwnMount = "apono/"

// fuzzPathPrefixes are the grantable_path_prefixes of the fuzz tests: two an operator
// would set (consul/creds/, nomad/, kv1/shared/ on a KV v1 mount), prefixes over engine
// mounts whose shape must still win (database/, transit/), and prefixes config
// validation refuses (ValidatePathPrefix), which Resolve must refuse on its own too:
// the plugin's own mount and sys/.
var fuzzPathPrefixes = []string{"consul/creds/", "nomad/", "kv1/shared/", "database/", "transit/", fuzzOwnMount, "sys/"}

// fuzzOptions are the Resolve options of the fuzz tests.
var fuzzOptions = Options{OwnMount: fuzzOwnMount, PathPrefixes: fuzzPathPrefixes}

// fuzzEngineEndpoints is what may follow a database, PKI or SSH mount, written out
// independently of resource.go: one endpoint, then one role name.
var fuzzEngineEndpoints = map[string][]string{
	TypeDatabase: {"creds", "static-creds"},
	TypePKI:      {"issue", "sign"},
	TypeSSH:      {"creds", "sign"},
}

// fuzzMounts is the mounts of the backend's fake Vault plus multi-segment mount paths,
// database, PKI and SSH mounts, and mounts of other types (consul, nomad) for path
// resources. The plugin's own mount is declared as KV v2 on purpose: it must be refused
// for being the plugin's mount, not merely for its type.
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
	m["pki-int/"] = vaultapi.MountInfo{Type: "pki"}
	m["database/"] = vaultapi.MountInfo{Type: "database"}
	m["team/db/"] = vaultapi.MountInfo{Type: "database"}
	m["ssh/"] = vaultapi.MountInfo{Type: "ssh"}
	m["consul/"] = vaultapi.MountInfo{Type: "consul"}
	m["nomad/"] = vaultapi.MountInfo{Type: "nomad"}
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
// identity/, cubbyhole/ or the plugin's own mount (whatever the path prefixes allow); a
// resolved name is rebuilt exactly from its Ref, on the mount Vault would route it to, of
// the type that mount's engine gives: a KV v2 secret or folder, one Transit key, one
// database/PKI/SSH role behind one of its engine's endpoints, or, on a mount of any other
// type, a path below one of the allowed prefixes. The prefixes only ever add path
// resources: without them every other name resolves the same, and no path resource does.
func FuzzResourceName(f *testing.F) {
	for _, s := range []string{
		"kv/app/db", "kv/app/*", "transit/payments",
		// database, PKI, SSH: good, nested, folders, unknown endpoints, bare endpoints.
		"database/creds/ro", "database/static-creds/app", "team/db/creds/ro", "database/creds/a/b",
		"database/creds/*", "database/*", "database/roles/ro", "database/creds", "database/config/pg",
		"pki/issue/web", "pki/sign/web", "pki-int/issue/web", "pki/roles/web", "pki/issue/*", "pki/issue",
		"pki/sign-verbatim/web", "pki/root/sign-intermediate",
		"ssh/sign/ops", "ssh/creds/otp", "ssh/issue/ops", "ssh/sign/ops/extra", "ssh/config/ca",
		// path resources: inside and outside the prefixes, whole mounts, folders.
		"consul/creds/app", "consul/creds/*", "consul/creds/team/*", "consul/creds", "consul/*",
		"consul/acl/token", "nomad/creds/x", "nomad/*", "kv1/shared/x", "kv1/shared/*", "kv1/other/x",
		"transit/a/b", "transit/keys/*", "apono/config", "apono/roles/x/*", "sys/policies/acl/x",
	} {
		f.Add(s)
	}
	mounts := fuzzMounts()
	f.Fuzz(func(t *testing.T, name string) {
		verr := ValidateName(name)
		if verr == nil {
			checkAcceptedName(t, name)
		}
		ref, err := Resolve(name, mounts, fuzzOptions)
		bare, bareErr := Resolve(name, mounts, Options{OwnMount: fuzzOwnMount})
		if err != nil {
			if bareErr == nil {
				t.Fatalf("%q resolves without path prefixes (%+v) but not with them: %v", name, bare, err)
			}
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
		if ref.Type == TypePath {
			if bareErr == nil {
				t.Fatalf("%q resolved to %+v with no path prefix allowed", name, bare)
			}
		} else if bareErr != nil || bare != ref {
			t.Fatalf("%q resolved to %+v with path prefixes and to %+v, %v without", name, ref, bare, bareErr)
		}
		m := mounts[ref.Mount+"/"]
		switch ref.Type {
		case TypeKV:
			if m.Type != "kv" || m.Version != "2" || ref.Endpoint != "" {
				t.Fatalf("%q resolved as KV v2 %+v on a %s v%s mount", name, ref, m.Type, m.Version)
			}
		case TypeTransit:
			if m.Type != "transit" || ref.Folder || strings.Contains(ref.Path, "/") || ref.Endpoint != "" {
				t.Fatalf("%q resolved as Transit key %+v on a %s mount", name, ref, m.Type)
			}
		case TypeDatabase, TypePKI, TypeSSH:
			if m.Type != ref.Type {
				t.Fatalf("%q resolved as %s on a %s mount", name, ref.Type, m.Type)
			}
			if !slices.Contains(fuzzEngineEndpoints[ref.Type], ref.Endpoint) || ref.Folder ||
				ref.Path == "" || strings.Contains(ref.Path, "/") || ref.Path == "*" {
				t.Fatalf("%q resolved to %+v: not one role behind one %s endpoint", name, ref, ref.Type)
			}
		case TypePath:
			if m.Type == "transit" || m.Type == "kv" && m.Version == "2" || fuzzEngineEndpoints[m.Type] != nil {
				t.Fatalf("%q resolved as a path resource on a %s mount, which has a type of its own", name, m.Type)
			}
			if ref.Endpoint != "" || ref.Path == "" {
				t.Fatalf("%q resolved to path resource %+v", name, ref)
			}
			below := false
			for _, p := range fuzzPathPrefixes {
				below = below || strings.HasPrefix(name, p)
			}
			if !below {
				t.Fatalf("%q resolved as a path resource below none of %v", name, fuzzPathPrefixes)
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
	case r.Endpoint != "":
		return r.Mount + "/" + r.Endpoint + "/" + r.Path
	case r.Folder && r.Path == "":
		return r.Mount + "/*"
	case r.Folder:
		return r.Mount + "/" + r.Path + "/*"
	default:
		return r.Mount + "/" + r.Path
	}
}

// fuzzPermissionTable is the permission table, written out independently of policy.go:
// for each permission, the path kinds (KV: below M/<kind>/, Transit: M/<op>/K, database,
// PKI, SSH: M/<endpoint>/<role>, for the resource's own endpoint only) and the most
// capabilities each may carry. It is the table plus delete on data/P for
// read-write and admin (`vault kv delete`: the same soft delete as update on delete/P).
// Path resources have no kinds: fuzzPathCaps.
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
	"creds":           {"creds": {"read"}, "static-creds": {"read"}},
	"issue":           {"issue": {"update"}, "sign": {"update"}},
	"ssh":             {"sign": {"update"}, "creds": {"update"}},
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
	"creds":           {"creds": {"read"}, "static-creds": {"read"}},
	"issue":           {"issue": {"update"}, "sign": {"update"}},
	"ssh":             {"sign": {"update"}, "creds": {"update"}},
}

// fuzzPathCaps are a path resource's capabilities on its exact path, or on its folder's
// glob (list, but for update only).
var fuzzPathCaps = map[string]struct{ exact, folder []string }{
	"path-read":   {[]string{"read"}, []string{"list", "read"}},
	"path-update": {[]string{"update"}, []string{"update"}},
	"path-write":  {[]string{"create", "delete", "patch", "read", "update"}, []string{"create", "delete", "list", "patch", "read", "update"}},
}

// fuzzNotAfter is the PKI bound of the fuzz tests, in a zone other than UTC: the policy
// must pin it as fuzzNotAfterValue.
var fuzzNotAfter = time.Date(2031, 2, 3, 4, 5, 6, 0, time.FixedZone("UTC+1", 3600))

const (
	fuzzNotAfterValue = "2031-02-03T03:05:06Z"
	fuzzSSHTTL        = 10 * time.Minute
	fuzzSSHTTLValue   = "600s"
)

// fuzzBounds bounds the PKI and SSH sign resources among refs whose role name has an even
// length; the others stay unbounded (PKI: GrantPolicy must refuse; SSH sign: it must
// leave the rule out). It reports whether a PKI resource is left unbounded.
func fuzzBounds(refs []Ref) (b Bounds, pkiUnbounded bool) {
	b = Bounds{NotAfter: map[string]time.Time{}, SSHTTL: map[string]time.Duration{}}
	for _, r := range refs {
		bounded := len(r.Path)%2 == 0
		switch {
		case r.Type == TypePKI && bounded:
			b.NotAfter[r.Name] = fuzzNotAfter
		case r.Type == TypePKI:
			pkiUnbounded = true
		case r.Type == TypeSSH && r.Endpoint == "sign" && bounded:
			b.SSHTTL[r.Name] = fuzzSSHTTL
		}
	}
	return b, pkiUnbounded
}

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

// expectedPolicy is the policy table gives for refs and permission under bounds b: each
// path with its caps.
func expectedPolicy(refs []Ref, permission string, table map[string]map[string][]string, b Bounds) map[string][]string {
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
		switch r.Type {
		case TypePath:
			caps, ok := fuzzPathCaps[permission]
			switch {
			case !ok:
			case r.Folder:
				add(r.Mount+"/"+r.Path+"/*", caps.folder)
			default:
				add(r.Mount+"/"+r.Path, caps.exact)
			}
			continue
		case TypeDatabase, TypePKI, TypeSSH:
			caps := table[permission][r.Endpoint]
			if caps == nil {
				continue
			}
			if _, ok := b.SSHTTL[r.Name]; r.Type == TypeSSH && r.Endpoint == "sign" && !ok {
				continue // no ttl bound: no signing at all
			}
			add(r.Mount+"/"+r.Endpoint+"/"+r.Path, caps)
			continue
		}
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

// fuzzRule is a rendered policy path's rule, parsed back.
type fuzzRule struct {
	Capabilities       []string                 `json:"capabilities"`
	AllowedParameters  map[string][]interface{} `json:"allowed_parameters"`
	RequiredParameters []string                 `json:"required_parameters"`
	DeniedParameters   map[string][]interface{} `json:"denied_parameters"`
}

// expectedParameters is what r's rule on path must say about request fields, nil for
// nothing: an admin KV grant's metadata denies custom_metadata (the owner tag); a PKI
// issue or sign pins not_after (and must send it) and denies ttl; an SSH sign pins ttl
// (and must send it).
func expectedParameters(r Ref, path, permission string) fuzzRule {
	switch {
	case r.Type == TypeKV && permission == "admin" && strings.HasPrefix(path, r.Mount+"/metadata/"):
		return fuzzRule{DeniedParameters: map[string][]interface{}{"custom_metadata": {}}}
	case r.Type == TypePKI:
		return fuzzRule{
			AllowedParameters:  map[string][]interface{}{"*": {}, "not_after": {fuzzNotAfterValue}},
			RequiredParameters: []string{"not_after"},
			DeniedParameters:   map[string][]interface{}{"ttl": {}},
		}
	case r.Type == TypeSSH && r.Endpoint == "sign":
		return fuzzRule{
			AllowedParameters:  map[string][]interface{}{"*": {}, "ttl": {fuzzSSHTTLValue}},
			RequiredParameters: []string{"ttl"},
		}
	}
	return fuzzRule{}
}

// FuzzPolicyRendering: for any resources and permission that resolveResource and
// GrantPolicy accept, the rendered JSON parses back to exactly {"path": {P:
// {"capabilities": [...], and the parameters of expectedParameters}}}, every path lies
// within one requested resource on the mount Vault routes it to, capabilities are only
// those of the permission table, no path holds a glob other than a folder's or a
// sign/verify key's final "/*", and nothing is missing: exactly the table's paths, each
// with at least the minimum capabilities. A PKI resource without its not_after
// bound is refused; an SSH sign resource without its ttl bound gets no rule.
func FuzzPolicyRendering(f *testing.F) {
	f.Add("kv/app/db", "read")
	f.Add("kv/app/*,kv/*", "admin")
	f.Add("transit/payments", "sign-verify")
	f.Add("database/creds/ro,database/static-creds/app,team/db/creds/rw", "creds")
	f.Add("pki/issue/ab,pki/sign/ab,pki-int/issue/web1", "issue")
	f.Add("pki/issue/web", "issue")
	f.Add("ssh/sign/ops1,ssh/sign/dev,ssh/creds/otp", "ssh")
	f.Add("consul/creds/app1,consul/creds/team/*,kv1/shared/x", "path-read")
	f.Add("consul/creds/*,nomad/creds/x", "path-update")
	f.Add("consul/creds/app1,nomad/jobs/*", "path-write")
	f.Add("database/creds/ro", "read")
	f.Add("consul/creds/app1", "creds")
	mounts := fuzzMounts()
	f.Fuzz(func(t *testing.T, resources, permission string) {
		names := strings.Split(resources, ",")
		if len(names) > 8 {
			names = names[:8]
		}
		refs := make([]Ref, 0, len(names))
		for _, n := range names {
			ref, err := Resolve(n, mounts, fuzzOptions)
			if err != nil {
				return
			}
			refs = append(refs, ref)
		}
		bounds, pkiUnbounded := fuzzBounds(refs)
		policy, err := GrantPolicy(refs, permission, bounds)
		if err != nil {
			return
		}
		_, known := fuzzPermissionTable[permission]
		_, pathPermission := fuzzPathCaps[permission]
		if !known && !pathPermission {
			t.Fatalf("GrantPolicy accepted unknown permission %q", permission)
		}
		if pkiUnbounded {
			t.Fatalf("GrantPolicy accepted PKI resources %v without a not_after bound", names)
		}
		rendered, err := policy.Render()
		if err != nil {
			t.Fatalf("render: %v", err)
		}

		// Parse back: nothing but path -> capabilities and the parameters of
		// expectedParameters may be in it.
		var top struct {
			Path map[string]fuzzRule `json:"path"`
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
			allowed := map[string]bool{}
			for i, r := range refs {
				if within, ok := expectedPolicy([]Ref{r}, permission, fuzzPermissionTable, bounds)[path]; ok {
					if owner < 0 {
						owner = i
					}
					for _, c := range within {
						allowed[c] = true
					}
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
			want := expectedParameters(r, path, permission)
			rule := top.Path[path]
			if !reflect.DeepEqual(rule.AllowedParameters, want.AllowedParameters) ||
				!reflect.DeepEqual(rule.RequiredParameters, want.RequiredParameters) ||
				!reflect.DeepEqual(rule.DeniedParameters, want.DeniedParameters) {
				t.Fatalf("path %q of %q has parameters %+v, want %+v: %s", path, r.Name, rule, want, rendered)
			}
			for _, c := range caps {
				if !allowed[c] {
					t.Fatalf("policy path %q has capability %q, not given by %s", path, c, permission)
				}
			}
		}
		// Nothing missing: every path of the table, each with at least the minimum.
		most, least := expectedPolicy(refs, permission, fuzzPermissionTable, bounds), expectedPolicy(refs, permission, fuzzPermissionMinimum, bounds)
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
