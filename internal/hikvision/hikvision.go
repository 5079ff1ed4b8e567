// Package hikvision reads Hikvision IP cameras, DVRs and NVRs over ISAPI
// and turns what it learns into port-forwarding rules.
//
// It has three parts:
//
//   - Client, an ISAPI client with HTTP Digest authentication that reads
//     the device's identity (DeviceInfo), its real service ports
//     (AdminAccesses, keyed by protocol name, never by the unstable ids)
//     and its network interfaces;
//   - the parsers behind it (ParseDeviceInfo, ParseAdminAccesses,
//     ParseInterfaces, ParseStatus), which match local element names so
//     namespace prefixes do not matter, and are fuzzed;
//   - PlanRules, which turns a device's ports into camgate rules whose
//     external ports do not clash with the existing table.
//
// Typical usage:
//
//	c, err := hikvision.New(hikvision.Config{Host: "192.168.1.64:80", Username: "admin", Password: pw})
//	info, err := c.DeviceInfo(ctx)
//	ports, err := c.AdminAccesses(ctx)
//	plan, err := hikvision.PlanRules(cfg.Rules, info, ports, hikvision.PlanOptions{Name: "dvr1", DeviceIP: "192.168.1.64"})
//
// The device locks out a source address after a handful of failed logins
// (7 for admin, for 30 minutes, by default), and behind a gateway every
// user shares that address. The client therefore makes at most one
// credentialed attempt per call and never retries: a rejected password is
// ErrUnauthorized, a locked-out answer is ErrLocked. Credentials are never
// logged and never appear in errors.
//
// Non-goals: writing device settings (the client only reads), the
// proprietary SDK on the server port, and Basic authentication, which
// would send the password in clear over plain HTTP.
package hikvision

import (
	"sort"
	"strings"
)

// Protocol names as the device spells them in adminAccesses, upper-cased:
// Ports is keyed by these.
const (
	ProtoHTTP       = "HTTP"
	ProtoHTTPS      = "HTTPS"
	ProtoRTSP       = "RTSP"
	ProtoDevManage  = "DEV_MANAGE" // the "server" port of the proprietary SDK (iVMS-4200, apps)
	ProtoWebSocket  = "WEBSOCKET"  // plugin-free web live view
	ProtoSDKOverTLS = "SDK_OVER_TLS"
	ProtoIOT        = "IOT"
	ProtoSRTP       = "SRTP"
)

// Service is one entry of the device's adminAccesses list.
type Service struct {
	// Protocol is the name as the device wrote it ("WebSocket", "RTSP").
	Protocol string `json:"protocol"`
	// Port is the TCP port the device serves it on.
	Port uint16 `json:"port"`
	// Enabled is the device's <enabled> flag; a missing flag counts as
	// enabled, since the device listed the service.
	Enabled bool `json:"enabled"`
}

// Ports are a device's service ports keyed by upper-cased protocol name
// (the Proto constants).
type Ports map[string]Service

// Get returns the service for a protocol name, in any case.
func (p Ports) Get(proto string) (Service, bool) {
	s, ok := p[strings.ToUpper(proto)]
	return s, ok
}

// Enabled returns the port of an enabled service, or 0.
func (p Ports) Enabled(proto string) uint16 {
	if s, ok := p.Get(proto); ok && s.Enabled {
		return s.Port
	}
	return 0
}

// Set records a service under its upper-cased name.
func (p Ports) Set(proto string, port uint16, enabled bool) {
	p[strings.ToUpper(proto)] = Service{Protocol: proto, Port: port, Enabled: enabled}
}

// Sorted returns the services ordered by port, for display.
func (p Ports) Sorted() []Service {
	out := make([]Service, 0, len(p))
	for _, s := range p {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Port != out[j].Port {
			return out[i].Port < out[j].Port
		}
		return out[i].Protocol < out[j].Protocol
	})
	return out
}

// Seed-guide defaults, used when a device cannot be read: the ports a
// Hikvision DVR ships with.
const (
	DefaultHTTPPort   = 80
	DefaultHTTPSPort  = 443
	DefaultRTSPPort   = 554
	DefaultServerPort = 8000
)

// DefaultPorts returns the factory ports of a Hikvision device: HTTP 80,
// HTTPS 443, RTSP 554 and the server/SDK port 8000, all assumed enabled.
func DefaultPorts() Ports {
	p := Ports{}
	p.Set(ProtoHTTP, DefaultHTTPPort, true)
	p.Set(ProtoHTTPS, DefaultHTTPSPort, true)
	p.Set(ProtoRTSP, DefaultRTSPPort, true)
	p.Set(ProtoDevManage, DefaultServerPort, true)
	return p
}
