package portal

import (
	"net/http"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

func TestResponseServesEachFileRaw(t *testing.T) {
	for _, tc := range []struct{ name, contentType, contains string }{
		{"", "text/html; charset=utf-8", `<script type="module" src="ui/app.js">`},
		{"index.html", "text/html; charset=utf-8", "<title>Access portal</title>"},
		{"app.js", "text/javascript; charset=utf-8", "import "},
		{"style.css", "text/css; charset=utf-8", ":root"},
		{"icon.svg", "image/svg+xml", "<svg"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := Response(tc.name)
			if resp.Secret != nil || resp.Auth != nil {
				t.Fatal("a raw response may carry no secret or auth")
			}
			if got := resp.Data[logical.HTTPStatusCode]; got != http.StatusOK {
				t.Fatalf("status %v", got)
			}
			if got := resp.Data[logical.HTTPContentType]; got != tc.contentType {
				t.Fatalf("content type %v, want %s", got, tc.contentType)
			}
			if got := resp.Data[logical.HTTPCacheControlHeader]; got != "no-store" {
				t.Fatalf("cache control %v", got)
			}
			body, ok := resp.Data[logical.HTTPRawBody].([]byte)
			if !ok {
				t.Fatalf("body is %T, want []byte (a string body is base64-decoded by Vault when it can be)", resp.Data[logical.HTTPRawBody])
			}
			if !strings.Contains(string(body), tc.contains) {
				t.Fatalf("body lacks %q", tc.contains)
			}
		})
	}
}

func TestResponseRefusesEverythingElse(t *testing.T) {
	for _, name := range []string{
		"nope.js", "static/app.js", "../portal.go", "..%2fportal.go", "./app.js", "/app.js", "app.js/",
		"APP.JS", "app.js ", "portal.go", "static", ".", "..", "index.htm", "app.js?x=1", "app.js\x00",
	} {
		t.Run(name, func(t *testing.T) {
			resp := Response(name)
			if got := resp.Data[logical.HTTPStatusCode]; got != http.StatusNotFound {
				t.Fatalf("status %v, want 404", got)
			}
			if got := resp.Data[logical.HTTPContentType]; got != "text/plain; charset=utf-8" {
				t.Fatalf("content type %v", got)
			}
			if got := resp.Data[logical.HTTPCacheControlHeader]; got != "no-store" {
				t.Fatalf("cache control %v", got)
			}
		})
	}
}

func TestNamesAreFlatAndKnown(t *testing.T) {
	names := Names()
	sort.Strings(names)
	want := []string{"api.js", "app.js", "dom.js", "format.js", "icon.svg", "index.html", "signin.js", "style.css", "views.js"}
	if strings.Join(names, ",") != strings.Join(want, ",") {
		t.Fatalf("served files %v, want %v (add new files to this list on purpose)", names, want)
	}
}

// The page must run under a CSP without inline script or style and without other origins,
// and must never turn data into markup.
func TestFilesHoldNoInlineCodeOrMarkupSinks(t *testing.T) {
	sinks := regexp.MustCompile(`innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|setAttribute\(\s*['"](on|style|src|srcdoc)|\.style\s*=|javascript:`)
	external := regexp.MustCompile(`(?i)(src|href)=["']?(https?:)?//`)
	for name, f := range files {
		body := string(f.body)
		if m := sinks.FindString(body); m != "" {
			t.Errorf("%s uses %q", name, m)
		}
		if m := external.FindString(body); m != "" {
			t.Errorf("%s loads from another origin: %q", name, m)
		}
		if strings.HasSuffix(name, ".html") {
			if regexp.MustCompile(`<script(?:\s[^>]*)?>[^<]`).MatchString(body) {
				t.Errorf("%s has an inline script", name)
			}
			if regexp.MustCompile(`<style|\sstyle=|\son[a-z]+=`).MatchString(body) {
				t.Errorf("%s has inline style or an inline handler", name)
			}
		}
	}
}

// Every module the page imports is a file the portal serves.
func TestImportsResolve(t *testing.T) {
	imp := regexp.MustCompile(`from '\./([a-z]+\.js)'`)
	for name, f := range files {
		for _, m := range imp.FindAllStringSubmatch(string(f.body), -1) {
			if _, ok := files[m[1]]; !ok {
				t.Errorf("%s imports %s, which is not served", name, m[1])
			}
		}
	}
}
