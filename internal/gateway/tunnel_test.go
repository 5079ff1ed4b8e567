package gateway

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"

	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/guard"
)

// TestTunnelRTSPRules: each device's RTSP port (given by address) gets a
// tunnel RTSP rule (TestVPNPhoneEndToEnd plays through one); a reload
// that keeps the device keeps the rule (and its viewers), a moved device
// gets a new one and the old one closes, and turning the VPN off closes
// them all.
func TestTunnelRTSPRules(t *testing.T) {
	p, err := guard.NewPolicy(guard.Config{StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	g := New(Config{Policy: p})
	defer g.Close(context.Background())
	tun := NewTunnel(g, nil)
	defer tun.Close()
	cfg := func(dvr1 string, on bool) *config.Config {
		return &config.Config{Version: 1, VPN: config.VPN{Enabled: on}, Devices: []config.Device{
			{Name: "dvr1", Address: dvr1}, {Name: "nvr", Address: "192.0.2.2", RTSPPort: 8554}, {Name: "named", Address: "dvr.lan"}}}
	}
	dvr1 := netip.MustParseAddrPort("192.0.2.1:554")
	nvr := netip.MustParseAddrPort("192.0.2.2:8554")
	tun.Apply(cfg("192.0.2.1", true))
	first := tun.rtspRule(dvr1)
	if first == nil || first.Name() != "vpn_dvr1_rtsp" || tun.rtspRule(nvr) == nil {
		t.Fatalf("tunnel rules: dvr1 %v, nvr %v; want both", first, tun.rtspRule(nvr))
	}
	if tun.rtspRule(netip.MustParseAddrPort("192.0.2.1:80")) != nil {
		t.Fatal("a tunnel rule for a port that is not the device's RTSP port")
	}
	tun.Apply(cfg("192.0.2.1", true))
	if tun.rtspRule(dvr1) != first {
		t.Fatal("a reload that kept dvr1 replaced its tunnel rule")
	}
	tun.Apply(cfg("192.0.2.9", true))
	if tun.rtspRule(dvr1) != nil || tun.rtspRule(netip.MustParseAddrPort("192.0.2.9:554")) == nil {
		t.Fatal("dvr1's tunnel rule did not follow its address")
	}
	if err := first.ServeAccept(dvr1, 554, func() (net.Conn, error) {
		t.Error("a closed tunnel rule accepted a connection")
		return nil, errors.New("closed")
	}); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("the old tunnel rule still serves: %v", err)
	}
	tun.Apply(cfg("192.0.2.9", false))
	if tun.rtspRule(nvr) != nil {
		t.Fatal("tunnel rules left after the VPN was turned off")
	}
}

// TestTunnelAdmit: a peer's connection is judged by the first enabled
// rule forwarding to its device port and protocol; a port no rule
// forwards is admitted (the peer's access list already allowed it).
func TestTunnelAdmit(t *testing.T) {
	g := New(Config{})
	defer g.Close(context.Background())
	tun := NewTunnel(g, nil)
	defer tun.Close()
	cfg := mustLoad(t, `version: 1
listen_address: 127.0.0.1
rules:
  - {name: off, external_port: 18001, internal_ip: 192.0.2.1, internal_port: 80, enabled: false, deny: [100.88.0.0/24]}
  - {name: web, external_port: 18002, internal_ip: 192.0.2.1, internal_port: 80, allow: [100.88.0.2/32]}
  - {name: rtp, external_port: 18003, internal_ip: 192.0.2.1, internal_port: 80, protocol: udp, deny: [100.88.0.2/32]}
`)
	tun.Apply(cfg)
	dev := netip.MustParseAddrPort("192.0.2.1:80")
	for _, tc := range []struct {
		src, proto string
		dst        netip.AddrPort
		ok         bool
	}{
		{"100.88.0.2:4000", "tcp", dev, true},
		{"100.88.0.3:4000", "tcp", dev, false},
		{"100.88.0.2:4000", "udp", dev, false},
		{"100.88.0.3:4000", "udp", dev, true},
		{"100.88.0.3:4000", "tcp", netip.MustParseAddrPort("192.0.2.1:554"), true},
	} {
		rel, err := tun.Admit(netip.MustParseAddrPort(tc.src), tc.dst, tc.proto)
		if (err == nil) != tc.ok {
			t.Errorf("Admit(%s → %s %s): err %v, want admitted %v", tc.src, tc.dst, tc.proto, err, tc.ok)
		}
		if rel != nil {
			rel()
		}
	}
}
