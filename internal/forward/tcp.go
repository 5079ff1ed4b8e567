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
// own goroutine. Refusals close the socket at once: nothing is queued.
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
		Target:  net.JoinHostPort(r.spec.Target, strconv.Itoa(int(l.targetPort))),
		Started: time.Now(),
		rule:    r,
		client:  c,
		release: release,
	}
	if !r.track(conn) {
		c.Close()
		conn.releaseSlots()
		return
	}
	r.stats.Active.Add(1)
	r.stats.Total.Add(1)
	r.wg.Add(1)
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
type Conn struct {
	ID      uint64
	Rule    string
	Proto   string
	Client  netip.AddrPort
	Target  string
	Started time.Time

	rule    *Rule
	client  *net.TCPConn
	release func()
	in, out atomic.Uint64

	mu     sync.Mutex // guards following
	device net.Conn
	closed bool
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
	d := net.Dialer{Timeout: c.rule.spec.dialTimeout(), KeepAliveConfig: keepAlive}
	dc, err := d.DialContext(ctx, "tcp", c.Target)
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

// Close closes both sockets; the connection's goroutines then end.
func (c *Conn) Close() {
	c.mu.Lock()
	c.closed = true
	dev := c.device
	c.mu.Unlock()
	c.client.Close()
	if dev != nil {
		dev.Close()
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

// serve runs one connection: dial, then either the rule's handler or the
// plain zero-copy relay.
func (c *Conn) serve() {
	r := c.rule
	defer r.wg.Done()
	defer c.finish()
	ctx, cancel := context.WithCancel(r.ctx)
	defer cancel()
	// Close the sockets when the rule is closed, which ends every copy.
	stop := context.AfterFunc(ctx, c.Close)
	defer stop()
	if h := r.spec.Handler; h != nil {
		if err := h.ServeConn(ctx, c); err != nil && !isClosed(err) {
			r.log.Debug("connection ended", "conn", c.ID, "client", c.Client, "err", err)
		}
		return
	}
	dev, err := c.Dial(ctx)
	if err != nil {
		r.log.Warn("cannot reach device", "target", c.Target, "client", c.Client, "err", err)
		return
	}
	if err := c.Relay(c.client, dev); err != nil && !isClosed(err) {
		r.log.Debug("connection ended", "conn", c.ID, "client", c.Client, "err", err)
	}
}

func (c *Conn) finish() {
	c.Close()
	c.rule.untrack(c)
	c.releaseSlots()
	c.rule.stats.Active.Add(-1)
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
// in either direction closes both.
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
