package vpn

import (
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
)

// udpPacket builds an IPv4 UDP packet (no UDP checksum, which IPv4
// allows) as a peer's WireGuard would hand it to the tunnel.
func udpPacket(src, dst netip.AddrPort, payload []byte) []byte {
	p := make([]byte, header.IPv4MinimumSize+header.UDPMinimumSize+len(payload))
	ip := header.IPv4(p)
	ip.Encode(&header.IPv4Fields{
		TotalLength: uint16(len(p)), TTL: 64, Protocol: uint8(header.UDPProtocolNumber),
		SrcAddr: tcpip.AddrFrom4(src.Addr().As4()), DstAddr: tcpip.AddrFrom4(dst.Addr().As4()),
	})
	ip.SetChecksum(^ip.CalculateChecksum())
	u := header.UDP(p[header.IPv4MinimumSize:])
	u.Encode(&header.UDPFields{SrcPort: src.Port(), DstPort: dst.Port(), Length: uint16(header.UDPMinimumSize + len(payload))})
	copy(u.Payload(), payload)
	return p
}

// TestListenUDPInTunnel: a socket bound with TunnelConn.ListenUDP at the
// device address a peer reached gets the peer's datagrams to that port
// (not the stack's UDP forwarder, which still takes other ports), the
// peer's access list still applies, and what the socket sends leaves
// into the tunnel from the device's address and port.
func TestListenUDPInTunnel(t *testing.T) {
	peer := netip.MustParseAddr("100.88.0.2")
	dev, other := netip.MustParseAddr("198.19.0.64"), netip.MustParseAddr("198.19.0.65")
	var f filter
	acl := &peerACL{name: "alice", allowed: map[netip.Addr]bool{dev: true}, refused: new(atomic.Uint64)}
	f.set(aclTable{peer: acl})
	tun, err := newNetTUN(&f)
	if err != nil {
		t.Fatal(err)
	}
	defer tun.Close()
	var forwarded atomic.Int32
	uf := udp.NewForwarder(tun.stack, func(*udp.ForwarderRequest) { forwarded.Add(1) })
	tun.stack.SetTransportProtocolHandler(udp.ProtocolNumber, uf.HandlePacket)

	tc := &TunnelConn{stack: tun.stack, local: netip.AddrPortFrom(dev, 554)}
	pc, err := tc.ListenUDP(0)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	bound := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	if bound.Addr().Unmap() != dev || bound.Port() == 0 {
		t.Fatalf("ListenUDP(0) bound %s, want %s and a port", bound, dev)
	}
	fixed, err := tc.ListenUDP(bound.Port() + 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := fixed.LocalAddr().(*net.UDPAddr).AddrPort().Port(); got != bound.Port()+1 {
		t.Fatalf("ListenUDP(%d) bound port %d", bound.Port()+1, got)
	}
	fixed.Close()

	from := netip.AddrPortFrom(peer, 5001)
	write := func(src netip.AddrPort, dst netip.AddrPort, msg string) {
		tun.Write([][]byte{udpPacket(src, dst, []byte(msg))}, 0)
	}
	write(from, bound, "rtcp")
	pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	n, addr, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatalf("the bound socket got nothing: %v", err)
	}
	if string(buf[:n]) != "rtcp" || addr.(*net.UDPAddr).AddrPort() != from {
		t.Fatalf("got %q from %s, want %q from %s", buf[:n], addr, "rtcp", from)
	}
	if forwarded.Load() != 0 {
		t.Fatal("the UDP forwarder saw a datagram for the bound port")
	}

	// The access list: the same port on a device the peer may not reach,
	// and a source that is no peer, are dropped and counted.
	before := acl.total()
	write(from, netip.AddrPortFrom(other, bound.Port()), "not allowed")
	write(netip.AddrPortFrom(netip.MustParseAddr("100.88.0.99"), 5001), bound, "no peer")
	if acl.total() != before+1 || f.refused.Load() != 2 {
		t.Fatalf("refused: peer %d (was %d), all %d; want one more for the peer, 2 in all", acl.total(), before, f.refused.Load())
	}
	pc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, _, err := pc.ReadFrom(buf); err == nil {
		t.Fatalf("the bound socket got %q from a refused packet", buf[:n])
	}

	// A port nobody bound still goes to the forwarder.
	write(from, netip.AddrPortFrom(dev, bound.Port()+2), "plain flow")
	deadline := time.Now().Add(5 * time.Second)
	for forwarded.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if forwarded.Load() != 1 {
		t.Fatalf("the forwarder saw %d flows for an unbound port, want 1", forwarded.Load())
	}

	// The other way: from the device's address and the bound port.
	if _, err := pc.WriteTo([]byte("rtp"), net.UDPAddrFromAddrPort(from)); err != nil {
		t.Fatal(err)
	}
	bufs, sizes := [][]byte{make([]byte, 1500)}, []int{0}
	if _, err := tun.Read(bufs, sizes, 0); err != nil {
		t.Fatal(err)
	}
	ip := header.IPv4(bufs[0][:sizes[0]])
	u := header.UDP(ip.Payload())
	src := netip.AddrPortFrom(netip.AddrFrom4(ip.SourceAddress().As4()), u.SourcePort())
	dst := netip.AddrPortFrom(netip.AddrFrom4(ip.DestinationAddress().As4()), u.DestinationPort())
	if src != bound || dst != from || string(u.Payload()) != "rtp" {
		t.Fatalf("into the tunnel: %q %s -> %s, want %q %s -> %s", u.Payload(), src, dst, "rtp", bound, from)
	}
}
