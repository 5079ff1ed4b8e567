package router

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// procNetRoute is Linux's IPv4 routing table in text form.
const procNetRoute = "/proc/net/route"

// Route flags from linux/route.h.
const (
	rtfUp      = 0x1
	rtfGateway = 0x2
)

// errNoDefaultRoute means the routing table has no IPv4 default route.
var errNoDefaultRoute = errors.New("no IPv4 default route; set router.gateway to the router's LAN address")

// defaultGateway reads the IPv4 default gateway from /proc/net/route.
func defaultGateway() (netip.Addr, error) {
	b, err := os.ReadFile(procNetRoute)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("find the default gateway: %w (set router.gateway to the router's LAN address)", err)
	}
	return parseProcNetRoute(b)
}

// parseProcNetRoute returns the gateway of the up default route with the
// lowest metric. Addresses are hexadecimal in host byte order.
func parseProcNetRoute(b []byte) (netip.Addr, error) {
	var best netip.Addr
	bestMetric := uint64(1<<64 - 1)
	sc := bufio.NewScanner(bytes.NewReader(b))
	first := true
	for sc.Scan() {
		if first { // header line
			first = false
			continue
		}
		f := strings.Fields(sc.Text())
		if len(f) < 8 {
			continue
		}
		dst, err1 := strconv.ParseUint(f[1], 16, 32)
		gw, err2 := strconv.ParseUint(f[2], 16, 32)
		flags, err3 := strconv.ParseUint(f[3], 16, 16)
		metric, err4 := strconv.ParseUint(f[6], 10, 64)
		mask, err5 := strconv.ParseUint(f[7], 16, 32)
		if err1 != nil || err2 != nil || err3 != nil || err4 != nil || err5 != nil {
			continue
		}
		if dst != 0 || mask != 0 || flags&(rtfUp|rtfGateway) != rtfUp|rtfGateway || gw == 0 {
			continue
		}
		var a [4]byte
		binary.NativeEndian.PutUint32(a[:], uint32(gw))
		if metric < bestMetric {
			best, bestMetric = netip.AddrFrom4(a), metric
		}
	}
	if !best.IsValid() {
		return best, errNoDefaultRoute
	}
	return best, nil
}

// localAddrFor returns the source address the kernel uses to reach gw.
// Connecting a UDP socket sends nothing; it only selects the route.
func localAddrFor(gw netip.Addr) (netip.Addr, error) {
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(gw, pcpServerPort)))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("find this host's address toward %s: %w", gw, err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap(), nil
}
