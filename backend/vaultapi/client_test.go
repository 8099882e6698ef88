package vaultapi

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	hclog "github.com/hashicorp/go-hclog"
)

func TestVaultAddrRules(t *testing.T) {
	for raw, ok := range map[string]bool{
		"https://vault.example.com:8200": true,
		"https://10.0.0.5:8200":          true,
		"http://127.0.0.1:8200":          true,
		"http://127.8.9.10:8200":         true,
		"http://[::1]:8200":              true,
		"http://localhost:8200":          true,
		"http://LOCALHOST":               true,
		"http://vault.example.com:8200":  false,
		"http://10.0.0.5:8200":           false,
		"http://0.0.0.0:8200":            false,
		"http://localhost.evil.com":      false,
		"ftp://vault":                    false,
		"http://":                        false,
		"https://u:p@vault.example.com":  false,
		"":                               false,
	} {
		msg := CheckAddr(raw)
		if got := msg == ""; got != ok {
			t.Errorf("CheckAddr(%q) ok=%v, want %v (%s)", raw, got, ok, msg)
		}
		if !ok && !strings.Contains(msg, "vault_addr") {
			t.Errorf("CheckAddr(%q): message does not name vault_addr: %s", raw, msg)
		}
	}
}

// recorder is a loopback HTTP server that keeps what arrives.
type recorder struct {
	srv    *httptest.Server
	mu     sync.Mutex
	bodies []string
}

func newRecorder(t *testing.T, h func(w http.ResponseWriter, r *http.Request)) *recorder {
	rec := &recorder{}
	rec.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rec.mu.Lock()
		rec.bodies = append(rec.bodies, r.Method+" "+r.URL.Path+" token="+r.Header.Get("X-Vault-Token")+" "+string(body))
		rec.mu.Unlock()
		if h != nil {
			h(w, r)
		}
	}))
	t.Cleanup(rec.srv.Close)
	return rec
}

func (r *recorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.bodies...)
}

// A Vault address that answers a login (or a token lookup) with a redirect does not get
// the credentials sent on to where the redirect points.
func TestClientNeverFollowsRedirectsWithCredentials(t *testing.T) {
	elsewhere := newRecorder(t, nil)
	redirector := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.srv.URL+r.URL.Path, http.StatusTemporaryRedirect)
	})
	for name, cfg := range map[string]Settings{
		"approle": {Addr: redirector.srv.URL, RoleID: "role-1", SecretID: "secret-xyz", AppRoleMount: "approle"},
		"token":   {Addr: redirector.srv.URL, Token: "hvs.secret-token"},
	} {
		if _, err := New(context.Background(), cfg, hclog.NewNullLogger()); err == nil {
			t.Fatalf("%s: login through a redirect succeeded", name)
		}
	}
	if got := redirector.got(); len(got) == 0 {
		t.Fatal("the redirecting server got no request; the test proves nothing")
	}
	if got := elsewhere.got(); len(got) != 0 {
		t.Fatalf("the redirect target got the credentials: %q", got)
	}
}

// A client for a namespace logs in there and makes every call there (the namespace
// header on each request, the login's included); the unauthenticated health read is the
// server's, in the root namespace. The process's VAULT_NAMESPACE never chooses it.
func TestClientCallsInItsNamespace(t *testing.T) {
	t.Setenv("VAULT_NAMESPACE", "somewhere-else")
	var mu sync.Mutex
	seen := map[string]string{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.URL.Path] = r.Header.Get("X-Vault-Namespace")
		mu.Unlock()
		switch r.URL.Path {
		case "/v1/auth/approle/login":
			_, _ = io.WriteString(w, `{"auth":{"client_token":"t-1","lease_duration":3600,"renewable":true}}`)
		case "/v1/sys/health":
			_, _ = io.WriteString(w, `{"initialized":true,"sealed":false}`)
		default:
			_, _ = io.WriteString(w, `{"data":{}}`)
		}
	}))
	t.Cleanup(srv.Close)
	cfg := Settings{Addr: srv.URL, RoleID: "role-1", SecretID: "secret-xyz", AppRoleMount: "approle", Namespace: "team-a/payments"}
	c, err := New(context.Background(), cfg, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.WritePolicy(context.Background(), "apono-x-0123456789abcdef", `path "kv/data/a" { capabilities = ["read"] }`); err != nil {
		t.Fatal(err)
	}
	if _, err := UnauthenticatedHealth(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := map[string]string{
		"/v1/auth/approle/login":                        "team-a/payments",
		"/v1/sys/policies/acl/apono-x-0123456789abcdef": "team-a/payments",
		"/v1/sys/health":                                "",
	}
	for path, ns := range want {
		if got, ok := seen[path]; !ok || got != ns {
			t.Errorf("%s: namespace header %q (called: %v), want %q", path, got, ok, ns)
		}
	}
}
