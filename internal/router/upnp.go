package router

import (
	"bufio"
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/huin/goupnp"
	"github.com/huin/goupnp/dcps/internetgateway2"
	"github.com/huin/goupnp/soap"
)

// UPnP IGD (WANIPConnection:2, WANIPConnection:1, WANPPPConnection:1)
// through huin/goupnp's generated clients. camgate fetches the device
// description itself, with its own HTTP client, so that every request
// has a timeout, a size limit, a content-type check and goes only to the
// gateway.
//
// Security: a UPnP LOCATION or control URL names a host, and any LAN
// device can answer an SSDP search. camgate only accepts SSDP answers
// whose source is the gateway, and if the LOCATION, URLBase or a control
// URL names another host it keeps the path and port but sends the request
// to the gateway anyway, as tailscale's portmapper does (tailscale issue
// #5502). The HTTP dialer refuses any other destination as a last line.

// upnpMaxBody bounds a description or SOAP answer; real ones are a few KB.
const upnpMaxBody = 1 << 20

// UPnP error codes (UPnP IGD WANIPConnection:2 §2.4, UDA §3.2.2).
const (
	upnpInvalidAction       = 401
	upnpInvalidArgs         = 402
	upnpActionFailed        = 501
	upnpNotAuthorized       = 606
	upnpArrayIndexInvalid   = 713
	upnpNoSuchEntry         = 714
	upnpConflict            = 718
	upnpSamePortRequired    = 724
	upnpOnlyPermanentLeases = 725
	upnpRemoteHostWildcard  = 726
	upnpExtPortWildcard     = 727
	upnpNoPortMapsAvailable = 728
	upnpConflictWithOther   = 729
)

// igdService is what camgate uses of goupnp's three WAN connection
// clients; their generated methods share these signatures.
type igdService interface {
	AddPortMappingCtx(ctx context.Context, remoteHost string, externalPort uint16, protocol string, internalPort uint16, internalClient string, enabled bool, description string, leaseSeconds uint32) error
	DeletePortMappingCtx(ctx context.Context, remoteHost string, externalPort uint16, protocol string) error
	GetExternalIPAddressCtx(ctx context.Context) (string, error)
	GetGenericPortMappingEntryCtx(ctx context.Context, index uint16) (remoteHost string, externalPort uint16, protocol string, internalPort uint16, internalClient string, enabled bool, description string, leaseSeconds uint32, err error)
	GetSpecificPortMappingEntryCtx(ctx context.Context, remoteHost string, externalPort uint16, protocol string) (internalPort uint16, internalClient string, enabled bool, description string, leaseSeconds uint32, err error)
}

// upnpMapper maps ports through one WAN connection service.
type upnpMapper struct {
	proto   Protocol // upnp-igd2 or upnp-igd1
	gw      netip.Addr
	local   netip.Addr
	svc     igdService
	urn     string // service type
	control string // control URL, repointed at the gateway
	device  string
	timeout time.Duration
}

func (u *upnpMapper) protocol() Protocol  { return u.proto }
func (u *upnpMapper) gateway() netip.Addr { return u.gw }
func (u *upnpMapper) describe() (string, string) {
	return u.device, u.control
}

func (u *upnpMapper) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, u.timeout)
}

func upnpProto(p string) string { return strings.ToUpper(p) }

func (u *upnpMapper) add(ctx context.Context, l *lease, lifetime time.Duration) (grant, error) {
	secs := uint32(lifetime / time.Second)
	cctx, cancel := u.call(ctx)
	err := u.svc.AddPortMappingCtx(cctx, "", l.Port, upnpProto(l.Proto), l.Port, u.local.String(), true, l.Desc, secs)
	cancel()
	if code, ok := upnpErrorCode(err); ok && code == upnpOnlyPermanentLeases {
		// Some routers only take lease 0 ("until reboot"); camgate still
		// deletes it on shutdown, and reclaims it after a crash.
		cctx, cancel := u.call(ctx)
		err = u.svc.AddPortMappingCtx(cctx, "", l.Port, upnpProto(l.Proto), l.Port, u.local.String(), true, l.Desc, 0)
		cancel()
		if err == nil {
			return grant{lifetime: 0, permanent: true}, nil
		}
	}
	if err != nil {
		return grant{}, u.classify(ctx, "add", err)
	}
	return grant{lifetime: lifetime}, nil
}

