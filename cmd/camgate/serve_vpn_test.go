package main

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"testing"

	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/guard"
)

func TestWithVPNMapping(t *testing.T) {
	for _, tc := range []struct {
		name string
		vpn  config.VPN
		want int // rules the router client sees
	}{
		{"off", config.VPN{Router: true}, 1},
		{"on without router", config.VPN{Enabled: true}, 1},
		{"on with router", config.VPN{Enabled: true, Router: true, ListenPort: 51821}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &config.Config{Version: 1, Rules: []config.Rule{{Name: "dvr-web", ExternalPort: config.PortRange{First: 80, Last: 80}, InternalIP: "192.0.2.1"}}, VPN: tc.vpn}
			got := withVPNMapping(cfg)
			if len(got.Rules) != tc.want || len(cfg.Rules) != 1 {
				t.Fatalf("got %d rules (input now %d), want %d", len(got.Rules), len(cfg.Rules), tc.want)
			}
			if tc.want == 2 {
				r := got.Rules[1]
				if !r.Router || r.Proto() != config.UDP || r.ExternalPort.First != 51821 {
					t.Fatalf("vpn mapping: %+v", r)
				}
				if err := got.Validate(); err != nil {
					t.Fatalf("the router's view must stay a valid config: %v", err)
				}
			}
		})
	}
}

// TestTunnelRTSPRules: each device's RTSP port (given by address) gets a
// tunnel RTSP rule (TestVPNPhoneEndToEnd plays through one); a reload
// that keeps the device keeps the rule (and its viewers), a moved device
// gets a new one and the old one closes, and turning the VPN off closes
// them all.
func TestTunnelRTSPRules(t *testing.T) {
	p, err := guard.NewPolicy(guard.Config{StateDir: t.TempDir(), RTSP: newRTSPRelay(nil)})
	if err != nil {
		t.Fatal(err)
	}
	v := &vpnService{log: slog.New(slog.DiscardHandler), policy: p}
	cfg := func(dvr1 string) *config.Config {
		return &config.Config{Version: 1, VPN: config.VPN{Enabled: true}, Devices: []config.Device{
			{Name: "dvr1", Address: dvr1}, {Name: "nvr", Address: "192.0.2.2", RTSPPort: 8554}, {Name: "named", Address: "dvr.lan"}}}
	}
	dvr1 := netip.MustParseAddrPort("192.0.2.1:554")
	nvr := netip.MustParseAddrPort("192.0.2.2:8554")
	v.syncTunnelRTSP(cfg("192.0.2.1"))
	first := v.tunnelRTSP(dvr1)
	if first == nil || first.Name() != "vpn_dvr1_rtsp" || v.tunnelRTSP(nvr) == nil {
		t.Fatalf("tunnel rules: dvr1 %v, nvr %v; want both", first, v.tunnelRTSP(nvr))
	}
	if v.tunnelRTSP(netip.MustParseAddrPort("192.0.2.1:80")) != nil {
		t.Fatal("a tunnel rule for a port that is not the device's RTSP port")
	}
	v.syncTunnelRTSP(cfg("192.0.2.1"))
	if v.tunnelRTSP(dvr1) != first {
		t.Fatal("a reload that kept dvr1 replaced its tunnel rule")
	}
	v.syncTunnelRTSP(cfg("192.0.2.9"))
	if v.tunnelRTSP(dvr1) != nil || v.tunnelRTSP(netip.MustParseAddrPort("192.0.2.9:554")) == nil {
		t.Fatal("dvr1's tunnel rule did not follow its address")
	}
	if err := first.ServeAccept(dvr1, 554, func() (net.Conn, error) {
		t.Error("a closed tunnel rule accepted a connection")
		return nil, errors.New("closed")
	}); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("the old tunnel rule still serves: %v", err)
	}
	v.syncTunnelRTSP(nil)
	if v.tunnelRTSP(nvr) != nil {
		t.Fatal("tunnel rules left after the VPN stopped")
	}
}
