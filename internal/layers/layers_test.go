package layers

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// projectImports reads every package of the module and the project packages it imports
// (not counting its tests), as the go command sees them.
func projectImports(t *testing.T) map[string][]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports", Module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	imports := map[string][]string{}
	dec := json.NewDecoder(bufio.NewReader(bytes.NewReader(out)))
	for dec.More() {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		from, ok := Relative(p.ImportPath)
		if !ok {
			continue
		}
		imports[from] = nil
		for _, imp := range p.Imports {
			if to, ok := Relative(imp); ok {
				imports[from] = append(imports[from], to)
			}
		}
	}
	if len(imports) < 10 {
		t.Fatalf("go list found only %d packages of the project", len(imports))
	}
	return imports
}

func TestImportsPointOnlyDown(t *testing.T) {
	for _, v := range Check(Floors, projectImports(t)) {
		t.Error(v)
	}
}

// The check itself must fail on an upward import, a sideways one and a package without a
// floor; otherwise the test above could pass whatever the code does.
func TestCheckRefusesUpwardSidewaysAndUnknown(t *testing.T) {
	floors := map[string]int{"backend": 90, "backend/store": 40, "backend/access": 30, "backend/config": 30}
	imports := map[string][]string{
		"backend":        {"backend/store"},             // down: fine
		"backend/store":  {"backend/access", "backend"}, // backend is up
		"backend/access": {"backend/config"},            // same floor: sideways
		"backend/new":    nil,                           // no floor
		"backend/config": {"backend/unknown"},           // imports a package with no floor
	}
	got := Check(floors, imports)
	want := []string{
		"backend/access imports backend/config",
		"backend/config imports backend/unknown",
		"backend/new imports :",
		"backend/store imports backend:",
	}
	if len(got) != len(want) {
		t.Fatalf("got %d violations, want %d: %v", len(got), len(want), got)
	}
	for i, v := range got {
		if !strings.HasPrefix(v.String(), want[i]) {
			t.Errorf("violation %d: got %q, want it to start with %q", i, v, want[i])
		}
	}
}
