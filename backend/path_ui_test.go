package backend

import (
	"net/http"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

func TestPortalPaths(t *testing.T) {
	e := newTestEnv(t)
	for _, tc := range []struct {
		path        string
		status      int
		contentType string
	}{
		{"ui", http.StatusOK, "text/html; charset=utf-8"},
		{"ui/app.js", http.StatusOK, "text/javascript; charset=utf-8"},
		{"ui/style.css", http.StatusOK, "text/css; charset=utf-8"},
		{"ui/missing.js", http.StatusNotFound, "text/plain; charset=utf-8"},
		{"ui/../config", http.StatusNotFound, "text/plain; charset=utf-8"},
		{"ui/static/app.js", http.StatusNotFound, "text/plain; charset=utf-8"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			resp, err := e.do(t, logical.ReadOperation, tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Data[logical.HTTPStatusCode] != tc.status || resp.Data[logical.HTTPContentType] != tc.contentType {
				t.Fatalf("status %v, content type %v", resp.Data[logical.HTTPStatusCode], resp.Data[logical.HTTPContentType])
			}
		})
	}
	// The page's links are relative to <mount>/ui: ui/ and ui/index.html send the browser there.
	for _, path := range []string{"ui/", "ui/index.html"} {
		resp, err := e.do(t, logical.ReadOperation, path, nil)
		if err != nil || resp.Redirect != "/v1/apono/ui" {
			t.Fatalf("%s: err=%v redirect=%q", path, err, resp.Redirect)
		}
	}
}

func TestPortalPathsAreUnauthenticated(t *testing.T) {
	e := newTestEnv(t)
	special := e.b.SpecialPaths()
	if strings.Join(special.Unauthenticated, ",") != "ui,ui/*" {
		t.Fatalf("unauthenticated paths %v, want ui and ui/*: the page loads before anyone signs in", special.Unauthenticated)
	}
}
