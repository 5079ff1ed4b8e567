package config

import (
	"strings"
	"testing"
)

func TestValidateRTSP(t *testing.T) {
	const rules = "rules:\n  - name: cam-rtp\n    protocol: udp\n    external_port: \"40050-40051\"\n    internal_ip: 192.168.1.64\n"
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"default", "version: 1\nrules: []\n", ""},
		{"custom", "version: 1\nrtsp:\n  rtp_ports: 20000-20099\nrules: []\n", ""},
		{"no pair", "version: 1\nrtsp:\n  rtp_ports: \"40001\"\nrules: []\n", "holds no RTP/RTCP pair"},
		{"malformed", "version: 1\nrtsp:\n  rtp_ports: lots\nrules: []\n", "rtp_ports"},
		{"overlaps a udp rule", "version: 1\nrtsp:\n  rtp_ports: 40000-40099\n" + rules, `overlaps the udp ports 40050-40051 of rule "cam-rtp"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tc.yaml))
			if err == nil {
				err = cfg.Validate()
			}
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("got %v, want no problem", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want a problem containing %q", err, tc.want)
			}
		})
	}
	var c Config
	if got := c.RTSP.Ports(); got != DefaultRTPPorts {
		t.Fatalf("default range %v, want %v", got, DefaultRTPPorts)
	}
}
