package sim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// discoveryGroup returns the multicast group SADP and WS-Discovery share.
func discoveryGroup() netip.Addr { return netip.AddrFrom4([4]byte{239, 255, 255, 250}) }

// ifaceInfo is one network interface as seen when the Device was created.
// The Device keeps this snapshot because its goroutines may run on OS
// threads in another network namespace than the one New ran in (tests
// create devices inside namespaces).
type ifaceInfo struct {
	ifi      net.Interface
	prefixes []netip.Prefix // IPv4 only
}

func snapshotInterfaces() ([]ifaceInfo, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	var out []ifaceInfo
	for _, ifi := range ifs {
		info := ifaceInfo{ifi: ifi}
		addrs, err := ifi.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(ipn.IP)
			if !ok || !ip.Unmap().Is4() {
				continue
			}
			bits, _ := ipn.Mask.Size()
			if len(ipn.Mask) == net.IPv6len {
				bits -= 96
			}
			info.prefixes = append(info.prefixes, netip.PrefixFrom(ip.Unmap(), bits))
		}
		out = append(out, info)
	}
	return out, nil
}

// bind opens the socket of every enabled service.
func (d *Device) bind() error {
	host := d.cfg.listen()
	for _, s := range Services() {
		if !d.serviceOn(s) {
			continue
		}
		port := d.cfg.Ports.Port(s)
		if port > 65535 {
			return fmt.Errorf("%s port %d: out of range", s, port)
		}
		switch {
		case s == ServiceRTP:
			rtp, rtcp, err := bindRTPPair(host, port)
			if err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
			d.udp[s], d.rtcp = rtp, rtcp
			d.addrs[s] = rtp.LocalAddr().(*net.UDPAddr).AddrPort()
		case s.udp():
			c, err := listenDiscovery(host, port)
			if err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
			d.udp[s] = c
			d.addrs[s] = unmapAP(c.LocalAddr().(*net.UDPAddr).AddrPort())
			if err := d.joinGroup(s, c); err != nil {
				return err
			}
		default:
			ap := netip.AddrPortFrom(host, uint16(port))
			ln, err := net.Listen("tcp4", ap.String())
			if err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
			d.tcp[s] = ln
			d.addrs[s] = unmapAP(ln.Addr().(*net.TCPAddr).AddrPort())
		}
	}
	return nil
}

func unmapAP(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// listenDiscovery opens a UDP socket with SO_REUSEADDR, so several
// simulators on one host (each with its own advertised address) can all
// receive the multicast probes, as several devices on a LAN do.
func listenDiscovery(host netip.Addr, port int) (*net.UDPConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
		})
		return errors.Join(err, serr)
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", netip.AddrPortFrom(host, uint16(port)).String())
	if err != nil {
		return nil, err
	}
	c := pc.(*net.UDPConn)
	// Ask for the destination address and interface of each datagram: a
	// reply must name the address the probe arrived on.
	if err := ipv4.NewPacketConn(c).SetControlMessage(ipv4.FlagDst|ipv4.FlagInterface, true); err != nil {
		c.Close()
		return nil, fmt.Errorf("enable IP_PKTINFO: %w", err)
	}
	return c, nil
}

// bindRTPPair binds an even RTP port and the RTCP port after it (RFC 3550
// section 11), as gortsplib requires.
func bindRTPPair(host netip.Addr, port int) (*net.UDPConn, *net.UDPConn, error) {
	listen := func(p int) (*net.UDPConn, error) {
		return net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(host, uint16(p))))
	}
	if port > 0 {
		if port%2 != 0 || port >= 65535 {
			return nil, nil, fmt.Errorf("port %d: the RTP port must be even (RTCP uses the next one)", port)
		}
		rtp, err := listen(port)
		if err != nil {
			return nil, nil, err
		}
		rtcp, err := listen(port + 1)
		if err != nil {
			rtp.Close()
			return nil, nil, err
		}
		return rtp, rtcp, nil
	}
	for range 100 {
		rtp, err := listen(0)
		if err != nil {
			return nil, nil, err
		}
		p := rtp.LocalAddr().(*net.UDPAddr).Port
		if p%2 != 0 || p >= 65535 {
			rtp.Close()
			continue
		}
		rtcp, err := listen(p + 1)
		if err != nil {
			rtp.Close()
			continue
		}
		return rtp, rtcp, nil
	}
	return nil, nil, errors.New("no free even/odd UDP port pair found in 100 tries")
}

