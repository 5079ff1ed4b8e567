package forward

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type tcpListener struct {
	rule *Rule
	// ln is nil in a rule without ports (see Spec.Ports).
	ln         *net.TCPListener
	targetPort uint16
	// target is "host:port" of the device, built once: every Conn shares
	// the string.
	target string
}

func newTCPListener(r *Rule, ln *net.TCPListener, targetPort uint16) *tcpListener {
	return &tcpListener{rule: r, ln: ln, targetPort: targetPort,
		target: net.JoinHostPort(r.spec.Target, strconv.Itoa(int(targetPort)))}
}

// acceptLoop accepts until the listener is closed. Temporary errors (out
// of file descriptors, mostly) back off instead of spinning, as net/http
// does.
func (l *tcpListener) acceptLoop() {
	r := l.rule
	defer r.wg.Done()
	var backoff time.Duration
	for {
		c, err := l.ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			r.log.Warn("accept failed; retrying", "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
				continue
			case <-r.ctx.Done():
				return
			}
		}
		backoff = 0
		l.admit(c)
	}
}

// admit applies the caps and the policy, then hands the connection to its
// own goroutine, which dials and, for a plain relay, ends once both
// directions are in the rule's poller. Refusals close the socket at once:
// nothing is queued.
func (l *tcpListener) admit(c *net.TCPConn) {
	r := l.rule
	src := c.RemoteAddr().(*net.TCPAddr).AddrPort()
	src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	conn := r.open(c, src, l.target)
	if conn == nil {
		return
	}
	conn.tcp = c
	if !r.track(conn) {
		c.Close()
		conn.releaseSlots()
		return
	}
	r.stats.Active.Add(1)
	r.stats.Total.Add(1)
	r.wg.Add(1) // released by finish
	go conn.serve()
}

// open applies the caps and the policy to a new connection and returns it
// untracked, or nil after refusing it (the client, if given, is closed
// with a reset where it can be, and the refusal counted).
func (r *Rule) open(c net.Conn, src netip.AddrPort, target string) *Conn {
	if !r.spec.Global.take(&r.globalShare, 1) {
		r.refuse(c, src, "gateway connection cap reached (or this rule's fair share of it)")
		return nil
	}
	if !r.spec.FDs.take(&r.fdShare, 2) {
		r.spec.Global.give(&r.globalShare, 1)
		r.refuse(c, src, "file-descriptor budget reached (or this rule's fair share of it)")
		return nil
	}
	if !r.limit.acquire() {
		r.giveShares()
		r.refuse(c, src, "rule max_connections reached")
		return nil
	}
	var release func()
	if r.spec.Admit != nil {
		rel, err := r.spec.Admit(src, "tcp")
		if err != nil {
			r.limit.release()
			r.giveShares()
			r.refuse(c, src, err.Error())
			return nil
		}
		release = rel
	}
	return &Conn{
		ID:      r.ids.Add(1),
		Rule:    r.spec.Name,
		Proto:   "tcp",
		Client:  src,
		Target:  target,
		Started: time.Now(),
		rule:    r,
		client:  c,
		release: release,
		running: 1, // the serve goroutine
	}
}

// Serve serves client, a TCP connection that did not come from the rule's
// listeners (a VPN peer's, ending in the tunnel's userspace stack), as if
// the rule had accepted it from src: the caps and Spec.Admit judge it,
// then Spec.Handler or the relay serves it, dialling the device on
// targetPort, which must be one of the rule's internal ports (an external
// port range maps to the internal one). It is counted in the rule's
// statistics, listed by Conns and cut by Kill and Close like any other.
//
// A client that is not a *net.TCPConn is relayed by a goroutine per
// direction through a pooled buffer, with half-close (CloseWrite, when the
// client has it) and resets passed on when the client reports them as
// syscall.ECONNRESET and can be reset itself (SetLinger).
//
// Serve returns once the connection has finished. It returns at once,
// with the client closed, if the rule refused the connection (the error
// wraps ErrRefused), is closing (net.ErrClosed), or does not forward
// targetPort over TCP.
func (r *Rule) Serve(client net.Conn, src netip.AddrPort, targetPort uint16) error {
	return r.serveOther(client, nil, src, targetPort)
}

// ServeAccept is Serve for a connection whose handshake is not complete:
// accept completes it, and is called only once the rule has admitted the
// connection, so that a refused client never sees the port open (a VPN
// peer's SYN is answered with a reset, as by a closed port). An error
// from accept ends the connection; ServeAccept then returns it.
func (r *Rule) ServeAccept(src netip.AddrPort, targetPort uint16, accept func() (net.Conn, error)) error {
	return r.serveOther(nil, accept, src, targetPort)
}

