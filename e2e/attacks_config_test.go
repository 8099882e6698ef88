package e2e

import (
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apono-io/vault-plugin-apono/internal/testvault"
)

// Attacks on the plugin's config from someone allowed to write it but not to read it
// (issue 23): pointing the plugin's login at a server of theirs to collect the stored
// credentials, and aiming notifications at addresses only Vault's host can reach.

// listenerLog is a loopback HTTP server that records every connection and request that
// reaches it; handler, when set, answers them.
type listenerLog struct {
	srv *httptest.Server

	mu       sync.Mutex
	conns    int
	requests []string // method, path, X-Vault-Token and body of each
}

func newListenerLog(t *testing.T, handler http.HandlerFunc) *listenerLog {
	t.Helper()
	l := &listenerLog{}
	l.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		l.mu.Lock()
		l.requests = append(l.requests, r.Method+" "+r.URL.Path+" token="+r.Header.Get("X-Vault-Token")+" "+string(body))
		l.mu.Unlock()
		if handler != nil {
			handler(w, r)
			return
		}
		http.Error(w, `{"errors":["permission denied"]}`, http.StatusForbidden)
	}))
	l.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			l.mu.Lock()
			l.conns++
			l.mu.Unlock()
		}
	}
	l.srv.Start()
	t.Cleanup(l.srv.Close)
	return l
}

func (l *listenerLog) seen() (conns int, requests []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.conns, append([]string(nil), l.requests...)
}

// badRequestAs expects a 400 whose message holds every one of want, for a write with token.
func (e *env) badRequestAs(t *testing.T, token string, want []string, args ...string) string {
	t.Helper()
	stderr := e.mustFail(t, token, args...)
	if !strings.Contains(stderr, "Code: 400") {
		t.Fatalf("vault %s: want a 400, got:\n%s", strings.Join(args, " "), stderr)
	}
	for _, w := range want {
		if !strings.Contains(stderr, w) {
			t.Fatalf("vault %s: error does not mention %q:\n%s", strings.Join(args, " "), w, stderr)
		}
	}
	return stderr
}

// configView is what a config read shows of where and how the plugin connects.
func (e *env) configView(t *testing.T, mount string) string {
	t.Helper()
	d := e.jsonOut(t, "", "read", mount+"/config")["data"].(map[string]interface{})
	return jsonString(t, map[string]interface{}{
		"vault_addr": d["vault_addr"], "role_id": d["role_id"], "approle_mount": d["approle_mount"], "ca_cert": d["ca_cert"],
		"tls_server_name": d["tls_server_name"], "tls_skip_verify": d["tls_skip_verify"], "secret_id_set": d["secret_id_set"],
		"token_set": d["token_set"], "notify_url": d["notify_url"], "notify_allowed_hosts": d["notify_allowed_hosts"],
	})
}

