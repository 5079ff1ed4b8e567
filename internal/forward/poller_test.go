package forward

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// relayGoroutines counts goroutines working on forwarded connections.
func relayGoroutines() int {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		s := string(g)
		if strings.Contains(s, "forward.(*Conn).pump") || strings.Contains(s, "forward.(*Conn).serve") {
			n++
		}
	}
	return n
}

// TestIdleConnectionsHoldNoGoroutine checks the point of the poller: held,
// idle connections cost no goroutine, and each still relays when traffic
// resumes, in both directions.
func TestIdleConnectionsHoldNoGoroutine(t *testing.T) {
	dev := newDevice(t, func(c *net.TCPConn) { io.Copy(c, c) })
	r, addr := startRule(t, Spec{TargetPorts: []uint16{dev.port}})
	const n = 200
	conns := make([]*net.TCPConn, n)
	buf := make([]byte, 5)
	for i := range conns {
		conns[i] = dial(t, addr)
		if _, err := conns[i].Write([]byte("hello")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(conns[i], buf); err != nil {
			t.Fatalf("conn %d: %v", i, err)
		}
	}
	waitFor(t, "relay goroutines to end", func() bool { return relayGoroutines() == 0 })
	if got := r.stats.Active.Load(); got != n {
		t.Fatalf("got %d active, want %d", got, n)
	}
	for i, c := range conns {
		msg := []byte(fmt.Sprintf("again %04d", i))
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("conn %d after idling: got %q, %v; want %q", i, got, err, msg)
		}
	}
}

// TestCloseWithIdleConnections closes a rule whose connections are all in
// the poller: every one must be finished and its client told.
func TestCloseWithIdleConnections(t *testing.T) {
	dev := newDevice(t, func(c *net.TCPConn) { io.Copy(c, c) })
	r, addr := startRule(t, Spec{TargetPorts: []uint16{dev.port}})
	var conns []*net.TCPConn
	for i := 0; i < 50; i++ {
		c := dial(t, addr)
		c.Write([]byte("x"))
		io.ReadFull(c, make([]byte, 1))
		conns = append(conns, c)
	}
	r.Close()
	if got := r.stats.Active.Load(); got != 0 {
		t.Fatalf("got %d active after Close, want 0", got)
	}
	for i, c := range conns {
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatalf("conn %d: read succeeded after the rule closed", i)
		}
	}
}

// TestKillIdleConnection kills a connection parked in the poller.
func TestKillIdleConnection(t *testing.T) {
	dev := newDevice(t, func(c *net.TCPConn) { io.Copy(c, c) })
	r, addr := startRule(t, Spec{TargetPorts: []uint16{dev.port}})
	c := dial(t, addr)
	c.Write([]byte("x"))
	io.ReadFull(c, make([]byte, 1))
	infos := r.Conns()
	if len(infos) != 1 {
		t.Fatalf("got %d connections listed, want 1", len(infos))
	}
	if !r.Kill(infos[0].ID) {
		t.Fatal("Kill did not find the connection")
	}
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("killed connection still reads")
	}
	waitFor(t, "killed connection to finish", func() bool { return r.stats.Active.Load() == 0 })
}

