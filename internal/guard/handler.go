package guard

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/acme"

	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/forward"
)

// Timeouts of the protocol-aware path. The device's own keep-alive
// timeout governs idle connections between requests.
const (
	// firstRequestTimeout: a connection that sends no request this long
	// after accept is closed (it holds a per-source slot for nothing).
	firstRequestTimeout = 60 * time.Second
	// headerTimeout bounds reading one request head once its first byte
	// has arrived (slowloris).
	headerTimeout = 30 * time.Second
	// handshakeTimeout bounds the TLS handshake.
	handshakeTimeout = 10 * time.Second
	// lingerTimeout is how long a refused client may take to read the
	// refusal before the socket is closed.
	lingerTimeout = 2 * time.Second
	// copyBufSize is the body copy buffer, pooled per Policy.
	copyBufSize = 32 << 10
)

// loginPaths are the lower-case paths whose POST is a login attempt even
// without an Authorization field: Hikvision's web UI posts hashed
// credentials to sessionLogin and gets 401 for a wrong password.
var loginPaths = [...]string{"/isapi/security/sessionlogin"}

// handler is a rule's forward.Handler: TLS termination and the HTTP/RTSP
// guards.
type handler struct {
	p  *Policy
	rs *ruleState
	rg *ruleGuard
	tr *tracker // nil without guard auth
}

// ServeConn terminates TLS if configured, then either relays (TLS only)
// or runs the guarded session. A connection that reached the device's own
// port (forward.Conn.Served: a VPN peer's) speaks the device's plain
// protocol and skips TLS termination, but meets the same guard.
func (h *handler) ServeConn(ctx context.Context, c *forward.Conn) error {
	var client net.Conn = c.ClientConn()
	if h.rg.tls != nil && !c.Served() {
		tc := tls.Server(client, h.rg.tls)
		hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			h.rs.c.tlsErrs.Add(1)
			return fmt.Errorf("tls handshake with %s: %w", c.Client, err)
		}
		client = tc
		if tc.ConnectionState().NegotiatedProtocol == acme.ALPNProto {
			return nil // an ACME TLS-ALPN-01 validation: the handshake was all
		}
	}
	if h.rg.filter == nil && h.rg.auth == nil && h.rg.relay == nil {
		dev, err := c.Dial(ctx)
		if err != nil {
			c.Logger().Warn("cannot reach device", "target", c.Target, "client", c.Client, "err", err)
			return err
		}
		return c.Relay(client, dev)
	}
	s := &session{
		h: h, c: c, client: client,
		cr:    bufio.NewReaderSize(client, requestReaderSize),
		src:   SourceKey(c.Client.Addr()),
		rtsp:  h.rg.service == config.ServiceRTSP,
		idle:  make(chan struct{}, 1),
		bdone: make(chan struct{}),
	}
	s.toClient = countWriter{w: client, add: c.AddOut}
	return s.run(ctx)
}

// countWriter counts bytes into the connection's statistics.
type countWriter struct {
	w   io.Writer
	add func(int)
}

func (cw *countWriter) Write(p []byte) (int, error) {
	n, err := cw.w.Write(p)
	if n > 0 {
		cw.add(n)
	}
	return n, err
}

// session is one guarded connection. The request loop (the handler's
// goroutine) reads requests from the client, checks and forwards them;
// the response loop reads the device's answers, matches them to the
// requests in order, settles login attempts and forwards them. A client
// may pipeline; the device gets the next request once the answers owed
// are through. RTSP interleaved frames may come between messages either way.
type session struct {
	h      *handler
	c      *forward.Conn
	client net.Conn
	dev    net.Conn
	cr, dr *bufio.Reader
	src    netip.Prefix
	rtsp   bool
	relay  RTSPConn // RTSP rules with a relay, once dialled

	toClient, toDev countWriter

	// wmu serialises writes to the client (responses, frames, refusals).
	wmu sync.Mutex

	qmu     sync.Mutex // guards following
	q       []*exchange
	qclosed bool

	outstanding atomic.Int32
	idle        chan struct{} // signalled when an exchange is answered
	bdone       chan struct{} // closed when the response loop has ended
	started     bool          // the response loop runs
	cutOnce     sync.Once
}

