package check

import (
	"fmt"
	"net/netip"

	"github.com/camgate/camgate/internal/wan"
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

// Classify says whether port forwarding to ip can work from the internet,
// and why not.
func Classify(ip netip.Addr) (AddrClass, string) {
	ip = ip.Unmap()
	class, name := wan.Classify(ip)
	switch class {
	case wan.Unknown:
		return ClassUnknown, "No public address is known: pass --public-ip, set public_ip in the config, or turn on router mode so camgate can ask the router."
	case wan.CGNAT:
		return ClassCGNAT, fmt.Sprintf("%s is in 100.64.0.0/10, the range ISPs use for carrier-grade NAT (CGNAT): the ISP shares one public address among many customers, so port forwarding cannot work from the internet.", ip)
	case wan.Private:
		return ClassPrivate, fmt.Sprintf("%s is %s, not an internet address: another router or modem sits in front of this one (double NAT), or the ISP gives no public address, so port forwarding here alone cannot work from the internet.", ip, name)
	case wan.Reserved:
		return ClassReserved, fmt.Sprintf("%s is in %s, which the internet never routes; treated as given (a lab or test network).", ip, name)
	}
	return ClassPublic, ""
}
