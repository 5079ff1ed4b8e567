package forward

import (
	"fmt"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// burstEcho sends n equal-size datagrams through addr and checks they all
// come back, in order.
func burstEcho(t *testing.T, addr string, n int) {
	t.Helper()
	c, err := net.Dial("udp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	setBuffers(c.(*net.UDPConn))
	for i := 0; i < n; i++ {
		c.Write([]byte(fmt.Sprintf("%05d", i)))
	}
	buf := make([]byte, 64)
	for i := 0; i < n; i++ {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		k, err := c.Read(buf)
		if err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
		if want := fmt.Sprintf("%05d", i); string(buf[:k]) != want {
			t.Fatalf("got %q, want %q", buf[:k], want)
		}
	}
}

// TestUDPOffloadKeptOnLoopback checks that segmentation offload is
// accepted on loopback (so the benchmark measures it) in both directions.
func TestUDPOffloadKeptOnLoopback(t *testing.T) {
	dev := newUDPDevice(t)
	r, addr := startRule(t, Spec{UDP: true, TargetPorts: []uint16{dev.port}})
	burstEcho(t, addr, 300)
	u := r.udp[0]
	if u.gso.MaxSeg() == 0 {
		t.Error("offload turned off on the external socket")
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, s := range u.sessions {
		if s.gso.MaxSeg() == 0 {
			t.Error("offload turned off on the device socket")
		}
	}
}

// TestUDPOffloadFallback makes the kernel refuse offload on the external
// socket (SO_NO_CHECK does) and checks that nothing is lost: the refused
// run is re-sent datagram by datagram and offload stays off.
func TestUDPOffloadFallback(t *testing.T) {
	dev := newUDPDevice(t)
	r, addr := startRule(t, Spec{UDP: true, TargetPorts: []uint16{dev.port}})
	u := r.udp[0]
	u.rc.Control(func(fd uintptr) {
		if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_NO_CHECK, 1); err != nil {
			t.Skipf("SO_NO_CHECK: %v", err)
		}
	})
	burstEcho(t, addr, 300)
	if got := u.gso.MaxSeg(); got != 0 {
		t.Errorf("got offload segment limit %d after a refusal, want 0 (off)", got)
	}
	if d := r.stats.Dropped.Load(); d != 0 {
		t.Errorf("got %d drops, want 0", d)
	}
}
