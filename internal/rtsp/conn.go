package rtsp

import (
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Addrs are the four ends of one RTSP connection through camgate.
type Addrs struct {
	// Client is the viewer as camgate sees it (the connection's source).
	Client netip.AddrPort
	// Local is camgate's address the viewer connected to; the external
	// RTP ports are bound on it.
	Local netip.AddrPort
	// Device is the device end of camgate's connection to it, and
	// DeviceLocal camgate's end, where the device-side RTP ports are bound.
	Device, DeviceLocal netip.AddrPort
	// Target is the rule's internal_ip as written (an address or a host
	// name the device may also call itself). Optional.
	Target string
	// ListenUDP, when set, binds the client side of each UDP track (the
	// pair named in server_port) instead of the host: it binds a UDP
	// socket at the connection's local address on port (0: any). It is
	// set for connections that arrived through camgate's WireGuard
	// tunnel, whose addresses exist only in its userspace network stack.
	// Nil binds the client side on Local from the external range.
	ListenUDP func(port uint16) (net.PacketConn, error)
}

// Conn is one RTSP connection's relay state: its UDP tracks and the
// addresses to rewrite. Package guard calls Request for each request
// from the client and Response (on the returned Pending) for its answer,
// in order; Close when the connection ends.
type Conn struct {
	r      *Relay
	st     *ruleStats
	log    *slog.Logger
	client netip.AddrPort
	local  netip.AddrPort
	// devAddr is the device's address; only it may send media to the
	// device-side ports.
	devAddr  netip.Addr
	devLocal netip.Addr
	// listen binds client-side sockets elsewhere than the host
	// (Addrs.ListenUDP); nil: from the external range on local.
	listen func(port uint16) (net.PacketConn, error)

	mu       sync.Mutex // guards following
	m        addrMap
	tracks   []*track
	lastReq  time.Time
	timeout  time.Duration
	closed   bool
	reaping  bool
	stopReap chan struct{}
	reapDone chan struct{}
}

// Pending is one request waiting for the device's answer.
type Pending struct {
	c      *Conn
	method string
	cseq   string
	public string // the authority the request named
	track  *track // SETUP over UDP: allocated, not yet started
	decl   [2]uint16
	// teardown is the session a TEARDOWN ends.
	teardown string
}

// Open starts a connection's relay state. rule names the counters.
func (r *Relay) Open(rule string, a Addrs) *Conn {
	c := &Conn{
		r: r, st: r.rule(rule),
		log:      r.log.With("rule", rule),
		client:   netip.AddrPortFrom(a.Client.Addr().Unmap(), a.Client.Port()),
		local:    netip.AddrPortFrom(a.Local.Addr().Unmap(), a.Local.Port()),
		devAddr:  a.Device.Addr().Unmap(),
		devLocal: a.DeviceLocal.Addr().Unmap(),
		listen:   a.ListenUDP,
		lastReq:  time.Now(),
		timeout:  defaultSessionTimeout,
	}
	c.m.device = []string{c.devAddr.String()}
	if t := strings.ToLower(strings.Trim(a.Target, "[]")); t != "" && t != c.devAddr.String() {
		if ta, err := netip.ParseAddr(t); err == nil {
			t = ta.Unmap().String()
		}
		c.m.device = append(c.m.device, t)
	}
	c.m.publicIP = c.local.Addr()
	return c
}

// defaultSessionTimeout is RFC 2326 §12.37's default session timeout.
const defaultSessionTimeout = 60 * time.Second

// Request sees a request head from the client. It returns the head to
// send to the device (only SETUP's Transport ever changes), or an answer
// to give the client instead (461 for a transport camgate cannot carry).
func (c *Conn) Request(method, target string, head []byte) (out, answer []byte, p *Pending) {
	p = &Pending{c: c, method: strings.ToUpper(method), cseq: fieldValue(head, "CSeq")}
	c.mu.Lock()
	c.lastReq = time.Now()
	if a, ok := urlAuthority(target); ok {
		c.setPublicLocked(a)
	}
	p.public = c.m.public
	c.mu.Unlock()
	switch p.method {
	case "SETUP":
		return c.setup(p, head)
	case "TEARDOWN":
		p.teardown = sessionID(fieldValue(head, "Session"))
	}
	return head, nil, p
}

// setPublicLocked records the authority the client used; an address in
// it also replaces the device's in SDP.
func (c *Conn) setPublicLocked(a string) {
	c.m.public = a
	host, _ := splitHostPort(a)
	if ip, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil && !ip.IsUnspecified() {
		c.m.publicIP = ip.Unmap()
	} else {
		c.m.publicIP = c.local.Addr()
	}
}

func (c *Conn) setup(p *Pending, head []byte) ([]byte, []byte, *Pending) {
	tv := fieldValue(head, "Transport")
	_, req := rewriteSetupRequest(tv, 0, 0)
	if !req.usable {
		c.st.refused.Add(1)
		return nil, c.refuse(p, 461, "Unsupported Transport"), nil
	}
	if !req.udp {
		return head, nil, p // interleaved: nothing to relay
	}
	t, err := c.bindClientSide()
	if err != nil {
		// 461 rather than 453: players (ffmpeg, live555) retry over TCP
		// on 461, and fail on 453.
		c.st.refused.Add(1)
		c.log.Warn("no rtp port pair for the client side; refusing udp transport", "client", c.client, "err", err)
		return nil, c.refuse(p, 461, "Unsupported Transport"), nil
	}
	d0, d1, err := bindEphemeralPair(c.devLocal)
	if err != nil {
		t.discard()
		c.st.refused.Add(1)
		c.log.Warn("cannot bind device-side rtp ports", "err", err)
		return nil, c.refuse(p, 453, "Not Enough Bandwidth"), nil
	}
	t.dev = [2]*net.UDPConn{d0, d1}
	for i := 0; i < 2; i++ {
		to := netip.AddrPortFrom(c.client.Addr(), req.declared[i])
		t.to[i].Store(&to)
	}
	dp := [2]uint16{localPort(d0), localPort(d1)}
	nv, _ := rewriteSetupRequest(tv, dp[0], dp[1])
	p.track, p.decl = t, req.declared
	out := editHead(head, func(name, value string) (string, bool) {
		if strings.EqualFold(strings.TrimSpace(name), "transport") {
			return nv, true
		}
		return value, true
	})
	return out, nil, p
}

// bindClientSide returns a new track with its client-side pair bound:
// from the external range on the host, or through Addrs.ListenUDP.
func (c *Conn) bindClientSide() (*track, error) {
	t := &track{c: c}
	if c.listen != nil {
		first, last := c.r.pool.bounds()
		port, p0, p1, err := bindListenPair(c.listen, first, last)
		if err != nil {
			return nil, err
		}
		t.extPort, t.tun = port, [2]net.PacketConn{p0, p1}
		return t, nil
	}
	port, e0, e1, err := c.r.pool.take(c.local.Addr())
	if err != nil {
		return nil, err
	}
	t.extPort, t.ext, t.pooled = port, [2]*net.UDPConn{e0, e1}, true
	return t, nil
}

// refuse builds an answer camgate gives itself.
func (c *Conn) refuse(p *Pending, status int, reason string) []byte {
	var b strings.Builder
	b.WriteString("RTSP/1.0 " + strconv.Itoa(status) + " " + reason + "\r\n")
	if p.cseq != "" {
		b.WriteString("CSeq: " + p.cseq + "\r\n")
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	return []byte(b.String())
}

// sessionID returns a Session field's id without its parameters.
func sessionID(v string) string {
	id, _, _ := strings.Cut(v, ";")
	return strings.TrimSpace(id)
}

// sessionTimeout returns a Session field's timeout parameter.
func sessionTimeout(v string) time.Duration {
	_, params, _ := strings.Cut(v, ";")
	for _, p := range strings.Split(params, ";") {
		k, val, ok := strings.Cut(strings.TrimSpace(p), "=")
		if ok && strings.EqualFold(k, "timeout") {
			if n, err := strconv.Atoi(strings.TrimSpace(val)); err == nil && n > 0 && n <= 3600 {
				return time.Duration(n) * time.Second
			}
		}
	}
	return 0
}

// maxBody is the largest answer body Response rewrites; larger ones
// pass unchanged (an SDP is a few hundred bytes).
const MaxBody = 64 << 10

// Response rewrites the device's answer to the pending request: the URL
// fields and the SDP get the client's authority; a SETUP answer's
// Transport gets camgate's external ports, and its track starts. body is
// the whole body (nil when it was too large to hold, then it streams
// unchanged and only the head is rewritten).
func (p *Pending) Response(status int, head, body []byte) ([]byte, []byte) {
	c := p.c
	if p.method == "SETUP" && p.track != nil {
		head = c.setupAnswer(p, status, head)
	}
	if p.method == "TEARDOWN" {
		c.teardown(p.teardown)
	}
	c.mu.Lock()
	m := c.m
	m.public = p.public
	c.mu.Unlock()
	n := -1
	if body != nil && strings.Contains(strings.ToLower(fieldValue(head, "Content-Type")), "sdp") {
		body = m.sdp(body)
		n = len(body)
	}
	return m.answerHead(head, n), body
}

// setupAnswer starts (or drops) the pending track according to the
// device's answer.
func (c *Conn) setupAnswer(p *Pending, status int, head []byte) []byte {
	t := p.track
	p.track = nil
	if status/100 != 2 {
		t.discard()
		return head
	}
	var ans setupAnswer
	out := editHead(head, func(name, value string) (string, bool) {
		if strings.EqualFold(strings.TrimSpace(name), "transport") {
			var nv string
			nv, ans = rewriteSetupAnswer(value, [2]uint16{t.extPort, t.extPort + 1}, p.decl)
			return nv, true
		}
		return value, true
	})
	if !ans.udp {
		t.discard()
		return out
	}
	for i := 0; i < 2; i++ {
		if ans.server[i] != 0 {
			d := netip.AddrPortFrom(c.devAddr, ans.server[i])
			t.device[i].Store(&d)
		}
	}
	sv := fieldValue(head, "Session")
	t.session = sessionID(sv)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		t.discard()
		return out
	}
	if err := t.start(); err != nil {
		c.mu.Unlock()
		c.log.Warn("cannot start the rtp relay", "client", c.client, "err", err)
		t.discard()
		return out
	}
	if to := sessionTimeout(sv); to > 0 {
		c.timeout = to
	}
	c.tracks = append(c.tracks, t)
	c.st.tracks.Add(1)
	c.st.total.Add(1)
	if !c.reaping {
		c.reaping = true
		c.stopReap, c.reapDone = make(chan struct{}), make(chan struct{})
		go c.reap(c.stopReap, c.reapDone)
	}
	c.mu.Unlock()
	c.log.Debug("rtp over udp", "client", c.client, "session", t.session,
		"external", formatPair(t.extPort, t.extPort+1), "device", formatPair(ans.server[0], ans.server[1]))
	return out
}

// discard frees a track that never started.
func (t *track) discard() {
	t.closeSockets()
	if t.pooled {
		t.c.r.pool.put(t.extPort)
	}
}

// teardown stops the tracks of a session (all of them for "").
func (c *Conn) teardown(session string) {
	c.mu.Lock()
	stop := c.removeTracksLocked(func(t *track) bool { return session == "" || t.session == session })
	c.mu.Unlock()
	for _, t := range stop {
		t.stop()
	}
}

// removeTracksLocked takes the tracks matching drop out of the list and
// returns them.
func (c *Conn) removeTracksLocked(drop func(*track) bool) []*track {
	var out []*track
	keep := c.tracks[:0]
	for _, t := range c.tracks {
		if drop(t) {
			out = append(out, t)
		} else {
			keep = append(keep, t)
		}
	}
	c.tracks = keep
	return out
}

// reap ends tracks whose session timed out: no packet either way and no
// request on the connection for the session timeout (RFC 2326 §12.37).
func (c *Conn) reap(stop, done chan struct{}) {
	defer close(done)
	tick := time.NewTicker(reapEvery)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-tick.C:
			c.mu.Lock()
			to := c.timeout + reapGrace
			old := c.removeTracksLocked(func(t *track) bool {
				return t.idle(now, to) && now.Sub(c.lastReq) > to
			})
			c.mu.Unlock()
			for _, t := range old {
				c.log.Debug("rtp session timed out", "client", c.client, "session", t.session)
				c.st.timedOut.Add(1)
				t.stop()
			}
		}
	}
}

// reapEvery and reapGrace: a session is checked every few seconds and
// given a little longer than its timeout, as the device does.
const (
	reapEvery = 5 * time.Second
	reapGrace = 5 * time.Second
)

// Close ends the connection's tracks. It may be called more than once.
func (c *Conn) Close() {
	c.mu.Lock()
	c.closed = true
	ts := c.tracks
	c.tracks = nil
	stop, done := c.stopReap, c.reapDone
	c.stopReap = nil // Close may be called again
	c.mu.Unlock()
	if stop != nil {
		close(stop)
		<-done
	}
	for _, t := range ts {
		t.stop()
	}
}

// Tracks is the number of live UDP tracks.
func (c *Conn) Tracks() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.tracks)
}
