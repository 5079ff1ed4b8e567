package rtsp

import (
	"bytes"
	"net/netip"
	"strconv"
	"strings"
)

// Address rewriting. A device names itself by its LAN address in its
// answers (Content-Base, absolute a=control URLs, RTP-Info, the SDP o=
// line), which a player outside cannot reach and which tells the world
// the LAN layout (mediamtx #683, webrtc-streamer #215, hikvision_next
// #50). Answers get the host and port the client itself used instead.
// Requests are never rewritten: the Digest response covers the uri the
// client sent (RFC 2617 §3.2.2), and a Hikvision device serves a request
// whose URL names another host.

// addrMap maps the device's own names to the client's.
type addrMap struct {
	// device are the device's hosts as they may appear in its answers,
	// lower-case, IPv6 without brackets.
	device []string
	// public is the authority (host[:port]) the client put in its request
	// URL; empty until the first request with an absolute URL.
	public string
	// publicIP replaces the device's address in SDP o= and c= lines: the
	// host of public if it is an address, else the address the client
	// connected to.
	publicIP netip.Addr
}

// isDevice reports whether host (brackets allowed) is one of the device's.
func (m *addrMap) isDevice(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
	if a, err := netip.ParseAddr(host); err == nil {
		host = a.Unmap().String()
	}
	for _, d := range m.device {
		if host == d {
			return true
		}
	}
	return false
}

// urlAuthority returns the host[:port] of an absolute rtsp URL, without
// user info, and whether it had one.
func urlAuthority(u string) (string, bool) {
	i := schemeEnd(u, 0)
	if i < 0 {
		return "", false
	}
	end := authorityEnd(u, i)
	a := u[i:end]
	if at := strings.LastIndexByte(a, '@'); at >= 0 {
		a = a[at+1:]
	}
	return a, a != ""
}

// schemeEnd returns the index after "rtsp://", "rtsps://", "http://" or
// "https://" starting at i, or -1.
func schemeEnd(s string, i int) int {
	for _, sc := range [...]string{"rtsp://", "rtsps://", "http://", "https://"} {
		if len(s)-i >= len(sc) && strings.EqualFold(s[i:i+len(sc)], sc) {
			return i + len(sc)
		}
	}
	return -1
}

func authorityEnd(s string, i int) int {
	for j := i; j < len(s); j++ {
		switch s[j] {
		case '/', '?', '#', ';', ',', ' ', '\t', '"', '\'', '<', '>', '\r', '\n':
			return j
		}
	}
	return len(s)
}

// splitHostPort splits an authority; the port is "" when absent.
func splitHostPort(a string) (host, port string) {
	if strings.HasPrefix(a, "[") {
		if end := strings.IndexByte(a, ']'); end > 0 {
			host = a[:end+1]
			if rest := a[end+1:]; strings.HasPrefix(rest, ":") {
				port = rest[1:]
			}
			return host, port
		}
		return a, ""
	}
	if strings.Count(a, ":") == 1 {
		h, p, _ := strings.Cut(a, ":")
		return h, p
	}
	return a, ""
}

// urls rewrites every absolute URL in s whose host is the device's to the
// client's authority, keeping user info, path and query.
func (m *addrMap) urls(s string) string {
	if m.public == "" {
		return s
	}
	return scanURLs(s, func(_, host, _ string) (string, bool) {
		if !m.isDevice(host) {
			return "", false
		}
		return m.public, true
	})
}

