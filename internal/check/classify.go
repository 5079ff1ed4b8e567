package check

import (
	"fmt"
	"net/netip"
)

// AddrClass is the verdict on a public address.
type AddrClass string

// Address classes.
const (
	// ClassUnknown: no public address is known.
	ClassUnknown AddrClass = "unknown"
	// ClassPublic: a global unicast address; port forwarding can work.
	ClassPublic AddrClass = "public"
	// ClassCGNAT: 100.64.0.0/10 (RFC 6598), the ISP's carrier-grade NAT.
	ClassCGNAT AddrClass = "cgnat"
	// ClassPrivate: RFC 1918, loopback, link-local, DS-Lite and other
	// addresses the internet cannot route to: a router or modem sits in
	// front of this one (double NAT), or there is no public address.
	ClassPrivate AddrClass = "private"
	// ClassReserved: documentation (RFC 5737) and benchmarking (RFC 2544)
	// ranges. They never appear on the internet, but they do in labs
	// (camgate's own tests use 198.18.0.0/15), so the probe decides and
	// the report says so.
	ClassReserved AddrClass = "reserved"
)

// vpnAdvice is the fix for a WAN address that cannot be forwarded to.
const vpnAdvice = "reach the site through a VPN (WireGuard, Tailscale, ZeroTier) instead of port forwarding, or ask the ISP for a public IPv4 address"

var (
	cgnatPrefix = netip.MustParsePrefix("100.64.0.0/10")
	// privateRanges cannot be reached from the internet.
	privateRanges = []struct {
		p    netip.Prefix
		name string
	}{
		{netip.MustParsePrefix("10.0.0.0/8"), "a private (RFC 1918) address"},
		{netip.MustParsePrefix("172.16.0.0/12"), "a private (RFC 1918) address"},
		{netip.MustParsePrefix("192.168.0.0/16"), "a private (RFC 1918) address"},
		{netip.MustParsePrefix("0.0.0.0/8"), `a "this network" address`},
		{netip.MustParsePrefix("127.0.0.0/8"), "a loopback address"},
		{netip.MustParsePrefix("169.254.0.0/16"), "a link-local address"},
		{netip.MustParsePrefix("192.0.0.0/24"), "an IETF protocol address (DS-Lite's 192.0.0.2 means the ISP's NAT)"},
		{netip.MustParsePrefix("240.0.0.0/4"), "a reserved (class E) address"},
		{netip.MustParsePrefix("224.0.0.0/4"), "a multicast address"},
		{netip.MustParsePrefix("fc00::/7"), "a unique local IPv6 address"},
		{netip.MustParsePrefix("fe80::/10"), "a link-local IPv6 address"},
		{netip.MustParsePrefix("::1/128"), "the IPv6 loopback address"},
		{netip.MustParsePrefix("ff00::/8"), "an IPv6 multicast address"},
	}
	reservedRanges = []struct {
		p    netip.Prefix
		name string
	}{
		{netip.MustParsePrefix("198.18.0.0/15"), "the benchmarking range 198.18.0.0/15 (RFC 2544)"},
		{netip.MustParsePrefix("192.0.2.0/24"), "a documentation range (RFC 5737)"},
		{netip.MustParsePrefix("198.51.100.0/24"), "a documentation range (RFC 5737)"},
		{netip.MustParsePrefix("203.0.113.0/24"), "a documentation range (RFC 5737)"},
		{netip.MustParsePrefix("2001:db8::/32"), "the IPv6 documentation range (RFC 3849)"},
	}
)

// Classify says whether port forwarding to ip can work from the internet,
// and why not.
func Classify(ip netip.Addr) (AddrClass, string) {
	ip = ip.Unmap()
	if !ip.IsValid() || ip.IsUnspecified() {
		return ClassUnknown, "No public address is known: pass --public-ip, set public_ip in the config, or turn on router mode so camgate can ask the router."
	}
	if cgnatPrefix.Contains(ip) {
		return ClassCGNAT, fmt.Sprintf("%s is in 100.64.0.0/10, the range ISPs use for carrier-grade NAT (CGNAT): the ISP shares one public address among many customers, so port forwarding cannot work from the internet.", ip)
	}
	for _, r := range privateRanges {
		if r.p.Contains(ip) {
			return ClassPrivate, fmt.Sprintf("%s is %s, not an internet address: another router or modem sits in front of this one (double NAT), or the ISP gives no public address, so port forwarding here alone cannot work from the internet.", ip, r.name)
		}
	}
	for _, r := range reservedRanges {
		if r.p.Contains(ip) {
			return ClassReserved, fmt.Sprintf("%s is in %s, which the internet never routes; treated as given (a lab or test network).", ip, r.name)
		}
	}
	return ClassPublic, ""
}