func (u *upnpMapper) remove(ctx context.Context, l *lease) error {
	cctx, cancel := u.call(ctx)
	err := u.svc.DeletePortMappingCtx(cctx, "", l.Port, upnpProto(l.Proto))
	cancel()
	if code, ok := upnpErrorCode(err); ok && code == upnpNoSuchEntry {
		return nil // already gone: expired, or the router rebooted
	}
	if err != nil {
		return u.classify(ctx, "delete", err)
	}
	return nil
}

func (u *upnpMapper) externalIP(ctx context.Context) (netip.Addr, error) {
	cctx, cancel := u.call(ctx)
	s, err := u.svc.GetExternalIPAddressCtx(cctx)
	cancel()
	if err != nil {
		return netip.Addr{}, u.classify(ctx, "GetExternalIPAddress", err)
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return netip.Addr{}, nil // miniupnpd and others: no WAN address yet
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("router reported external address %q, which is not an IP address", s)
	}
	return a.Unmap(), nil
}

// Entry is one port mapping as the router lists it.
type Entry struct {
	Protocol       string `json:"protocol"`
	ExternalPort   uint16 `json:"external_port"`
	InternalClient string `json:"internal_client"`
	InternalPort   uint16 `json:"internal_port"`
	Description    string `json:"description,omitempty"`
	LeaseSeconds   uint32 `json:"lease_seconds"` // 0: permanent
	Enabled        bool   `json:"enabled"`
	RemoteHost     string `json:"remote_host,omitempty"`
}

// maxListEntries bounds a listing, against routers that never say "end".
const maxListEntries = 1024

// list reads the router's mapping table with GetGenericPortMappingEntry
// until the router says the index is past the end.
func (u *upnpMapper) list(ctx context.Context) ([]Entry, error) {
	var out []Entry
	for i := 0; i < maxListEntries; i++ {
		cctx, cancel := u.call(ctx)
		rh, ext, proto, in, client, en, desc, lease, err := u.svc.GetGenericPortMappingEntryCtx(cctx, uint16(i))
		cancel()
		if code, ok := upnpErrorCode(err); ok && (code == upnpArrayIndexInvalid || code == upnpNoSuchEntry || (code == upnpInvalidArgs && i > 0)) {
			return out, nil
		}
		if err != nil {
			return out, u.classify(ctx, "GetGenericPortMappingEntry", err)
		}
		out = append(out, Entry{Protocol: strings.ToLower(proto), ExternalPort: ext, InternalClient: client,
			InternalPort: in, Description: desc, LeaseSeconds: lease, Enabled: en, RemoteHost: rh})
	}
	return out, nil
}

// suggest finds a free external port near l's for a conflict report,
// and explains who holds l's port if the listing says. avoid reports
// ports camgate itself wants for other rules.
func (u *upnpMapper) suggest(ctx context.Context, l *lease, avoid func(proto string, port uint16) bool) (uint16, string) {
	entries, err := u.list(ctx)
	used := map[uint16]bool{}
	holder := ""
	for _, e := range entries {
		if e.Protocol == l.Proto {
			used[e.ExternalPort] = true
			if e.ExternalPort == l.Port {
				holder = fmt.Sprintf("held by %s:%d (%q)", e.InternalClient, e.InternalPort, e.Description)
			}
		}
	}
	if err == nil && holder == "" && len(entries) < maxListEntries {
		holder = "not in the router's mapping list, so its own rules reserve or forbid it"
	}
	p := int(l.Port)
	for tries := 0; tries < 65535-1024; tries++ {
		if p++; p > 65535 {
			p = 1024
		}
		port := uint16(p)
		if port == l.Port || used[port] || avoid(l.Proto, port) {
			continue
		}
		if err != nil { // no listing: ask about this one port
			cctx, cancel := u.call(ctx)
			_, _, _, _, _, qerr := u.svc.GetSpecificPortMappingEntryCtx(cctx, "", port, upnpProto(l.Proto))
			cancel()
			if code, ok := upnpErrorCode(qerr); !ok || code != upnpNoSuchEntry {
				if ctx.Err() != nil || tries > 16 {
					return 0, holder
				}
				continue
			}
		}
		return port, holder
	}
	return 0, holder
}

