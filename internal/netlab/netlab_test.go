package netlab

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// TestTopology checks the promises the other end-to-end tests rely on:
// wan reaches gw, gw reaches lan, and wan does not reach lan directly.
func TestTopology(t *testing.T) {
	l := New(t, Options{})
	ln, err := l.Listen(l.LAN, "tcp", LANAddr.String()+":7000")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, "hello from lan\n")
			c.Close()
		}
	}()
	c, err := l.Dial(l.GW, "tcp", "", LANAddr.String()+":7000", 2*time.Second)
	if err != nil {
		t.Fatalf("gw cannot reach lan: %v", err)
	}
	b, _ := io.ReadAll(c)
	c.Close()
	if got := string(b); got != "hello from lan\n" {
		t.Fatalf("got %q, want greeting", got)
	}
	if c, err := l.Dial(l.WAN, "tcp", "", LANAddr.String()+":7000", time.Second); err == nil {
		c.Close()
		t.Fatal("wan reached lan directly; gw must not forward")
	}
	out := l.Exec(l.WAN, "ip", "-4", "addr", "show", "dev", "eth0")
	if !strings.Contains(out, WANClient(3).String()) {
		t.Fatalf("extra client address missing: %s", out)
	}
	// A socket made in a namespace keeps working from other goroutines.
	var pc net.PacketConn
	if pc, err = l.ListenPacket(l.WAN, "udp", WANAddr.String()+":0"); err != nil {
		t.Fatal(err)
	}
	pc.Close()
}