// serveOther is Serve and ServeAccept: client, or accept once admitted.
func (r *Rule) serveOther(client net.Conn, accept func() (net.Conn, error), src netip.AddrPort, targetPort uint16) error {
	var target string
	for _, l := range r.tcp {
		if l.targetPort == targetPort {
			target = l.target
			break
		}
	}
	if target == "" {
		if client != nil {
			client.Close()
		}
		return fmt.Errorf("rule %q does not forward tcp to port %d", r.spec.Name, targetPort)
	}
	r.mu.Lock()
	closing := r.done
	r.mu.Unlock()
	if closing { // checked again when tracked; this spares a handshake
		if client != nil {
			client.Close()
		}
		return fmt.Errorf("rule %q is closing: %w", r.spec.Name, net.ErrClosed)
	}
	src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	conn := r.open(client, src, target)
	if conn == nil {
		return fmt.Errorf("rule %q: connection from %s: %w", r.spec.Name, src, ErrRefused)
	}
	if client == nil {
		c, err := accept()
		if err != nil {
			conn.releaseSlots()
			return err
		}
		client, conn.client = c, c
	}
	conn.tcp, _ = client.(*net.TCPConn)
	conn.done = make(chan struct{})
	if !r.trackServed(conn) {
		client.Close()
		conn.releaseSlots()
		return fmt.Errorf("rule %q is closing: %w", r.spec.Name, net.ErrClosed)
	}
	r.stats.Active.Add(1)
	r.stats.Total.Add(1)
	conn.serve()
	<-conn.done
	return nil
}

// refuse counts a refusal and closes c (nil: a connection not yet
// accepted, which its caller refuses).
func (r *Rule) refuse(c net.Conn, src netip.AddrPort, why string) {
	r.stats.Refused.Add(1)
	if c != nil {
		// RST rather than FIN: the client learns at once that it was refused.
		setReset(c)
		c.Close()
	}
	r.log.Debug("connection refused", "client", src, "reason", why)
}

// Conn is one forwarded TCP connection (or, in listings, a UDP session).
//
// Its life: the serve goroutine dials; then either the rule's Handler runs
// in that goroutine, or both directions go to the rule's poller and the
// goroutine ends. From then on goroutines exist only while bytes move
// (see poller.go). The connection is finished (untracked, its slots
// released) by whoever leaves it last once it is closed: the running count
// covers the serve goroutine and every burst in flight.
type Conn struct {
	ID      uint64
	Rule    string
	Proto   string
	Client  netip.AddrPort
	Target  string
	Started time.Time

	rule   *Rule
	client net.Conn
	// tcp is client when it is a *net.TCPConn, as every accepted
	// connection's is: the relay then splices and parks quiet directions
	// in the poller. Nil for other clients given to Serve.
	tcp     *net.TCPConn
	release func()
	// done, for a connection given to Serve, is closed when it finishes.
	done    chan struct{}
	in, out atomic.Uint64
	// halves are client → device and device → client in relay mode.
	// While a half is in the poller nobody touches it; a burst owns it.
	halves [2]half

	mu       sync.Mutex // guards following
	device   net.Conn
	closed   bool
	running  int // serve goroutine + bursts in flight
	ended    int // halves that reached end of stream
	finished bool
	// keepAlive is set once the device socket has keepalive (see dial).
	keepAlive bool
	// idle bookkeeping, touched only by the rule's idle reaper
	seenBytes uint64
	seenAt    time.Time
}

// ConnInfo describes a live connection for listings and the API.
type ConnInfo struct {
	ID       uint64         `json:"id"`
	Rule     string         `json:"rule"`
	Proto    string         `json:"protocol"`
	Client   netip.AddrPort `json:"client"`
	Target   string         `json:"target"`
	Started  time.Time      `json:"started"`
	BytesIn  uint64         `json:"bytes_in"`
	BytesOut uint64         `json:"bytes_out"`
}

// Info returns a snapshot of the connection.
func (c *Conn) Info() ConnInfo {
	return ConnInfo{ID: c.ID, Rule: c.Rule, Proto: c.Proto, Client: c.Client, Target: c.Target,
		Started: c.Started, BytesIn: c.in.Load(), BytesOut: c.out.Load()}
}

