// Package resource owns what a grant can name: a resource's name as a Vault user types it
// (kv/app/db, kv/app/*, transit/payments, database/creds/readonly, pki/issue/web,
// ssh/sign/ops, or an allowed path such as consul/creds/app), its checks, the mount it resolves to, the
// permissions of its type, and the ACL policy that grants exactly that, built as a Go value
// and rendered as JSON. It calls nothing outside the process: the mounts come from the
// caller.
package resource

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/apono-io/vault-plugin-apono/backend/vaultapi"
	"github.com/apono-io/vault-plugin-apono/internal/textsafe"
)

// Resource types this plugin can grant.
const (
	TypeKV       = "kv"
	TypeTransit  = "transit"
	TypeDatabase = "database" // database/creds/<role>, database/static-creds/<role>
	TypePKI      = "pki"      // pki/issue/<role>, pki/sign/<role>
	TypeSSH      = "ssh"      // ssh/sign/<role>, ssh/creds/<role>
	// TypePath is any other Vault path (a Consul or Nomad role, a custom plugin), only
	// below a prefix the operator allowed in the config's grantable_path_prefixes.
	TypePath = "path"
)

// Types lists every resource type, in the order documents and the portal show them.
var Types = []string{TypeKV, TypeTransit, TypeDatabase, TypePKI, TypeSSH, TypePath}

// engineEndpoints are the endpoints below a database, PKI or SSH mount a grant can name,
// each followed by one role name: what a Vault user types after the mount.
var engineEndpoints = map[string][]string{
	TypeDatabase: {"creds", "static-creds"},
	TypePKI:      {"issue", "sign"},
	TypeSSH:      {"sign", "creds"},
}

// EngineEndpoints returns the endpoints of an engine type (nil for kv, transit, path).
func EngineEndpoints(t string) []string { return engineEndpoints[t] }

const (
	MaxLen        = 512
	MaxSegmentLen = 255
)

// Ref is a validated resource name resolved against Vault's mounts.
type Ref struct {
	Name   string // as the user typed it: "kv/app/db", "kv/app/*", "transit/payments"
	Type   string // resourceTypeKV or resourceTypeTransit
	Mount  string // mount path without the trailing slash: "kv"
	Path   string // below the mount, without a trailing "/*": "app/db", "app", "payments"
	Folder bool   // "kv/app/*": everything below Path
	// Endpoint is a database, PKI or SSH resource's endpoint ("creds", "issue", "sign");
	// Path is then the engine's role name.
	Endpoint string
}

// Options are what Resolve needs besides the mounts.
type Options struct {
	// OwnMount is this plugin's mount path ("apono/"), never grantable.
	OwnMount string
	// PathPrefixes are the prefixes below which a path resource may be granted (the
	// config's grantable_path_prefixes); none means no path resource at all.
	PathPrefixes []string
}

// forbiddenPrefixes can never be granted, whatever is mounted there.
var forbiddenPrefixes = []string{"sys/", "auth/", "identity/", "cubbyhole/"}

// ValidateName checks the shape of a resource name before anything else looks at
// it: only plain ASCII path segments, so nothing a user types can become a policy glob
// (`*` in the middle, `+`), a template (`{{`), a traversal (`..`) or break out of a string.
// A trailing "/*" is the one wildcard allowed; it names a folder.
func ValidateName(name string) error {
	if name == "" {
		return fmt.Errorf("resource name is empty")
	}
	if len(name) > MaxLen {
		return fmt.Errorf("resource %q is longer than %d characters", textsafe.Truncate(name), MaxLen)
	}
	for _, p := range forbiddenPrefixes {
		if strings.HasPrefix(name, p) || name+"/" == p {
			return fmt.Errorf("resource %q: nothing under %s can be granted", name, p)
		}
	}
	body := strings.TrimSuffix(name, "/*")
	segments := strings.Split(body, "/")
	for _, seg := range segments {
		if seg == "" {
			return fmt.Errorf("resource %q has an empty path segment (leading, trailing or double slash)", name)
		}
		if seg == "." || seg == ".." {
			return fmt.Errorf("resource %q: %q segments are not allowed", name, seg)
		}
		// Not only whole ".." segments: no name the plugin accepts may contain ".." at all.
		if strings.Contains(seg, "..") {
			return fmt.Errorf("resource %q: \"..\" is not allowed anywhere in a name", name)
		}
		if len(seg) > MaxSegmentLen {
			return fmt.Errorf("resource %q has a segment longer than %d characters", textsafe.Truncate(name), MaxSegmentLen)
		}
		for _, r := range seg {
			if !isResourceChar(r) {
				return fmt.Errorf("resource %q: character %q is not allowed (allowed: letters, digits and . _ - @ = : ~ in segments separated by /, and a final /* for a folder)", name, r)
			}
		}
	}
	if len(segments) < 2 && !strings.HasSuffix(name, "/*") {
		return fmt.Errorf("resource %q must name a mount and a path below it, e.g. kv/app/db, kv/app/* or transit/payments", name)
	}
	return nil
}

