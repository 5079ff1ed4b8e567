package sim

import (
	"fmt"
	"io"
	"strings"
)

// WriteBanner prints what the device serves and where: one line per
// service, the RTSP URLs, the lock policy, and the credentials line the
// caller supplies (the caller knows where the password came from; the
// banner never prints the password itself).
func (d *Device) WriteBanner(w io.Writer, credentials string) {
	id := d.Identity()
	fmt.Fprintf(w, "camgate sim: simulated Hikvision %s %q, firmware %s %s (profile %s)\n",
		id.Model, id.DeviceName, id.FirmwareVersion, id.FirmwareReleasedDate(), d.cfg.Profile)
	if l := d.cfg.listen(); l.IsUnspecified() {
		fmt.Fprintf(w, "  listening on every address (%s); local URLs below\n", l)
	}
	line := func(name, format string, args ...any) {
		fmt.Fprintf(w, "  %-13s %s\n", name, fmt.Sprintf(format, args...))
	}
	off := func(s Service) bool {
		if !d.addrs[s].IsValid() {
			line(serviceLabel(s), "off")
			return true
		}
		return false
	}
	if !off(ServiceHTTP) {
		a := d.DialAddr(ServiceHTTP)
		line("web page", "http://%s/", a)
		line("ISAPI", "http://%s/ISAPI/System/deviceInfo (digest %s, realm %q)", a, d.auth.offered(), d.realm)
	}
	if d.addrs[ServiceHTTPS].IsValid() {
		line("HTTPS", "https://%s/ (self-signed certificate unless --tls-cert)", d.DialAddr(ServiceHTTPS))
	} else {
		p, _ := d.reportedPort(ServiceHTTPS, 443)
		line("HTTPS", "off (adminAccesses lists it disabled on %d)", p)
	}
	if !off(ServiceRTSP) {
		m, s := d.clips[streamMain], d.clips[streamSub]
		line("RTSP", "%s (main %dx%d)", d.RTSPURL("101"), m.width, m.height)
		line("", "%s (sub %dx%d); channels 1-%d as N01/N02", d.RTSPURL("102"), s.width, s.height, id.channels())
		if a := d.DialAddr(ServiceRTP); a.IsValid() {
			line("RTP/RTCP", "udp %s-%d (RTSP over UDP; TCP interleaved always works)", a, a.Port()+1)
		} else {
			line("RTP/RTCP", "off: RTSP over TCP interleaved only")
		}
	}
	if !off(ServiceSDK) {
		line("server/SDK", "tcp %s (accepts and holds connections; protocol not simulated)", d.DialAddr(ServiceSDK))
	}
	if !off(ServiceSDKOverTLS) {
		line("SDK over TLS", "tcp %s (TLS, then held)", d.DialAddr(ServiceSDKOverTLS))
	}
	if !off(ServiceWebSocket) {
		line("WebSocket", "ws://%s/ (echo)", d.DialAddr(ServiceWebSocket))
	}
	for _, s := range []Service{ServiceSADP, ServiceWSDiscovery} {
		if off(s) {
			continue
		}
		how := "group " + discoveryGroup().String() + " and unicast"
		if !d.cfg.listen().IsUnspecified() {
			how = "unicast probes only (bound to one address)"
		}
		line(serviceLabel(s), "udp %s, %s", d.addrs[s], how)
	}
	if d.locks.max > 0 {
		line("lockout", "%d failed logins lock a source IP for %v", d.locks.max, d.cfg.lockDuration())
	} else {
		line("lockout", "off")
	}
	line("credentials", "%s", credentials)
	if a := d.addrs[ServiceRTSP]; a.IsValid() {
		fmt.Fprintf(w, "Try: ffprobe -rtsp_transport tcp rtsp://%s:<password>@%s/Streaming/Channels/101\n",
			d.user, d.DialAddr(ServiceRTSP))
	}
}

func serviceLabel(s Service) string {
	switch s {
	case ServiceHTTP:
		return "web/ISAPI"
	case ServiceRTSP:
		return "RTSP"
	case ServiceSDK:
		return "server/SDK"
	case ServiceSDKOverTLS:
		return "SDK over TLS"
	case ServiceWebSocket:
		return "WebSocket"
	case ServiceSADP:
		return "SADP"
	case ServiceWSDiscovery:
		return "WS-Discovery"
	}
	return string(s)
}

// offered lists the ISAPI digest algorithms, in order.
func (a *digestAuth) offered() string {
	var s []string
	for _, al := range a.algos {
		s = append(s, al.name)
	}
	return strings.Join(s, ", ")
}
