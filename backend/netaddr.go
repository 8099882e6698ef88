package backend

import (
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/apono-io/vault-plugin-apono/internal/textsafe"
)

// Where the plugin may send what it holds. vault_addr gets the AppRole secret_id or the
// token at every login; a notification target gets every access-flow event. Both may use
// plain http only on a loopback address, where no network sees the bytes.

// isLoopbackHost reports whether host (a URL's Hostname(): no brackets, no port) is
// localhost or a loopback IP address.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkVaultAddr checks vault_addr before anything connects to it: an https:// URL, or
// http:// to a loopback address, with a host and no user:password@. It returns a message
// naming the field, or "".
func checkVaultAddr(raw string) string {
	const rule = "vault_addr must be an https:// URL, or http:// to a loopback address (127.0.0.1, [::1], localhost), with a host and no user:password@"
	if raw == "" {
		return "vault_addr is required, e.g. https://vault.example.com:8200"
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Hostname() == "" || u.User != nil {
		return fmt.Sprintf("%s; got %q", rule, textsafe.Truncate(raw))
	}
	switch u.Scheme {
	case "https":
		return ""
	case "http":
		if isLoopbackHost(u.Hostname()) {
			return ""
		}
		return fmt.Sprintf("%s; %q is not a loopback address, and http:// would send the plugin's credentials unencrypted", rule, textsafe.Truncate(u.Hostname()))
	}
	return fmt.Sprintf("%s; got %q", rule, textsafe.Truncate(raw))
}

// urlHostPort is a URL's host (lower case, no brackets) and port, the scheme's default
// port when it names none.
func urlHostPort(u *url.URL) (host, port string) {
	host, port = strings.ToLower(u.Hostname()), u.Port()
	if port == "" {
		switch u.Scheme {
		case "https":
			port = "443"
		case "http":
			port = "80"
		}
	}
	return host, port
}
