package check

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// outcome is what one probe found.
type outcome struct {
	// status: OK when the protocol answered as expected, Fail when the
	// connection failed (dialErr set) or the answer was wrong, Unknown
	// when the protocol allows no conclusive probe.
	status Status
	// dialErr is set when the connection itself failed.
	dialErr error
	// summary says what was found, for the reason line.
	summary string
	// fix is a protocol-specific fix for a Fail with dialErr nil.
	fix string
	// fingerprint identifies the answering server (certificate hash,
	// Server header), to notice when a hairpin reaches something other
	// than the device (the router's own web page, say).
	fingerprint string
	details     map[string]string
}

func (o *outcome) set(k, v string) {
	if v == "" {
		return
	}
	if o.details == nil {
		o.details = map[string]string{}
	}
	o.details[k] = v
}

// maxAnswer bounds what a probe reads from a device.
const maxAnswer = 64 << 10

// probe runs the probe for kind against addr ("host:port") over network
// ("tcp" or "udp"), opening the connection with dial.
func probe(ctx context.Context, kind Kind, dial dialFunc, addr string, timeout time.Duration, now time.Time) outcome {
	switch kind {
	case KindRTP:
		return outcome{status: Unknown, summary: "RTP/RTCP media over UDP has no request to send and no answer to wait for, so it cannot be probed without a live stream"}
	case KindDiscovery:
		return outcome{status: Unknown, summary: "SADP and WS-Discovery answer only multicast probes on the LAN; there is nothing to test through a port forward"}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	network := "tcp"
	if kind == KindUDP {
		network = "udp"
	}
	conn, err := dial(ctx, network, addr)
	if err != nil {
		return outcome{status: Fail, dialErr: err}
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)
	switch kind {
	case KindHTTP:
		return probeHTTP(conn, addr, "http")
	case KindHTTPS, KindTLS:
		return probeTLS(conn, addr, kind, now)
	case KindRTSP:
		return probeRTSP(conn, addr)
	case KindSSH:
		return probeSSH(conn)
	case KindSDK:
		return outcome{status: OK, summary: "TCP connection accepted (the server/SDK protocol is proprietary, so only the connection was tested)"}
	case KindUDP:
		return probeUDP(conn)
	default:
		return outcome{status: OK, summary: "TCP connection accepted"}
	}
}

// probeHTTP sends GET / and reads the answer.
func probeHTTP(conn net.Conn, addr, scheme string) outcome {
	req, _ := http.NewRequest(http.MethodGet, scheme+"://"+addr+"/", nil)
	req.Header.Set("User-Agent", "camgate-check")
	req.Header.Set("Accept", "text/html,*/*")
	req.Close = true
	if err := req.Write(conn); err != nil {
		return outcome{status: Fail, summary: fmt.Sprintf("connected, but sending the request failed: %v", shortErr(err)), fix: "check that the port is the device's web port"}
	}
	br := bufio.NewReader(io.LimitReader(conn, maxAnswer))
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return outcome{status: Fail, summary: fmt.Sprintf("connected, but no HTTP answer (%s)", shortErr(err)),
			fix: "the port is open but does not speak HTTP: check the rule's internal_port against the device's HTTP port"}
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	resp.Body.Close()
	if resp.StatusCode == http.StatusBadGateway || resp.StatusCode == http.StatusGatewayTimeout {
		// A proxy on the path (camgate's own HTTP guard, say) answered
		// for a device it could not reach: the device did not answer.
		return outcome{status: Fail, summary: fmt.Sprintf("connected, but a proxy answered %s %d for a device it cannot reach", strings.ToUpper(scheme), resp.StatusCode),
			fix: "make the device answer from the gateway first (see the inside layer)"}
	}
	o := outcome{status: OK}
	o.set("http_status", strconv.Itoa(resp.StatusCode))
	o.set("server", resp.Header.Get("Server"))
	o.set("location", resp.Header.Get("Location"))
	marks := HikvisionMarkers(resp.Header, body)
	o.summary = fmt.Sprintf("answered %s %d", strings.ToUpper(scheme), resp.StatusCode)
	if len(marks) > 0 {
		o.set("hikvision", strings.Join(marks, "; "))
		o.summary += ", looks like a Hikvision web server (" + marks[0] + ")"
	} else if s := resp.Header.Get("Server"); s != "" {
		o.summary += fmt.Sprintf(" (Server: %s; no Hikvision markers)", clip(s, 40))
	}
	o.fingerprint = fmt.Sprintf("http %q %v", resp.Header.Get("Server"), len(marks) > 0)
	return o
}

// HikvisionMarkers lists what in an HTTP answer points to a Hikvision web
// server, strongest first:
//
//   - a Server header of App-webs/, DVRDVS-Webs, DNVRS-Webs or
//     Hikvision-Webs (firmware generations since about 2012), or
//     "webserver" (newer firmware; weak on its own);
//   - a Digest or Basic realm like "IP Camera(12345)" or "DS-7608NI";
//   - a redirect to, or a page that loads, /doc/page/login.asp or
//     /doc/index.html (the web UI's entry points);
//   - the word "hikvision" in the page.
func HikvisionMarkers(h http.Header, body []byte) []string {
	var out []string
	server := strings.ToLower(h.Get("Server"))
	for _, s := range []string{"app-webs", "dvrdvs-webs", "dnvrs-webs", "hikvision-webs"} {
		if strings.Contains(server, s) {
			out = append(out, "Server: "+h.Get("Server"))
			break
		}
	}
	for _, v := range h.Values("Www-Authenticate") {
		realm := realmOf(v)
		if strings.HasPrefix(realm, "IP Camera(") || strings.HasPrefix(realm, "DS-") || strings.Contains(strings.ToLower(realm), "hikvision") {
			out = append(out, fmt.Sprintf("realm %q", realm))
			break
		}
	}
	loc := strings.ToLower(h.Get("Location"))
	page := strings.ToLower(string(body))
	for _, p := range []string{"/doc/page/login.asp", "/doc/index.html"} {
		if strings.Contains(loc, p) {
			out = append(out, "redirect to "+p)
			break
		}
		if strings.Contains(page, p) {
			out = append(out, "page refers to "+p)
			break
		}
	}
	if strings.Contains(page, "hikvision") {
		out = append(out, `page mentions "hikvision"`)
	}
	if server == "webserver" && len(out) == 0 {
		out = append(out, "Server: "+h.Get("Server"))
	}
	return out
}

// realmOf extracts realm="..." from a WWW-Authenticate value.
func realmOf(v string) string {
	i := strings.Index(strings.ToLower(v), "realm=")
	if i < 0 {
		return ""
	}
	rest := v[i+len("realm="):]
	if strings.HasPrefix(rest, `"`) {
		rest = rest[1:]
		if j := strings.IndexByte(rest, '"'); j >= 0 {
			return rest[:j]
		}
		return rest
	}
	if j := strings.IndexAny(rest, ", "); j >= 0 {
		return rest[:j]
	}
	return rest
}

// probeTLS does a TLS handshake and reports the certificate; for HTTPS it
// then sends GET / over the same connection.
func probeTLS(conn net.Conn, addr string, kind Kind, now time.Time) outcome {
	host, _, _ := net.SplitHostPort(addr)
	conf := &tls.Config{
		// Devices ship self-signed certificates; the point here is to
		// read the certificate and report on it, not to trust it.
		InsecureSkipVerify: true,
		// Older device firmware speaks only TLS 1.0 or 1.1; reaching it
		// and saying so is more useful than failing the handshake.
		MinVersion: tls.VersionTLS10,
	}
	if net.ParseIP(host) == nil {
		conf.ServerName = host
	}
	tc := tls.Client(conn, conf)
	if err := tc.Handshake(); err != nil {
		return outcome{status: Fail, summary: fmt.Sprintf("connected, but the TLS handshake failed (%s)", shortErr(err)),
			fix: "the port is open but does not speak TLS: check that HTTPS is enabled on the device and that internal_port is its HTTPS port"}
	}
	st := tc.ConnectionState()
	o := outcome{status: OK}
	o.set("tls_version", tls.VersionName(st.Version))
	var certNote string
	if len(st.PeerCertificates) > 0 {
		c := st.PeerCertificates[0]
		sum := sha256.Sum256(c.Raw)
		o.fingerprint = "cert " + hex.EncodeToString(sum[:])
		o.set("cert_subject", certName(c))
		o.set("cert_issuer", c.Issuer.String())
		o.set("cert_not_after", c.NotAfter.UTC().Format(time.RFC3339))
		o.set("cert_sha256", hex.EncodeToString(sum[:]))
		switch days := int(c.NotAfter.Sub(now).Hours() / 24); {
		case now.After(c.NotAfter):
			o.status = Fail
			o.summary = fmt.Sprintf("TLS works, but the certificate (%s) expired on %s", certName(c), c.NotAfter.UTC().Format("2006-01-02"))
			o.fix = "renew the device's certificate (Hikvision: Configuration → Network → Advanced Settings → HTTPS), or let camgate terminate TLS"
			return o
		case now.Before(c.NotBefore):
			o.status = Fail
			o.summary = fmt.Sprintf("TLS works, but the certificate (%s) is not valid until %s: the device's clock or certificate is wrong", certName(c), c.NotBefore.UTC().Format("2006-01-02"))
			o.fix = "set the device's clock (NTP) or create a new certificate on it"
			return o
		case days < 30:
			certNote = fmt.Sprintf("certificate %s expires in %d days", certName(c), days)
		default:
			certNote = fmt.Sprintf("certificate %s valid until %s", certName(c), c.NotAfter.UTC().Format("2006-01-02"))
		}
	}
	if st.Version < tls.VersionTLS12 {
		certNote += ", old " + tls.VersionName(st.Version)
	}
	if kind == KindTLS {
		o.summary = "TLS handshake OK, " + certNote
		return o
	}
	h := probeHTTP(tc, addr, "https")
	for k, v := range h.details {
		o.set(k, v)
	}
	if h.status != OK {
		o.summary = "TLS handshake OK (" + certNote + "), but " + strings.TrimPrefix(h.summary, "connected, but ")
		return o
	}
	o.summary = h.summary + "; " + certNote
	return o
}

// certName is the certificate's common name, or its whole subject.
func certName(c *x509.Certificate) string {
	if c.Subject.CommonName != "" {
		return fmt.Sprintf("CN=%s", c.Subject.CommonName)
	}
	if s := c.Subject.String(); s != "" {
		return s
	}
	return "with an empty subject"
}

// probeRTSP sends OPTIONS and reads the status line and headers.
func probeRTSP(conn net.Conn, addr string) outcome {
	req := fmt.Sprintf("OPTIONS rtsp://%s/ RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: camgate-check\r\n\r\n", addr)
	if _, err := io.WriteString(conn, req); err != nil {
		return outcome{status: Fail, summary: fmt.Sprintf("connected, but sending OPTIONS failed: %v", shortErr(err))}
	}
	tp := textproto.NewReader(bufio.NewReader(io.LimitReader(conn, maxAnswer)))
	line, err := tp.ReadLine()
	if err != nil {
		return outcome{status: Fail, summary: fmt.Sprintf("connected, but no answer to RTSP OPTIONS (%s)", shortErr(err)),
			fix: "the port is open but does not answer RTSP: check internal_port against the device's RTSP port (554 by default)"}
	}
	st, ok := ParseRTSPStatus(line)
	if !ok {
		return outcome{status: Fail, summary: fmt.Sprintf("connected, but the answer is not RTSP (%q)", clip(line, 40)),
			fix: "another service answers on this port: check internal_port against the device's RTSP port (554 by default)"}
	}
	hdr, _ := tp.ReadMIMEHeader()
	o := outcome{status: OK}
	o.set("rtsp_status", strconv.Itoa(st.Code))
	o.set("server", hdr.Get("Server"))
	o.fingerprint = fmt.Sprintf("rtsp %q", hdr.Get("Server"))
	switch st.Code {
	case 200:
		o.summary = "RTSP answered OPTIONS with 200 OK"
	case 401:
		o.summary = "RTSP answered OPTIONS with 401 (it wants a password, so the server is alive)"
	default:
		o.summary = fmt.Sprintf("RTSP answered OPTIONS with %d %s (the server is alive)", st.Code, st.Reason)
	}
	return o
}

// RTSPStatus is a parsed RTSP status line.
type RTSPStatus struct {
	Version string // "RTSP/1.0"
	Code    int
	Reason  string
}

// ParseRTSPStatus parses "RTSP/1.0 200 OK".
func ParseRTSPStatus(line string) (RTSPStatus, bool) {
	ver, rest, ok := strings.Cut(strings.TrimSpace(line), " ")
	if !ok || !strings.HasPrefix(ver, "RTSP/") || len(ver) < 6 {
		return RTSPStatus{}, false
	}
	codeStr, reason, _ := strings.Cut(rest, " ")
	code, err := strconv.Atoi(codeStr)
	if err != nil || len(codeStr) != 3 || code < 100 || code > 599 {
		return RTSPStatus{}, false
	}
	return RTSPStatus{Version: ver, Code: code, Reason: strings.TrimSpace(reason)}, true
}

// probeSSH reads the server's banner.
func probeSSH(conn net.Conn) outcome {
	line, err := bufio.NewReader(io.LimitReader(conn, 256)).ReadString('\n')
	if strings.HasPrefix(line, "SSH-") {
		return outcome{status: OK, summary: "SSH server answered: " + clip(strings.TrimSpace(line), 60)}
	}
	if err != nil {
		return outcome{status: OK, summary: "TCP connection accepted, but no SSH banner came"}
	}
	return outcome{status: OK, summary: fmt.Sprintf("TCP connection accepted; the banner is not SSH (%q)", clip(line, 30))}
}

// probeUDP sends one empty datagram on a connected socket. The kernel
// reports an ICMP "port unreachable" answer as ECONNREFUSED on the next
// read: proof that nothing listens. Silence is the normal answer of a UDP
// service to a datagram it does not understand, so it proves nothing.
func probeUDP(conn net.Conn) outcome {
	if _, err := conn.Write(nil); err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return udpRefused()
		}
		return outcome{status: Unknown, summary: fmt.Sprintf("sending a datagram failed (%s)", shortErr(err))}
	}
	d := time.Now().Add(1500 * time.Millisecond)
	if dl, ok := conn.(interface{ SetReadDeadline(time.Time) error }); ok {
		dl.SetReadDeadline(d)
	}
	buf := make([]byte, 1500)
	n, err := conn.Read(buf)
	switch {
	case err == nil:
		return outcome{status: OK, summary: fmt.Sprintf("the UDP port answered a datagram (%d bytes back)", n)}
	case errors.Is(err, syscall.ECONNREFUSED):
		return udpRefused()
	default:
		return outcome{status: Unknown, summary: "no answer to a UDP datagram: UDP services stay silent when they do not understand a packet, so this neither proves nor disproves that the port is open"}
	}
}

