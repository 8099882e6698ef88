// Package layers holds the project's house rule in a form a test can check: every package
// has a floor, and a package imports only packages on floors below its own. It owns the
// table of floors and the check; it must not import any package of the project.
package layers

import (
	"fmt"
	"sort"
	"strings"
)

// Module is the module path every package of the project starts with.
const Module = "github.com/apono-io/vault-plugin-apono"

// Floors gives each package of the project (relative to Module) its floor: what Vault
// calls on top, the rules in the middle, Vault's API and small helpers at the bottom.
// A new package gets a floor here, or the check fails.
var Floors = map[string]int{
	// Programs and tests: they may use anything below them.
	"cmd/vault-plugin-apono": 100,
	"e2e":                    100,
	"e2e/cluster":            100,
	"e2e/namespaces":         100,
	"bench/grants":           100,
	"bench/scale":            100,
	"bench/sync":             100,
	"scripts/release":        100,
	"deploy/kubernetes":      100,

	// What Vault calls: path files, the secret type, WAL, periodic work, the factory.
	"backend": 90,

	// The portal's static files and their handler.
	"portal": 20,
	// Below the path layer, by concern.
	"backend/sweep":     70,
	"backend/grants":    60,
	"backend/notify":    50,
	"backend/discovery": 45,
	"backend/owners":    40,
	"backend/store":     35,
	"backend/access":    30,
	"backend/config":    20,
	"backend/resource":  15,
	"backend/metrics":   12,
	"backend/vaultapi":  10,

	// Rules and formats the backend uses.
	"backend/notify/chat":          20,
	"backend/notify/chat/chattest": 21,
	"backend/access/window":        20,
	// The stand-in for Vault in unit tests.
	"backend/vaultapi/vaultfake": 11,

	// Small helpers of no concern of their own.
	"internal/keylock":   5,
	"internal/netaddr":   5,
	"internal/sortedset": 5,
	"internal/textsafe":  5,
	"internal/testvault": 5,
	"internal/testpg":    5,
	"internal/testsshd":  5,
	"internal/testldap":  5,
	"internal/testprom":  5,
	"internal/testproc":  4,
	"internal/procstat":  3,
	"internal/layers":    1,
}

// Violation is one import that points up, sideways or to a package without a floor.
type Violation struct{ From, To, Why string }

func (v Violation) String() string { return fmt.Sprintf("%s imports %s: %s", v.From, v.To, v.Why) }

// Check returns every import of imports (package -> the project packages it imports, both
// relative to Module) that does not point to a lower floor, and every package without one.
func Check(floors map[string]int, imports map[string][]string) []Violation {
	var out []Violation
	froms := make([]string, 0, len(imports))
	for p := range imports {
		froms = append(froms, p)
	}
	sort.Strings(froms)
	for _, from := range froms {
		ff, ok := floors[from]
		if !ok {
			out = append(out, Violation{from, "", "the package has no floor in internal/layers: give it one"})
			continue
		}
		for _, to := range imports[from] {
			tf, ok := floors[to]
			switch {
			case !ok:
				out = append(out, Violation{from, to, "the imported package has no floor in internal/layers"})
			case tf >= ff:
				out = append(out, Violation{from, to, fmt.Sprintf("floor %d may import only floors below it, not %d", ff, tf)})
			}
		}
	}
	return out
}

// Relative returns p relative to Module, and false for a package outside the project.
func Relative(p string) (string, bool) {
	if p == Module {
		return "", true
	}
	rel, ok := strings.CutPrefix(p, Module+"/")
	return rel, ok
}
