package sim

import (
	"net/netip"
	"sync"
	"time"
)

// Request is one entry of the device's request log: an HTTP or RTSP
// request, a connection to a hold-only port, or a discovery probe. Tests
// of other packages use it to prove what reached the device (for example
// that a gateway filter kept PUT /SDK/webLanguage away).
type Request struct {
	// Time is when the request was answered (or the connection accepted).
	Time time.Time
	// Service is the service that received it.
	Service Service
	// Source is the client's address as the device saw it.
	Source netip.AddrPort
	// Method is the HTTP or RTSP method, "CONNECT" for a connection to
	// the SDK or SDK-over-TLS port, "UPGRADE" for a WebSocket, and for
	// SADP the probe's Types ("inquiry", or a refused write command such
	// as "activate") and for WS-Discovery the message ("Probe").
	Method string
	// Path is the request path with its query ("" for connections and
	// probes).
	Path string
	// Status is the response status code; 0 when nothing was answered.
	Status int
	// User is the user name the client presented, if any (never the
	// password).
	User string
}

// requestLog is a bounded ring of Requests.
type requestLog struct {
	size int

	mu   sync.Mutex // guards following
	ring []Request
	next int
	full bool
}

func newRequestLog(size int) *requestLog {
	return &requestLog{size: size, ring: make([]Request, 0, min(size, 64))}
}

func (l *requestLog) add(r Request) {
	if r.Time.IsZero() {
		r.Time = time.Now()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.ring) < l.size {
		l.ring = append(l.ring, r)
		return
	}
	l.ring[l.next] = r
	l.next = (l.next + 1) % l.size
	l.full = true
}

func (l *requestLog) snapshot() []Request {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Request, 0, len(l.ring))
	if l.full {
		out = append(out, l.ring[l.next:]...)
		out = append(out, l.ring[:l.next]...)
		return out
	}
	return append(out, l.ring...)
}
