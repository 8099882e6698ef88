// Package portal is the access portal's static page, embedded in the plugin and served as raw responses.
package portal

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"

	"github.com/hashicorp/vault/sdk/logical"
)

//go:embed static
var static embed.FS

// files maps each servable name ("index.html", "app.js") to its body and content type.
// It is built once from the embedded folder: a request names a key of this map or gets a
// 404, so no path a client sends ever reaches a file system.
var files = loadFiles()

type file struct {
	body        []byte
	contentType string
}

// contentTypes are the only kinds of file the portal serves; a module script must come as
// JavaScript or the browser refuses to run it.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".svg":  "image/svg+xml",
}

func loadFiles() map[string]file {
	out := map[string]file{}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ct, ok := contentTypes[path.Ext(p)]
		if !ok {
			return nil
		}
		body, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		out[strings.TrimPrefix(p, "static/")] = file{body: body, contentType: ct}
		return nil
	})
	if err != nil {
		panic("portal: reading the embedded files: " + err.Error())
	}
	return out
}

// Index is the name of the page itself, served at <mount>/ui.
const Index = "index.html"

// Names lists the files the portal serves, for tests and help text.
func Names() []string {
	out := make([]string, 0, len(files))
	for name := range files {
		out = append(out, name)
	}
	return out
}

// Response answers a GET of <mount>/ui/<name> ("" or Index for the page) with the file as
// a raw response: body, content type, status, Cache-Control: no-store and the headers that
// forbid framing. Any other name, including anything with a slash, dot segment or folder,
// is a plain-text 404.
func Response(name string) *logical.Response {
	if name == "" {
		name = Index
	}
	f, ok := files[name]
	if !ok {
		return raw(http.StatusNotFound, "text/plain; charset=utf-8", []byte("not found\n"))
	}
	return raw(http.StatusOK, f.contentType, f.body)
}

// frameHeaders refuse to let another site frame the portal (clickjacking). Vault drops a
// plugin's response headers unless the mount's allowed_response_headers names them, so
// they take effect once the operator tunes the mount (see the README); the page itself
// also refuses to run inside a frame (app.js).
func frameHeaders() map[string][]string {
	return map[string][]string{
		"X-Frame-Options":         {"DENY"},
		"Content-Security-Policy": {"frame-ancestors 'none'"},
	}
}

func raw(status int, contentType string, body []byte) *logical.Response {
	return &logical.Response{Headers: frameHeaders(), Data: map[string]interface{}{
		logical.HTTPStatusCode:  status,
		logical.HTTPContentType: contentType,
		// A []byte, not a string: Vault base64-decodes a string body when it can, which
		// would garble a file that happens to be valid base64.
		logical.HTTPRawBody:            body,
		logical.HTTPCacheControlHeader: "no-store",
	}}
}
