package forward

import (
	"io"
	"net"
	"net/netip"
	"testing"
	"time"
)

// TestIPv6AndHostNames forwards over IPv6 on both sides, from a dual-stack
// "::" listener to an IPv4 device, and to a device named by host name,
// which is resolved when each connection is dialled.
func TestIPv6AndHostNames(t *testing.T) {
	ln6, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	}
	defer ln6.Close()
	go serveGreeting(ln6, "v6 device")
	dev4 := newDevice(t, func(c *net.TCPConn) { io.WriteString(c, "v4 device") })

	tests := []struct {
		name   string
		listen string
		dial   string // network for the client
		target string
		port   uint16
		want   string
	}{
		{"v6 to v6", "::1", "tcp6", "::1", uint16(ln6.Addr().(*net.TCPAddr).Port), "v6 device"},
		{"dual stack to v4", "::", "tcp4", "127.0.0.1", dev4.port, "v4 device"},
		{"host name target", "::1", "tcp6", "localhost", dev4.port, "v4 device"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			port := freePort(t)
			r, err := Bind(Spec{Name: "fam", Listen: netip.MustParseAddr(tt.listen), Ports: []uint16{port},
				Target: tt.target, TargetPorts: []uint16{tt.port}, TCP: true})
			if err != nil {
				t.Skipf("cannot listen on %s: %v", tt.listen, err)
			}
			r.Start()
			defer r.Close()
			host := "::1"
			if tt.dial == "tcp4" {
				host = "127.0.0.1"
			}
			c, err := net.DialTimeout(tt.dial, net.JoinHostPort(host, itoa(int(port))), 2*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			b, _ := io.ReadAll(c)
			if string(b) != tt.want {
				t.Fatalf("got %q, want %q", b, tt.want)
			}
			c.Close()
			waitFor(t, "connection to end", func() bool { return len(r.Conns()) == 0 })
		})
	}
}

func serveGreeting(ln net.Listener, msg string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		io.WriteString(c, msg)
		c.Close()
	}
}
