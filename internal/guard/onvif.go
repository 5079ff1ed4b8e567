package guard

import (
	"bufio"
	"io"
	"net"
	"strings"

	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/rtsp"
)

// ONVIF answers name the device by its LAN address (service XAddrs,
// stream and snapshot URIs). On an HTTP rule the guard reads anyway, an
// answer to a SOAP call under /onvif/ is held (bounded by
// maxRelayBody), its URLs are rewritten to the host the client used and
// the external ports of the rules forwarding the device's ports
// (rtsp.RewriteSOAP, fuzzed), and it is sent with a Content-Length.

// onvifHost returns the client's host (without port) for a request whose
// answer needs ONVIF rewriting, or "".
func (s *session) onvifHost(m *message) string {
	if s.rtsp || m.method != "POST" || len(m.target) < 7 || !strings.EqualFold(m.target[:7], "/onvif/") {
		return ""
	}
	h := m.host
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	return strings.Trim(h, "[]")
}

// rewriteONVIF holds an ONVIF answer and rewrites its URLs. An answer
// too large to hold, or one that is not XML, passes unchanged.
func (s *session) rewriteONVIF(ex *exchange, m *message, kind bodyKind, n int64) ([]byte, bodyKind, int64, error) {
	var body []byte
	switch {
	case kind == bodyFixed && n <= maxRelayBody:
		body = make([]byte, n)
		if _, err := io.ReadFull(s.dr, body); err != nil {
			return nil, 0, 0, err
		}
	case kind == bodyChunked:
		b, err := readChunked(s.dr, maxRelayBody)
		if err != nil {
			return nil, 0, 0, err
		}
		body = b
	default:
		return m.head, kind, n, nil
	}
	devs := []string{s.h.rg.device}
	if s.dev != nil {
		if a := addrPortOf(s.dev.RemoteAddr()); a.IsValid() {
			devs = append(devs, a.Addr().String())
		}
	}
	port := s.h.p.externalPort(s.h.rg.device)
	if s.reachedDevice() {
		port = nil // a VPN peer: the device's own ports are the ones it reaches
	}
	out, err := rtsp.RewriteSOAP(body, rtsp.URLMap{Device: devs, Host: ex.onvif, Port: port})
	if err != nil {
		s.c.Logger().Debug("onvif answer not rewritten", "client", s.c.Client, "err", err)
	}
	head := rtsp.SOAPAnswerHead(m.head, len(out))
	return append(head[:len(head):len(head)], out...), bodyNone, 0, nil
}

// reachedDevice reports whether the client connected to the device's own
// address and port rather than to one of camgate's (a VPN peer, whose
// connection ends in the tunnel at the device's address and port; on
// loopback a rule's external port differs from its device's port, the
// only way the two can share an address): its URLs then keep the
// device's ports, which the peer reaches as they are, instead of the
// rules' external ports, which it does not.
func (s *session) reachedDevice() bool {
	if s.dev == nil {
		return false
	}
	local, dev := addrPortOf(s.client.LocalAddr()), addrPortOf(s.dev.RemoteAddr())
	return local.IsValid() && local == dev
}

// readChunked reads a chunked body (RFC 9112 §7.1) of at most max bytes
// whole, and its trailer.
func readChunked(br *bufio.Reader, max int) ([]byte, error) {
	var out []byte
	for {
		line, err := readLine(br, maxChunkLine, 502)
		if err != nil {
			return nil, err
		}
		size, err := chunkSize(line)
		if err != nil {
			return nil, err
		}
		if size == 0 {
			return out, copyTrailer(io.Discard, br, make([]byte, 256))
		}
		if int64(len(out))+size > int64(max) {
			return nil, malformed("onvif answer larger than %d bytes", max)
		}
		start := len(out)
		out = append(out, make([]byte, size)...)
		if _, err := io.ReadFull(br, out[start:]); err != nil {
			return nil, err
		}
		if end, err := readLine(br, 2, 502); err != nil || len(end) != 0 {
			return nil, malformed("chunk not followed by CRLF")
		}
	}
}

// portMap is, per device (internal_ip, lower-case), the external port
// forwarding each internal TCP port, from the config last given to
// SetGlobal.
type portMap map[string]map[uint16]uint16

func newPortMap(cfg *config.Config) portMap {
	pm := portMap{}
	for i := range cfg.Rules {
		r := &cfg.Rules[i]
		if !r.IsEnabled() || !r.Proto().HasTCP() {
			continue
		}
		dev := strings.ToLower(r.InternalIP)
		if pm[dev] == nil {
			pm[dev] = map[uint16]uint16{}
		}
		ext, in := r.ExternalPort, r.Internal()
		for k := 0; k < in.Len() && k < ext.Len(); k++ {
			if _, dup := pm[dev][in.First+uint16(k)]; !dup {
				pm[dev][in.First+uint16(k)] = ext.First + uint16(k)
			}
		}
	}
	return pm
}

// externalPort returns the lookup of a device's external ports.
func (p *Policy) externalPort(device string) func(uint16) (uint16, bool) {
	p.mu.Lock()
	ports := p.ports[device]
	p.mu.Unlock()
	return func(in uint16) (uint16, bool) {
		ext, ok := ports[in]
		return ext, ok
	}
}
