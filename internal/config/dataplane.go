package config

import (
	"fmt"
	"net/netip"
	"strings"
)

// Dataplane selects where a rule's packets are forwarded (docs/KERNEL.md).
type Dataplane string

// The data planes. Auto takes the kernel path for a rule when nothing on it
// needs userspace and the kernel path is usable; otherwise userspace.
const (
	DataplaneAuto      Dataplane = "auto"
	DataplaneUserspace Dataplane = "userspace"
	DataplaneKernel    Dataplane = "kernel"
)

// Masquerade modes for kernel rules: auto masquerades only when the device
// would not send its replies back through this host.
const (
	MasqueradeAuto = "auto"
	MasqueradeOn   = "on"
	MasqueradeOff  = "off"
)

// Effective returns the rule's data plane, given the gateway-wide setting.
func (r *Rule) Effective(def Dataplane) Dataplane {
	for _, d := range []Dataplane{r.Dataplane, def} {
		if d != "" {
			return Dataplane(strings.ToLower(string(d)))
		}
	}
	return DataplaneAuto
}

// MasqueradeMode returns the rule's effective masquerade mode.
func (r *Rule) MasqueradeMode() string {
	if r.Masquerade == "" {
		return MasqueradeAuto
	}
	return strings.ToLower(r.Masquerade)
}

// UserspaceNeed says what on the rule needs the userspace data plane (a
// protocol guard, TLS, the RTSP relay, the auth guard, a host name or an
// address family the kernel path does not translate), or "" when the
// kernel path could carry it. listen is the gateway-wide listen address.
func (r *Rule) UserspaceNeed(listen string) string {
	switch {
	case r.TLS.Terminate():
		return "tls termination reads the traffic"
	case r.AuthGuard():
		return "the auth guard reads the logins"
	case r.GuardService() == ServiceRTSP && r.Dataplane != DataplaneKernel:
		// A rule that asks for the kernel by name gets it: RTSP over TCP
		// (interleaved) needs no relay; UDP transport does.
		return "the RTSP relay reads the RTSP exchange"
	case r.HikvisionFilter():
		return "the Hikvision exploit filter reads the HTTP requests (guard.hikvision: false allows the kernel path)"
	}
	dev, err := netip.ParseAddr(r.InternalIP)
	if err != nil {
		return "internal_ip is a host name, resolved for each connection"
	}
	if !dev.Is4() {
		return "the kernel path forwards IPv4 only"
	}
	if dev.IsLoopback() {
		return "a loopback device address cannot be reached by forwarded packets"
	}
	la, err := ListenAddr(r.Listen(listen))
	if err != nil {
		return "listen_address is not an address"
	}
	if !la.Is4() {
		return "listen_address " + la.String() + " takes IPv6 viewers, which the kernel path does not translate to an IPv4 device"
	}
	if la.IsLoopback() {
		return "a loopback listen address is served in userspace"
	}
	return ""
}

// validateDataplane checks a rule's dataplane and masquerade keys.
func validateDataplane(r *Rule, add func(field, format string, args ...any)) {
	switch d := r.Effective(""); d {
	case DataplaneAuto, DataplaneUserspace:
	case DataplaneKernel:
		if r.Dataplane != "" {
			if need := r.UserspaceNeed(DefaultListenAddress); need != "" {
				add("dataplane", "kernel, but %s; use auto or userspace", need)
			}
		}
	default:
		add("dataplane", "%q is not auto, userspace or kernel", string(r.Dataplane))
	}
	switch r.MasqueradeMode() {
	case MasqueradeAuto, MasqueradeOn, MasqueradeOff:
	default:
		add("masquerade", "%q is not auto, on or off", r.Masquerade)
	}
}

// validateGatewayDataplane checks the gateway-wide dataplane key.
func validateGatewayDataplane(c *Config, ps *problems) {
	switch d := Dataplane(strings.ToLower(string(c.Dataplane))); d {
	case "", DataplaneAuto, DataplaneUserspace, DataplaneKernel:
	default:
		ps.add(Problem{Field: "dataplane", Message: fmt.Sprintf("%q is not auto, userspace or kernel", string(c.Dataplane))})
	}
}