// ClientConn returns the client's connection, for handlers: a
// *net.TCPConn for a connection the rule accepted, whatever was given to
// Rule.Serve otherwise (a VPN tunnel's connection, which may offer more,
// such as binding UDP ports at the address the client reached).
func (c *Conn) ClientConn() net.Conn { return c.client }

// Served reports whether the connection was given to Rule.Serve rather
// than accepted on one of the rule's listeners: its client reached the
// device's own address and port (a VPN peer in the tunnel), so it speaks
// the device's protocol, not what the rule's external port offers (the
// HTTPS of a rule that terminates TLS).
func (c *Conn) Served() bool { return c.done != nil }

// Logger returns the rule's logger.
func (c *Conn) Logger() *slog.Logger { return c.rule.log }

// Dial connects to the device with the rule's dial timeout. The device
// socket is closed with the connection. A failure is counted as a dial
// error.
func (c *Conn) Dial(ctx context.Context) (net.Conn, error) {
	dc, err := c.dial(ctx, keepAlive)
	if err != nil {
		return nil, err
	}
	return dc, nil
}

// dial connects to the device. The relay dials without keepalive and sets
// it only if the connection goes quiet (setKeepAlive): a short connection
// then costs four setsockopt calls less.
func (c *Conn) dial(ctx context.Context, ka net.KeepAliveConfig) (*net.TCPConn, error) {
	// Not Dialer.DialTCP: given the zero local AddrPort it still binds
	// to 0.0.0.0:0 first, an extra syscall and the kernel's slower
	// bind-time port search (inet_bind_conflict in perf profiles of
	// short connections). An IP literal in c.Target skips the resolver.
	d := net.Dialer{Timeout: c.rule.spec.dialTimeout(), KeepAliveConfig: ka}
	if cc := c.rule.spec.deviceCongestion(); cc != "" {
		d.Control = congestionControl(cc)
	}
	if !ka.Enable {
		d.KeepAlive = -1
	}
	nc, err := d.DialContext(ctx, "tcp", c.Target)
	if err != nil {
		c.rule.stats.DialErrs.Add(1)
		return nil, err
	}
	dc := nc.(*net.TCPConn)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		dc.Close()
		return nil, net.ErrClosed
	}
	c.device = dc
	c.mu.Unlock()
	return dc, nil
}

// Close closes both sockets; the connection then finishes as soon as no
// goroutine works on it.
func (c *Conn) Close() {
	c.mu.Lock()
	c.closed = true
	dev := c.device
	fin := c.running == 0 && !c.finished
	if fin {
		c.finished = true
	}
	c.mu.Unlock()
	c.client.Close()
	if dev != nil {
		dev.Close()
	}
	if fin {
		c.finish()
	}
}

// closeOn closes the connection after err ended a direction. A reset
// (or a write into a reset socket) is passed on as a reset: the other
// peer must not take a truncated answer for a complete one, which a FIN
// would tell it (#13.9). SO_LINGER 0 makes close(2) send RST.
func (c *Conn) closeOn(err error) {
	if isReset(err) {
		setReset(c.client)
		c.mu.Lock()
		dev := c.device
		c.mu.Unlock()
		if dev != nil {
			setReset(dev)
		}
	}
	c.Close()
}

// lingerer is a connection whose close can send a reset: *net.TCPConn,
// and a VPN tunnel's connection.
type lingerer interface{ SetLinger(sec int) error }

// setReset makes closing c send RST rather than FIN, when c can.
func setReset(c net.Conn) {
	if l, ok := c.(lingerer); ok {
		l.SetLinger(0)
	}
}

func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// leave ends one goroutine's work on the connection; the last one out of
// a closed connection finishes it.
func (c *Conn) leave() {
	c.mu.Lock()
	c.running--
	fin := c.running == 0 && c.closed && !c.finished
	if fin {
		c.finished = true
	}
	c.mu.Unlock()
	if fin {
		c.finish()
	}
}

// AddIn and AddOut count bytes moved by a handler: in is client → device.
func (c *Conn) AddIn(n int) {
	c.in.Add(uint64(n))
	c.rule.stats.BytesIn.Add(uint64(n))
}

// AddOut counts device → client bytes; see AddIn.
func (c *Conn) AddOut(n int) {
	c.out.Add(uint64(n))
	c.rule.stats.BytesOut.Add(uint64(n))
}

func (c *Conn) lastActive() time.Time {
	// Called by the idle reaper only, under the rule lock.
	total := c.in.Load() + c.out.Load()
	if c.seenAt.IsZero() || total != c.seenBytes {
		c.seenBytes, c.seenAt = total, time.Now()
	}
	return c.seenAt
}

