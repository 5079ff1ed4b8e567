package router

import (
	"fmt"
	"net/netip"
)

// Address ranges that matter for the WAN verdict.
var (
	// cgnatPrefix is RFC 6598's shared address space for carrier-grade NAT.
	cgnatPrefix = netip.MustParsePrefix("100.64.0.0/10")
	// nonInternet are IPv4 ranges that never appear as a public address
	// (RFC 6890 and friends), with the name used in the advice.
	nonInternet = []struct {
		p    netip.Prefix
		name string
	}{
		{netip.MustParsePrefix("10.0.0.0/8"), "a private (RFC 1918) address"},
		{netip.MustParsePrefix("172.16.0.0/12"), "a private (RFC 1918) address"},
		{netip.MustParsePrefix("192.168.0.0/16"), "a private (RFC 1918) address"},
		{netip.MustParsePrefix("0.0.0.0/8"), `a "this network" address`},
		{netip.MustParsePrefix("127.0.0.0/8"), "a loopback address"},
		{netip.MustParsePrefix("169.254.0.0/16"), "a link-local address (no DHCP answer on the WAN side)"},
		{netip.MustParsePrefix("192.0.0.0/24"), "an IETF protocol address (such as DS-Lite's 192.0.0.2)"},
		{netip.MustParsePrefix("192.0.2.0/24"), "a documentation address"},
		{netip.MustParsePrefix("198.51.100.0/24"), "a documentation address"},
		{netip.MustParsePrefix("203.0.113.0/24"), "a documentation address"},
		{netip.MustParsePrefix("198.18.0.0/15"), "a benchmarking (RFC 2544) address"},
		{netip.MustParsePrefix("240.0.0.0/4"), "a reserved address"},
	}
)

// ClassifyWAN gives the verdict on a router's WAN address and, when port
// forwarding cannot work from the internet, advice on what to do instead.
func ClassifyWAN(ip netip.Addr) (WANClass, string) {
	ip = ip.Unmap()
	switch {
	case !ip.IsValid() || ip.IsUnspecified():
		return WANUnknown, "The router did not report a WAN address (it may not be connected). Check the router's internet connection."
	case cgnatPrefix.Contains(ip):
		return WANCGNAT, fmt.Sprintf("The router's WAN address %s is in 100.64.0.0/10, the range ISPs use for carrier-grade NAT (CGNAT): "+
			"your ISP shares one public address among many customers, so forwarding ports on this router cannot make the DVR reachable from the internet. "+
			"Ask your ISP for a public IPv4 address (often called a static or dedicated IP, or \"opting out of CGNAT\"), "+
			"or reach the site through a VPN (WireGuard, Tailscale, ZeroTier) instead of port forwarding.", ip)
	case ip.Is6():
		if ip.IsGlobalUnicast() && !ip.IsPrivate() {
			return WANPublic, ""
		}
		return WANPrivate, fmt.Sprintf("The router's WAN address %s is not a public IPv6 address; connections from the internet cannot reach it. Use a VPN, or ask your ISP for a public address.", ip)
	}
	for _, r := range nonInternet {
		if r.p.Contains(ip) {
			return WANPrivate, fmt.Sprintf("The router's WAN address %s is %s, not a public internet address: another router or modem sits between this router and the internet (double NAT), "+
				"or the ISP gives no public address. Forward the same ports on the upstream modem too (or put it in bridge mode, or make this router its DMZ host), "+
				"ask your ISP for a public IPv4 address, or use a VPN (WireGuard, Tailscale, ZeroTier) instead of port forwarding.", ip, r.name)
		}
	}
	if ip.IsMulticast() {
		return WANPrivate, fmt.Sprintf("The router reported %s, a multicast address, as its WAN address; that is a router bug, and forwarding will not work.", ip)
	}
	return WANPublic, ""
}
