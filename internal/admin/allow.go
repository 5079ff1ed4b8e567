package admin

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
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
//
// One exception lets a neighbour watch a shared camera (issue 16): while
// at least one share link is active, other sources are admitted too, as
// "outsiders", under their own smaller total cap, and their requests may
// reach only the share page, its stream and the few files it loads
// (sharePath); anything else is a 404 and the connection is closed. With
// no active link, nothing changes: they are closed at accept.
const (
	maxAdminConns          = 256
	maxAdminConnsPerSource = 32
	maxOutsiderConns       = 64
)

// sourceListener wraps the admin listener with the source checks.
type sourceListener struct {
	net.Listener
	allow []netip.Prefix
	log   *slog.Logger
	// sharing reports whether a share link is active. Nil means never.
	sharing func() bool

	total     atomic.Int64
	outsiders atomic.Int64
	refused   atomic.Int64
	lastLog   atomic.Int64 // unix seconds of the last refusal logged

	mu  sync.Mutex // guards following
	per map[netip.Prefix]int
}

func newSourceListener(ln net.Listener, allow []netip.Prefix, sharing func() bool, log *slog.Logger) *sourceListener {
	return &sourceListener{Listener: ln, allow: allow, sharing: sharing, log: log, per: map[netip.Prefix]int{}}
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
		outsider, why := l.admit(src)
		if why != "" {
			c.Close()
			l.refusedLog(src, why)
			continue
		}
		return &sourceConn{Conn: c, l: l, key: sourceKey(src), outsider: outsider}, nil
	}
}

// admit takes a connection slot for src, or says why not. outsider says
// the source may reach share links only.
func (l *sourceListener) admit(src netip.Addr) (outsider bool, why string) {
	if !config.AdminSourceAllowed(src, l.allow) {
		if l.sharing == nil || !l.sharing() {
			return false, "not a LAN source and not in admin.allow"
		}
		outsider = true
		if l.outsiders.Add(1) > maxOutsiderConns {
			l.outsiders.Add(-1)
			return false, "the share links are at their connection cap"
		}
	}
	undo := func(why string) (bool, string) {
		l.total.Add(-1)
		if outsider {
			l.outsiders.Add(-1)
		}
		return false, why
	}
	if l.total.Add(1) > maxAdminConns {
		return undo("the admin listener is at its connection cap")
	}
	key := sourceKey(src)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.per[key] >= maxAdminConnsPerSource {
		return undo("the source is at its connection cap")
	}
	l.per[key]++
	return outsider, ""
}

func (l *sourceListener) release(key netip.Prefix, outsider bool) {
	if outsider {
		l.outsiders.Add(-1)
	}
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
	l        *sourceListener
	key      netip.Prefix
	outsider bool
	once     sync.Once
}

func (c *sourceConn) Close() error {
	c.once.Do(func() { c.l.release(c.key, c.outsider) })
	return c.Conn.Close()
}

// outsiderKey marks a request's context when its connection came from a
// source that may reach share links only.
type outsiderKey struct{}

// markOutsider is the admin http.Server's ConnContext.
func markOutsider(ctx context.Context, c net.Conn) context.Context {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if sc, ok := c.(*sourceConn); ok && sc.outsider {
		return context.WithValue(ctx, outsiderKey{}, true)
	}
	return ctx
}

func isOutsider(r *http.Request) bool {
	v, _ := r.Context().Value(outsiderKey{}).(bool)
	return v
}

// sharePath reports whether an outsider may request path: a share link's
// page, info and stream, and the files the share page loads.
func sharePath(path string) bool {
	switch path {
	case "/ui/app.css", "/ui/live.css", "/ui/live.js", "/ui/share.js":
		return true
	}
	return strings.HasPrefix(path, "/s/")
}
