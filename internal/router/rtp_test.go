package router

import (
	"testing"

	"github.com/camgate/camgate/internal/config"
)

// TestWantRTPRange: `router: true` on an RTSP rule also asks for the
// external RTP range, once however many RTSP rules there are.
func TestWantRTPRange(t *testing.T) {
	cfg := &config.Config{Version: 1, Router: config.Router{Mode: config.RouterAuto}, RTSP: config.RTSP{RTPPorts: "40000-40003"}, Rules: []config.Rule{
		{Name: "dvr-rtsp", Protocol: config.TCP, ExternalPort: config.PortRange{First: 10554, Last: 10554},
			InternalIP: "198.19.0.64", InternalPort: config.PortRange{First: 554, Last: 554}, Router: true},
		{Name: "nvr-rtsp", Protocol: config.TCP, ExternalPort: config.PortRange{First: 10555, Last: 10555},
			InternalIP: "198.19.0.65", InternalPort: config.PortRange{First: 554, Last: 554}, Router: true},
		{Name: "dvr-web", Protocol: config.TCP, ExternalPort: config.PortRange{First: 8080, Last: 8080},
			InternalIP: "198.19.0.64", InternalPort: config.PortRange{First: 80, Last: 80}, Router: true},
	}}
	c := &Client{}
	c.setWantLocked(cfg)
	for p := uint16(40000); p <= 40003; p++ {
		if w, ok := c.want[key{"udp", p}]; !ok || w.rule != "dvr-rtsp" {
			t.Errorf("udp %d: got %+v (wanted %v), want it for dvr-rtsp", p, w, ok)
		}
	}
	if len(c.want) != 3+4 || len(c.dups) != 0 {
		t.Fatalf("got %d wanted mappings and %d conflicts, want 7 and none: %v", len(c.want), len(c.dups), c.want)
	}
}
