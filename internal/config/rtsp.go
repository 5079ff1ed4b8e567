package config

// DefaultRTPPorts is the external UDP range for RTP over UDP on RTSP rules
// (docs/RTSP.md): 100 ports, 50 RTP/RTCP pairs, so 50 tracks at once
// (25 viewers with video and audio). Small enough to forward by hand on a
// home router. Keep in step with rtsp.DefaultFirst/DefaultLast.
var DefaultRTPPorts = PortRange{First: 40000, Last: 40099}

// RTSP configures how RTSP rules carry RTP over UDP. The zero value means
// every default.
type RTSP struct {
	// RTPPorts is the external UDP range camgate takes RTP/RTCP port
	// pairs from for viewers using UDP ("40000-40099"). Empty means
	// DefaultRTPPorts.
	RTPPorts string `yaml:"rtp_ports,omitempty" json:"rtp_ports,omitempty"`
}

// Ports returns the effective external RTP range.
func (r RTSP) Ports() PortRange {
	if r.RTPPorts == "" {
		return DefaultRTPPorts
	}
	pr, err := ParsePortRange(r.RTPPorts)
	if err != nil {
		return DefaultRTPPorts
	}
	return pr
}

// HasRTSP reports whether any enabled rule carries RTSP, and so needs the
// RTP range.
func (c *Config) HasRTSP() bool {
	for i := range c.Rules {
		if r := &c.Rules[i]; r.IsEnabled() && r.GuardService() == ServiceRTSP && !r.TLS.Terminate() {
			return true
		}
	}
	return false
}

// validateRTSP checks the rtsp section: a range of at least one pair that
// no rule's UDP external ports overlap.
func validateRTSP(c *Config, add func(field, format string, args ...any)) {
	if c.RTSP.RTPPorts == "" {
		return
	}
	pr, err := ParsePortRange(c.RTSP.RTPPorts)
	if err != nil {
		add("rtp_ports", "%v", err)
		return
	}
	if pr.Len() < 2 || (pr.First%2 == 1 && pr.Len() < 3) {
		add("rtp_ports", "%s holds no RTP/RTCP pair (an even port and the next); give at least two ports starting on an even one", pr)
		return
	}
	for i := range c.Rules {
		r := &c.Rules[i]
		if r.IsEnabled() && r.Proto().HasUDP() && r.ExternalPort.Overlaps(pr) {
			add("rtp_ports", "%s overlaps the udp ports %s of rule %q", pr, r.ExternalPort, r.Name)
		}
	}
}