// joinGroup joins 239.255.255.250 on the multicast interfaces, when the
// socket listens on the wildcard address (only then does it see group
// traffic).
func (d *Device) joinGroup(s Service, c *net.UDPConn) error {
	if !d.cfg.listen().IsUnspecified() {
		return nil
	}
	pc := ipv4.NewPacketConn(c)
	group := &net.UDPAddr{IP: discoveryGroup().AsSlice()}
	names := d.cfg.MulticastInterfaces
	for _, n := range names {
		if !slices.ContainsFunc(d.ifaces, func(i ifaceInfo) bool { return i.ifi.Name == n }) {
			return fmt.Errorf("%s: multicast interface %q: no such interface", s, n)
		}
	}
	var joined []string
	for _, info := range d.ifaces {
		ifi := info.ifi
		if names != nil {
			if !slices.Contains(names, ifi.Name) {
				continue
			}
		} else if ifi.Flags&net.FlagUp == 0 || ifi.Flags&net.FlagMulticast == 0 ||
			ifi.Flags&net.FlagLoopback != 0 || len(info.prefixes) == 0 {
			continue
		}
		if err := pc.JoinGroup(&ifi, group); err != nil {
			if names != nil {
				return fmt.Errorf("%s: join %s on %s: %w", s, discoveryGroup(), ifi.Name, err)
			}
			d.log.Warn("cannot join the discovery group", "service", string(s), "interface", ifi.Name, "err", err)
			continue
		}
		joined = append(joined, ifi.Name)
	}
	if len(joined) == 0 {
		d.log.Info("no multicast interface: answering unicast probes only", "service", string(s))
	} else {
		d.log.Debug("joined the discovery group", "service", string(s), "group", discoveryGroup().String(), "interfaces", joined)
	}
	return nil
}

// ownAddr picks the IPv4 address the device reports as its own to a
// client at src, given the local address the request arrived on (which
// for discovery may be the multicast group or a broadcast address) and
// the receiving interface's index (0 when unknown).
func (d *Device) ownAddr(local netip.Addr, ifIndex int, src netip.Addr) netip.Addr {
	if d.cfg.Advertise.IsValid() {
		return d.cfg.Advertise.Unmap()
	}
	local = local.Unmap()
	if local.Is4() && !local.IsUnspecified() && !local.IsMulticast() && !d.isBroadcast(local) {
		return local
	}
	if l := d.cfg.listen(); !l.IsUnspecified() {
		return l
	}
	src = src.Unmap()
	var candidates []netip.Prefix
	for _, info := range d.ifaces {
		if ifIndex != 0 && info.ifi.Index != ifIndex {
			continue
		}
		if ifIndex == 0 && info.ifi.Flags&net.FlagLoopback != 0 && !src.IsLoopback() {
			continue
		}
		candidates = append(candidates, info.prefixes...)
	}
	for _, p := range candidates {
		if p.Contains(src) {
			return p.Addr()
		}
	}
	if len(candidates) > 0 {
		return candidates[0].Addr()
	}
	return netip.AddrFrom4([4]byte{127, 0, 0, 1})
}

func (d *Device) isBroadcast(a netip.Addr) bool {
	if a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return true
	}
	for _, info := range d.ifaces {
		for _, p := range info.prefixes {
			if p.Bits() < 31 && lastAddr(p) == a {
				return true
			}
		}
	}
	return false
}

// lastAddr returns the highest address of p (its broadcast address).
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// subnetOf returns the prefix the device reports for its address ip: the
// interface prefix holding ip, or a /24 when no interface has it (an
// Advertise address that is not local).
func (d *Device) subnetOf(ip netip.Addr) netip.Prefix {
	for _, info := range d.ifaces {
		for _, p := range info.prefixes {
			if p.Addr() == ip {
				return p
			}
		}
	}
	for _, info := range d.ifaces {
		for _, p := range info.prefixes {
			if p.Contains(ip) {
				return netip.PrefixFrom(ip, p.Bits())
			}
		}
	}
	return netip.PrefixFrom(ip, 24)
}

// gatewayFor returns the default gateway the device reports with address ip.
func (d *Device) gatewayFor(ip netip.Addr) netip.Addr {
	if d.cfg.Gateway.IsValid() {
		return d.cfg.Gateway.Unmap()
	}
	return d.subnetOf(ip).Masked().Addr().Next()
}

// maskString renders a prefix length as a dotted IPv4 mask.
func maskString(bits int) string {
	return net.IP(net.CIDRMask(bits, 32)).String()
}

// macDashes renders a MAC as SADP does: lower case with dashes.
func macDashes(mac net.HardwareAddr) string {
	b := []byte(mac.String())
	for i := range b {
		if b[i] == ':' {
			b[i] = '-'
		}
	}
	return string(b)
}