// classify turns a goupnp error into a mapError with the user's words.
func (u *upnpMapper) classify(ctx context.Context, action string, err error) error {
	if code, ok := upnpErrorCode(err); ok {
		var f *soap.SOAPFaultError
		errors.As(err, &f)
		desc := strings.TrimSpace(f.Detail.UPnPError.ErrorDescription)
		me := &mapError{code: code, state: StateError}
		switch code {
		case upnpConflict:
			me.state = StateConflict
			me.msg = fmt.Sprintf("the router refused: the external port is taken (UPnP error 718 %s)", desc)
		case upnpNotAuthorized:
			me.state = StateRefused
			me.msg = "the router's policy forbids this mapping (UPnP error 606 Action not authorized; many routers allow only ports 1024-65535, or UPnP is read-only)"
		case upnpNoPortMapsAvailable:
			me.state = StateRefused
			me.msg = "the router's mapping table is full (UPnP error 728 NoPortMapsAvailable)"
		case upnpConflictWithOther:
			me.state = StateConflict
			me.msg = "the port is used by another mechanism on the router, such as its own port forwarding or remote admin (UPnP error 729 ConflictWithOtherMechanisms)"
		case upnpInvalidAction, upnpRemoteHostWildcard, upnpExtPortWildcard, upnpSamePortRequired:
			me.state = StateUnsupported
			me.msg = fmt.Sprintf("the router does not support this request (UPnP error %d %s)", code, desc)
		default:
			me.msg = fmt.Sprintf("the router answered %s with UPnP error %d %s", action, code, desc)
		}
		return me
	}
	var f *soap.SOAPFaultError
	if errors.As(err, &f) {
		return &mapError{state: StateError, msg: fmt.Sprintf("the router answered %s with a SOAP fault without a UPnP error code (%s: %s)", action, f.FaultCode, f.FaultString)}
	}
	if ctx.Err() != nil || isTimeout(err) {
		return &mapError{state: StateError, msg: fmt.Sprintf("%s: %v", action, errTimeout), err: fmt.Errorf("%w from %s within %s", errTimeout, u.gw, u.timeout)}
	}
	return &mapError{state: StateError, msg: fmt.Sprintf("bad answer to %s from the router at %s", action, u.control), err: cleanGoupnp(err)}
}

// isTimeout reports whether err (possibly flattened to text by goupnp,
// which wraps with %v) is a timeout.
func isTimeout(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	s := err.Error()
	return strings.Contains(s, "deadline exceeded") || strings.Contains(s, "Client.Timeout") || strings.Contains(s, "i/o timeout") || strings.Contains(s, "timeout awaiting")
}

// cleanGoupnp drops goupnp's "goupnp: " prefixes for the user.
func cleanGoupnp(err error) error {
	s := strings.ReplaceAll(err.Error(), "goupnp: ", "")
	return errors.New(s)
}

// upnpErrorCode returns the UPnP errorCode of a SOAP fault.
func upnpErrorCode(err error) (int, bool) {
	var f *soap.SOAPFaultError
	if err == nil || !errors.As(err, &f) {
		return 0, false
	}
	if c := f.Detail.UPnPError.Errorcode; c != 0 {
		return c, true
	}
	return 0, false
}