func udpRefused() outcome {
	return outcome{status: Fail, summary: "the host answered ICMP \"port unreachable\": nothing listens on this UDP port",
		fix: "check the device's UDP port and the rule's internal_port"}
}

// dialProblem turns a connection error into words and a class.
type dialProblem struct {
	class string // refused, timeout, host-unreachable, net-unreachable, dns, other
	words string
}

func describeDial(err error) dialProblem {
	var dnsErr *net.DNSError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return dialProblem{"refused", "connection refused"}
	case errors.Is(err, syscall.EHOSTUNREACH):
		return dialProblem{"host-unreachable", "host unreachable (nothing answered ARP on the LAN)"}
	case errors.Is(err, syscall.ENETUNREACH):
		return dialProblem{"net-unreachable", "network unreachable (no route)"}
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return dialProblem{"other", "the source address is not on this host"}
	case errors.As(err, &dnsErr):
		return dialProblem{"dns", fmt.Sprintf("cannot resolve %s", dnsErr.Name)}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded), isTimeout(err):
		return dialProblem{"timeout", "no answer (timed out)"}
	default:
		return dialProblem{"other", shortErr(err)}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// shortErr drops the "dial tcp 1.2.3.4:80: connect:" prefixes that repeat
// what the reason line already says.
func shortErr(err error) string {
	if err == nil {
		return ""
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "the connection was closed without an answer"
	}
	if errors.Is(err, syscall.ECONNRESET) {
		return "the connection was reset"
	}
	if isTimeout(err) || errors.Is(err, context.DeadlineExceeded) {
		return "timed out"
	}
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 && i+2 < len(s) {
		s = s[i+2:]
	}
	return s
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