func isResourceChar(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return true
	}
	return strings.ContainsRune("._-@=:~", r)
}

// Resolve validates name and finds the mount it belongs to (the longest mount path that
// prefixes it). A name below a KV v2, Transit, database, PKI or SSH mount is of that type
// and must have its shape; a name below any other mount is a path resource, allowed only
// below one of opts.PathPrefixes.
func Resolve(name string, mounts map[string]vaultapi.MountInfo, opts Options) (Ref, error) {
	ownMount := opts.OwnMount
	if err := ValidateName(name); err != nil {
		return Ref{}, err
	}
	if ownMount != "" && strings.HasPrefix(name+"/", ownMount) {
		return Ref{}, fmt.Errorf("resource %q is inside this plugin's own mount %q", name, ownMount)
	}
	var mountPath string
	for p := range mounts {
		if strings.HasPrefix(name, p) && len(p) > len(mountPath) {
			mountPath = p
		}
	}
	if mountPath == "" {
		return Ref{}, fmt.Errorf("resource %q is not under any mounted secrets engine", name)
	}
	if ownMount != "" && mountPath == ownMount {
		return Ref{}, fmt.Errorf("resource %q is inside this plugin's own mount %q", name, ownMount)
	}
	m := mounts[mountPath]
	rest := strings.TrimPrefix(name, mountPath)
	ref := Ref{Name: name, Mount: strings.TrimSuffix(mountPath, "/")}
	switch {
	case m.Type == "kv" && m.Version == "2":
		ref.Type = TypeKV
	case m.Type == "transit":
		ref.Type = TypeTransit
	case engineEndpoints[m.Type] != nil:
		return resolveEngine(ref, m.Type, rest)
	default:
		return resolvePath(ref, m, mountPath, rest, opts.PathPrefixes)
	}
	if rest == "*" {
		ref.Folder = true
	} else if strings.HasSuffix(rest, "/*") {
		ref.Folder = true
		ref.Path = strings.TrimSuffix(rest, "/*")
	} else {
		ref.Path = rest
	}
	if ref.Type == TypeTransit && (ref.Folder || strings.Contains(ref.Path, "/")) {
		return Ref{}, fmt.Errorf("resource %q: a Transit resource is one key, e.g. %s/payments", name, ref.Mount)
	}
	if ref.Path == "" && !ref.Folder {
		return Ref{}, fmt.Errorf("resource %q names a mount, not a secret; use %s/* for the whole mount", name, ref.Mount)
	}
	return ref, nil
}

// resolveEngine reads <endpoint>/<role> below a database, PKI or SSH mount. One role per
// resource: a folder of roles would let a grant reach roles made after it was approved.
func resolveEngine(ref Ref, typ, rest string) (Ref, error) {
	ref.Type = typ
	endpoints := engineEndpoints[typ]
	endpoint, role, ok := strings.Cut(rest, "/")
	if !ok || !slices.Contains(endpoints, endpoint) || role == "" || strings.Contains(role, "/") || role == "*" {
		return Ref{}, fmt.Errorf("resource %q: on %s mount %q a resource is one of %s followed by one role name, e.g. %s/%s/<role>",
			ref.Name, typ, ref.Mount+"/", strings.Join(endpoints, ", "), ref.Mount, endpoints[0])
	}
	ref.Endpoint, ref.Path = endpoint, role
	return ref, nil
}

