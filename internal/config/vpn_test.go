package config

import (
	"strings"
	"testing"
)

func TestVPNSection(t *testing.T) {
	cfg, err := Load([]byte("version: 1\nrules: []\nvpn: {enabled: true}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.VPN.Enabled || cfg.VPN.Port() != 51820 || cfg.VPN.Prefix().String() != DefaultVPNNetwork || cfg.VPN.EndpointFor("") != "" {
		t.Fatalf("defaults: got %+v", cfg.VPN)
	}
	if got := cfg.VPN.EndpointFor("203.0.113.7"); got != "203.0.113.7:51820" {
		t.Errorf("endpoint from public_ip: got %q", got)
	}
	// Phones on IPv6-only mobile networks dial an IPv6 endpoint: one pair
	// of brackets, whichever way it was written.
	for _, ep := range []string{"2001:db8::1", "[2001:db8::1]", "[2001:db8::1]:51820"} {
		c, err := Load([]byte("version: 1\nrules: []\nvpn: {enabled: true, endpoint: \"" + ep + "\"}\n"))
		if err != nil {
			t.Errorf("endpoint %q: %v", ep, err)
			continue
		}
		if got := c.VPN.EndpointFor(""); got != "[2001:db8::1]:51820" {
			t.Errorf("endpoint %q: got %q, want [2001:db8::1]:51820", ep, got)
		}
	}
	for _, tc := range []struct{ yaml, want string }{
		{"network: 10.0.0.0/8", "from /16"},
		{"network: fd00::/64", "must be IPv4"},
		{"network: nonsense", "not an address range"},
		{"endpoint: \"bad host!\"", "neither an IP address nor a valid host name"},
		{"endpoint: \"h.example:99999\"", "port must be 1-65535"},
		{"listen_port: 70000", "listen_port"},
		{"peers: []", "peers"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			_, err := Load([]byte("version: 1\nrules: []\nvpn:\n  " + tc.yaml + "\n"))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}
