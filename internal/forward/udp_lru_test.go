package forward

import (
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestUDPEvictionSparesActiveFlow floods a small table with new sources
// while one flow sends every 10 ms, as RTP does. Eviction must take the
// least recently active session, never the flow, and the session count
// must never exceed the table size (#13.7).
func TestUDPEvictionSparesActiveFlow(t *testing.T) {
	// 16 sessions, a new source every 10 ms: the flow must send at least
	// once per 160 ms to stay, with room for a loaded test machine.
	const size = 16
	dev := newUDPDevice(t)
	r, addr := startRule(t, Spec{UDP: true, TargetPorts: []uint16{dev.port}, UDPMaxSessions: size})
	rtp, err := net.Dial("udp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer rtp.Close()
	rtp.Write([]byte("rtp"))
	rtp.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := rtp.Read(make([]byte, 16)); err != nil {
		t.Fatal(err)
	}
	first := r.stats.SessTotal.Load()
	local := rtp.LocalAddr().(*net.UDPAddr).AddrPort()
	rtpID := func() (id uint64, n int) {
		for _, ci := range r.Conns() {
			if ci.Client == local {
				id, n = ci.ID, n+1
			}
		}
		return id, n
	}
	firstID, _ := rtpID()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var peak atomic.Int64
	wg.Add(2)
	go func() { // the RTP flow
		defer wg.Done()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		buf := make([]byte, 16)
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				rtp.Write([]byte("rtp"))
				rtp.SetReadDeadline(time.Now().Add(5 * time.Millisecond))
				rtp.Read(buf)
			}
		}
	}()
	go func() { // the udp_sessions figure, sampled
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if n := r.stats.Sessions.Load(); n > peak.Load() {
				peak.Store(n)
			}
			time.Sleep(100 * time.Microsecond)
		}
	}()
	// The flood: 300 new sources, 10 ms apart, for about three seconds
	// (long enough to cross the old one-second clock ticks).
	for i := 0; i < 300; i++ {
		c, err := net.Dial("udp4", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("flood"))
		c.Close()
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	wg.Wait()

	// The flow keeps the one session it had before the flood: the same
	// ID, never evicted and re-created.
	if id, n := rtpID(); n != 1 || id != firstID {
		t.Errorf("got %d sessions for the RTP flow after the flood (id %d), want its one session id %d", n, id, firstID)
	}
	if ev := r.stats.Evicted.Load(); ev == 0 {
		t.Errorf("got no evictions, want the flood to evict (created %d)", r.stats.SessTotal.Load()-first)
	}
	// Every session created since is the flood's (one per source, at most
	// 300; a datagram lost on a loaded machine makes it fewer).
	if got := r.stats.SessTotal.Load() - first; got > 300 {
		t.Errorf("got %d sessions created during the flood, want at most 300 (the RTP flow was re-created)", got)
	}
	if p := peak.Load(); p > size {
		t.Errorf("udp_sessions reached %d, want at most the table size %d", p, size)
	}
}

// TestUDPExpiryReleasesSockets checks that expired sessions close their
// device sockets: the process's descriptors come back to where they were.
func TestUDPExpiryReleasesSockets(t *testing.T) {
	dev := newUDPDevice(t)
	r, addr := startRule(t, Spec{UDP: true, TargetPorts: []uint16{dev.port}, UDPIdle: 200 * time.Millisecond})
	before := openFDs(t)
	var clients []net.Conn
	for i := 0; i < 20; i++ {
		clients = append(clients, echoedUDPClient(t, addr))
	}
	if got := r.stats.Sessions.Load(); got != 20 {
		t.Fatalf("got %d sessions, want 20", got)
	}
	if got := openFDs(t) - before; got < 40 {
		t.Fatalf("got %d more descriptors with 20 sessions, want at least 40 (client and device sockets)", got)
	}
	for _, c := range clients {
		c.Close()
	}
	waitFor(t, "sessions to expire", func() bool { return r.stats.Sessions.Load() == 0 })
	waitFor(t, "device sockets to close", func() bool { return openFDs(t) <= before })
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count descriptors: %v", err)
	}
	return len(ents)
}

// echoedUDPClient dials addr and waits for one datagram's echo, so that
// the client's session exists when it returns. The test closes it.
func echoedUDPClient(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("udp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.Write([]byte("x"))
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != nil {
		t.Fatalf("client %s: %v", c.LocalAddr(), err)
	}
	return c
}
