package forward

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

type tcpListener struct {
	rule       *Rule
	ln         *net.TCPListener
	targetPort uint16
	// target is "host:port" of the device, built once: every Conn shares
	// the string.
	target string
	// dest is the device address when Spec.Target is an IP literal, so a
	// dial needs no parsing or resolving; invalid for a host name.
	dest netip.AddrPort
}

func newTCPListener(r *Rule, ln *net.TCPListener, targetPort uint16) *tcpListener {
	l := &tcpListener{rule: r, ln: ln, targetPort: targetPort,
		target: net.JoinHostPort(r.spec.Target, strconv.Itoa(int(targetPort)))}
	if a, err := netip.ParseAddr(r.spec.Target); err == nil {
		l.dest = netip.AddrPortFrom(a.Unmap(), targetPort)
	}
	return l
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
	if !r.spec.Global.acquire() {
		r.refuse(c, src, "gateway connection cap reached")
		return
	}
	if !r.limit.acquire() {
		r.spec.Global.release()
		r.refuse(c, src, "rule max_connections reached")
		return
	}
	var release func()
	if r.spec.Admit != nil {
		rel, err := r.spec.Admit(src, "tcp")
		if err != nil {
			r.limit.release()
			r.spec.Global.release()
			r.refuse(c, src, err.Error())
			return
		}
		release = rel
	}
	conn := &Conn{
		ID:      r.ids.Add(1),
		Rule:    r.spec.Name,
		Proto:   "tcp",
		Client:  src,
		Target:  l.target,
		Started: time.Now(),
		rule:    r,
		lis:     l,
		client:  c,
		release: release,
		running: 1, // the serve goroutine
	}
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

func (r *Rule) refuse(c *net.TCPConn, src netip.AddrPort, why string) {
	r.stats.Refused.Add(1)
	// RST rather than FIN: the client learns at once that it was refused.
	c.SetLinger(0)
	c.Close()
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

	rule    *Rule
	lis     *tcpListener
	client  *net.TCPConn
	release func()
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

// ClientConn returns the client's socket, for handlers.
func (c *Conn) ClientConn() *net.TCPConn { return c.client }

// Logger returns the rule's logger.
func (c *Conn) Logger() *slog.Logger { return c.rule.log }

// Dial connects to the device with the rule's dial timeout. The device
// socket is closed with the connection. A failure is counted as a dial
// error.
func (c *Conn) Dial(ctx context.Context) (net.Conn, error) {
	dc, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	return dc, nil
}

func (c *Conn) dial(ctx context.Context) (*net.TCPConn, error) {
	d := net.Dialer{Timeout: c.rule.spec.dialTimeout(), KeepAliveConfig: keepAlive}
	var dc *net.TCPConn
	var err error
	if c.lis.dest.IsValid() {
		// No address string to parse and no resolver: this is most of
		// the dial's allocations on the short-connection path.
		dc, err = d.DialTCP(ctx, "tcp", netip.AddrPort{}, c.lis.dest)
	} else {
		var nc net.Conn
		if nc, err = d.DialContext(ctx, "tcp", c.Target); err == nil {
			dc = nc.(*net.TCPConn)
		}
	}
	if err != nil {
		c.rule.stats.DialErrs.Add(1)
		return nil, err
	}
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
	dev, err := c.dial(r.ctx)
	if err != nil {
		if !isClosed(err) {
			r.log.Warn("cannot reach device", "target", c.Target, "client", c.Client, "err", err)
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

// startRelay hands both directions to the poller. The client has most
// likely sent its request while the device was being dialled, so the
// client → device burst runs here at once instead of after a trip through
// the poller; the device → client half is armed.
func (c *Conn) startRelay(dev *net.TCPConn) {
	r := c.rule
	crc, err1 := c.client.SyscallConn()
	drc, err2 := dev.SyscallConn()
	if err := errors.Join(err1, err2); err != nil {
		c.Close()
		c.leave()
		return
	}
	c.halves[0] = half{c: c, src: c.client, dst: dev, srcRC: crc, dstRC: drc, count: &c.in, total: &r.stats.BytesIn}
	c.halves[1] = half{c: c, src: dev, dst: c.client, srcRC: drc, dstRC: crc, count: &c.out, total: &r.stats.BytesOut}
	c.mu.Lock()
	err := net.ErrClosed
	if !c.closed {
		err = r.poller.arm(&c.halves[1])
	}
	c.mu.Unlock()
	if err != nil {
		c.Close()
		c.leave()
		return
	}
	c.pump(&c.halves[0])
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

// pump runs one burst of h, then re-arms it, half-closes, or closes the
// connection. It is a named function so stack dumps show which goroutines
// are relays.
func (c *Conn) pump(h *half) {
	res, err := h.burst()
	switch {
	case res == failed || err != nil:
		if err != nil && !isClosed(err) {
			c.rule.log.Debug("connection ended", "conn", c.ID, "client", c.Client, "err", err)
		}
		c.Close()
	case res == atEOF:
		// Half-close: tell dst no more is coming, keep the other way open.
		h.dst.CloseWrite()
		c.mu.Lock()
		c.ended++
		both := c.ended == 2
		c.mu.Unlock()
		if both {
			c.Close()
		}
	default:
		// Re-arm under the lock: a concurrent Close either comes first
		// (and the half stays out of the poller) or finds it armed and
		// closes the socket, which takes it out of the poller.
		c.mu.Lock()
		err := net.ErrClosed
		if !c.closed {
			err = c.rule.poller.arm(h)
		}
		c.mu.Unlock()
		if err != nil {
			c.Close()
		}
	}
	c.leave()
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
	r.wg.Done()
}

func (c *Conn) releaseSlots() {
	if c.release != nil {
		c.release()
	}
	c.rule.limit.release()
	c.rule.spec.Global.release()
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
	if err != nil {
		c.Close()
	}
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
	err := copyStream(dst, src, count, total)
	if err != nil {
		c.Close()
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
