package router

import (
	"fmt"
	"net/netip"

	"github.com/camgate/camgate/internal/wan"
)

// ClassifyWAN gives the verdict on a router's WAN address and, when port
// forwarding cannot work from the internet, advice on what to do instead.
func ClassifyWAN(ip netip.Addr) (WANClass, string) {
	ip = ip.Unmap()
	class, name := wan.Classify(ip)
	switch class {
	case wan.Public:
		return WANPublic, ""
	case wan.Unknown:
		return WANUnknown, "The router did not report a WAN address (it may not be connected). Check the router's internet connection."
	case wan.CGNAT:
		return WANCGNAT, fmt.Sprintf("The router's WAN address %s is in 100.64.0.0/10, the range ISPs use for carrier-grade NAT (CGNAT): "+
			"your ISP shares one public address among many customers, so forwarding ports on this router cannot make the DVR reachable from the internet. "+
			"Instead, %s.", ip, wan.WaysOut)
	}
	if ip.Is6() {
		return WANPrivate, fmt.Sprintf("The router's WAN address %s is not a public IPv6 address; connections from the internet cannot reach it. Use a VPN, or ask your ISP for a public address.", ip)
	}
	if ip.IsMulticast() {
		return WANPrivate, fmt.Sprintf("The router reported %s, a multicast address, as its WAN address; that is a router bug, and forwarding will not work.", ip)
	}
	// Private and reserved ranges alike: a router's WAN never has a
	// documentation or benchmarking address on the real internet.
	return WANPrivate, fmt.Sprintf("The router's WAN address %s is %s, not a public internet address: another router or modem sits between this router and the internet (double NAT), "+
		"or the ISP gives no public address. Forward the same ports on the upstream modem too (or put it in bridge mode, or make this router its DMZ host), "+
		"or %s.", ip, name, wan.WaysOut)
}
