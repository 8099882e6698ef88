package backend

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// A wrapped request for any of the portal's paths (the page, a file, a missing file, the
// redirects) gets an error response, the one kind of answer Vault never wraps: an
// unauthenticated path must not mint a token per anonymous request.
func TestPortalRefusesWrappedRequests(t *testing.T) {
	e := newTestEnv(t)
	for _, path := range []string{"ui", "ui/app.js", "ui/style.css", "ui/missing.js", "ui/", "ui/index.html"} {
		for _, wrap := range []*logical.RequestWrapInfo{{TTL: 768 * time.Hour}, {TTL: time.Second, Format: "jwt"}} {
			resp, err := e.b.HandleRequest(e.ctx, &logical.Request{
				Operation:  logical.ReadOperation,
				Path:       path,
				Storage:    e.storage,
				MountPoint: "apono/",
				WrapInfo:   wrap,
			})
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			if !resp.IsError() || resp.Redirect != "" || resp.Headers != nil {
				t.Fatalf("%s wrapped for %s: got %#v, want an error response", path, wrap.TTL, resp)
			}
			if msg := resp.Error().Error(); !strings.Contains(msg, "X-Vault-Wrap-TTL") {
				t.Fatalf("%s: the refusal %q does not name the header", path, msg)
			}
		}
	}
	// Unwrapped, the same paths answer as before.
	resp, err := e.do(t, logical.ReadOperation, "ui", nil)
	if err != nil || resp.IsError() || resp.Data[logical.HTTPStatusCode] != 200 {
		t.Fatalf("unwrapped ui: err=%v resp=%#v", err, resp)
	}
}
