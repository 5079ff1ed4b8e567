package nft

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// Route is one IPv4 route of this host.
type Route struct {
	// Dst is the destination prefix (0.0.0.0/0 for the default route).
	Dst netip.Prefix
	// Gateway is the next hop; invalid for an on-link route.
	Gateway netip.Addr
	// Iface is the outgoing interface.
	Iface string
}

// HostRoutes reads this host's IPv4 main routing table from
// /proc/thread-self/net/route (the calling thread's network namespace).
func HostRoutes() ([]Route, error) {
	f, err := os.Open("/proc/thread-self/net/route")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseRoutes(f)
}

// parseRoutes parses /proc/net/route: a header line, then per route the
// interface, destination, gateway, flags, ... and mask, the addresses as
// little-endian hex.
func parseRoutes(r io.Reader) ([]Route, error) {
	var out []Route
	sc := bufio.NewScanner(r)
	first := true
	for sc.Scan() {
		if first {
			first = false
			continue
		}
		f := strings.Fields(sc.Text())
		if len(f) < 8 {
			continue
		}
		dst, err1 := hexAddr(f[1])
		gw, err2 := hexAddr(f[2])
		mask, err3 := hexAddr(f[7])
		flags, err4 := strconv.ParseUint(f[3], 16, 32)
		if err1 != nil || err2 != nil || err3 != nil || err4 != nil || flags&1 == 0 { // RTF_UP
			continue
		}
		m := mask.As4()
		bits := 0
		for v := binary.BigEndian.Uint32(m[:]); v&(1<<31) != 0; v <<= 1 {
			bits++
		}
		rt := Route{Dst: netip.PrefixFrom(dst, bits).Masked(), Iface: f[0]}
		if flags&2 != 0 { // RTF_GATEWAY
			rt.Gateway = gw
		}
		out = append(out, rt)
	}
	return out, sc.Err()
}

func hexAddr(s string) (netip.Addr, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 4 {
		return netip.Addr{}, fmt.Errorf("route address %q is not 8 hex digits", s)
	}
	return netip.AddrFrom4([4]byte{b[3], b[2], b[1], b[0]}), nil
}

// lookupRoute returns the longest-prefix route to a.
func lookupRoute(routes []Route, a netip.Addr) (Route, bool) {
	best, found := Route{}, false
	for _, r := range routes {
		if r.Dst.Contains(a) && (!found || r.Dst.Bits() > best.Dst.Bits()) {
			best, found = r, true
		}
	}
	return best, found
}

// placeRule decides masquerade for a rule and, when the device sees the
// viewer's own address, the LAN prefix whose viewers need reflection.
//
// Under auto, this host is taken to be the device's gateway when the
// device is on a network directly attached to this host and that network
// is not the way out of this host (its default route leaves elsewhere):
// the shape of a router, where the LAN hangs off one side. A LAN box with
// one network, whose default route points at the real router, is not the
// device's gateway: the device would answer the viewer through that
// router, which knows nothing of the DNAT, so camgate masquerades.
func placeRule(r *Rule, routes []Route) (Placement, netip.Prefix) {
	switch r.Masquerade {
	case "on":
		return Placement{Masquerade: true, Why: "masquerade: on"}, netip.Prefix{}
	case "off":
		rt, ok := lookupRoute(routes, r.Target)
		if ok && !rt.Gateway.IsValid() {
			return Placement{Why: "masquerade: off"}, rt.Dst
		}
		return Placement{Why: "masquerade: off"}, netip.Prefix{}
	}
	rt, ok := lookupRoute(routes, r.Target)
	switch {
	case !ok:
		return Placement{Masquerade: true, Why: "no route to the device; masquerading"}, netip.Prefix{}
	case rt.Gateway.IsValid():
		return Placement{Masquerade: true, Why: fmt.Sprintf("the device is reached through %s, which would not send its replies back here; masquerading", rt.Gateway)}, netip.Prefix{}
	}
	for _, d := range routes {
		if d.Dst.Bits() == 0 && d.Iface == rt.Iface {
			return Placement{Masquerade: true, Why: fmt.Sprintf("this host's own default route leaves through %s, the device's network, so another router is the device's gateway; masquerading", rt.Iface)}, netip.Prefix{}
		}
	}
	return Placement{Why: fmt.Sprintf("this host is the gateway of the device's network %s (%s): the device sees the viewer's own address", rt.Dst, rt.Iface)}, rt.Dst
}
