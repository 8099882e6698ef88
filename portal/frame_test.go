package portal

import (
	"strings"
	"testing"
)

// Every answer, the 404 too, carries the headers that forbid framing (Vault passes them on
// when the mount's allowed_response_headers names them).
func TestResponsesForbidFraming(t *testing.T) {
	for _, name := range append(Names(), "", "missing.js") {
		resp := Response(name)
		if got := strings.Join(resp.Headers["X-Frame-Options"], ","); got != "DENY" {
			t.Errorf("%q: X-Frame-Options %q", name, got)
		}
		if got := strings.Join(resp.Headers["Content-Security-Policy"], ","); got != "frame-ancestors 'none'" {
			t.Errorf("%q: Content-Security-Policy %q", name, got)
		}
	}
}
