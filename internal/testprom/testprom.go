// Package testprom starts a real Prometheus (Debian's prometheus package) for the tests,
// scraping one target every second, and queries it over its HTTP API. A missing
// prometheus fails the test; it never skips it.
package testprom

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/apono-io/vault-plugin-apono/internal/testproc"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Server is one running Prometheus.
type Server struct {
	URL string // http://127.0.0.1:<port>
	Dir string

	cmd *exec.Cmd
	log *syncBuffer
}

// Target is what Prometheus scrapes: Address is host:port, MetricsPath the path, and
// BearerToken goes in "Authorization: Bearer" (from a file, as operators keep it).
type Target struct {
	Address, MetricsPath, BearerToken string
}

// Start starts Prometheus scraping target every second; the test's cleanup stops it.
func Start(t testing.TB, target Target) *Server {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatalf("testprom: prometheus is not installed (Debian package prometheus; scripts/system-deps.sh installs it): %v", err)
	}
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(target.BearerToken), 0o600); err != nil {
		t.Fatal(err)
	}
	config := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: apono
    metrics_path: %s
    authorization:
      type: Bearer
      credentials_file: %s
    static_configs:
      - targets: [%q]
`, target.MetricsPath, tokenFile, target.Address)
	configPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(configPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	port, err := testproc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{URL: "http://127.0.0.1:" + strconv.Itoa(port), Dir: dir, log: &syncBuffer{}}
	s.cmd = exec.Command(bin, "--config.file="+configPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address=127.0.0.1:"+strconv.Itoa(port))
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("testprom: starting prometheus: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = s.cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = s.cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("testprom: prometheus's log:\n%s", s.log.String())
		}
	})
	begin := time.Now()
	for {
		resp, err := http.Get(s.URL + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case <-exited:
			t.Fatalf("testprom: prometheus exited at start:\n%s", s.log.String())
		default:
		}
		if time.Since(begin) > 30*time.Second {
			t.Fatalf("testprom: prometheus not ready after 30s:\n%s", s.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("testprom: %s ready on %s in %s", version(bin), s.URL, time.Since(begin).Round(time.Millisecond))
	return s
}

// Query runs an instant PromQL query and returns the value of its one sample; ok is
// false when the result is empty.
func (s *Server) Query(t testing.TB, q string) (v float64, ok bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/api/v1/query?query="+url.QueryEscape(q), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("testprom: query %q: %v", q, err)
	}
	defer resp.Body.Close()
	var out struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Value [2]interface{} `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Status != "success" {
		t.Fatalf("testprom: query %q: status %q %s (%v)", q, out.Status, out.Error, err)
	}
	if len(out.Data.Result) == 0 {
		return 0, false
	}
	if len(out.Data.Result) > 1 {
		t.Fatalf("testprom: query %q has %d samples; want one", q, len(out.Data.Result))
	}
	str, _ := out.Data.Result[0].Value[1].(string)
	v, err = strconv.ParseFloat(str, 64)
	if err != nil {
		t.Fatalf("testprom: query %q: value %q: %v", q, str, err)
	}
	return v, true
}

// WaitFor polls q until cond holds for its value, and returns it.
func (s *Server) WaitFor(t testing.TB, q string, timeout time.Duration, cond func(v float64) bool) float64 {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		v, ok := s.Query(t, q)
		if ok && cond(v) {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("testprom: %q is %v (present %v) after %s\n%s", q, v, ok, timeout, s.targets(t))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// targets is the scrape status, for failure messages.
func (s *Server) targets(t testing.TB) string {
	resp, err := http.Get(s.URL + "/api/v1/targets")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	return buf.String()
}

func version(bin string) string {
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		return "prometheus"
	}
	first, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(first)
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
