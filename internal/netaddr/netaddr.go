// Package netaddr answers small questions about network addresses that the plugin's rules
// on where it may connect share: is a host loopback, which host and port does a URL name.
// It imports nothing of the project.
package netaddr

import (
	"net"
	"net/url"
	"strings"
)

// isLoopbackHost reports whether host (a URL's Hostname(): no brackets, no port) is
// localhost or a loopback IP address.
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// urlHostPort is a URL's host (lower case, no brackets) and port, the scheme's default
// port when it names none.
func HostPort(u *url.URL) (host, port string) {
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
