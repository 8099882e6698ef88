// Package resource owns what a grant can name: a resource's name as a Vault user types it
// (kv/app/db, kv/app/*, transit/payments), its checks, the mount it resolves to, the
// permissions of its type, and the ACL policy that grants exactly that, built as a Go value
// and rendered as JSON. It calls nothing outside the process: the mounts come from the
// caller.
package resource

import (
	"fmt"
	"sort"
	"strings"

	"github.com/apono-io/vault-plugin-apono/backend/vaultapi"
	"github.com/apono-io/vault-plugin-apono/internal/textsafe"
)

// Resource types this plugin can grant.
const (
	TypeKV      = "kv"
	TypeTransit = "transit"
)

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

// Resolve validates name and finds the mount it belongs to (the longest mount
// path that prefixes it). ownMount is this plugin's mount path ("apono/"), never grantable.
func Resolve(name string, mounts map[string]vaultapi.MountInfo, ownMount string) (Ref, error) {
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
		return Ref{}, fmt.Errorf("resource %q is not under any mounted KV v2 or Transit engine", name)
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
	default:
		kind := m.Type
		if m.Type == "kv" {
			kind = "kv version 1"
		}
		return Ref{}, fmt.Errorf("resource %q is on mount %q of type %s; only KV v2 and Transit can be granted", name, mountPath, kind)
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

// Permission levels and the resource types they apply to.
var PermissionTypes = map[string]string{
	"read":            TypeKV,
	"read-write":      TypeKV,
	"admin":           TypeKV,
	"encrypt":         TypeTransit,
	"decrypt":         TypeTransit,
	"encrypt-decrypt": TypeTransit,
	"sign-verify":     TypeTransit,
}

// DefaultPermission is used by a role that lists no permissions.
var DefaultPermission = map[string]string{
	TypeKV:      "read",
	TypeTransit: "encrypt-decrypt",
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
		if r.Type != ref.Type || r.Mount != ref.Mount {
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