// discoverUPnP finds the gateway's IGD and picks its WAN connection
// service.
func discoverUPnP(ctx context.Context, log *slog.Logger, gw, local netip.Addr, multicast bool, timeout, ssdpWait time.Duration) (*upnpMapper, error) {
	reply, err := ssdpSearch(ctx, log, local, gw, multicast, ssdpWait)
	if err != nil {
		return nil, err
	}
	hc := newUPnPHTTPClient(gw, local, timeout)
	loc, err := repoint(log, reply.Location, gw)
	if err != nil {
		return nil, fmt.Errorf("upnp: %w", err)
	}
	root, err := fetchRootDesc(ctx, hc, loc)
	if err != nil {
		return nil, err
	}
	m, err := selectService(ctx, log, root, loc, gw, local, hc, timeout)
	if err != nil {
		return nil, err
	}
	if m.device == "" {
		m.device = reply.Server
	} else if reply.Server != "" {
		m.device += " (" + reply.Server + ")"
	}
	return m, nil
}

// repoint parses a URL from the router and makes it point at the gateway.
func repoint(log *slog.Logger, raw string, gw netip.Addr) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return nil, fmt.Errorf("router gave a malformed URL %q: %v", raw, err)
	}
	if err := repointURL(log, u, gw); err != nil {
		return nil, err
	}
	return u, nil
}

func repointURL(log *slog.Logger, u *url.URL, gw netip.Addr) error {
	if u.Scheme != "http" {
		return fmt.Errorf("router gave URL %q; only plain http on the LAN is supported", u.Redacted())
	}
	port := u.Port()
	if port == "" {
		port = "80"
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("router gave URL %q with a bad port", u.Redacted())
	}
	if h, err := netip.ParseAddr(u.Hostname()); err != nil || h.Unmap() != gw {
		log.Info("upnp: a URL from the router names another host; sending to the gateway instead", "url", u.Redacted(), "gateway", gw)
	}
	u.Host = net.JoinHostPort(gw.String(), port)
	u.User = nil
	return nil
}

// fetchRootDesc GETs and parses the device description.
func fetchRootDesc(ctx context.Context, hc *http.Client, loc *url.URL) (*goupnp.RootDevice, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, loc.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("upnp: description %s: %w", loc, err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("upnp: fetch description %s: %w", loc, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("upnp: fetch description %s: HTTP %s", loc, resp.Status)
	}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("upnp: fetch description %s: %w", loc, err)
	}
	root, err := parseRootDesc(data, loc)
	if err != nil {
		return nil, fmt.Errorf("upnp: description %s: %w", loc, err)
	}
	return root, nil
}

// parseRootDesc decodes a UPnP device description and resolves its URLs
// against URLBase or loc.
func parseRootDesc(data []byte, loc *url.URL) (*goupnp.RootDevice, error) {
	root := new(goupnp.RootDevice)
	dec := xml.NewDecoder(bytes.NewReader(data))
	dec.DefaultSpace = goupnp.DeviceXMLNamespace
	dec.CharsetReader = charsetReader
	if err := dec.Decode(root); err != nil {
		return nil, fmt.Errorf("malformed device description: %w", err)
	}
	base := loc
	if s := strings.TrimSpace(root.URLBaseStr); s != "" {
		u, err := url.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("malformed URLBase %q: %v", s, err)
		}
		base = loc.ResolveReference(u)
	}
	root.SetURLBase(base)
	return root, nil
}

// charsetReader accepts the encodings routers declare besides UTF-8:
// ISO-8859-1 (and its US-ASCII subset) maps byte-for-byte onto Unicode.
func charsetReader(charset string, in io.Reader) (io.Reader, error) {
	switch strings.ToLower(strings.TrimSpace(charset)) {
	case "utf-8", "utf8", "us-ascii", "ascii":
		return in, nil
	case "iso-8859-1", "iso8859-1", "latin1", "latin-1":
		return latin1Reader{bufio.NewReader(in)}, nil
	}
	return nil, fmt.Errorf("unsupported charset %q", charset)
}

