package main

import (
	"testing"

	"github.com/camgate/camgate/internal/config"
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
