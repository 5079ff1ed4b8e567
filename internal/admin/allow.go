package admin

import (
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/camgate/camgate/internal/config"
)

// Who may connect to the admin listener, and how much (issue 14): the
// admin UI answers only loopback, private, ULA and link-local sources
// unless admin.allow widens that, and no source may hold more than
// maxAdminConnsPerSource connections, nor all of them more than
// maxAdminConns, so that a flood of TLS handshakes cannot take the file
// descriptors the forwarder needs. Refused connections are closed at
// accept, before any TLS or HTTP.
const (
	maxAdminConns          = 256
	maxAdminConnsPerSource = 32
)

// sourceListener wraps the admin listener with the source checks.
type sourceListener struct {
	net.Listener
	allow []netip.Prefix
	log   *slog.Logger

	total   atomic.Int64
	refused atomic.Int64
	lastLog atomic.Int64 // unix seconds of the last refusal logged

	mu  sync.Mutex // guards following
	per map[netip.Prefix]int
}

func newSourceListener(ln net.Listener, allow []netip.Prefix, log *slog.Logger) *sourceListener {
	return &sourceListener{Listener: ln, allow: allow, log: log, per: map[netip.Prefix]int{}}
}

// Accept returns the next connection that passes the checks; the others
// are closed at once.
func (l *sourceListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		src := remoteAddr(c)
		if why := l.admit(src); why != "" {
			c.Close()
			l.refusedLog(src, why)
			continue
		}
		return &sourceConn{Conn: c, l: l, key: sourceKey(src)}, nil
	}
}

// admit takes a connection slot for src, or says why not.
func (l *sourceListener) admit(src netip.Addr) string {
	if !config.AdminSourceAllowed(src, l.allow) {
		return "not a LAN source and not in admin.allow"
	}
	if l.total.Add(1) > maxAdminConns {
		l.total.Add(-1)
		return "the admin listener is at its connection cap"
	}
	key := sourceKey(src)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.per[key] >= maxAdminConnsPerSource {
		l.total.Add(-1)
		return "the source is at its connection cap"
	}
	l.per[key]++
	return ""
}

func (l *sourceListener) release(key netip.Prefix) {
	l.total.Add(-1)
	l.mu.Lock()
	if l.per[key]--; l.per[key] <= 0 {
		delete(l.per, key)
	}
	l.mu.Unlock()
}

// refusedLog logs refusals at most once every 10 s, with the count.
func (l *sourceListener) refusedLog(src netip.Addr, why string) {
	n := l.refused.Add(1)
	now := time.Now().Unix()
	last := l.lastLog.Load()
	if now-last < 10 || !l.lastLog.CompareAndSwap(last, now) {
		return
	}
	l.log.Info("admin connection refused", "from", src, "reason", why, "refused_so_far", n)
}

func remoteAddr(c net.Conn) netip.Addr {
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// sourceConn gives its slot back once, on Close.
type sourceConn struct {
	net.Conn
	l    *sourceListener
	key  netip.Prefix
	once sync.Once
}

func (c *sourceConn) Close() error {
	c.once.Do(func() { c.l.release(c.key) })
	return c.Conn.Close()
}