type latin1Reader struct{ r *bufio.Reader }

func (l latin1Reader) Read(p []byte) (int, error) {
	n := 0
	for n+2 <= len(p) {
		c, err := l.r.ReadByte()
		if err != nil {
			if n > 0 {
				return n, nil
			}
			return 0, err
		}
		if c < 0x80 {
			p[n] = c
			n++
		} else {
			p[n], p[n+1] = 0xc0|c>>6, 0x80|c&0x3f
			n += 2
		}
	}
	return n, nil
}

// selectService picks the WAN connection service to use, preferring
// WANIPConnection:2, then WANIPConnection:1, then WANPPPConnection:1, and
// among several the first that reports an external address.
func selectService(ctx context.Context, log *slog.Logger, root *goupnp.RootDevice, loc *url.URL, gw, local netip.Addr, hc *http.Client, timeout time.Duration) (*upnpMapper, error) {
	type cand struct {
		svc igdService
		sc  *goupnp.ServiceClient
		urn string
	}
	var cands []cand
	ip2, _ := internetgateway2.NewWANIPConnection2ClientsFromRootDevice(root, loc)
	for _, c := range ip2 {
		cands = append(cands, cand{c, &c.ServiceClient, internetgateway2.URN_WANIPConnection_2})
	}
	ip1, _ := internetgateway2.NewWANIPConnection1ClientsFromRootDevice(root, loc)
	for _, c := range ip1 {
		cands = append(cands, cand{c, &c.ServiceClient, internetgateway2.URN_WANIPConnection_1})
	}
	ppp, _ := internetgateway2.NewWANPPPConnection1ClientsFromRootDevice(root, loc)
	for _, c := range ppp {
		cands = append(cands, cand{c, &c.ServiceClient, internetgateway2.URN_WANPPPConnection_1})
	}
	if len(cands) == 0 {
		var types []string
		root.Device.VisitServices(func(s *goupnp.Service) { types = append(types, s.ServiceType) })
		return nil, fmt.Errorf("upnp: %s offers no WAN connection service (it has %s)", loc, strings.Join(types, ", "))
	}
	proto := ProtoUPnPIGD1
	if strings.HasSuffix(strings.TrimSpace(root.Device.DeviceType), ":InternetGatewayDevice:2") {
		proto = ProtoUPnPIGD2
	}
	device := strings.TrimSpace(root.Device.FriendlyName)
	if mn := strings.TrimSpace(root.Device.ModelName); mn != "" && mn != device {
		device = strings.TrimSpace(device + " " + mn)
	}
	var ms []*upnpMapper
	for _, c := range cands {
		ep := c.sc.SOAPClient.EndpointURL
		if err := repointURL(log, &ep, gw); err != nil {
			log.Debug("upnp: skipping a service with an unusable control URL", "err", err)
			continue
		}
		c.sc.SOAPClient.EndpointURL = ep
		c.sc.SOAPClient.HTTPClient = *hc
		ms = append(ms, &upnpMapper{proto: proto, gw: gw, local: local, svc: c.svc, urn: c.urn,
			control: ep.String(), device: device, timeout: timeout})
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("upnp: %s has no usable control URL", loc)
	}
	if len(ms) == 1 {
		return ms[0], nil
	}
	for _, m := range ms {
		if ip, err := m.externalIP(ctx); err == nil && ip.IsValid() {
			return m, nil
		}
	}
	return ms[0], nil
}