// serve runs one connection's start: dial, then either the rule's handler
// or the relay through the poller.
func (c *Conn) serve() {
	r := c.rule
	if r.spec.Handler != nil {
		c.serveHandler()
		return
	}
	// The rule's context cancels a dial in progress when the rule closes.
	// Only the poller's relay sets keepalive late (see settle).
	var ka net.KeepAliveConfig
	if c.tcp == nil {
		ka = keepAlive
	}
	dev, err := c.dial(r.ctx, ka)
	if err != nil {
		if !isClosed(err) {
			r.unreachable.Log(r.log, time.Now(), slog.LevelWarn, "cannot reach device", "target", c.Target, "client", c.Client, "err", err)
		}
		c.Close()
		c.leave()
		return
	}
	c.startRelay(dev)
}

// serveHandler runs the rule's Handler in the serve goroutine.
func (c *Conn) serveHandler() {
	r := c.rule
	ctx, cancel := context.WithCancel(r.ctx)
	// Close the sockets when the rule is closed, which ends every copy.
	stop := context.AfterFunc(ctx, c.Close)
	if err := r.spec.Handler.ServeConn(ctx, c); err != nil && !isClosed(err) {
		r.log.Debug("connection ended", "conn", c.ID, "client", c.Client, "err", err)
	}
	stop()
	cancel()
	c.Close()
	c.leave()
}

// startRelay starts relaying once the device is connected: a goroutine
// per direction, each parking its direction in the poller once it has
// been quiet for linger (see pump). A client that is not a *net.TCPConn
// gets the plain copy instead (relayPlain).
func (c *Conn) startRelay(dev *net.TCPConn) {
	r := c.rule
	if c.tcp == nil {
		c.relayPlain(dev)
		return
	}
	crc, err1 := c.tcp.SyscallConn()
	drc, err2 := dev.SyscallConn()
	if err := errors.Join(err1, err2); err != nil {
		c.Close()
		c.leave()
		return
	}
	c.halves[0] = half{c: c, src: c.tcp, dst: dev, srcRC: crc, dstRC: drc, count: &c.in, total: &r.stats.BytesIn}
	c.halves[1] = half{c: c, src: dev, dst: c.tcp, srcRC: drc, dstRC: crc, count: &c.out, total: &r.stats.BytesOut}
	c.halves[0].initFns()
	c.halves[1].initFns()
	c.halves[0].fds, c.halves[1].fds = r.spec.FDs, r.spec.FDs
	c.mu.Lock()
	c.running++
	c.mu.Unlock()
	go c.pump(&c.halves[0])
	c.pump(&c.halves[1])
}

// relayPlain relays a client that is not a *net.TCPConn: a goroutine per
// direction for the connection's whole life (such a client has no file
// descriptor the poller could watch).
func (c *Conn) relayPlain(dev *net.TCPConn) {
	c.mu.Lock()
	c.running++
	c.mu.Unlock()
	go c.copyPlain(dev, c.client, true)
	c.copyPlain(c.client, dev, false)
}

// copyPlain moves one direction of relayPlain until end of stream, then
// half-closes dst (and closes the connection once both directions have
// ended); an error closes the connection, passing a reset on. It is a
// named function so stack dumps show which goroutines are relays.
func (c *Conn) copyPlain(dst, src net.Conn, toDevice bool) {
	defer c.leave()
	count, total := &c.out, &c.rule.stats.BytesOut
	if toDevice {
		count, total = &c.in, &c.rule.stats.BytesIn
	}
	if err := copyBuffered(dst, src, count, total); err != nil {
		if !isClosed(err) {
			c.rule.log.Debug("connection ended", "conn", c.ID, "client", c.Client, "err", err)
		}
		c.closeOn(err)
		return
	}
	c.mu.Lock()
	c.ended++
	both := c.ended == 2
	c.mu.Unlock()
	if both {
		c.Close()
		return
	}
	closeWrite(dst)
}

// activate starts a burst for h, whose source the poller saw readable.
func (c *Conn) activate(h *half) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.running++
	c.mu.Unlock()
	go c.pump(h)
}

// linger is how long a direction waits for more in the runtime poller,
// after its last data, before it is parked in the rule's poller. A wait in
// the runtime poller costs one goroutine wake-up per burst, the poller two
// (its own goroutine, then a new one for the burst); a request's answer, a
// client's FIN after the answer, the next segment of a stream all come
// well within it. Connections quiet for longer hold no goroutine.
const linger = 10 * time.Millisecond

