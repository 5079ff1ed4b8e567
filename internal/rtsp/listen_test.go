package rtsp

import (
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// tunnelStack stands in for camgate's WireGuard netstack: it binds real
// UDP sockets on its own address (127.0.0.3, loopback too on Linux, but
// not the 127.0.0.1 the host path uses) and hands them out as plain
// net.PacketConn, as gVisor's gonet does, so the relay's generic path
// (ReadFrom/WriteTo) is what runs.
type tunnelStack struct {
	addr netip.Addr

	mu    sync.Mutex
	ports []uint16 // bound, in order
}

type plainPacketConn struct{ net.PacketConn }

func (s *tunnelStack) ListenUDP(port uint16) (net.PacketConn, error) {
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(s.addr, port)))
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.ports = append(s.ports, localPort(c))
	s.mu.Unlock()
	return plainPacketConn{c}, nil
}

func listenOn(t *testing.T, a netip.AddrPort) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(a))
	if err != nil {
		t.Skipf("cannot bind %s here: %v", a, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func mustBeFree(t *testing.T, a netip.AddrPort) {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(a))
	if err != nil {
		t.Fatalf("%s is still bound: %v", a, err)
	}
	c.Close()
}

// TestClientSideThroughListenUDP: with Addrs.ListenUDP the client side of
// a track is bound through it (an even/odd pair, from the range when free
// there), media and the viewer's packets flow through those sockets, the
// host's external range is untouched, and Close frees them.
func TestClientSideThroughListenUDP(t *testing.T) {
	tunAddr := netip.MustParseAddr("127.0.0.3")
	rel := New(Config{First: 47020, Last: 47023})
	dev := udpOn(t)
	devPort := uint16(dev.LocalAddr().(*net.UDPAddr).Port)
	viewer := listenOn(t, netip.AddrPortFrom(tunAddr, 0))
	thief := listenOn(t, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), 0))
	stack := &tunnelStack{addr: tunAddr}
	c := rel.Open("cam", Addrs{
		Client: netip.AddrPortFrom(tunAddr, 40001), Local: netip.AddrPortFrom(tunAddr, 10554),
		Device: netip.AddrPortFrom(loopback, 554), DeviceLocal: netip.AddrPortFrom(loopback, 0),
		ListenUDP: stack.ListenUDP,
	})
	defer c.Close()
	ext := setupTrack(t, c, 50000, devPort, "")
	if ext != 47020 {
		t.Fatalf("server_port %d, want the range's first pair 47020", ext)
	}
	stack.mu.Lock()
	bound := append([]uint16(nil), stack.ports...)
	stack.mu.Unlock()
	if len(bound) != 2 || bound[0] != 47020 || bound[1] != 47021 {
		t.Fatalf("bound through ListenUDP: %v, want [47020 47021]", bound)
	}
	if _, used := rel.Pool(); used != 0 {
		t.Fatalf("%d host pairs in use, want 0", used)
	}
	// Nothing holds the pair on the host's address.
	mustBeFree(t, netip.AddrPortFrom(loopback, 47020))
	mustBeFree(t, netip.AddrPortFrom(loopback, 47021))

	extAddr := net.UDPAddrFromAddrPort(netip.AddrPortFrom(tunAddr, ext))
	thief.WriteToUDP([]byte("steal"), extAddr)
	viewer.WriteToUDP([]byte("punch"), extAddr)
	camgateDev := awaitPunch(t, dev)
	for k := 0; k < 100; k++ {
		dev.WriteToUDPAddrPort([]byte("rtp-"+itoa(k)), camgateDev)
	}
	buf := make([]byte, 1500)
	viewer.SetReadDeadline(time.Now().Add(2 * time.Second))
	for k := 0; k < 100; k++ {
		n, from, err := viewer.ReadFromUDPAddrPort(buf)
		if err != nil || string(buf[:n]) != "rtp-"+itoa(k) || from != netip.AddrPortFrom(tunAddr, ext) {
			t.Fatalf("viewer got %q from %v, %v; want rtp-%d from %s:%d", buf[:n], from, err, k, tunAddr, ext)
		}
	}
	thief.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, _, err := thief.ReadFromUDP(buf); err == nil {
		t.Fatalf("the thief got %q", buf[:n])
	}
	want := func(s Stats) bool { return s.UDPPacketsOut == 100 && s.Foreign == 1 && s.UDPBytesIn == 5 }
	if got := waitStats(rel, "cam", want); !want(got) {
		t.Fatalf("stats %+v: want 100 packets out, one foreign, 5 bytes in", got)
	}

	// The range's pairs taken in the tunnel's stack: any even/odd pair.
	listenOn(t, netip.AddrPortFrom(tunAddr, 47022))
	ext2 := setupTrack(t, c, 50002, devPort, "")
	if ext2%2 != 0 || (ext2 >= 47020 && ext2 <= 47023) {
		t.Fatalf("server_port %d, want an even port outside the taken range", ext2)
	}
	if _, used := rel.Pool(); used != 0 {
		t.Fatalf("%d host pairs in use, want 0", used)
	}

	// Close frees the tunnel's sockets.
	c.Close()
	for _, p := range []uint16{ext, ext + 1, ext2, ext2 + 1} {
		mustBeFree(t, netip.AddrPortFrom(tunAddr, p))
	}
}