// upnpMapperFor rebuilds a mapper from what a lease recorded, without a
// new discovery, so that mappings from an earlier run can be deleted.
func upnpMapperFor(proto Protocol, gw, local netip.Addr, urn, control string, timeout time.Duration) (*upnpMapper, error) {
	u, err := url.Parse(control)
	if err != nil || u.Scheme != "http" {
		return nil, fmt.Errorf("stored control URL %q is unusable", control)
	}
	sc := goupnp.ServiceClient{SOAPClient: soap.NewSOAPClient(*u)}
	sc.SOAPClient.HTTPClient = *newUPnPHTTPClient(gw, local, timeout)
	var svc igdService
	switch urn {
	case internetgateway2.URN_WANIPConnection_2:
		svc = &internetgateway2.WANIPConnection2{ServiceClient: sc}
	case internetgateway2.URN_WANIPConnection_1:
		svc = &internetgateway2.WANIPConnection1{ServiceClient: sc}
	case internetgateway2.URN_WANPPPConnection_1:
		svc = &internetgateway2.WANPPPConnection1{ServiceClient: sc}
	default:
		return nil, fmt.Errorf("stored service type %q is not a WAN connection service", urn)
	}
	return &upnpMapper{proto: proto, gw: gw, local: local, svc: svc, urn: urn, control: control, timeout: timeout}, nil
}

// newUPnPHTTPClient returns the HTTP client for talking to the router:
// bound to this host's LAN address (so secure-mode routers see the right
// source), never through a proxy, never redirected, never to any host
// but the gateway, and with bounded answers.
func newUPnPHTTPClient(gw, local netip.Addr, timeout time.Duration) *http.Client {
	d := &net.Dialer{Timeout: timeout, LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(local, 0))}
	tr := &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			ap, err := netip.ParseAddrPort(addr)
			if err != nil || ap.Addr().Unmap() != gw {
				return nil, fmt.Errorf("refusing to connect to %s: only the gateway %s is asked", addr, gw)
			}
			return d.DialContext(ctx, "tcp4", addr)
		},
		DisableKeepAlives:      true,
		MaxResponseHeaderBytes: 16 << 10,
		ResponseHeaderTimeout:  timeout,
	}
	return &http.Client{
		Transport: checkedTransport{tr},
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return errors.New("the router answered with a redirect; UPnP does not redirect")
		},
	}
}

// checkedTransport bounds answer sizes and rejects answers that are
// clearly not XML, such as a login page sent as text/html.
type checkedTransport struct{ base http.RoundTripper }

func (t checkedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(resp.Body, 512)
	body := &limitedBody{r: br, c: resp.Body, n: upnpMaxBody}
	resp.Body = body
	ct := resp.Header.Get("Content-Type")
	if ct == "" || xmlMediaType(ct) {
		return resp, nil
	}
	// Mislabelled XML is common on cheap routers; an HTML page is not.
	head, _ := br.Peek(512)
	if looksLikeXML(head) {
		return resp, nil
	}
	resp.Body.Close()
	return nil, fmt.Errorf("the router answered %s with content type %q, not XML (begins %q)", req.URL.Path, ct, snippet(head))
}

func xmlMediaType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return mt == "text/xml" || mt == "application/xml" || strings.HasSuffix(mt, "+xml")
}

func looksLikeXML(b []byte) bool {
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
	b = bytes.TrimSpace(b)
	if bytes.HasPrefix(b, []byte("<?xml")) {
		return true
	}
	lower := bytes.ToLower(b)
	return bytes.HasPrefix(b, []byte("<")) && !bytes.Contains(lower, []byte("<html")) && !bytes.Contains(lower, []byte("<!doctype html"))
}

func snippet(b []byte) string {
	s := strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, string(b))
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return s
}

// limitedBody fails, rather than truncating silently, when an answer is
// larger than n bytes.
type limitedBody struct {
	r io.Reader
	c io.Closer
	n int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.n <= 0 {
		var one [1]byte
		if k, err := b.r.Read(one[:]); k == 0 && err != nil {
			return 0, err
		}
		return 0, fmt.Errorf("the router's answer is larger than %d bytes", upnpMaxBody)
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	n, err := b.r.Read(p)
	b.n -= int64(n)
	return n, err
}

func (b *limitedBody) Close() error { return b.c.Close() }
