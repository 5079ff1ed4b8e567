package gateway

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"testing"
)

// TestForwarderServes: Forwarder finds the live rule that forwards to a
// device port (skipping disabled and UDP-only rules, mapping a port
// range; the first rule in order wins, one that terminates TLS included), and a connection given to that rule's Serve is
// relayed, listed among the gateway's connections and counted in the
// rule's status.
func TestForwarderServes(t *testing.T) {
	dev := echo(t)
	p := freePorts(t, 3) // off, https, web
	pair, udp := freeTCPPair(t), freeUDPPort(t)
	cfg := mustLoad(t, fmt.Sprintf(`version: 1
listen_address: 127.0.0.1
rules:
  - {name: off, external_port: %[1]d, internal_ip: 127.0.0.1, internal_port: %[2]d, enabled: false}
  - {name: udp-only, external_port: %[3]d, internal_ip: 127.0.0.1, internal_port: %[2]d, protocol: udp}
  - {name: https, external_port: %[4]d, internal_ip: 127.0.0.1, internal_port: %[2]d, tls: terminate}
  - {name: web, external_port: %[5]d, internal_ip: 127.0.0.1, internal_port: %[2]d}
  - {name: range, external_port: "%[6]d-%[7]d", internal_ip: 127.0.0.2, internal_port: "7000-7001"}
`, p[0], dev, udp, p[1], p[2], pair, pair+1))
	g := New(Config{})
	defer g.Close(context.Background())
	if _, err := g.Apply(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	lookups := []struct {
		dst, proto, want string
	}{
		{fmt.Sprintf("127.0.0.1:%d", dev), "tcp", "https"},
		{fmt.Sprintf("127.0.0.1:%d", dev), "udp", "udp-only"},
		{"127.0.0.2:7001", "tcp", "range"},
		{"127.0.0.2:7002", "tcp", ""},
		{fmt.Sprintf("127.0.0.3:%d", dev), "tcp", ""},
	}
	for _, l := range lookups {
		fwd, r := g.Forwarder(netip.MustParseAddrPort(l.dst), l.proto)
		got := ""
		if fwd != nil {
			got = r.Name
			if fwd.Name() != r.Name {
				t.Errorf("Forwarder(%s, %s): rule %q with the config of %q", l.dst, l.proto, fwd.Name(), r.Name)
			}
		}
		if got != l.want {
			t.Errorf("Forwarder(%s, %s) = %q; want %q", l.dst, l.proto, got, l.want)
		}
	}

	fwd, _ := g.Forwarder(netip.MustParseAddrPort(fmt.Sprintf("127.0.0.1:%d", dev)), "tcp")
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	acc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	src := netip.MustParseAddrPort("100.88.0.2:50000")
	done := make(chan error, 1)
	go func() { done <- fwd.Serve(struct{ net.Conn }{acc}, src, uint16(dev)) }()
	if err := roundTrip(peer, "through serve"); err != nil {
		t.Fatal(err)
	}
	var listed bool
	for _, c := range g.Connections() {
		listed = listed || c.Rule == "https" && c.Client == src
	}
	if !listed {
		t.Fatalf("the served connection is not among the gateway's connections: %+v", g.Connections())
	}
	peer.Close()
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	for _, rs := range g.Status().Rules {
		if rs.Name == "https" && rs.Stats.Total != 1 {
			t.Fatalf("rule https counted %d connections, want 1", rs.Stats.Total)
		}
	}
}

// freeTCPPair returns the first of two consecutive ports free for TCP on
// 127.0.0.1.
func freeTCPPair(t *testing.T) int {
	t.Helper()
	for range 50 {
		a, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := a.Addr().(*net.TCPAddr).Port
		b, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", port+1))
		a.Close()
		if err == nil {
			b.Close()
			return port
		}
	}
	t.Fatal("no two consecutive free ports")
	return 0
}

// freeUDPPort returns a port free for UDP on 127.0.0.1.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}
