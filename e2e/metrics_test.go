package e2e

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/apono-io/vault-plugin-apono/internal/testprom"
)

// metricsGet reads apono/metrics as a scraper does, with token in "Authorization: Bearer".
func (e *env) metricsGet(t *testing.T, token string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.s.URL()+"/v1/apono/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(body)
}

// Debian's Prometheus scrapes apono/metrics through Vault with a token whose only policy
// is read on it, and sees a grant issued and revoked in the test.
func TestMetricsScrapedByPrometheus(t *testing.T) {
	t.Parallel()
	e := shared
	role := uniqueName(t)
	e.root(t, "kv", "put", "kv/"+role+"/db", "v=1")
	e.root(t, "write", "apono/roles/"+role, "resources=kv/"+role+"/db", "ttl=5m")
	e.writePolicy(t, "metrics-reader", `path "apono/metrics" { capabilities = ["read"] }`)
	token := strings.TrimSpace(e.root(t, "token", "create", "-policy=metrics-reader", "-field=token", "-ttl=30m"))
	other := strings.TrimSpace(e.root(t, "token", "create", "-policy=default", "-field=token", "-ttl=30m"))

	// Vault's ACL gates it: no token, or a token without the policy, is refused.
	for name, tok := range map[string]string{"no token": "", "a token without the policy": other} {
		if code, _, body := e.metricsGet(t, tok); code != http.StatusForbidden {
			t.Fatalf("%s: %d, want 403\n%s", name, code, body)
		}
	}
	code, contentType, body := e.metricsGet(t, token)
	if code != http.StatusOK || !strings.HasPrefix(contentType, "text/plain; version=0.0.4") {
		t.Fatalf("apono/metrics: %d %q\n%s", code, contentType, body)
	}
	for _, want := range []string{"# TYPE apono_grants_live gauge", "# TYPE apono_indexes_ready gauge", "apono_indexes_ready 1"} {
		if !strings.Contains(body, want) {
			t.Fatalf("apono/metrics lacks %q:\n%s", want, body)
		}
	}

	u, err := url.Parse(e.s.URL())
	if err != nil {
		t.Fatal(err)
	}
	prom := testprom.Start(t, testprom.Target{Address: u.Host, MetricsPath: "/v1/apono/metrics", BearerToken: token})
	prom.WaitFor(t, `up{job="apono"}`, 30*time.Second, func(v float64) bool { return v == 1 })
	issued := `sum(apono_grants_issued_total{job="apono"}) or vector(0)`
	before := prom.WaitFor(t, issued, 30*time.Second, func(float64) bool { return true })
	g := e.grant(t, role)
	after := prom.WaitFor(t, issued, 30*time.Second, func(v float64) bool { return v >= before+1 })
	prom.WaitFor(t, `apono_grants_live{job="apono"}`, 30*time.Second, func(v float64) bool { return v >= 1 })
	prom.WaitFor(t, `sum(apono_grant_issue_seconds_count{job="apono"})`, 30*time.Second, func(v float64) bool { return v >= 1 })
	e.root(t, "lease", "revoke", g.LeaseID)
	ended := prom.WaitFor(t, `sum(apono_grants_ended_total{job="apono",ended="revoked"})`, 30*time.Second, func(v float64) bool { return v >= 1 })
	t.Logf("Prometheus saw grants issued go from %v to %v and %v revoked", before, after, ended)
}
