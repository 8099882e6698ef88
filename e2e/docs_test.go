package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/apono-io/vault-plugin-apono/internal/testvault"
)

// The README and docs/ are what an operator follows: every link in them must lead
// somewhere, and every plugin path their commands name must be one the running plugin
// serves (its OpenAPI document, read from the real server).

// docFiles returns README.md and docs/*.md, relative to the repository root.
func docFiles(t *testing.T) (root string, files []string) {
	t.Helper()
	root, err := testvault.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	files = []string{"README.md"}
	more, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range more {
		rel, _ := filepath.Rel(root, f)
		files = append(files, rel)
	}
	if len(files) < 5 {
		t.Fatalf("want README.md and the docs/ topics, found %v", files)
	}
	return root, files
}

var (
	mdLinkRe    = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	mdHeadingRe = regexp.MustCompile(`(?m)^#{1,6} (.+)$`)
	// A command of the server's CLI on a path of the plugin's mount, as the docs write it.
	docCommandRe = regexp.MustCompile("(?:vault|bao)\\s+(?:read|write|list|delete|path-help)\\s+(?:-\\S+\\s+)*apono/([^\\s`'\"|)]+)")
)

// headingAnchors returns the anchors GitHub makes of a markdown file's headings
// (outside code blocks).
func headingAnchors(text string) map[string]bool {
	anchors := map[string]bool{}
	inCode := false
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "```") {
			inCode = !inCode
			continue
		}
		if inCode {
			continue
		}
		m := mdHeadingRe.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		var b strings.Builder
		for _, r := range strings.ToLower(m[1]) {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9'):
				b.WriteRune(r)
			}
		}
		anchors[b.String()] = true
	}
	return anchors
}

func TestDocsLinksResolve(t *testing.T) {
	root, files := docFiles(t)
	checked := 0
	for _, f := range files {
		text := readFile(t, filepath.Join(root, f))
		for _, m := range mdLinkRe.FindAllStringSubmatch(text, -1) {
			target := m[1]
			if strings.HasPrefix(target, "http://") || strings.HasPrefix(target, "https://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			file, anchor, _ := strings.Cut(target, "#")
			path := filepath.Join(root, f)
			if file != "" {
				path = filepath.Join(filepath.Dir(path), file)
				if _, err := os.Stat(path); err != nil {
					t.Errorf("%s: link %q leads nowhere: %v", f, target, err)
					continue
				}
			}
			if anchor != "" && !headingAnchors(readFile(t, path))[anchor] {
				t.Errorf("%s: link %q: %s has no heading with anchor #%s", f, target, filepath.Base(path), anchor)
			}
			checked++
		}
	}
	if checked < 20 {
		t.Fatalf("checked only %d links: the link pattern no longer matches the docs", checked)
	}
}

// openAPIPatterns returns a regexp per path of the plugin's mount in the real server's
// OpenAPI document, relative to the mount.
func (e *env) openAPIPatterns(t *testing.T) []*regexp.Regexp {
	t.Helper()
	doc, err := e.s.Client.Logical().Read("sys/internal/specs/openapi")
	if err != nil || doc == nil {
		t.Fatalf("reading the OpenAPI document: %v", err)
	}
	paths, _ := doc.Data["paths"].(map[string]interface{})
	param := regexp.MustCompile(`\\\{[^}]*\\\}`)
	var out []*regexp.Regexp
	for p := range paths {
		rel, ok := strings.CutPrefix(p, "/apono/")
		if !ok {
			continue
		}
		rel = strings.TrimSuffix(rel, "/") // a LIST path: grants/
		quoted := regexp.QuoteMeta(rel)
		// owners/{pattern} takes a resource name or prefix, slashes included (owners/(?P<pattern>.+)).
		quoted = strings.ReplaceAll(quoted, `\{pattern\}`, `.+`)
		out = append(out, regexp.MustCompile("^"+param.ReplaceAllString(quoted, `[^/]+`)+"/?$"))
	}
	if len(out) < 20 {
		t.Fatalf("the OpenAPI document lists only %d paths of apono/", len(out))
	}
	return out
}

func TestDocsCommandsNamePathsThePluginServes(t *testing.T) {
	root, files := docFiles(t)
	patterns := shared.openAPIPatterns(t)
	// What the docs write in place of a value: <role>, $REQ, ${ID}, ... .
	placeholder := regexp.MustCompile(`<[^>/]+>|\$\{?[A-Za-z_]+\}?|\.\.\.`)
	named := map[string][]string{}
	for _, f := range files {
		for _, m := range docCommandRe.FindAllStringSubmatch(readFile(t, filepath.Join(root, f)), -1) {
			p := strings.TrimRight(m[1], ".,;:")
			named[p] = append(named[p], f)
		}
	}
	if len(named) < 15 {
		t.Fatalf("the docs name only %d plugin paths in commands: the command pattern no longer matches them", len(named))
	}
	var keys []string
	for p := range named {
		keys = append(keys, p)
	}
	sort.Strings(keys)
	for _, p := range keys {
		if placeholder.ReplaceAllString(p, "") == "" {
			continue // apono/<path>: any path
		}
		concrete := placeholder.ReplaceAllString(p, "x")
		served := false
		for _, re := range patterns {
			if re.MatchString(concrete) {
				served = true
				break
			}
		}
		if !served {
			t.Errorf("apono/%s (in %s) is not a path the plugin serves", p, strings.Join(named[p], ", "))
		}
	}
}