// A person whose policy allows only update on <mount>/config (no read) tries to make the
// plugin send its stored AppRole secret_id, or its stored token, to a listener of theirs:
// by a new vault_addr, and by changes of approle_mount, tls_skip_verify, ca_cert and
// tls_server_name. Each write is a 400 saying the credentials must be sent again, and
// the listener sees no connection at all. vault_addr over http:// to a non-loopback host
// is refused for what it is, before anything connects. With credentials sent along to a
// wrong address (one that redirects elsewhere) the login fails, the redirect is not
// followed, the old config stays and grants still issue.
func TestAttackConfigWriteNeverSendsStoredCredentials(t *testing.T) {
	t.Parallel()
	e := shared
	const mount, tokenMount = "apono-cfgcreds", "apono-cfgcreds-tok"
	secretID := e.newSecretID(t)
	e.root(t, "secrets", "enable", "-path="+mount, "-plugin-version="+e.setup.Version, testvault.PluginName)
	e.root(t, "write", mount+"/config", "vault_addr="+e.s.URL(), "role_id="+e.setup.RoleID, "secret_id="+secretID)
	// A second mount logs in with a token of the management policy instead.
	mgmtToken := strings.TrimSpace(e.root(t, "token", "create", "-field=token", "-policy="+testvault.PolicyName, "-ttl=1h"))
	e.root(t, "secrets", "enable", "-path="+tokenMount, "-plugin-version="+e.setup.Version, testvault.PluginName)
	e.root(t, "write", tokenMount+"/config", "vault_addr="+e.s.URL(), "token="+mgmtToken)
	role := uniqueName(t)
	e.root(t, "kv", "put", "kv/"+role+"/db", "v=1")
	e.root(t, "write", mount+"/roles/"+role, "resources=kv/"+role+"/db", "ttl=5m")
	e.root(t, "write", tokenMount+"/roles/"+role, "resources=kv/"+role+"/db", "ttl=5m")

	e.writePolicy(t, "cfgcreds-updater", `
path "`+mount+`/config" { capabilities = ["update"] }
path "`+tokenMount+`/config" { capabilities = ["update"] }
`)
	mallory := e.person(t, "cfgcreds-mallory", "cfgcreds-updater")
	// The policy does what it says: updates pass, reads do not.
	e.s.MustCLI(t, mallory.token, "write", mount+"/config", "access_details=use vault login -method=userpass")
	if stderr := e.mustFail(t, mallory.token, "read", mount+"/config"); !strings.Contains(stderr, "403") {
		t.Fatalf("mallory can read the config; the test proves nothing:\n%s", stderr)
	}
	before := map[string]string{mount: e.configView(t, mount), tokenMount: e.configView(t, tokenMount)}

	trap := newListenerLog(t, nil)
	tlsSrv := httptest.NewTLSServer(http.NotFoundHandler())
	tlsSrv.Close()
	attackerCA := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsSrv.Certificate().Raw}))
	caFile := t.TempDir() + "/ca.pem"
	if err := os.WriteFile(caFile, []byte(attackerCA), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{mount, tokenMount} {
		for _, tc := range []struct{ field, arg string }{
			{"vault_addr", "vault_addr=" + trap.srv.URL},
			{"vault_addr", "vault_addr=" + strings.Replace(trap.srv.URL, "127.0.0.1", "localhost", 1)},
			{"approle_mount", "approle_mount=approle-mallory"},
			{"tls_skip_verify", "tls_skip_verify=true"},
			{"ca_cert", "ca_cert=@" + caFile},
			{"tls_server_name", "tls_server_name=vault.mallory.example"},
		} {
			e.badRequestAs(t, mallory.token, []string{tc.field, "send them again in the same write", "nothing was saved"},
				"write", m+"/config", tc.arg)
		}
	}
	// With one half of the AppRole pair the stored other half would still go: refused too.
	e.badRequestAs(t, mallory.token, []string{"vault_addr", "send them again"}, "write", mount+"/config", "vault_addr="+trap.srv.URL, "role_id=guess")
	e.badRequestAs(t, mallory.token, []string{"vault_addr", "send them again"}, "write", mount+"/config", "vault_addr="+trap.srv.URL, "secret_id=guess")
	if conns, reqs := trap.seen(); conns != 0 || len(reqs) != 0 {
		t.Fatalf("the attacker's listener got %d connections and requests %q", conns, reqs)
	}

	// http:// to a host that is not loopback: refused as such, before any connection (the
	// message is the address rule's, which runs before the credentials rule and login).
	e.badRequestAs(t, mallory.token, []string{"vault_addr must be an https:// URL, or http:// to a loopback address", "not a loopback address"},
		"write", mount+"/config", "vault_addr=http://vault.example.com:8200")
	for m, want := range before {
		if got := e.configView(t, m); got != want {
			t.Fatalf("%s: refused writes changed the config:\nbefore %s\nafter  %s", m, want, got)
		}
	}

	// Credentials sent along to a wrong address: that server gets what was sent (the
	// writer's to give), answers with a redirect, and the plugin follows it nowhere.
	elsewhere := newListenerLog(t, nil)
	redirector := newListenerLog(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.srv.URL+r.URL.Path, http.StatusTemporaryRedirect)
	})
	e.badRequestAs(t, mallory.token, []string{"cannot log in", "nothing was saved"},
		"write", mount+"/config", "vault_addr="+redirector.srv.URL, "role_id="+e.setup.RoleID, "secret_id=mallorys-own-guess")
	e.badRequestAs(t, mallory.token, []string{"cannot log in", "nothing was saved"},
		"write", tokenMount+"/config", "vault_addr="+redirector.srv.URL, "token=hvs.mallorys-own-guess")
	_, reqs := redirector.seen()
	if len(reqs) == 0 {
		t.Fatal("the wrong address got no login; the test proves nothing")
	}
	for _, r := range reqs {
		if strings.Contains(r, secretID) || strings.Contains(r, mgmtToken) {
			t.Fatalf("the stored credentials reached the wrong address: %q", r)
		}
	}
	if conns, reqs := elsewhere.seen(); conns != 0 {
		t.Fatalf("a redirect was followed: the redirect target got %d connections, %q", conns, reqs)
	}
	for m, want := range before {
		if got := e.configView(t, m); got != want {
			t.Fatalf("%s: a failed login changed the config:\nbefore %s\nafter  %s", m, want, got)
		}
	}
	// The old config still works, on both mounts.
	for _, m := range []string{mount, tokenMount} {
		g := e.grantAs(t, "", m+"/grants/"+role)
		if _, err := e.login(g.Username, g.Password); err != nil {
			t.Fatalf("%s: a grant after the refused writes does not log in: %v", m, err)
		}
		e.root(t, "lease", "revoke", "-sync", g.LeaseID)
	}
	if conns, _ := trap.seen(); conns != 0 {
		t.Fatalf("the attacker's listener got %d connections", conns)
	}
	e.assertLogHasNone(t, map[string]string{"stored secret_id": secretID, "stored token": mgmtToken})
}

