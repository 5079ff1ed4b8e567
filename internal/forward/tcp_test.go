package forward

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// device is a TCP server on 127.0.0.1:0 standing in for a camera.
type device struct {
	ln   net.Listener
	port uint16
	wg   sync.WaitGroup
}

func newDevice(t testing.TB, handle func(c *net.TCPConn)) *device {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &device{ln: ln, port: uint16(ln.Addr().(*net.TCPAddr).Port)}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			d.wg.Add(1)
			go func() {
				defer d.wg.Done()
				defer c.Close()
				handle(c.(*net.TCPConn))
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); d.wg.Wait() })
	return d
}

// freePort finds a port that is free for both TCP and UDP on 127.0.0.1.
func freePort(t testing.TB) uint16 {
	t.Helper()
	for i := 0; i < 50; i++ {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if pc, err := net.ListenPacket("udp4", "127.0.0.1:"+itoa(p)); err == nil {
			pc.Close()
			return uint16(p)
		}
	}
	t.Fatal("no free port")
	return 0
}

func itoa(n int) string { return strconv.Itoa(n) }

func startRule(t testing.TB, spec Spec) (*Rule, string) {
	t.Helper()
	if spec.Name == "" {
		spec.Name = "test"
	}
	if !spec.Listen.IsValid() {
		spec.Listen = netip.MustParseAddr("127.0.0.1")
	}
	if spec.Ports == nil {
		spec.Ports = []uint16{freePort(t)}
	}
	if spec.Target == "" {
		spec.Target = "127.0.0.1"
	}
	if !spec.TCP && !spec.UDP {
		spec.TCP = true
	}
	r, err := Bind(spec)
	if err != nil {
		t.Fatal(err)
	}
	r.Start()
	t.Cleanup(r.Close)
	return r, "127.0.0.1:" + itoa(int(spec.Ports[0]))
}

func dial(t testing.TB, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

func TestTCPBulkIntegrity(t *testing.T) {
	const size = 100 << 20
	// The device sends back the sha256 of what it received, then the same
	// number of bytes of its own, so both directions carry 100 MB.
	dev := newDevice(t, func(c *net.TCPConn) {
		h := sha256.New()
		n, _ := io.Copy(h, c)
		c.Write(h.Sum(nil))
		io.CopyN(c, rand.Reader, n)
	})
	r, addr := startRule(t, Spec{TargetPorts: []uint16{dev.port}})
	c := dial(t, addr)
	sent := sha256.New()
	go func() {
		io.CopyN(io.MultiWriter(c, sent), rand.Reader, size)
		c.CloseWrite() // half-close: the device must still answer
	}()
	var sum [32]byte
	if _, err := io.ReadFull(c, sum[:]); err != nil {
		t.Fatalf("reading device's digest: %v", err)
	}
	got, err := io.Copy(io.Discard, c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sum[:], sent.Sum(nil)) {
		t.Fatal("device received different bytes than were sent")
	}
	if got != size {
		t.Fatalf("got %d bytes back, want %d", got, size)
	}
	waitFor(t, "connection to end", func() bool { return r.stats.Active.Load() == 0 })
	s := r.Stats().Snapshot()
	if s.BytesIn != size || s.BytesOut != size+32 || s.Total != 1 {
		t.Fatalf("got stats %+v, want %d in, %d out, 1 total", s, size, size+32)
	}
}

func TestTCPHalfCloseBothWays(t *testing.T) {
	// The device reads a request to EOF, then answers and closes: the
	// classic "shutdown(SHUT_WR) then read the reply" client.
	// Deadlines on both ends: a forwarder that loses a half-close fails
	// this test in seconds instead of hanging until the test binary's
	// timeout.
	dev := newDevice(t, func(c *net.TCPConn) {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		req, _ := io.ReadAll(c)
		time.Sleep(50 * time.Millisecond)
		c.Write(append([]byte("reply to "), req...))
	})
	_, addr := startRule(t, Spec{TargetPorts: []uint16{dev.port}})
	c := dial(t, addr)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte("GET"))
	c.CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "reply to GET" {
		t.Fatalf("got %q, want %q", got, "reply to GET")
	}
}

func TestTCPDeviceHalfClosesFirst(t *testing.T) {
	// A device that says goodbye first (CloseWrite) but keeps reading.
	devGot := make(chan string, 1)
	dev := newDevice(t, func(c *net.TCPConn) {
		c.Write([]byte("banner"))
		c.CloseWrite()
		b, _ := io.ReadAll(c)
		devGot <- string(b)
	})
	_, addr := startRule(t, Spec{TargetPorts: []uint16{dev.port}})
	c := dial(t, addr)
	got, _ := io.ReadAll(c)
	if string(got) != "banner" {
		t.Fatalf("got %q, want banner", got)
	}
	if _, err := c.Write([]byte("still here")); err != nil {
		t.Fatalf("client write after device half-close: %v", err)
	}
	c.CloseWrite()
	if b := <-devGot; b != "still here" {
		t.Fatalf("device got %q, want %q", b, "still here")
	}
}

