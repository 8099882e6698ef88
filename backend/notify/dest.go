package notify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/config"
	"github.com/apono-io/vault-plugin-apono/internal/netaddr"
	"github.com/apono-io/vault-plugin-apono/internal/textsafe"
)

// Where notifications may go. Events are POSTed wherever notify_url or a target's url
// says, so whoever may write those could aim them at what only this host can reach: a
// cloud metadata service (169.254.169.254), Vault's own listener, or services on a
// private network. The rules, checked when a URL is written, again before each delivery,
// and on every address a delivery dials (so a host name that resolves, or later
// re-resolves, to a refused address is refused too):
//
//   - never: link-local (169.254.0.0/16, fe80::/10), unspecified (0.0.0.0, ::),
//     multicast and broadcast addresses, and Vault's own listener: vault_addr's host and
//     port, and that port on any loopback address;
//   - without notify_allowed_hosts: public addresses and host names, and loopback (other
//     than Vault's port); private ranges (10/8, 172.16/12, 192.168/16, 100.64/10,
//     fc00::/7) are refused;
//   - with notify_allowed_hosts: only what it lists. An entry is a host name, an IP
//     address or a CIDR range, a name or address optionally with :port. A URL whose host
//     is a name must name a listed name (its addresses are then whatever the name
//     resolves to, but never the "never" ones); a URL whose host is an address must be
//     in a listed address or range; loopback too.

const (
	MaxNotifyAllowedHosts   = 64
	MaxNotifyAllowedHostLen = 253
	NotifyAllowedHostsRule  = "entries are host names, IP addresses or CIDR ranges, a name or address optionally with :port " +
		"(e.g. hooks.internal.example.com, 10.0.0.12:8443, 10.20.0.0/16, [fd00::5]:443)"
)

// SharedAddressSpace (RFC 6598) is private in practice; a cloud's metadata service lives
// there (100.100.100.200).
var SharedAddressSpace = &net.IPNet{IP: net.IPv4(100, 64, 0, 0).To4(), Mask: net.CIDRMask(10, 32)}

var HostNameRe = regexp.MustCompile(`^[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*\.?$`)

// AllowEntry is one notify_allowed_hosts entry: a host name, or an address range (a single
// address is a /32 or /128), with a port or "" for any.
type AllowEntry struct {
	name string
	nets *net.IPNet
	port string
}

func (a AllowEntry) portOK(port string) bool { return a.port == "" || a.port == port }

// ParseAllowedHosts checks and normalises notify_allowed_hosts; msg names what is wrong.
func ParseAllowedHosts(raw []string) (norm []string, entries []AllowEntry, msg string) {
	if len(raw) > MaxNotifyAllowedHosts {
		return nil, nil, fmt.Sprintf("notify_allowed_hosts has %d entries; at most %d are allowed", len(raw), MaxNotifyAllowedHosts)
	}
	seen := map[string]bool{}
	for _, r := range raw {
		s := strings.ToLower(strings.TrimSpace(r))
		if s == "" || seen[s] {
			continue
		}
		e, ok := ParseAllowEntry(s)
		if !ok {
			return nil, nil, fmt.Sprintf("notify_allowed_hosts: %q is not an entry: %s", textsafe.Truncate(s), NotifyAllowedHostsRule)
		}
		if e.nets != nil && NeverNotify(e.nets.IP) {
			if ones, bits := e.nets.Mask.Size(); ones == bits {
				return nil, nil, fmt.Sprintf("notify_allowed_hosts: %s is a link-local, unspecified, multicast or broadcast address, "+
					"where notifications never go, listed or not", textsafe.Truncate(s))
			}
		}
		seen[s] = true
		norm = append(norm, s)
		entries = append(entries, e)
	}
	sort.Strings(norm)
	return norm, entries, ""
}

func ParseAllowEntry(s string) (AllowEntry, bool) {
	if len(s) > MaxNotifyAllowedHostLen || strings.ContainsAny(s, " \t@?#\\") || strings.Contains(s, "://") {
		return AllowEntry{}, false
	}
	if strings.Contains(s, "/") {
		_, n, err := net.ParseCIDR(s)
		return AllowEntry{nets: n}, err == nil
	}
	host, port := s, ""
	if h, p, err := net.SplitHostPort(s); err == nil {
		if !ValidPort(p) {
			return AllowEntry{}, false
		}
		host, port = h, p
	} else if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		host = s[1 : len(s)-1]
	}
	if ip := net.ParseIP(host); ip != nil {
		bits := 128
		if ip.To4() != nil {
			ip, bits = ip.To4(), 32
		}
		return AllowEntry{nets: &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)}, port: port}, true
	}
	if !HostNameRe.MatchString(host) {
		return AllowEntry{}, false
	}
	return AllowEntry{name: strings.TrimSuffix(host, "."), port: port}, true
}

// SplitAllowedHosts is the stored notify_allowed_hosts as a list.
func SplitAllowedHosts(stored string) []string {
	if stored == "" {
		return nil
	}
	return strings.Split(stored, ",")
}

func ValidPort(p string) bool {
	if p == "" || len(p) > 5 {
		return false
	}
	n := 0
	for _, c := range p {
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
	}
	return n > 0 && n < 65536
}