// exchange is a request waiting for its response.
type exchange struct {
	method  string
	tk      *ticket
	upgrade bool
	verdict chan bool   // upgrade requests: whether the device switched
	relay   RTSPPending // RTSP rules with a relay
	onvif   string      // an ONVIF call: the host the client named
}

func (s *session) run(ctx context.Context) error {
	if tr := s.h.tr; tr != nil {
		tr.attach(s.src, s)
		defer tr.detach(s.src, s)
	}
	err := s.requests(ctx)
	s.c.Close()
	if s.started {
		<-s.bdone
	}
	if s.relay != nil {
		s.relay.Close()
	}
	if errors.Is(err, errDone) {
		err = nil
	}
	return err
}

// errDone ends a session that was closed on purpose (refused).
var errDone = errors.New("session closed by the guard")

// cut closes the connection (the source was just banned).
func (s *session) cut() { s.cutOnce.Do(s.c.Close) }

func (s *session) requests(ctx context.Context) error {
	bh := bufHolder{pool: &s.h.p.bufs}
	defer bh.release()
	s.client.SetReadDeadline(time.Now().Add(firstRequestTimeout))
	for {
		if s.cr.Buffered() == 0 {
			bh.release() // idle connections hold no copy buffer
		}
		b, err := s.cr.Peek(1)
		if err != nil {
			return s.clientDone(ctx, err)
		}
		if s.rtsp && b[0] == '$' {
			if s.dev == nil {
				return s.reject(ctx, 400, nil)
			}
			if err := copyFrames(&s.toDev, s.cr, bh.get()); err != nil {
				return err
			}
			continue
		}
		s.client.SetReadDeadline(time.Now().Add(headerTimeout))
		m, err := readMessage(s.cr, requestLimits, s.rtsp, true)
		s.client.SetReadDeadline(time.Time{})
		if err != nil {
			var pe *parseError
			if errors.As(err, &pe) {
				s.h.rs.c.malformed.Add(1)
				s.h.rs.filterLog.Log(s.h.p.log, s.h.p.now(), slog.LevelWarn, "malformed request refused",
					"rule", s.h.rg.name, "client", s.c.Client, "status", pe.status, "reason", pe.msg)
				return s.reject(ctx, pe.status, nil)
			}
			return err
		}
		if m.response {
			// An RTSP client answering a request from the device.
			if s.dev == nil {
				return s.reject(ctx, 400, m)
			}
			kind, n := m.requestBody()
			if err := writeMessage(&s.toDev, m.head, s.cr, s.client, kind, n, bh.get()); err != nil {
				return err
			}
			continue
		}
		if st := s.check(m); st != 0 {
			return s.reject(ctx, st, m)
		}
		var tk *ticket
		if s.h.tr != nil && loginAttempt(m) {
			tk, err = s.login(ctx, m)
			switch {
			case errors.Is(err, errBanned):
				s.h.rs.c.banned.Add(1)
				return s.reject(ctx, 403, m)
			case errors.Is(err, errLockdown), errors.Is(err, errWaitLong):
				s.h.rs.c.lockdown.Add(1)
				s.h.rs.authLog.Log(s.h.p.log, s.h.p.now(), slog.LevelWarn, "login attempt held back",
					"rule", s.h.rg.name, "client", s.c.Client, "reason", err)
				return s.reject(ctx, 503, m)
			case err != nil:
				return err
			}
		}
		if s.dev == nil {
			if err := s.dial(ctx); err != nil {
				if tk != nil {
					tk.settle(neutral)
				}
				s.c.Logger().Warn("cannot reach device", "target", s.c.Target, "client", s.c.Client, "err", err)
				return s.reject(ctx, 502, m)
			}
		}
		// One request at a time reaches the device: a pipelined request
		// waits until the answers owed have gone through. A device that
		// ends an answer by closing the connection while a request it
		// has not read sits in its socket gets reset by its own kernel,
		// which drops the unsent end of that answer. Browsers and RTSP
		// players do not pipeline, so this costs them nothing.
		if s.outstanding.Load() > 0 {
			s.waitIdle(ctx)
		}
		var rp RTSPPending
		if s.relay != nil {
			head, answer, p := s.relay.Request(m.method, m.target, m.head)
			if answer != nil {
				if tk != nil {
					tk.settle(neutral)
				}
				if err := s.answerLocally(ctx, m, answer, bh.get()); err != nil {
					return err
				}
				continue
			}
			m.head, rp = head, p
		}
		ex := &exchange{method: m.method, tk: tk, upgrade: m.upgrade && !s.rtsp, relay: rp, onvif: s.onvifHost(m)}
		if ex.upgrade {
			ex.verdict = make(chan bool, 1)
		}
		if !s.push(ex) {
			if tk != nil {
				tk.settle(neutral)
			}
			return errDone
		}
		kind, n := m.requestBody()
		if err := writeMessage(&s.toDev, m.head, s.cr, s.client, kind, n, bh.get()); err != nil {
			return err
		}
		if ex.upgrade {
			select {
			case up := <-ex.verdict:
				if up {
					return s.tunnel(bh.get())
				}
			case <-s.bdone:
				return errDone
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
}

// check applies the exploit filter; it returns the status to refuse with,
// or 0.
func (s *session) check(m *message) int {
	if s.rtsp {
		return 0
	}
	var v *Verdict
	switch {
	case s.h.rg.filter != nil:
		v = s.h.rg.filter.Check(m.method, m.target)
	case m.method == "CONNECT":
		v = &Verdict{ID: "connect", Status: 405}
	}
	if v == nil {
		return 0
	}
	s.h.rs.c.blocked.Add(1)
	path, _, _ := cutQuery(m.target)
	s.h.rs.filterLog.Log(s.h.p.log, s.h.p.now(), slog.LevelWarn, "request blocked by the exploit filter",
		"rule", s.h.rg.name, "client", s.c.Client, "signature", v.ID, "method", clip([]byte(m.method)),
		"path", clip([]byte(path)), "status", v.Status)
	s.h.p.emit(Event{Kind: EventBlock, Time: s.h.p.now(), Rule: s.h.rg.name, Client: s.c.Client,
		Detail: v.ID + ": " + clip([]byte(m.method)) + " " + clip([]byte(path))})
	return v.Status
}

func cutQuery(target string) (string, string, bool) {
	for i := 0; i < len(target); i++ {
		if target[i] == '?' {
			return target[:i], target[i+1:], true
		}
	}
	return target, "", false
}

// loginAttempt reports whether a request tries credentials.
func loginAttempt(m *message) bool {
	if m.authorization {
		return true
	}
	if m.method != "POST" {
		return false
	}
	path, _, ok := normalizeTarget(m.target)
	if !ok {
		return false
	}
	for _, p := range loginPaths {
		if path == p {
			return true
		}
	}
	return false
}

func (s *session) dial(ctx context.Context) error {
	dev, err := s.c.Dial(ctx)
	if err != nil {
		return err
	}
	s.dev = dev
	size := responseReaderSize
	if s.rtsp {
		// Media frames: the larger the buffer, the more of them
		// copyFrames moves per write.
		size = rtspReaderSize
	}
	s.dr = bufio.NewReaderSize(dev, size)
	s.toDev = countWriter{w: dev, add: s.c.AddIn}
	s.openRelay()
	s.started = true
	go s.responses()
	return nil
}

// push queues an exchange before its request is written.
func (s *session) push(ex *exchange) bool {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	if s.qclosed {
		return false
	}
	s.q = append(s.q, ex)
	s.outstanding.Add(1)
	return true
}

func (s *session) pop() *exchange {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	if len(s.q) == 0 {
		return nil
	}
	ex := s.q[0]
	s.q[0] = nil
	s.q = s.q[1:]
	return ex
}

// answered marks an exchange done.
func (s *session) answered() {
	s.outstanding.Add(-1)
	select {
	case s.idle <- struct{}{}:
	default:
	}
}

// waitIdle waits until every forwarded request has been answered.
func (s *session) waitIdle(ctx context.Context) {
	for s.outstanding.Load() > 0 {
		select {
		case <-s.idle:
		case <-s.bdone:
			return
		case <-ctx.Done():
			return
		}
	}
}

// clientDone handles the end of the client's stream: after a clean end,
// the device's pending answers are still delivered.
func (s *session) clientDone(ctx context.Context, err error) error {
	if !errors.Is(err, io.EOF) {
		return err
	}
	if s.dev != nil {
		closeWrite(s.dev)
		s.waitIdle(ctx)
	}
	return nil
}

// reject answers with status after the answers already owed, then closes.
func (s *session) reject(ctx context.Context, status int, m *message) error {
	s.waitIdle(ctx)
	var msg string
	if s.rtsp {
		msg = fmt.Sprintf("RTSP/1.0 %d %s\r\n", status, http.StatusText(status))
		if m != nil && m.cseq != "" {
			msg += "CSeq: " + m.cseq + "\r\n"
		}
		msg += "Content-Length: 0\r\n\r\n"
	} else {
		body := refusalText(status)
		msg = fmt.Sprintf("HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n%s",
			status, http.StatusText(status), len(body), body)
	}
	s.wmu.Lock()
	s.toClient.Write([]byte(msg))
	s.wmu.Unlock()
	lingerClose(s.client)
	return errDone
}

func refusalText(status int) string {
	switch status {
	case 403:
		return "Forbidden by camgate.\n"
	case 503:
		return "Too many failed logins to this device; try again later.\n"
	case 502:
		return "camgate cannot reach the device.\n"
	}
	return http.StatusText(status) + "\n"
}

// lingerClose shuts down the write side, then reads and discards what
// the client still sends for a moment, so that closing does not reset the
// connection before the client has read the answer (RFC 9112 §9.6).
func lingerClose(c net.Conn) {
	closeWrite(c)
	c.SetReadDeadline(time.Now().Add(lingerTimeout))
	io.Copy(io.Discard, io.LimitReader(c, 256<<10))
}

type closeWriter interface{ CloseWrite() error }

func closeWrite(c net.Conn) {
	if cw, ok := c.(closeWriter); ok {
		cw.CloseWrite()
		return
	}
	c.Close()
}

// tunnel relays raw bytes client→device after a 101 answer; the response
// loop does device→client.
func (s *session) tunnel(buf []byte) error {
	_, err := io.CopyBuffer(&s.toDev, onlyReader{s.cr}, buf)
	if err != nil {
		s.c.Close() // also ends the other direction
	} else {
		closeWrite(s.dev)
	}
	<-s.bdone
	return err
}

// responses is the response loop; it runs in its own goroutine, owned by
// the session, which waits for it.
func (s *session) responses() {
	defer close(s.bdone)
	defer s.abandon()
	bh := bufHolder{pool: &s.h.p.bufs}
	defer bh.release()
	for {
		if s.dr.Buffered() == 0 {
			bh.release()
		}
		if s.rtsp {
			b, err := s.dr.Peek(1)
			if err != nil {
				s.deviceDone(err)
				return
			}
			if b[0] == '$' {
				s.wmu.Lock()
				err := copyFrames(&s.toClient, s.dr, bh.get())
				s.wmu.Unlock()
				if err != nil {
					s.c.Close()
					return
				}
				continue
			}
		}
		m, err := readMessage(s.dr, responseLimits, s.rtsp, false)
		if err != nil {
			s.deviceDone(err)
			return
		}
		if !m.response {
			// An RTSP request from the device (ANNOUNCE, GET_PARAMETER).
			kind, n := m.requestBody()
			s.wmu.Lock()
			err := writeMessage(&s.toClient, m.head, s.dr, s.dev, kind, n, bh.get())
			s.wmu.Unlock()
			if err != nil {
				s.c.Close()
				return
			}
			continue
		}
		if m.status/100 == 1 && m.status != 101 {
			s.wmu.Lock()
			_, err := s.toClient.Write(m.head)
			s.wmu.Unlock()
			if err != nil {
				s.c.Close()
				return
			}
			continue
		}
		ex := s.pop()
		if m.status == 101 {
			s.switched(ex, m, bh.get())
			return
		}
		method := ""
		if ex != nil {
			method = ex.method
		}
		kind, n := m.responseBody(method, s.rtsp)
		head, wkind, wn, err := s.rewriteAnswer(ex, m, kind, n)
		if err != nil {
			s.deviceDone(err)
			return
		}
		s.wmu.Lock()
		err = writeHead(&s.toClient, head, s.dr, s.dev, wkind, wn, bh.get(), func() {
			if ex != nil && ex.tk != nil {
				s.settle(ex.tk, m)
			}
		})
		s.wmu.Unlock()
		if ex != nil {
			if ex.upgrade {
				ex.verdict <- false
			}
			s.answered()
		}
		if err != nil {
			s.c.Close()
			return
		}
		if kind == bodyClose {
			s.deviceDone(io.EOF)
			return
		}
	}
}

// settle records the device's verdict on a login attempt.
func (s *session) settle(tk *ticket, m *message) {
	o := neutral
	switch {
	case m.status == 401 && !m.stale:
		o = failure
		s.h.rs.authLog.Log(s.h.p.log, s.h.p.now(), slog.LevelInfo, "failed login",
			"rule", s.h.rg.name, "client", s.c.Client)
	case m.status/100 == 2:
		o = success
	}
	tk.settle(o)
}

// switched handles 101 Switching Protocols: it is only valid for a
// request that asked to upgrade; then both directions become raw.
func (s *session) switched(ex *exchange, m *message, buf []byte) {
	if ex == nil || !ex.upgrade {
		s.c.Logger().Debug("device switched protocols without an upgrade request", "client", s.c.Client)
		s.c.Close()
		return
	}
	if ex.tk != nil {
		s.settle(ex.tk, m)
	}
	s.wmu.Lock()
	_, err := s.toClient.Write(m.head)
	s.wmu.Unlock()
	s.answered()
	ex.verdict <- err == nil
	if err != nil {
		s.c.Close()
		return
	}
	if _, err := io.CopyBuffer(&s.toClient, onlyReader{s.dr}, buf); err != nil {
		s.c.Close()
		return
	}
	closeWrite(s.client)
}

// deviceDone handles the end of the device's stream.
func (s *session) deviceDone(err error) {
	if errors.Is(err, io.EOF) {
		// Let the client read what it got, then end its request loop.
		closeWrite(s.client)
		s.client.SetReadDeadline(time.Now().Add(lingerTimeout))
		return
	}
	if !errors.Is(err, net.ErrClosed) && !errors.Is(err, os.ErrDeadlineExceeded) {
		var pe *parseError
		if errors.As(err, &pe) {
			s.c.Logger().Debug("device sent a malformed message; closing", "client", s.c.Client, "err", err)
		}
	}
	s.c.Close()
}

// abandon settles what the device will never answer: an unanswered login
// attempt counts as failed (the device may have counted it).
func (s *session) abandon() {
	s.qmu.Lock()
	q := s.q
	s.q = nil
	s.qclosed = true
	s.qmu.Unlock()
	for _, ex := range q {
		if ex.tk != nil {
			ex.tk.settle(failure)
		}
		if ex.upgrade {
			ex.verdict <- false
		}
		s.answered()
	}
}

// bufHolder takes a copy buffer from the pool when a message needs one and
// gives it back when the connection goes idle.
type bufHolder struct {
	pool *sync.Pool
	b    *[]byte
}

func (h *bufHolder) get() []byte {
	if h.b == nil {
		h.b = h.pool.Get().(*[]byte)
	}
	return *h.b
}

func (h *bufHolder) release() {
	if h.b != nil {
		h.pool.Put(h.b)
		h.b = nil
	}
}

// writeMessage writes a head and streams its body, in one write when the
// body is small and already buffered.
func writeMessage(dst io.Writer, head []byte, src *bufio.Reader, raw net.Conn, kind bodyKind, n int64, buf []byte) error {
	return writeHead(dst, head, src, raw, kind, n, buf, nil)
}

// writeHead is writeMessage with a callback run once the head (and a
// coalesced body) is written, before the rest of the body streams.
func writeHead(dst io.Writer, head []byte, src *bufio.Reader, raw net.Conn, kind bodyKind, n int64, buf []byte, after func()) error {
	done := func() {
		if after != nil {
			after()
			after = nil
		}
	}
	defer done()
	if len(head) <= len(buf) {
		k := copy(buf, head)
		if kind == bodyFixed && n <= int64(len(buf)-k) && int64(src.Buffered()) >= n {
			if _, err := io.ReadFull(src, buf[k:k+int(n)]); err != nil {
				return err
			}
			_, err := dst.Write(buf[:k+int(n)])
			return err
		}
		if kind == bodyNone {
			_, err := dst.Write(buf[:k])
			return err
		}
		if _, err := dst.Write(buf[:k]); err != nil {
			return err
		}
	} else if _, err := dst.Write(head); err != nil {
		return err
	}
	done()
	return copyBody(dst, src, raw, kind, n, buf)
}
