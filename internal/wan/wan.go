// Package wan says whether an address can be reached from the internet:
// public, behind the ISP's carrier-grade NAT, private or otherwise not
// routed, or reserved for documentation and benchmarking. Port forwarding
// only works to a public address; the router automation and the connection
// checker both use this verdict, word it their own way, and end with the
// same WaysOut.
//
// It only classifies; it never sends anything.
package wan

import "net/netip"

// WaysOut is what to do instead when the site's WAN address cannot be
// forwarded to (CGNAT, no public address): the fix both camgate check and
// camgate router status give.
const WaysOut = "reach the site through a VPN (WireGuard, Tailscale, ZeroTier) instead of port forwarding, or ask the ISP for a public IPv4 address " +
	"(often sold as a static or dedicated IP, or \"opting out of CGNAT\"); if the line has IPv6, viewers with IPv6 can reach camgate directly: " +
	"set listen_address: \"::\" and allow the ports in the router's IPv6 firewall (docs/ROUTER.md)"

// Class is the verdict on an address.
type Class string

// The classes.
const (
	// Unknown: no address (invalid or unspecified).
	Unknown Class = "unknown"
	// Public: a global unicast address; port forwarding can work.
	Public Class = "public"
	// CGNAT: 100.64.0.0/10 (RFC 6598), the ISP's carrier-grade NAT.
	CGNAT Class = "cgnat"
	// Private: RFC 1918, loopback, link-local, DS-Lite, multicast, class E,
	// unique-local IPv6 and the like: the internet cannot route to it.
	Private Class = "private"
	// Reserved: documentation (RFC 5737, RFC 3849) and benchmarking (RFC
	// 2544) ranges. The internet never routes them, but labs use them
	// (camgate's own tests run in 198.18.0.0/15).
	Reserved Class = "reserved"
)

type span struct {
	p    netip.Prefix
	name string
}

// cgnat is RFC 6598's shared address space.
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// private lists ranges the internet cannot route to, with the words used
// in advice. RFC 6890 is the registry behind them.
var private = []span{
	{netip.MustParsePrefix("10.0.0.0/8"), "a private (RFC 1918) address"},
	{netip.MustParsePrefix("172.16.0.0/12"), "a private (RFC 1918) address"},
	{netip.MustParsePrefix("192.168.0.0/16"), "a private (RFC 1918) address"},
	{netip.MustParsePrefix("0.0.0.0/8"), `a "this network" address`},
	{netip.MustParsePrefix("127.0.0.0/8"), "a loopback address"},
	{netip.MustParsePrefix("169.254.0.0/16"), "a link-local address (no DHCP answer on the WAN side)"},
	{netip.MustParsePrefix("192.0.0.0/24"), "an IETF protocol address (DS-Lite's 192.0.0.2 means the ISP's NAT)"},
	{netip.MustParsePrefix("240.0.0.0/4"), "a reserved (class E) address"},
	{netip.MustParsePrefix("224.0.0.0/4"), "a multicast address"},
	{netip.MustParsePrefix("fc00::/7"), "a unique local IPv6 address"},
	{netip.MustParsePrefix("fe80::/10"), "a link-local IPv6 address"},
	{netip.MustParsePrefix("::1/128"), "the IPv6 loopback address"},
	{netip.MustParsePrefix("ff00::/8"), "an IPv6 multicast address"},
}

var reserved = []span{
	{netip.MustParsePrefix("198.18.0.0/15"), "the benchmarking range 198.18.0.0/15 (RFC 2544)"},
	{netip.MustParsePrefix("192.0.2.0/24"), "a documentation range (RFC 5737)"},
	{netip.MustParsePrefix("198.51.100.0/24"), "a documentation range (RFC 5737)"},
	{netip.MustParsePrefix("203.0.113.0/24"), "a documentation range (RFC 5737)"},
	{netip.MustParsePrefix("2001:db8::/32"), "the IPv6 documentation range (RFC 3849)"},
}

// Classify returns the class of ip and, for every class but Public and
// Unknown, a short description of its range ("a private (RFC 1918)
// address") for use in messages.
func Classify(ip netip.Addr) (Class, string) {
	ip = ip.Unmap()
	if !ip.IsValid() || ip.IsUnspecified() {
		return Unknown, ""
	}
	if cgnat.Contains(ip) {
		return CGNAT, "the carrier-grade NAT range 100.64.0.0/10 (RFC 6598)"
	}
	for _, r := range private {
		if r.p.Contains(ip) {
			return Private, r.name
		}
	}
	for _, r := range reserved {
		if r.p.Contains(ip) {
			return Reserved, r.name
		}
	}
	if ip.Is6() && !ip.IsGlobalUnicast() {
		return Private, "not a global IPv6 address"
	}
	return Public, ""
}