func TestTCPDeviceRefuses(t *testing.T) {
	port := freePort(t) // nothing listens there
	r, addr := startRule(t, Spec{TargetPorts: []uint16{port}})
	c := dial(t, addr)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatalf("read %d bytes from a connection whose device refused", n)
	}
	waitFor(t, "dial error counted", func() bool { return r.stats.DialErrs.Load() == 1 })
}

func TestTCPDeviceResetsMidStream(t *testing.T) {
	dev := newDevice(t, func(c *net.TCPConn) {
		io.CopyN(io.Discard, c, 1<<20)
		c.SetLinger(0) // close with RST
	})
	r, addr := startRule(t, Spec{TargetPorts: []uint16{dev.port}})
	c := dial(t, addr)
	go io.Copy(c, rand.Reader)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("client was not told the device went away")
	}
	waitFor(t, "connection to be cleaned up", func() bool { return r.stats.Active.Load() == 0 })
}

func TestTCPClientVanishes(t *testing.T) {
	gotEOF := make(chan struct{})
	dev := newDevice(t, func(c *net.TCPConn) {
		c.Write(make([]byte, 1<<20)) // more than the client will read
		io.Copy(io.Discard, c)
		close(gotEOF)
	})
	r, addr := startRule(t, Spec{TargetPorts: []uint16{dev.port}})
	c := dial(t, addr)
	c.Read(make([]byte, 10))
	c.SetLinger(0)
	c.Close()
	select {
	case <-gotEOF:
	case <-time.After(10 * time.Second):
		t.Fatal("device connection not closed after the client vanished")
	}
	waitFor(t, "connection to be cleaned up", func() bool { return r.stats.Active.Load() == 0 })
}

func TestTCPCaps(t *testing.T) {
	hold := make(chan struct{})
	dev := newDevice(t, func(c *net.TCPConn) { c.Write([]byte("x")); <-hold })
	defer close(hold)
	global := NewLimit(3)
	r, addr := startRule(t, Spec{TargetPorts: []uint16{dev.port}, MaxConns: 2, Global: global})
	for i := 0; i < 2; i++ {
		c := dial(t, addr)
		c.Read(make([]byte, 1))
	}
	if !refused(addr) {
		t.Fatal("third connection got through a max_connections of 2")
	}
	if got := r.stats.Refused.Load(); got != 1 {
		t.Fatalf("got %d refused, want 1", got)
	}
	// The global cap counts across rules.
	r2, addr2 := startRule(t, Spec{Name: "other", TargetPorts: []uint16{dev.port}, Global: global})
	c := dial(t, addr2)
	c.Read(make([]byte, 1))
	if !refused(addr2) {
		t.Fatal("connection got through a global cap of 3 with 3 active")
	}
	if got := r2.stats.Refused.Load(); got != 1 {
		t.Fatalf("got %d refused on the second rule, want 1", got)
	}
}

// refused reports whether a connection to addr is refused: an RST at
// connect or before any data.
func refused(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return true
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = c.Read(make([]byte, 1))
	return err != nil
}

func TestTCPAdmitRefuses(t *testing.T) {
	dev := newDevice(t, func(c *net.TCPConn) { c.Write([]byte("hi")) })
	var released int
	var mu sync.Mutex
	r, addr := startRule(t, Spec{TargetPorts: []uint16{dev.port}, Admit: func(src netip.AddrPort, proto string) (func(), error) {
		if src.Addr() != netip.MustParseAddr("127.0.0.1") || proto != "tcp" {
			return nil, ErrRefused
		}
		return func() { mu.Lock(); released++; mu.Unlock() }, nil
	}})
	c := dial(t, addr)
	if b, _ := io.ReadAll(c); string(b) != "hi" {
		t.Fatalf("admitted client got %q, want hi", b)
	}
	c.Close()
	waitFor(t, "release to be called", func() bool { mu.Lock(); defer mu.Unlock(); return released == 1 })
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	// The refusal is an RST right after accept; it may even beat connect().
	if c2, err := d.Dial("tcp", addr); err == nil {
		defer c2.Close()
		c2.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, _ := c2.Read(make([]byte, 2)); n > 0 {
			t.Fatal("refused client got data")
		}
	}
	waitFor(t, "refusal to be counted", func() bool { return r.stats.Refused.Load() == 1 })
	if r.stats.Refused.Load() != 1 {
		t.Fatalf("got %d refused, want 1", r.stats.Refused.Load())
	}
}

