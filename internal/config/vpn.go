package config

import (
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// VPN defaults, documented in docs/VPN.md; keep the two in step.
const (
	// DefaultVPNPort is WireGuard's customary UDP port.
	DefaultVPNPort = 51820
	// DefaultVPNNetwork is the tunnel's address range. It sits in the
	// shared address space of RFC 6598 (100.64.0.0/10), which home LANs
	// never use, away from the blocks CGNAT providers hand out first
	// (100.64.x) and small enough (254 peers) to show whole in a listing.
	// camgate takes the first address; peers get the next free ones.
	DefaultVPNNetwork = "100.88.0.0/24"
)

// VPN configures camgate's built-in WireGuard server (package vpn). The
// zero value is off; `vpn: {enabled: true}` alone turns it on with the
// defaults. Peers are not listed here: they live in the state directory
// (vpn/peers.json), written by `camgate vpn add` and the admin UI, so that
// adding a phone never rewrites the owner's camgate.yaml.
type VPN struct {
	// Enabled turns the VPN on.
	Enabled bool `yaml:"enabled,omitempty" json:"enabled"`
	// ListenPort is the UDP port WireGuard listens on, on every address.
	// 0 means DefaultVPNPort.
	ListenPort uint16 `yaml:"listen_port,omitempty" json:"listen_port,omitempty"`
	// Network is the tunnel's IPv4 range. Empty means DefaultVPNNetwork.
	Network string `yaml:"network,omitempty" json:"network,omitempty"`
	// Endpoint is the host name or address (optionally host:port) phones
	// dial, written into each peer's config. Empty means public_ip, and
	// failing that it must be given to `camgate vpn add --endpoint`.
	Endpoint string `yaml:"endpoint,omitempty" json:"endpoint,omitempty"`
	// Router asks the upstream router (router.mode) to forward the UDP
	// port, as `router: true` does on a rule.
	Router bool `yaml:"router,omitempty" json:"router,omitempty"`
}

// Port returns the effective UDP listen port.
func (v *VPN) Port() uint16 {
	if v.ListenPort == 0 {
		return DefaultVPNPort
	}
	return v.ListenPort
}

// Prefix returns the effective tunnel range. An invalid value (which
// Validate refuses) yields the default.
func (v *VPN) Prefix() netip.Prefix {
	if p, err := netip.ParsePrefix(v.Network); err == nil {
		return p.Masked()
	}
	return netip.MustParsePrefix(DefaultVPNNetwork)
}

// EndpointFor returns host:port for peers' configs: Endpoint, else
// publicIP, with the listen port added when the value has none. Empty
// when neither is known.
func (v *VPN) EndpointFor(publicIP string) string {
	host := v.Endpoint
	if host == "" {
		host = publicIP
	}
	if host == "" {
		return ""
	}
	if _, _, err := net.SplitHostPort(host); err == nil {
		return host
	}
	// An IPv6 address may come bracketed ("[2001:db8::1]") or not; the
	// port goes after one pair of brackets either way.
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	return net.JoinHostPort(host, strconv.Itoa(int(v.Port())))
}

// validateVPN checks the vpn section.
func validateVPN(v *VPN, add func(field, format string, args ...any)) {
	if v.Network != "" {
		p, err := netip.ParsePrefix(v.Network)
		switch {
		case err != nil:
			add("network", "%q is not an address range such as %s", v.Network, DefaultVPNNetwork)
		case !p.Addr().Is4():
			add("network", "%q: the tunnel range must be IPv4 (the devices it reaches are)", v.Network)
		case p.Bits() < 16 || p.Bits() > 29:
			add("network", "%q: use a range from /16 (65534 addresses) to /29 (6)", v.Network)
		}
	}
	if v.Endpoint != "" {
		host := v.Endpoint
		if h, port, err := net.SplitHostPort(v.Endpoint); err == nil {
			host = h
			if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
				add("endpoint", "%q: the port must be 1-65535", v.Endpoint)
			}
		}
		if err := checkHost(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")); err != nil {
			add("endpoint", "%v", err)
		}
	}
}