// TestManyConcurrentMixed runs many connections at once with payloads of
// every size class (read path, splice path, both) and half-closes, so
// bursts, re-arms and handovers between goroutines interleave.
func TestManyConcurrentMixed(t *testing.T) {
	dev := newDevice(t, func(c *net.TCPConn) {
		io.Copy(c, c)
		c.CloseWrite()
	})
	r, addr := startRule(t, Spec{TargetPorts: []uint16{dev.port}})
	sizes := []int{1, 100, readBufSize - 1, readBufSize, readBufSize + 1, 200 << 10, 3 << 20}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			size := sizes[i%len(sizes)]
			c, err := net.Dial("tcp", addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			msg := bytes.Repeat([]byte{byte(i)}, size)
			go func() {
				// Trickle in pieces so some bursts are small, some large.
				for off := 0; off < len(msg); {
					n := min(len(msg)-off, 1+(off*7919+i)%(64<<10))
					c.Write(msg[off : off+n])
					off += n
				}
				c.(*net.TCPConn).CloseWrite()
			}()
			got, err := io.ReadAll(c)
			if err != nil {
				errs <- fmt.Errorf("conn %d: %v", i, err)
				return
			}
			if !bytes.Equal(got, msg) {
				errs <- fmt.Errorf("conn %d: got %d bytes back, want %d identical", i, len(got), len(msg))
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	waitFor(t, "connections to finish", func() bool { return r.stats.Active.Load() == 0 })
}

// TestAcceptedSocketsKeepAlive checks that accepted sockets inherit the
// listener's keepalive options (they are no longer set per connection).
func TestAcceptedSocketsKeepAlive(t *testing.T) {
	dev := newDevice(t, func(c *net.TCPConn) { io.Copy(c, c) })
	r, addr := startRule(t, Spec{TargetPorts: []uint16{dev.port}})
	c := dial(t, addr)
	c.Write([]byte("x"))
	io.ReadFull(c, make([]byte, 1))
	r.mu.Lock()
	var conn *Conn
	for _, x := range r.conns {
		conn = x
	}
	r.mu.Unlock()
	rc, err := conn.tcp.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	rc.Control(func(fd uintptr) {
		for _, o := range []struct {
			name       string
			level, opt int
			want       int
		}{
			{"SO_KEEPALIVE", unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
			{"TCP_KEEPIDLE", unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, int(keepAlive.Idle / time.Second)},
			{"TCP_KEEPINTVL", unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, int(keepAlive.Interval / time.Second)},
			{"TCP_KEEPCNT", unix.IPPROTO_TCP, unix.TCP_KEEPCNT, keepAlive.Count},
		} {
			got, err := unix.GetsockoptInt(int(fd), o.level, o.opt)
			if err != nil || got != o.want {
				t.Errorf("accepted socket %s: got %d (%v), want %d", o.name, got, err, o.want)
			}
		}
	})
}

// TestQuietConnectionGetsDeviceKeepAlive: the relay dials without
// keepalive and sets it on the device socket once the connection parks.
func TestQuietConnectionGetsDeviceKeepAlive(t *testing.T) {
	dev := newDevice(t, func(c *net.TCPConn) { io.Copy(c, c) })
	r, addr := startRule(t, Spec{TargetPorts: []uint16{dev.port}})
	c := dial(t, addr)
	c.Write([]byte("x"))
	io.ReadFull(c, make([]byte, 1))
	waitFor(t, "relay goroutines to park", func() bool { return relayGoroutines() == 0 })
	r.mu.Lock()
	var conn *Conn
	for _, x := range r.conns {
		conn = x
	}
	r.mu.Unlock()
	conn.mu.Lock()
	d := conn.device.(*net.TCPConn)
	conn.mu.Unlock()
	rc, err := d.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	rc.Control(func(fd uintptr) {
		got, err := unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_KEEPIDLE)
		if err != nil || got != int(keepAlive.Idle/time.Second) {
			t.Errorf("device socket TCP_KEEPIDLE: got %d (%v), want %d", got, err, int(keepAlive.Idle/time.Second))
		}
		on, _ := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_KEEPALIVE)
		if on != 1 {
			t.Errorf("device socket SO_KEEPALIVE: got %d, want 1", on)
		}
	})
}

// TestDeviceCongestion: a stream toward the device switches the device
// socket to Spec.DeviceCongestion ("" = cubic); "system" leaves it alone.
func TestDeviceCongestion(t *testing.T) {
	for _, tc := range []struct{ spec, want string }{
		{"", "cubic"},
		{"reno", "reno"},
		{"system", ""}, // whatever the system default is
	} {
		t.Run("spec="+tc.spec, func(t *testing.T) {
			dev := newDevice(t, func(c *net.TCPConn) { io.Copy(io.Discard, c) })
			r, addr := startRule(t, Spec{TargetPorts: []uint16{dev.port}, DeviceCongestion: tc.spec})
			c := dial(t, addr)
			if _, err := c.Write(make([]byte, 1<<20)); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the bytes to reach the device", func() bool { return r.stats.BytesIn.Load() == 1<<20 })
			r.mu.Lock()
			var conn *Conn
			for _, x := range r.conns {
				conn = x
			}
			r.mu.Unlock()
			conn.mu.Lock()
			d := conn.device.(*net.TCPConn)
			conn.mu.Unlock()
			rc, _ := d.SyscallConn()
			var got string
			rc.Control(func(fd uintptr) {
				got, _ = unix.GetsockoptString(int(fd), unix.IPPROTO_TCP, unix.TCP_CONGESTION)
			})
			def, _ := os.ReadFile("/proc/sys/net/ipv4/tcp_congestion_control")
			want := tc.want
			if want == "" {
				want = strings.TrimSpace(string(def))
			}
			if got != want {
				if os.Geteuid() != 0 {
					t.Skipf("got %q, want %q; setting it may need CAP_NET_ADMIN", got, want)
				}
				t.Fatalf("device socket congestion control: got %q, want %q", got, want)
			}
		})
	}
}
