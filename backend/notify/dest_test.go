package notify

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/apono-io/vault-plugin-apono/backend/config"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"
)

func policyFor(t *testing.T, vaultAddr string, allowed ...string) *Policy {
	t.Helper()
	norm, _, msg := ParseAllowedHosts(allowed)
	if msg != "" {
		t.Fatal(msg)
	}
	return PolicyOf(&config.Config{VaultAddr: vaultAddr, NotifyAllowedHosts: strings.Join(norm, ",")})
}

// Nothing here connects anywhere: the rules are applied to literal URLs and addresses.
func TestNotifyDestinationRules(t *testing.T) {
	def := policyFor(t, "http://127.0.0.1:8200")
	listed := policyFor(t, "https://vault.example.com:8200", "10.0.0.1", "hooks.internal.example.com:8443", "192.168.5.0/24", "[fd00::5]:443", "127.0.0.1")
	cases := []struct {
		p    *Policy
		url  string
		want string // "" = allowed, else part of the message
	}{
		{def, "https://hooks.slack.com/services/x", ""},
		{def, "https://93.184.216.34/x", ""},
		{def, "http://127.0.0.1:9999/hook", ""},
		{def, "http://localhost:9999/hook", ""},
		{def, "http://[::1]:9999/hook", ""},
		{def, "https://10.0.0.1/x", "private address"},
		{def, "https://172.16.3.4/x", "private address"},
		{def, "https://192.168.1.1/x", "private address"},
		{def, "https://100.100.100.200/latest", "private address"},
		{def, "https://[fd00::1]/x", "private address"},
		{def, "https://[::ffff:10.0.0.1]/x", "private address"},
		{def, "https://169.254.169.254/latest/meta-data", "link-local"},
		{def, "https://[fe80::1]/x", "link-local"},
		{def, "https://0.0.0.0/x", "link-local, unspecified"},
		{def, "https://[::]/x", "unspecified"},
		{def, "https://224.0.0.1/x", "multicast"},
		{def, "https://255.255.255.255/x", "broadcast"},
		{def, "http://127.0.0.1:8200/v1/sys/seal", "Vault's own listener"},
		{def, "http://localhost:8200/", "Vault's own listener"},
		{def, "http://127.0.0.2:8200/", "Vault's own listener"},
		{def, "http://[::1]:8200/", "Vault's own listener"},
		{def, "http://10.0.0.1/x", "not a loopback address"},
		{listed, "https://vault.example.com:8200/v1/sys", "Vault's own listener"},
		{listed, "http://127.0.0.1:8200/", "Vault's own listener"},
		{listed, "https://vault.example.com/hook", "not in notify_allowed_hosts"},
		{listed, "https://10.0.0.1/x", ""},
		{listed, "https://10.0.0.1:9443/x", ""},
		{listed, "https://10.0.0.2/x", "not in notify_allowed_hosts"},
		{listed, "https://192.168.5.77/x", ""},
		{listed, "https://hooks.internal.example.com:8443/x", ""},
		{listed, "https://HOOKS.internal.example.com.:8443/x", ""},
		{listed, "https://hooks.internal.example.com/x", "not in notify_allowed_hosts"},
		{listed, "https://[fd00::5]/x", ""},
		{listed, "https://[fd00::5]:8443/x", "not in notify_allowed_hosts"},
		{listed, "https://hooks.slack.com/x", "not in notify_allowed_hosts"},
		{listed, "http://127.0.0.1:9999/x", ""},
		{listed, "http://localhost:9999/x", ""},
		{listed, "http://[::1]:9999/x", "not in notify_allowed_hosts"},
		{listed, "https://169.254.169.254/x", "link-local"},
	}
	for _, tc := range cases {
		msg := CheckURL(tc.url, "url", tc.p)
		switch {
		case tc.want == "" && msg != "":
			t.Errorf("%s: refused: %s", tc.url, msg)
		case tc.want != "" && !strings.Contains(msg, tc.want):
			t.Errorf("%s: want a refusal mentioning %q, got %q", tc.url, tc.want, msg)
		case tc.want != "" && !strings.HasPrefix(msg, "url"):
			t.Errorf("%s: the message does not start with the field: %q", tc.url, msg)
		}
	}
}

