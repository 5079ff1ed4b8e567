package config

// Discovery ports that must never be forwarded (issue 14): SADP and
// WS-Discovery answer a small UDP probe with a much larger one, so through
// a forwarding rule they reflect spoofed-source floods at 9.8x to 32x
// amplification, besides advertising the device (and, for SADP, accepting
// its password-reset commands) to the internet.
var reflectorPorts = [...]struct {
	port uint16
	name string
}{
	{37020, "SADP (Hikvision's LAN discovery)"},
	{3702, "WS-Discovery (ONVIF's LAN discovery)"},
}

// validateReflection refuses a UDP rule whose internal ports take in a
// discovery port.
func validateReflection(r *Rule, add func(field, format string, args ...any)) {
	if !r.Proto().HasUDP() || r.ExternalPort.IsZero() {
		return
	}
	in := r.Internal()
	for _, rp := range reflectorPorts {
		if in.Contains(rp.port) {
			add("internal_port", "forwards UDP port %d, %s, which cannot be forwarded: it answers small probes with large replies, "+
				"so anyone could use it to reflect amplified floods from your address, and it is a LAN-only protocol; remove this rule "+
				"(use camgate discover on the LAN instead)", rp.port, rp.name)
		}
	}
}