func TestTCPIdleTimeout(t *testing.T) {
	dev := newDevice(t, func(c *net.TCPConn) { io.Copy(c, c) })
	_, addr := startRule(t, Spec{TargetPorts: []uint16{dev.port}, IdleTimeout: 200 * time.Millisecond})
	c := dial(t, addr)
	// Traffic keeps it alive past the timeout...
	for i := 0; i < 6; i++ {
		c.Write([]byte("ping"))
		c.Read(make([]byte, 4))
		time.Sleep(80 * time.Millisecond)
	}
	// ...silence ends it.
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("idle connection still open")
	}
	if time.Since(start) > 4*time.Second {
		t.Fatal("idle connection was not closed by the idle timeout")
	}
}

func TestPortRange(t *testing.T) {
	base := freePort(t)
	var devs []uint16
	for i := 0; i < 3; i++ {
		i := i
		d := newDevice(t, func(c *net.TCPConn) { c.Write([]byte{byte('a' + i)}) })
		devs = append(devs, d.port)
	}
	ports := []uint16{base, base + 1, base + 2}
	for _, p := range ports[1:] {
		ln, err := net.Listen("tcp4", "127.0.0.1:"+itoa(int(p)))
		if err != nil {
			t.Skipf("port %d busy", p)
		}
		ln.Close()
	}
	startRule(t, Spec{Ports: ports, TargetPorts: devs})
	for i, p := range ports {
		c := dial(t, "127.0.0.1:"+itoa(int(p)))
		b, _ := io.ReadAll(c)
		if string(b) != string(rune('a'+i)) {
			t.Errorf("port %d reached %q, want device %c", p, b, 'a'+i)
		}
	}
}

func TestBindConflictNamesRule(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0") // no SO_REUSEPORT: a real clash
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	_, err = Bind(Spec{Name: "dvr-web", Listen: netip.MustParseAddr("127.0.0.1"), Ports: []uint16{port}, TargetPorts: []uint16{80}, Target: "127.0.0.1", TCP: true})
	if err == nil || !strings.Contains(err.Error(), `rule "dvr-web": listen tcp 127.0.0.1:`) || !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("got %v, want an address-in-use error naming the rule", err)
	}
}

// TestNoLeaks runs a mix of traffic and checks that goroutines and file
// descriptors return to where they started once everything is closed.
func TestNoLeaks(t *testing.T) {
	// The runtime's network poller opens its epoll and wake-up fds on first
	// use; open them before taking the baseline.
	if ln, err := net.Listen("tcp4", "127.0.0.1:0"); err == nil {
		ln.Close()
	}
	g0, f0 := runtime.NumGoroutine(), countFDs(t)
	func() {
		dev := newDevice(t, func(c *net.TCPConn) { io.Copy(c, c) })
		udev := newUDPDevice(t)
		r, err := Bind(Spec{Name: "leak", Listen: netip.MustParseAddr("127.0.0.1"), Ports: []uint16{freePort(t)},
			Target: "127.0.0.1", TargetPorts: []uint16{dev.port}, TCP: true, IdleTimeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		r.Start()
		addr := r.Addrs()[0].String()
		var wg sync.WaitGroup
		for i := 0; i < 50; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := net.Dial("tcp", addr)
				if err != nil {
					return
				}
				c.Write(make([]byte, 100<<10))
				c.(*net.TCPConn).CloseWrite()
				io.Copy(io.Discard, c)
				c.Close()
			}()
		}
		wg.Wait()
		u, err := Bind(Spec{Name: "leaku", Listen: netip.MustParseAddr("127.0.0.1"), Ports: []uint16{freePort(t)},
			Target: "127.0.0.1", TargetPorts: []uint16{udev.port}, UDP: true})
		if err != nil {
			t.Fatal(err)
		}
		u.Start()
		for i := 0; i < 20; i++ {
			c, _ := net.Dial("udp", u.Addrs()[0].String())
			c.Write([]byte("x"))
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			c.Read(make([]byte, 10))
			c.Close()
		}
		// One connection still open when the rule closes.
		c, _ := net.Dial("tcp", addr)
		c.Write([]byte("x"))
		c.Read(make([]byte, 1))
		r.Close()
		u.Close()
		c.Close()
		udev.close()
		dev.ln.Close()
		dev.wg.Wait()
	}()
	waitFor(t, "goroutines and fds back to baseline", func() bool {
		// Go keeps spare splice pipes in a pool until a GC frees them.
		runtime.GC()
		return runtime.NumGoroutine() <= g0 && countFDs(t) <= f0
	})
}

func countFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("needs /proc")
	}
	return len(ents)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			n := runtime.Stack(buf, true)
			t.Fatalf("timed out waiting for %s\n%s", what, buf[:n])
		}
		time.Sleep(10 * time.Millisecond)
	}
}
