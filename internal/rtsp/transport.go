package rtsp

import (
	"strconv"
	"strings"
)

// The Transport field (RFC 2326 §12.39) is rewritten parameter by
// parameter: everything camgate does not change is kept byte for byte,
// because players and devices disagree on details (case, order, spaces)
// that a re-marshal through a typed header would normalise.
//
//	Transport: RTP/AVP;unicast;client_port=5000-5001, RTP/AVP/TCP;interleaved=0-1

// transportSpec is one comma-separated alternative: its protocol and its
// ;-separated parameters as written.
type transportSpec struct {
	proto  string
	params []string
}

func parseTransport(v string) []transportSpec {
	var out []transportSpec
	for _, alt := range strings.Split(v, ",") {
		parts := strings.Split(alt, ";")
		s := transportSpec{proto: strings.TrimSpace(parts[0])}
		for _, p := range parts[1:] {
			if p = strings.TrimSpace(p); p != "" {
				s.params = append(s.params, p)
			}
		}
		if s.proto != "" {
			out = append(out, s)
		}
	}
	return out
}

func formatTransport(specs []transportSpec) string {
	var b strings.Builder
	for i, s := range specs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s.proto)
		for _, p := range s.params {
			b.WriteByte(';')
			b.WriteString(p)
		}
	}
	return b.String()
}

// tcp reports whether the alternative is interleaved in the RTSP
// connection (RTP/AVP/TCP); RTP/AVP and RTP/AVP/UDP are UDP.
func (s transportSpec) tcp() bool {
	return strings.HasSuffix(strings.ToUpper(s.proto), "/TCP")
}

// has reports whether a flag parameter (unicast, multicast) is present.
func (s transportSpec) has(flag string) bool {
	for _, p := range s.params {
		if strings.EqualFold(p, flag) {
			return true
		}
	}
	return false
}

// param returns the value of name=value and whether it is present.
func (s transportSpec) param(name string) (string, bool) {
	for _, p := range s.params {
		k, v, ok := strings.Cut(p, "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), name) {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

// set replaces name's value (adding the parameter if absent); an empty
// value removes it.
func (s *transportSpec) set(name, value string) {
	out := s.params[:0]
	done := false
	for _, p := range s.params {
		k, _, ok := strings.Cut(p, "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), name) {
			if value != "" && !done {
				out = append(out, strings.TrimSpace(k)+"="+value)
				done = true
			}
			continue
		}
		out = append(out, p)
	}
	if !done && value != "" {
		out = append(out, name+"="+value)
	}
	s.params = out
}

// portPair parses "5000-5001" or "5000" (RTCP is then the next port).
func portPair(v string) (rtp, rtcp uint16, ok bool) {
	a, b, dash := strings.Cut(v, "-")
	p1, err := strconv.ParseUint(strings.TrimSpace(a), 10, 16)
	if err != nil || p1 == 0 {
		return 0, 0, false
	}
	if !dash {
		if p1 == 65535 {
			return 0, 0, false
		}
		return uint16(p1), uint16(p1 + 1), true
	}
	p2, err := strconv.ParseUint(strings.TrimSpace(b), 10, 16)
	if err != nil || p2 == 0 {
		return 0, 0, false
	}
	return uint16(p1), uint16(p2), true
}

func formatPair(rtp, rtcp uint16) string {
	return strconv.Itoa(int(rtp)) + "-" + strconv.Itoa(int(rtcp))
}

// setupRequest is what a client's SETUP Transport asks for.
type setupRequest struct {
	// udp: some alternative is unicast UDP; declared are the client's
	// client_port values from the first of them.
	udp      bool
	declared [2]uint16
	// usable: some alternative remains once multicast ones are dropped.
	usable bool
}

// rewriteSetupRequest drops multicast alternatives and the destination
// parameter (camgate never sends media to a third address), and points
// client_port of every unicast UDP alternative at devPorts. It reports
// what the client asked for; devPorts may be zero when only inspecting.
func rewriteSetupRequest(v string, devRTP, devRTCP uint16) (string, setupRequest) {
	var req setupRequest
	var keep []transportSpec
	for _, s := range parseTransport(v) {
		if s.has("multicast") {
			continue
		}
		if !s.tcp() {
			cp, ok := s.param("client_port")
			rtp, rtcp, valid := portPair(cp)
			if !ok || !valid {
				continue // unicast UDP needs client ports
			}
			if !req.udp {
				req.udp, req.declared = true, [2]uint16{rtp, rtcp}
			}
			s.set("destination", "")
			if devRTP != 0 {
				s.set("client_port", formatPair(devRTP, devRTCP))
			}
		}
		keep = append(keep, s)
	}
	req.usable = len(keep) > 0
	return formatTransport(keep), req
}

// setupAnswer is what a device's SETUP answer chose.
type setupAnswer struct {
	udp    bool
	server [2]uint16 // the device's server_port; zero when absent
}

// rewriteSetupAnswer rewrites a device's chosen unicast UDP transport for
// the client: server_port becomes camgate's external pair, client_port
// the client's own declared ports, and source (the device's LAN
// address) is dropped, so the client sends to the address it connected to.
func rewriteSetupAnswer(v string, ext, declared [2]uint16) (string, setupAnswer) {
	var ans setupAnswer
	specs := parseTransport(v)
	for i := range specs {
		s := &specs[i]
		if s.tcp() || s.has("multicast") {
			continue
		}
		if sp, ok := s.param("server_port"); ok {
			if a, b, valid := portPair(sp); valid {
				ans.server = [2]uint16{a, b}
			}
		}
		ans.udp = true
		s.set("server_port", formatPair(ext[0], ext[1]))
		if declared[0] != 0 {
			s.set("client_port", formatPair(declared[0], declared[1]))
		}
		s.set("source", "")
		s.set("destination", "")
	}
	return formatTransport(specs), ans
}
