package rtsp

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// loopback is where the unit tests put every end: the "device", the
// "viewer" and camgate's sockets, all on 127.0.0.1 with free ports.
var loopback = netip.MustParseAddr("127.0.0.1")

func udpOn(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback, 0)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// awaitPunch reads the viewer's punch at the device and returns where it
// came from: camgate's device side of the track.
func awaitPunch(t *testing.T, dev *net.UDPConn) netip.AddrPort {
	t.Helper()
	buf := make([]byte, 1500)
	dev.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, from, err := dev.ReadFromUDPAddrPort(buf)
	if err != nil || string(buf[:n]) != "punch" {
		t.Fatalf("device got %q, %v; want the punch", buf[:n], err)
	}
	return from
}

// setupTrack runs one SETUP through a Conn and returns the track's
// external RTP port.
func setupTrack(t *testing.T, c *Conn, declared, server uint16, timeout string) uint16 {
	t.Helper()
	req := "SETUP rtsp://127.0.0.1:10554/Streaming/Channels/101/trackID=1 RTSP/1.0\r\nCSeq: 3\r\n" +
		"Transport: RTP/AVP;unicast;client_port=" + formatPair(declared, declared+1) + "\r\n\r\n"
	out, answer, p := c.Request("SETUP", "rtsp://127.0.0.1:10554/Streaming/Channels/101/trackID=1", []byte(req))
	if answer != nil || p == nil {
		t.Fatalf("SETUP answered locally: %q", answer)
	}
	tv := fieldValue(out, "Transport")
	if strings.Contains(tv, formatPair(declared, declared+1)) {
		t.Fatalf("the device is told the viewer's ports: %q", tv)
	}
	res := "RTSP/1.0 200 OK\r\nCSeq: 3\r\nSession: 12345678" + timeout + "\r\nTransport: " + tv +
		";server_port=" + formatPair(server, server+1) + ";source=127.0.0.1\r\n\r\n"
	head, _ := p.Response(200, []byte(res), nil)
	_, ans := rewriteSetupAnswer(fieldValue(head, "Transport"), [2]uint16{}, [2]uint16{})
	if !ans.udp || strings.Contains(string(head), "source=") {
		t.Fatalf("answer %q: want udp without source", head)
	}
	sp, _, _ := portPair(strings.Split(strings.Split(fieldValue(head, "Transport"), "server_port=")[1], ";")[0])
	return sp
}

func TestConnRelaysLatchesAndTimesOut(t *testing.T) {
	rel := New(Config{First: 47000, Last: 47003})
	dev := udpOn(t)
	viewer := udpOn(t)
	// The thief is another host: 127.0.0.2 is loopback too on Linux.
	thief, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)})
	if err != nil {
		t.Skipf("no 127.0.0.2 here: %v", err)
	}
	defer thief.Close()
	devPort := uint16(dev.LocalAddr().(*net.UDPAddr).Port)
	c := rel.Open("cam", Addrs{
		Client: netip.AddrPortFrom(loopback, 40001), Local: netip.AddrPortFrom(loopback, 10554),
		Device: netip.AddrPortFrom(loopback, 554), DeviceLocal: netip.AddrPortFrom(loopback, 40002),
	})
	defer c.Close()
	// The viewer declares 50000 but really sits on another port, as behind
	// a NAT.
	ext := setupTrack(t, c, 50000, devPort, ";timeout=1")
	if size, used := rel.Pool(); size != 2 || used != 1 {
		t.Fatalf("pool: %d pairs, %d in use; want 2, 1", size, used)
	}
	extAddr := net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback, ext))
	// The thief sends first: no latch, nothing relayed to the device.
	thief.WriteToUDP([]byte("steal"), extAddr)
	// The viewer punches: the device sees it, from camgate's device side.
	viewer.WriteToUDP([]byte("punch"), extAddr)
	dev.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 1500)
	n, camgateDev, err := dev.ReadFromUDP(buf)
	if err != nil || string(buf[:n]) != "punch" {
		t.Fatalf("device got %q, %v; want the punch", buf[:n], err)
	}
	// Media from the device reaches the latched viewer.
	dev.WriteToUDP([]byte("rtp-1"), camgateDev)
	viewer.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, from, err := viewer.ReadFromUDP(buf)
	if err != nil || string(buf[:n]) != "rtp-1" || from.Port != int(ext) {
		t.Fatalf("viewer got %q from %v, %v; want rtp-1 from port %d", buf[:n], from, err, ext)
	}
	// Datagrams to camgate's device side from anyone but the device are
	// dropped, and the thief got nothing.
	thief.WriteToUDP([]byte("inject"), camgateDev)
	viewer.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, _, err := viewer.ReadFromUDP(buf); err == nil {
		t.Fatalf("viewer got %q from a stranger", buf[:n])
	}
	thief.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, _, err := thief.ReadFromUDP(buf); err == nil {
		t.Fatalf("the thief got %q", buf[:n])
	}
	want := func(s Stats) bool {
		return s.RTPSessions == 1 && s.UDPPacketsOut != 0 && s.Foreign == 1 && s.UDPDropped == 2
	}
	if got := waitStats(rel, "cam", want); !want(got) {
		t.Fatalf("stats %+v: want one session, packets out, one foreign and two dropped", got)
	}
	// No packet and no request for the session timeout (1 s) plus the
	// grace: the track ends and its pair is free again.
	c.mu.Lock()
	c.lastReq = time.Now().Add(-time.Hour)
	c.mu.Unlock()
	deadline := time.Now().Add(reapEvery + reapGrace + 5*time.Second)
	for {
		if _, used := rel.Pool(); used == 0 && c.Tracks() == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the track outlived its session timeout (%d tracks)", c.Tracks())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := rel.Stats()["cam"]; got.TimedOut != 1 || got.RTPSessions != 0 {
		t.Fatalf("stats %+v: want one timed out, none live", got)
	}
	// Its sockets are closed: the pair binds again.
	mustBeFree(t, netip.AddrPortFrom(loopback, ext))
	mustBeFree(t, netip.AddrPortFrom(loopback, ext+1))
}