func TestNotifyAllowedHostsParsing(t *testing.T) {
	for raw, ok := range map[string]bool{
		"hooks.example.com": true, "hooks.example.com:443": true, "10.0.0.1": true, "10.0.0.1:8443": true,
		"10.0.0.0/8": true, "fd00::/8": true, "[fd00::1]:443": true, "fd00::1": true, "[fd00::1]": true, "_svc.example.com": true,
		"https://hooks.example.com": false, "hooks.example.com/path": false, "a b": false, "user@host": false,
		"host:0": false, "host:99999": false, "host:x": false, "10.0.0.0/33": false, "169.254.169.254": false,
		"[fe80::1]:80": false, "0.0.0.0": false, "224.0.0.1": false, "-bad..name": false,
	} {
		_, _, msg := ParseAllowedHosts([]string{raw})
		if got := msg == ""; got != ok {
			t.Errorf("parseAllowedHosts(%q) ok=%v, want %v (%s)", raw, got, ok, msg)
		}
		if !ok && !strings.Contains(msg, "notify_allowed_hosts") {
			t.Errorf("parseAllowedHosts(%q): message does not name the field: %s", raw, msg)
		}
	}
	norm, _, _ := ParseAllowedHosts([]string{" B.example.com ", "a.example.com", "b.example.com", ""})
	if strings.Join(norm, ",") != "a.example.com,b.example.com" {
		t.Fatalf("normalised: %v", norm)
	}
}

// The dial-time check sees the address a delivery is about to connect to, after name
// resolution: a name (DNS rebinding included) that resolves to a refused address is
// refused. Literal addresses only: nothing is dialed.
func TestNotifyDialControlRefusesResolvedAddresses(t *testing.T) {
	def := policyFor(t, "http://127.0.0.1:8200")
	listed := policyFor(t, "https://vault.example.com:8200", "hooks.internal.example.com", "10.9.0.0/16")
	cases := []struct {
		p       *Policy
		host    string
		address string
		ok      bool
	}{
		{def, "hooks.example.com", "93.184.216.34:443", true},
		{def, "rebind.example.com", "169.254.169.254:80", false},
		{def, "rebind.example.com", "[fe80::1%eth0]:80", false},
		{def, "rebind.example.com", "10.0.0.1:443", false},
		{def, "rebind.example.com", "[fd12::1]:443", false},
		{def, "rebind.example.com", "0.0.0.0:443", false},
		{def, "rebind.example.com", "127.0.0.1:8200", false},
		{def, "rebind.example.com", "127.0.0.1:9999", true},
		{listed, "hooks.internal.example.com", "10.1.2.3:443", true},
		{listed, "hooks.internal.example.com", "169.254.169.254:443", false},
		{listed, "other.example.com", "10.9.1.1:443", true},
		{listed, "other.example.com", "10.8.1.1:443", false},
		{listed, "other.example.com", "93.184.216.34:443", false},
		{listed, "vault.example.com", "93.184.216.34:8200", false},
	}
	for _, tc := range cases {
		err := tc.p.DialControl(tc.host)("tcp", tc.address, nil)
		if (err == nil) != tc.ok {
			t.Errorf("dial %s as %s: err=%v, want ok=%v", tc.address, tc.host, err, tc.ok)
		}
	}
}

// The delivery client carries the dial check: a name that resolves to Vault's own port
// on loopback is refused at dial time, and the listener there sees no connection.
func TestNotifyDeliveryClientChecksEveryDial(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	n := NewQueue(context.Background(), func() hclog.Logger { return hclog.NewNullLogger() }, &logical.InmemStorage{}, "", "events/", "events-other/", nil)

	// Vault "listens" on the receiver's port: the dial to localhost:<port> is refused.
	asVault := policyFor(t, "https://vault.example.com:"+u.Port())
	c, err := n.HttpClient("", asVault)
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := c.Get("http://localhost:" + u.Port() + "/"); err == nil {
		resp.Body.Close()
		t.Fatal("a delivery reached Vault's own port through a name")
	} else if !strings.Contains(err.Error(), "Vault's own listener") {
		t.Fatalf("want the dial check's refusal, got %v", err)
	}
	if conns.Load() != 0 {
		t.Fatalf("the listener saw %d connections", conns.Load())
	}
	// Another port is fine: the check does not stop ordinary deliveries.
	c, _ = n.HttpClient("", policyFor(t, "https://vault.example.com:8200"))
	resp, err := c.Get("http://localhost:" + u.Port() + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}
