package forward

import (
	"net"
	"testing"
	"time"
)

// TestUDPFloodStaysInShare: a flood of new sources on a rule sharing a
// descriptor budget with two others stays within the cap less the
// reserve, recycles its own sessions, and a new client still gets one
// (#14.8).
func TestUDPFloodStaysInShare(t *testing.T) {
	dev := newUDPDevice(t)
	budget := NewLimit(80)
	budget.SetRules(3)
	ports := []uint16{freePort(t), freePort(t), freePort(t), freePort(t)}
	r, _ := startRule(t, Spec{UDP: true, Ports: ports, TargetPorts: []uint16{dev.port, dev.port, dev.port, dev.port}, FDs: budget})
	addrOf := func(i int) string { return "127.0.0.1:" + itoa(int(ports[i%len(ports)])) }
	for i := 0; i < 300; i++ {
		c, err := net.Dial("udp4", addrOf(i))
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("flood"))
		c.Close()
	}
	time.Sleep(time.Second)
	t.Logf("after the flood: sessions %d, total %d, evicted %d, refused %d, dropped %d, budget %d", r.stats.Sessions.Load(), r.stats.SessTotal.Load(), r.stats.Evicted.Load(), r.stats.Refused.Load(), r.stats.Dropped.Load(), budget.Active())
	if got, max := budget.Active(), int64(80-80/8); got > max {
		t.Errorf("the flooded rule holds %d descriptors, want at most %d", got, max)
	}
	// Another rule takes from the reserve; the flooded rule must still
	// recycle its own sessions for a new client.
	var other share
	if !budget.take(&other, 5) {
		t.Fatal("another rule was refused the reserve")
	}
	defer budget.give(&other, 5)
	c, err := net.Dial("udp4", addrOf(2))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("hello"))
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 5)
	if _, err := c.Read(buf); err != nil || string(buf) != "hello" {
		t.Fatalf("a new client after the flood: got %q, %v; want an echo", buf, err)
	}
	t.Logf("sessions %d, evicted %d, refused %d", r.stats.Sessions.Load(), r.stats.Evicted.Load(), r.stats.Refused.Load())
}