func TestConnRefusals(t *testing.T) {
	rel := New(Config{First: 47010, Last: 47011})
	c := rel.Open("cam", Addrs{Client: netip.AddrPortFrom(loopback, 40001), Local: netip.AddrPortFrom(loopback, 10554),
		Device: netip.AddrPortFrom(loopback, 554), DeviceLocal: netip.AddrPortFrom(loopback, 40002)})
	defer c.Close()
	for _, tc := range []struct{ name, transport string }{
		{"multicast", "RTP/AVP;multicast"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, answer, _ := c.Request("SETUP", "rtsp://h/x", []byte("SETUP rtsp://h/x RTSP/1.0\r\nCSeq: 9\r\nTransport: "+tc.transport+"\r\n\r\n"))
			if !strings.HasPrefix(string(answer), "RTSP/1.0 461 ") || !strings.Contains(string(answer), "CSeq: 9\r\n") {
				t.Fatalf("got %q, want 461 with the CSeq", answer)
			}
		})
	}
	t.Run("range exhausted", func(t *testing.T) {
		dev := udpOn(t)
		setupTrack(t, c, 50000, uint16(dev.LocalAddr().(*net.UDPAddr).Port), "")
		_, answer, _ := c.Request("SETUP", "rtsp://h/x", []byte("SETUP rtsp://h/x RTSP/1.0\r\nCSeq: 10\r\nTransport: RTP/AVP;unicast;client_port=50002-50003\r\n\r\n"))
		if !strings.HasPrefix(string(answer), "RTSP/1.0 461 ") {
			t.Fatalf("got %q, want 461", answer)
		}
		c.Close()
		if _, used := rel.Pool(); used != 0 {
			t.Fatalf("%d pairs in use after Close, want 0", used)
		}
	})
}

// TestConnRelaysIPv6: the batched media path over IPv6 sockets, a burst
// from the device arriving whole and in order at the latched viewer.
func TestConnRelaysIPv6(t *testing.T) {
	lo6 := netip.MustParseAddr("::1")
	rel := New(Config{First: 47030, Last: 47033})
	bind := func() *net.UDPConn {
		c, err := net.ListenUDP("udp6", net.UDPAddrFromAddrPort(netip.AddrPortFrom(lo6, 0)))
		if err != nil {
			t.Skipf("no IPv6 loopback here: %v", err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	dev, viewer := bind(), bind()
	viewer.SetReadBuffer(1 << 20) // the whole burst waits there
	c := rel.Open("cam6", Addrs{
		Client: netip.AddrPortFrom(lo6, 40001), Local: netip.AddrPortFrom(lo6, 10554),
		Device: netip.AddrPortFrom(lo6, 554), DeviceLocal: netip.AddrPortFrom(lo6, 40002),
	})
	defer c.Close()
	ext := setupTrack(t, c, 50000, uint16(dev.LocalAddr().(*net.UDPAddr).Port), "")
	extAP := netip.AddrPortFrom(lo6, ext)
	viewer.WriteToUDPAddrPort([]byte("punch"), extAP)
	camgateDev := awaitPunch(t, dev)
	buf := make([]byte, 2048)
	payload := make([]byte, 1200)
	for k := 0; k < 100; k++ {
		copy(payload, itoa(1000+k))
		dev.WriteToUDPAddrPort(payload, camgateDev)
	}
	for k := 0; k < 100; k++ {
		viewer.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, from, err := viewer.ReadFromUDPAddrPort(buf)
		if err != nil || n != len(payload) || string(buf[:4]) != itoa(1000+k) || from != extAP {
			t.Fatalf("datagram %d: got %d bytes %q from %s, %v; want %d bytes %q from %s", k, n, buf[:4], from, err, len(payload), itoa(1000+k), extAP)
		}
	}
	if got := waitStats(rel, "cam6", func(s Stats) bool { return s.UDPPacketsOut == 100 && s.UDPBytesOut == 120000 }); got.UDPPacketsOut != 100 || got.UDPBytesOut != 120000 {
		t.Fatalf("stats %+v: want 100 packets, 120000 bytes out", got)
	}
	c.Close()
	mustBeFree(t, extAP)
	mustBeFree(t, netip.AddrPortFrom(lo6, ext+1))
}

// waitStats returns rule's counters once ok holds, or after 2 s: the relay
// counts a batch after sending it, so a receiver can see the datagrams a
// moment before the counters do.
func waitStats(rel *Relay, rule string, ok func(Stats) bool) Stats {
	deadline := time.Now().Add(2 * time.Second)
	for {
		got := rel.Stats()[rule]
		if ok(got) || time.Now().After(deadline) {
			return got
		}
		time.Sleep(5 * time.Millisecond)
	}
}