// Notification targets and notify_url pointed at a cloud metadata address, a private
// address, a link-local IPv6 address or Vault's own listener are refused with a 400 that
// names the field and what is allowed, for a person who may write targets and the config.
// With notify_allowed_hosts (config) naming 10.0.0.1, a target there is accepted (and
// deleted before any event could go to it); the list never opens link-local. A loopback
// receiver on another port still gets its events.
func TestAttackNotifyTargetsRefusePrivateAndLinkLocal(t *testing.T) {
	t.Parallel()
	e := shared
	const mount = "apono-cfgnotify"
	e.root(t, "secrets", "enable", "-path="+mount, "-plugin-version="+e.setup.Version, testvault.PluginName)
	e.root(t, "write", mount+"/config", "vault_addr="+e.s.URL(), "role_id="+e.setup.RoleID, "secret_id="+e.newSecretID(t))
	vaultURL, err := url.Parse(e.s.URL())
	if err != nil {
		t.Fatal(err)
	}
	vaultPort := vaultURL.Port()

	e.writePolicy(t, "cfgnotify-writer", `
path "`+mount+`/config" { capabilities = ["update"] }
path "`+mount+`/notify/*" { capabilities = ["create", "update", "read", "delete"] }
path "`+mount+`/notify" { capabilities = ["list"] }
`)
	mallory := e.person(t, "cfgnotify-mallory", "cfgnotify-writer")
	before := e.configView(t, mount)

	for _, bad := range []struct{ url, want string }{
		{"https://10.0.0.1/hook", "private address"},
		{"https://169.254.169.254/latest/meta-data/iam/security-credentials/", "link-local"},
		{"https://[fe80::1]/x", "link-local"},
		{"http://127.0.0.1:" + vaultPort + "/v1/sys/seal", "Vault's own listener"},
		{"http://localhost:" + vaultPort + "/v1/sys/seal", "Vault's own listener"},
		{"https://100.100.100.200/latest/meta-data", "private address"},
	} {
		e.badRequestAs(t, mallory.token, []string{"url: ", bad.want}, "write", mount+"/notify/exfil", "url="+bad.url)
		e.badRequestAs(t, mallory.token, []string{"notify_url: ", bad.want}, "write", mount+"/config", "notify_url="+bad.url)
	}
	if keys := e.listAll(t, mount+"/notify"); len(keys) != 0 {
		t.Fatalf("refused writes made targets: %v", keys)
	}
	if got := e.configView(t, mount); got != before {
		t.Fatalf("refused writes changed the config:\nbefore %s\nafter  %s", before, got)
	}
	// The allow-list never opens link-local.
	e.badRequestAs(t, mallory.token, []string{"notify_allowed_hosts", "never go"}, "write", mount+"/config", "notify_allowed_hosts=169.254.169.254")

	// Listed, 10.0.0.1 is accepted; the list is then the whole list. No event is made on
	// this mount while the target exists, and it is deleted at once: nothing is sent there.
	e.root(t, "write", mount+"/config", "notify_allowed_hosts=10.0.0.1")
	e.s.MustCLI(t, mallory.token, "write", mount+"/notify/internal", "url=https://10.0.0.1/hook")
	e.badRequestAs(t, mallory.token, []string{"url: ", "not in notify_allowed_hosts"}, "write", mount+"/notify/other", "url=https://10.0.0.2/hook")
	e.badRequestAs(t, mallory.token, []string{"url: ", "link-local"}, "write", mount+"/notify/other", "url=https://169.254.169.254/latest")
	// Narrowing the list under the target is refused.
	e.badRequestAs(t, "", []string{"notify/internal url", "not in notify_allowed_hosts"}, "write", mount+"/config", "notify_allowed_hosts=hooks.example.com")
	if v := e.jsonOut(t, "", "read", mount+"/notify/internal")["data"].(map[string]interface{}); v["events_pending"] != float64(0) {
		t.Fatalf("events wait for 10.0.0.1: %v", v)
	}
	e.s.MustCLI(t, mallory.token, "delete", mount+"/notify/internal")
	e.root(t, "write", mount+"/config", "notify_allowed_hosts=")
	if d := e.jsonOut(t, "", "read", mount+"/config")["data"].(map[string]interface{}); jsonString(t, d["notify_allowed_hosts"]) != "[]" {
		t.Fatalf("notify_allowed_hosts not cleared: %v", d["notify_allowed_hosts"])
	}

	// A loopback receiver on another port still gets events, through the checked dialer.
	const key = "cfgnotify-signing-key"
	hook := newEventReceiver(key)
	t.Cleanup(hook.srv.Close)
	e.s.MustCLI(t, mallory.token, "write", mount+"/notify/local", "url="+hook.URL(), "secret="+key, "events=grant.issued")
	role := uniqueName(t)
	e.root(t, "kv", "put", "kv/"+role+"/db", "v=1")
	e.root(t, "write", mount+"/roles/"+role, "resources=kv/"+role+"/db", "ttl=5m")
	g := e.grantAs(t, "", mount+"/grants/"+role)
	hook.waitFor(t, 60*time.Second, "grant.issued", func(f map[string]interface{}) bool { return f["grant_id"] == g.GrantID })
	e.root(t, "lease", "revoke", "-sync", g.LeaseID)
}