// scanURLs finds the absolute URLs in s (rtsp, rtsps, http, https) and
// lets f replace the authority of each (without user info, which is
// kept). f gets the lower-case scheme, the host (IPv6 with brackets) and
// the port ("" when absent).
func scanURLs(s string, f func(scheme, host, port string) (string, bool)) string {
	var b strings.Builder
	last := 0
	for i := 0; i < len(s); i++ {
		c := s[i] | 0x20
		if c != 'r' && c != 'h' {
			continue
		}
		start := schemeEnd(s, i)
		if start < 0 {
			continue
		}
		end := authorityEnd(s, start)
		auth := s[start:end]
		ui := ""
		if at := strings.LastIndexByte(auth, '@'); at >= 0 {
			ui, auth = auth[:at+1], auth[at+1:]
		}
		host, port := splitHostPort(auth)
		if repl, ok := f(strings.ToLower(s[i:start-3]), host, port); ok {
			b.WriteString(s[last:start])
			b.WriteString(ui)
			b.WriteString(repl)
			last = end
			i = end - 1
		}
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// urlFields are the answer fields that carry URLs (RFC 2326 §12).
var urlFields = [...]string{"content-base", "content-location", "rtp-info", "location"}

// head calls f for every field of a message head (CRLF line ends, ending
// with the blank line, as package guard re-emits it) and returns the head
// with the fields f changed; f returns the new value, or drop to remove the
// field. The start line is kept.
func editHead(head []byte, f func(name, value string) (string, bool)) []byte {
	lines := bytes.Split(head, []byte("\r\n"))
	var out bytes.Buffer
	out.Grow(len(head) + 64)
	changed := false
	for i, l := range lines {
		if i == len(lines)-1 && len(l) == 0 {
			break
		}
		if i > 0 && len(l) > 0 {
			name, value, ok := bytes.Cut(l, []byte(":"))
			if ok {
				v := string(bytes.TrimSpace(value))
				nv, keep := f(string(name), v)
				if !keep {
					changed = true
					continue
				}
				if nv != v {
					changed = true
					out.Write(name)
					out.WriteString(": ")
					out.WriteString(nv)
					out.WriteString("\r\n")
					continue
				}
			}
		}
		out.Write(l)
		out.WriteString("\r\n")
	}
	if !changed {
		return head
	}
	return out.Bytes()
}

// fieldValue returns the value of the first field called name.
func fieldValue(head []byte, name string) string {
	for _, l := range bytes.Split(head, []byte("\r\n"))[1:] {
		n, v, ok := bytes.Cut(l, []byte(":"))
		if ok && strings.EqualFold(string(bytes.TrimSpace(n)), name) {
			return string(bytes.TrimSpace(v))
		}
	}
	return ""
}

// answerHead rewrites the URL fields of an answer and, when the body was
// rewritten, its Content-Length.
func (m *addrMap) answerHead(head []byte, bodyLen int) []byte {
	return editHead(head, func(name, value string) (string, bool) {
		ln := strings.ToLower(strings.TrimSpace(name))
		for _, f := range urlFields {
			if ln == f {
				return m.urls(value), true
			}
		}
		if ln == "content-length" && bodyLen >= 0 {
			return strconv.Itoa(bodyLen), true
		}
		return value, true
	})
}

// sdp rewrites a session description (RFC 8866): the device's address in
// o= and c= lines, and device URLs in every line (a=control). Line ends
// are kept as the device wrote them.
func (m *addrMap) sdp(body []byte) []byte {
	lines := bytes.SplitAfter(body, []byte("\n"))
	var out bytes.Buffer
	out.Grow(len(body) + 64)
	for _, l := range lines {
		text := string(l)
		eol := ""
		for strings.HasSuffix(text, "\n") || strings.HasSuffix(text, "\r") {
			eol = text[len(text)-1:] + eol
			text = text[:len(text)-1]
		}
		switch {
		case strings.HasPrefix(text, "o="), strings.HasPrefix(text, "c="):
			text = m.sdpAddress(text)
		}
		if strings.Contains(strings.ToLower(text), "://") {
			text = m.urls(text)
		}
		out.WriteString(text)
		out.WriteString(eol)
	}
	return out.Bytes()
}

// sdpAddress replaces the device's address at the end of an o= or c= line
// ("... IN IP4 198.19.0.64", c= may add "/ttl").
func (m *addrMap) sdpAddress(line string) string {
	f := strings.Fields(line)
	if len(f) < 3 || !m.publicIP.IsValid() {
		return line
	}
	addr := f[len(f)-1]
	host, suffix, _ := strings.Cut(addr, "/")
	if !m.isDevice(host) {
		return line
	}
	typ := "IP4"
	if m.publicIP.Is6() && !m.publicIP.Is4In6() {
		typ = "IP6"
	}
	f[len(f)-2] = typ
	f[len(f)-1] = m.publicIP.Unmap().String()
	if suffix != "" {
		f[len(f)-1] += "/" + suffix
	}
	return strings.Join(f, " ")
}