// NeverNotify: addresses no notification goes to, whatever the allow-list says.
func NeverNotify(ip net.IP) bool {
	return ip.IsUnspecified() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast() ||
		ip.IsMulticast() || ip.Equal(net.IPv4bcast)
}

// PrivateAddr: refused unless notify_allowed_hosts lists it.
func PrivateAddr(ip net.IP) bool {
	return ip.IsPrivate() || SharedAddressSpace.Contains(ip)
}

// notifyPolicy is the rule set in force for a config: its allow-list and Vault's address.
type Policy struct {
	allowed              []AllowEntry
	vaultHost, vaultPort string // vault_addr's, lower case, no brackets; "" when unset
	key                  string // identifies the policy (HTTP clients are cached by it)
}

func PolicyOf(cfg *config.Config) *Policy {
	p := &Policy{}
	if cfg == nil {
		return p
	}
	_, p.allowed, _ = ParseAllowedHosts(SplitAllowedHosts(cfg.NotifyAllowedHosts))
	if u, err := url.Parse(cfg.VaultAddr); err == nil && u.Host != "" {
		p.vaultHost, p.vaultPort = netaddr.HostPort(u)
	}
	p.key = p.vaultHost + "|" + p.vaultPort + "|" + cfg.NotifyAllowedHosts
	return p
}

// isVault reports whether host (a name or an address) and port are Vault's own listener.
func (p *Policy) isVault(host string, ip net.IP, port string) bool {
	if p.vaultPort == "" || port != p.vaultPort {
		return false
	}
	if host == p.vaultHost || netaddr.IsLoopbackHost(host) || (ip != nil && ip.IsLoopback()) {
		return true
	}
	vip := net.ParseIP(p.vaultHost)
	return ip != nil && vip != nil && vip.Equal(ip)
}

func (p *Policy) nameListed(host, port string) bool {
	for _, a := range p.allowed {
		if a.name != "" && a.name == host && a.portOK(port) {
			return true
		}
	}
	return false
}

func (p *Policy) addrListed(ip net.IP, port string) bool {
	for _, a := range p.allowed {
		if a.nets != nil && a.nets.Contains(ip) && a.portOK(port) {
			return true
		}
	}
	return false
}

// checkURL applies the rules to a URL's host and port (no name is resolved); the message
// starts with field.
func (p *Policy) checkURL(field string, u *url.URL) string {
	host, port := netaddr.HostPort(u)
	host = strings.TrimSuffix(host, ".")
	ip := net.ParseIP(host)
	shown := textsafe.Truncate(u.Host)
	switch {
	case p.isVault(host, ip, port):
		return fmt.Sprintf("%s: %s is Vault's own listener (vault_addr's port %s); notifications never go to Vault itself", field, shown, p.vaultPort)
	case ip != nil && NeverNotify(ip):
		return fmt.Sprintf("%s: %s is a link-local, unspecified, multicast or broadcast address; notifications never go there", field, shown)
	case len(p.allowed) > 0:
		if ip != nil && p.addrListed(ip, port) || ip == nil && p.nameListed(host, port) ||
			host == "localhost" && (p.addrListed(net.IPv4(127, 0, 0, 1), port) || p.addrListed(net.IPv6loopback, port)) {
			return ""
		}
		return fmt.Sprintf("%s: %s is not in notify_allowed_hosts (apono/config), which lists where notifications may go: "+
			"a host name there, or an address in a listed address or range", field, shown)
	case ip != nil && PrivateAddr(ip):
		return fmt.Sprintf("%s: %s is a private address (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7); notifications go to one "+
			"only when notify_allowed_hosts (apono/config) lists it", field, shown)
	}
	return ""
}

// checkDial applies the rules to one address a delivery dials: ip and port, reached for
// host (the URL's host name or address, or a proxy's).
func (p *Policy) checkDial(host string, ip net.IP, port string) error {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	switch {
	case ip == nil:
		return errors.New("notification target: no IP address to check")
	case NeverNotify(ip):
		return fmt.Errorf("notification target %s resolves to %s, a link-local, unspecified, multicast or broadcast address; refused", host, ip)
	case p.isVault(host, ip, port):
		return fmt.Errorf("notification target %s:%s is Vault's own listener; refused", host, port)
	case len(p.allowed) > 0:
		if p.nameListed(host, port) || p.addrListed(ip, port) {
			return nil
		}
		return fmt.Errorf("notification target %s (%s) is not in notify_allowed_hosts; refused", host, ip)
	case PrivateAddr(ip):
		return fmt.Errorf("notification target %s resolves to %s, a private address not in notify_allowed_hosts; refused", host, ip)
	}
	return nil
}

// DialControl is the net.Dialer Control hook of a delivery to host: it runs once the name
// is resolved, before each connection attempt, with the address actually dialed.
func (p *Policy) DialControl(host string) func(network, address string, _ syscall.RawConn) error {
	return func(_, address string, _ syscall.RawConn) error {
		ipStr, port, err := net.SplitHostPort(address)
		if err != nil {
			return err
		}
		return p.checkDial(host, net.ParseIP(ipStr), port)
	}
}

// dialContext dials addr (host:port) with the rules applied to each resolved address.
func (p *Policy) dialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	d := &net.Dialer{Timeout: NotifyTimeout, KeepAlive: 30 * time.Second, Control: p.DialControl(host)}
	return d.DialContext(ctx, network, addr)
}