// pump owns h: it moves h's data while it keeps coming within linger,
// then parks h in the poller; at end of stream it half-closes, on an error
// it closes the connection. It is a named function so stack dumps show
// which goroutines are relays.
func (c *Conn) pump(h *half) {
	defer c.leave()
	h.src.SetReadDeadline(time.Now().Add(linger))
	res, err := h.burst(linger)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		// Quiet for linger: clear the deadline (a read deadline that has
		// passed fails every later read) and park.
		h.src.SetReadDeadline(time.Time{})
		res, err = wouldBlock, nil
		h.slow = false // parked: the next stream may splice again
	}
	c.settle(h, res, err)
}

// settle acts on how a burst of h ended and reports whether the
// connection is still open: re-arm h in the poller when its source is
// empty, half-close at end of stream, close on an error.
func (c *Conn) settle(h *half, res burstResult, err error) bool {
	switch {
	case res == failed || err != nil:
		if err != nil && !isClosed(err) {
			c.rule.log.Debug("connection ended", "conn", c.ID, "client", c.Client, "err", err)
		}
		c.closeOn(err)
		return false
	case res == atEOF:
		c.mu.Lock()
		c.ended++
		both := c.ended == 2
		c.mu.Unlock()
		if both {
			// Both ways are done: close(2) sends the FIN that a
			// shutdown(2) first would only have sent one syscall earlier.
			c.Close()
			return false
		}
		// Half-close: tell dst no more is coming, keep the other way open.
		h.dst.CloseWrite()
		return true
	}
	// Re-arm under the lock: a concurrent Close either comes first (and
	// the half stays out of the poller) or finds it armed and closes the
	// socket, which takes it out of the poller.
	c.mu.Lock()
	err = net.ErrClosed
	if !c.closed {
		err = c.rule.poller.arm(h)
	}
	ka := !c.keepAlive && err == nil
	c.keepAlive = true
	dev := c.device
	c.mu.Unlock()
	if ka {
		// The connection has gone quiet: from now on only keepalive
		// notices a device that vanished (the client side inherits it
		// from the listener).
		dev.(*net.TCPConn).SetKeepAliveConfig(keepAlive)
	}
	if err != nil {
		c.Close()
		return false
	}
	return true
}

// finish runs once, when the connection is closed and nothing works on it.
func (c *Conn) finish() {
	r := c.rule
	for i := range c.halves {
		if h := &c.halves[i]; h.registered {
			r.poller.remove(h.slot, h.gen)
		}
	}
	r.untrack(c)
	c.releaseSlots()
	r.stats.Active.Add(-1)
	if c.done != nil {
		close(c.done)
	}
	r.wg.Done()
}

func (c *Conn) releaseSlots() {
	if c.release != nil {
		c.release()
	}
	c.rule.limit.release()
	c.rule.giveShares()
}

// giveShares gives back one TCP connection's slot and descriptors.
func (r *Rule) giveShares() {
	r.spec.Global.give(&r.globalShare, 1)
	r.spec.FDs.give(&r.fdShare, 2)
}

// Relay copies both directions until both have ended, honouring
// half-close: when one side shuts down its write half, the other side's
// write half is shut down and the reverse direction keeps flowing. An error
// in either direction closes both. It is for handlers; a plain rule's
// connections are relayed through the poller instead.
func (c *Conn) Relay(client, device net.Conn) error {
	errc := make(chan error, 1)
	go func() { errc <- c.copyDir(device, client, true) }()
	err := c.copyDir(client, device, false)
	if err2 := <-errc; err == nil {
		err = err2
	}
	return err
}

// copyDir moves one direction and half-closes dst at EOF. It is a named
// function so stack dumps show which goroutines are relays.
func (c *Conn) copyDir(dst, src net.Conn, toDevice bool) error {
	count := &c.out
	total := &c.rule.stats.BytesOut
	if toDevice {
		count, total = &c.in, &c.rule.stats.BytesIn
	}
	err := copyStream(dst, src, c.rule.spec.FDs, count, total)
	if err != nil {
		c.closeOn(err)
		return err
	}
	closeWrite(dst)
	return nil
}

type closeWriter interface{ CloseWrite() error }

func closeWrite(c net.Conn) {
	if cw, ok := c.(closeWriter); ok {
		cw.CloseWrite()
		return
	}
	c.Close()
}

func isClosed(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, context.Canceled)
}
