package forward

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// udpDevice echoes every datagram, prefixed with nothing, from 127.0.0.1.
type udpDevice struct {
	pc   *net.UDPConn
	port uint16
	wg   sync.WaitGroup
	once sync.Once
}

func newUDPDevice(t testing.TB) *udpDevice {
	t.Helper()
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	setBuffers(pc) // bursts in the tests must not overflow the device
	d := &udpDevice{pc: pc, port: uint16(pc.LocalAddr().(*net.UDPAddr).Port)}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		buf := make([]byte, maxDatagram)
		for {
			n, from, err := pc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			pc.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
	t.Cleanup(d.close)
	return d
}

func (d *udpDevice) close() { d.once.Do(func() { d.pc.Close(); d.wg.Wait() }) }

func TestUDPClientsGetTheirOwnReplies(t *testing.T) {
	dev := newUDPDevice(t)
	r, addr := startRule(t, Spec{UDP: true, TargetPorts: []uint16{dev.port}})
	sizes := []int{1, 64, 512, 1400, 1472, 9000, 32768, 65507}
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for client := 0; client < 3; client++ {
		wg.Add(1)
		go func(client int) {
			defer wg.Done()
			c, err := net.Dial("udp4", addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			buf := make([]byte, maxDatagram)
			rng := rand.New(rand.NewPCG(uint64(client), 1))
			for i := 0; i < 1000; i++ {
				size := sizes[rng.IntN(len(sizes))]
				msg := bytes.Repeat([]byte{byte(client)}, size)
				copy(msg, fmt.Sprintf("%d:%d:", client, i))
				// Lock-step send and receive: loopback does not drop, and
				// the point is integrity and addressing, not throughput.
				c.Write(msg)
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				n, err := c.Read(buf)
				if err != nil {
					errs <- fmt.Errorf("client %d datagram %d (%d bytes): %v", client, i, size, err)
					return
				}
				if !bytes.Equal(buf[:n], msg) {
					errs <- fmt.Errorf("client %d datagram %d: got %d bytes %q..., want %d bytes %q...", client, i, n, buf[:min(n, 12)], size, msg[:min(size, 12)])
					return
				}
			}
		}(client)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	s := r.Stats().Snapshot()
	if s.SessTotal != 3 || s.Dropped != 0 {
		t.Fatalf("got %d sessions and %d drops, want 3 and 0", s.SessTotal, s.Dropped)
	}
}

func TestUDPSessionExpiry(t *testing.T) {
	dev := newUDPDevice(t)
	r, addr := startRule(t, Spec{UDP: true, TargetPorts: []uint16{dev.port}, UDPIdle: 200 * time.Millisecond})
	c, err := net.Dial("udp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("hello"))
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Read(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	if r.stats.Sessions.Load() != 1 {
		t.Fatalf("got %d sessions, want 1", r.stats.Sessions.Load())
	}
	waitFor(t, "idle session to expire", func() bool { return r.stats.Sessions.Load() == 0 })
	// The same client starts a fresh session afterwards.
	c.Write([]byte("again"))
	if _, err := c.Read(make([]byte, 10)); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
	if got := r.stats.SessTotal.Load(); got != 2 {
		t.Fatalf("got %d sessions in total, want 2", got)
	}
}

func TestUDPTableBound(t *testing.T) {
	dev := newUDPDevice(t)
	r, addr := startRule(t, Spec{UDP: true, TargetPorts: []uint16{dev.port}, UDPMaxSessions: 4})
	var conns []net.Conn
	for i := 0; i < 6; i++ {
		c := echoedUDPClient(t, addr)
		conns = append(conns, c)
		time.Sleep(20 * time.Millisecond) // distinct activity stamps
	}
	waitFor(t, "table to settle at its bound", func() bool { return r.stats.Sessions.Load() == 4 })
	if got := r.stats.Evicted.Load(); got != 2 {
		t.Fatalf("got %d evictions, want 2", got)
	}
	// The newest client still has its session.
	last := conns[len(conns)-1]
	last.Write([]byte("y"))
	if _, err := last.Read(make([]byte, 1)); err != nil {
		t.Fatalf("newest session lost: %v", err)
	}
	if got := r.stats.SessTotal.Load(); got != 6 {
		t.Fatalf("newest client got a new session (total %d), want it kept (6)", got)
	}
}

func TestUDPAdmitDrops(t *testing.T) {
	dev := newUDPDevice(t)
	r, addr := startRule(t, Spec{UDP: true, TargetPorts: []uint16{dev.port},
		Admit: func(src netip.AddrPort, proto string) (func(), error) { return nil, ErrRefused }})
	c, _ := net.Dial("udp4", addr)
	defer c.Close()
	c.Write([]byte("x"))
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("refused client got a reply")
	}
	if r.stats.Refused.Load() != 1 || r.stats.SessTotal.Load() != 0 {
		t.Fatalf("got refused=%d sessions=%d, want 1 and 0", r.stats.Refused.Load(), r.stats.SessTotal.Load())
	}
}

func TestBothProtocolsOnOnePort(t *testing.T) {
	udev := newUDPDevice(t)
	// The device's TCP and UDP ports must be the same number for one rule.
	ln, err := net.Listen("tcp4", "127.0.0.1:"+itoa(int(udev.port)))
	if err != nil {
		t.Skipf("cannot get the matching TCP port: %v", err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("tcp"))
			c.Close()
		}
	}()
	_, addr := startRule(t, Spec{TCP: true, UDP: true, TargetPorts: []uint16{udev.port}})
	tc := dial(t, addr)
	b := make([]byte, 3)
	if _, err := tc.Read(b); err != nil || string(b) != "tcp" {
		t.Fatalf("tcp: got %q, %v", b, err)
	}
	uc, _ := net.Dial("udp4", addr)
	defer uc.Close()
	uc.Write([]byte("udp"))
	uc.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, err := uc.Read(b); err != nil || string(b[:n]) != "udp" {
		t.Fatalf("udp: got %q, %v", b[:n], err)
	}
}

// TestUDPBurstKeepsOrder sends bursts from several clients at once, so
// batches mix clients, and checks that each client gets every echo back in
// the order it sent them.
func TestUDPBurstKeepsOrder(t *testing.T) {
	dev := newUDPDevice(t)
	r, addr := startRule(t, Spec{UDP: true, TargetPorts: []uint16{dev.port}})
	const clients, burst = 4, 200
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			conn, err := net.Dial("udp4", addr)
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close()
			setBuffers(conn.(*net.UDPConn))
			for i := 0; i < burst; i++ {
				conn.Write([]byte(fmt.Sprintf("%d:%04d", c, i)))
			}
			buf := make([]byte, 64)
			for i := 0; i < burst; i++ {
				conn.SetReadDeadline(time.Now().Add(5 * time.Second))
				n, err := conn.Read(buf)
				if err != nil {
					errs <- fmt.Errorf("client %d: datagram %d: %v", c, i, err)
					return
				}
				if want := fmt.Sprintf("%d:%04d", c, i); string(buf[:n]) != want {
					errs <- fmt.Errorf("client %d: got %q, want %q", c, buf[:n], want)
					return
				}
			}
		}(c)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.Logf("stats %+v", r.Stats().Snapshot())
	}
	if s := r.Stats().Snapshot(); s.Dropped != 0 || s.SessTotal != clients {
		t.Fatalf("got %d drops and %d sessions, want 0 and %d", s.Dropped, s.SessTotal, clients)
	}
}

// TestUDPDualStack listens on "::" and serves an IPv4 and an IPv6 client:
// replies must be addressed in the listener's family (IPv4-mapped for the
// IPv4 client).
func TestUDPDualStack(t *testing.T) {
	dev := newUDPDevice(t)
	port := freePort(t)
	r, err := Bind(Spec{Name: "dual", Listen: netip.IPv6Unspecified(), Ports: []uint16{port},
		Target: "127.0.0.1", TargetPorts: []uint16{dev.port}, UDP: true})
	if err != nil {
		t.Skipf("no dual-stack UDP here: %v", err)
	}
	r.Start()
	defer r.Close()
	for _, tc := range []struct{ network, addr string }{
		{"udp4", "127.0.0.1"},
		{"udp6", "[::1]"},
	} {
		t.Run(tc.network, func(t *testing.T) {
			c, err := net.Dial(tc.network, tc.addr+":"+itoa(int(port)))
			if err != nil {
				t.Skip(err)
			}
			defer c.Close()
			c.Write([]byte("ping " + tc.network))
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 32)
			n, err := c.Read(buf)
			if err != nil || string(buf[:n]) != "ping "+tc.network {
				t.Fatalf("got %q, %v; want %q", buf[:n], err, "ping "+tc.network)
			}
		})
	}
	for _, ci := range r.Conns() {
		if ci.Client.Addr().Is4In6() {
			t.Errorf("session client %v is IPv4-mapped; want it unmapped", ci.Client)
		}
	}
}