// resolvePath accepts a name below a mount of another type only where the operator allowed
// its prefix. The name is the policy path itself: exact, or a folder ending in "/*".
func resolvePath(ref Ref, m vaultapi.MountInfo, mountPath, rest string, prefixes []string) (Ref, error) {
	kind := m.Type
	if m.Type == "kv" {
		kind = "kv version 1"
	}
	allowed := false
	for _, p := range prefixes {
		if strings.HasPrefix(ref.Name, p) {
			allowed = true
			break
		}
	}
	if !allowed {
		if len(prefixes) == 0 {
			return Ref{}, fmt.Errorf("resource %q is on mount %q of type %s; it can be granted as a path resource only below a prefix listed in the config's grantable_path_prefixes (none is)", ref.Name, mountPath, kind)
		}
		return Ref{}, fmt.Errorf("resource %q is on mount %q of type %s and below none of the config's grantable_path_prefixes (%s)", ref.Name, mountPath, kind, strings.Join(prefixes, ", "))
	}
	ref.Type = TypePath
	if rest == "*" || rest == "" {
		return Ref{}, fmt.Errorf("resource %q names a whole mount; a path resource is one path or a folder below the mount, e.g. %sname or %sfolder/*", ref.Name, mountPath, mountPath)
	}
	if strings.HasSuffix(rest, "/*") {
		ref.Folder = true
		ref.Path = strings.TrimSuffix(rest, "/*")
	} else {
		ref.Path = rest
	}
	return ref, nil
}

// ValidatePathPrefix checks one entry of grantable_path_prefixes: a path ending in "/"
// below a mount's name, never under sys/, auth/, identity/ or cubbyhole/.
func ValidatePathPrefix(p, ownMount string) error {
	if !strings.HasSuffix(p, "/") {
		return fmt.Errorf("%q must end in \"/\" (a prefix of paths, e.g. consul/creds/)", p)
	}
	if err := ValidateName(strings.TrimSuffix(p, "/") + "/*"); err != nil {
		return err
	}
	if ownMount != "" && strings.HasPrefix(p, ownMount) {
		return fmt.Errorf("%q is inside this plugin's own mount %q", p, ownMount)
	}
	return nil
}

// Permission levels and the resource types they apply to.
var PermissionTypes = map[string]string{
	"read":            TypeKV,
	"read-write":      TypeKV,
	"admin":           TypeKV,
	"encrypt":         TypeTransit,
	"decrypt":         TypeTransit,
	"encrypt-decrypt": TypeTransit,
	"sign-verify":     TypeTransit,
	// database: read on creds/<role> or static-creds/<role>.
	"creds": TypeDatabase,
	// PKI: update on issue/<role> or sign/<role>, the certificate's not_after pinned.
	"issue": TypePKI,
	// SSH: update on sign/<role> (the certificate's ttl pinned) or creds/<role>.
	"ssh": TypeSSH,
	// path: the capabilities named, on the exact path or the folder.
	"path-read":   TypePath,
	"path-update": TypePath,
	"path-write":  TypePath,
}

// DefaultPermission is used by a role that lists no permissions.
var DefaultPermission = map[string]string{
	TypeKV:       "read",
	TypeTransit:  "encrypt-decrypt",
	TypeDatabase: "creds",
	TypePKI:      "issue",
	TypeSSH:      "ssh",
	TypePath:     "path-read",
}

func KnownPermissions() string {
	names := make([]string, 0, len(PermissionTypes))
	for p := range PermissionTypes {
		names = append(names, p)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

func PermissionsFor(resourceType string) []string {
	var out []string
	for p, t := range PermissionTypes {
		if t == resourceType {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

// CoveredBy reports whether ref is one of the role's resources or inside one of its folders.
func CoveredBy(ref Ref, role []Ref) bool {
	for _, r := range role {
		if r.Type != ref.Type || r.Mount != ref.Mount || r.Endpoint != ref.Endpoint {
			continue
		}
		if r.Folder == ref.Folder && r.Path == ref.Path {
			return true
		}
		// A folder covers everything strictly below it (a secret or a narrower folder).
		if r.Folder && (r.Path == "" || strings.HasPrefix(ref.Path, r.Path+"/")) {
			return true
		}
	}
	return false
}

// LeasesOutliveUser reports whether a grant of refs lets its user obtain credentials that
// live on their own (a database user, an SSH one-time password, whatever a path's engine
// leases): those end only when the user's login tokens are revoked with their child
// leases. KV and Transit give nothing that outlives the policy.
func LeasesOutliveUser(refs []Ref) bool {
	for _, r := range refs {
		if r.Type != TypeKV && r.Type != TypeTransit {
			return true
		}
	}
	return false
}
