// Package forward is camgate's data plane: it listens on a rule's external
// port(s) and relays TCP connections and UDP datagrams to the device.
//
// A Rule binds all its sockets in Bind (so a port clash is reported before
// anything changes), starts serving in Start, and stops with Close (at once)
// or Shutdown (stop accepting, let live connections finish until the
// context ends, then cut them). Listeners use SO_REUSEPORT so that a rule
// being replaced can bind its new sockets before the old ones close.
//
//	r, err := forward.Bind(forward.Spec{Name: "dvr-rtsp", Listen: addr, Ports: ports, ...})
//	if err != nil { ... }     // nothing is listening
//	r.Start()
//	defer r.Shutdown(ctx)
//
// TCP is copied with splice(2) in bursts: a direction waits for
// readability while holding nothing but its socket, then moves exactly the
// bytes queued through a pooled kernel pipe (see copy.go). Half-close is
// honoured in both directions. UDP keeps one session per client address,
// each with its own connected socket to the device (see udp.go).
//
// Rule.Serve serves a connection that did not come from the rule's
// listeners (a VPN peer's) as if the rule had accepted it: admission,
// handler, counters, listing and kill. A client that is not a
// *net.TCPConn is relayed by a goroutine per direction.
//
// The package does not decide policy: access lists, per-source limits and
// protocol-aware filters are supplied by the caller as Spec.Admit and
// Spec.Handler (package guard builds them).
package forward

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Spec describes one rule's forwarding. Zero values take the documented
// defaults.
type Spec struct {
	// Name is the rule name, used in logs and errors. Required.
	Name string
	// Listen is the address to bind; the zero Addr means 0.0.0.0.
	Listen netip.Addr
	// Ports are the external ports; Targets[i] receives Ports[i]. Nil
	// (with TCP only) makes a rule that listens nowhere and serves only
	// the connections given to Rule.Serve, to TargetPorts: how the VPN
	// relays RTSP for a device no rule forwards.
	Ports []uint16
	// Target is the device's IP address or host name; a host name is
	// resolved each time a connection is dialled.
	Target string
	// TargetPorts[i] is the device port for Ports[i].
	TargetPorts []uint16
	// TCP and UDP select the protocols. At least one must be set.
	TCP, UDP bool
	// DialTimeout bounds connecting to the device. 0 means 5 s.
	DialTimeout time.Duration
	// IdleTimeout closes a TCP connection idle in both directions for this
	// long. 0 means none (keepalive still detects dead peers).
	IdleTimeout time.Duration
	// MaxConns caps this rule's concurrent TCP connections. 0 means no
	// per-rule cap.
	MaxConns int
	// Global is the gateway-wide connection cap shared by all rules, each
	// with a fair share (see Limit). Nil means no global cap.
	Global *Limit
	// FDs is the gateway-wide file-descriptor budget (see NewFDBudget):
	// a TCP connection costs 2, a UDP session 1, a splice pipe 2 while it
	// exists. Nil means no budget.
	FDs *Limit
	// DeviceCongestion is the TCP congestion control of sockets to the
	// device, set before connect. The device is a LAN hop, where
	// pacing-based controls gain nothing: measured on loopback, the
	// system's BBR (internal pacing) held one stream through camgate to
	// 18 Gbit/s, CUBIC reached 29-36 (see docs/PERFORMANCE.md). "" means
	// "cubic"; "system" keeps the system default
	// (net.ipv4.tcp_congestion_control). The client side always keeps the
	// system default. Without CAP_NET_ADMIN the kernel allows only the
	// names in net.ipv4.tcp_allowed_congestion_control; a refused name
	// leaves the system default.
	DeviceCongestion string
	// UDPIdle ends a UDP session after this long without datagrams.
	// 0 means 120 s.
	UDPIdle time.Duration
	// UDPMaxSessions bounds the UDP session table. 0 means 4096.
	UDPMaxSessions int
	// Admit, if non-nil, is asked before a TCP connection is dialled or a
	// UDP session is created. It returns a release function to call when
	// the connection or session ends, or a non-nil error to refuse it.
	Admit func(src netip.AddrPort, proto string) (release func(), err error)
	// Handler, if non-nil, takes over a TCP connection after admission,
	// instead of the plain copy: it is how protocol-aware guards (HTTP,
	// RTSP, TLS termination) sit in the path. It must return when ctx is
	// done or the connection closes.
	Handler Handler
	// IDs hands out connection ids unique across the gateway. Nil means a
	// counter private to this rule.
	IDs *atomic.Uint64
	// Stats receives the rule's counters. Nil means a fresh Stats.
	Stats *Stats
	// Logger receives per-connection debug lines and errors. Nil discards.
	Logger *slog.Logger
}

// Handler handles one admitted TCP connection at layer 7.
type Handler interface {
	ServeConn(ctx context.Context, c *Conn) error
}

// ErrRefused is returned by Admit implementations (or wrapped) when a
// connection is refused by policy; the forwarder counts it as refused.
var ErrRefused = errors.New("refused")

const (
	defaultDialTimeout    = 5 * time.Second
	defaultUDPIdle        = 120 * time.Second
	defaultUDPMaxSessions = 4096
)

func (s *Spec) dialTimeout() time.Duration {
	if s.DialTimeout <= 0 {
		return defaultDialTimeout
	}
	return s.DialTimeout
}

func (s *Spec) deviceCongestion() string {
	switch s.DeviceCongestion {
	case "":
		return "cubic"
	case "system":
		return ""
	}
	return s.DeviceCongestion
}

func (s *Spec) udpIdle() time.Duration {
	if s.UDPIdle <= 0 {
		return defaultUDPIdle
	}
	return s.UDPIdle
}

func (s *Spec) udpMax() int {
	if s.UDPMaxSessions <= 0 {
		return defaultUDPMaxSessions
	}
	return s.UDPMaxSessions
}

// Rule is one rule's running sockets and connections.
type Rule struct {
	spec  Spec
	stats *Stats
	log   *slog.Logger
	ids   *atomic.Uint64
	limit Limit // per-rule cap
	// globalShare and fdShare are this rule's holdings of Spec.Global and
	// Spec.FDs.
	globalShare, fdShare share
	// unreachable limits "cannot reach device" warnings.
	unreachable LogThrottle

	ctx    context.Context // cancelled by Close; parent of every connection
	cancel context.CancelFunc

	tcp     []*tcpListener
	udp     []*udpRelay
	poller  *poller        // idle TCP directions; nil without TCP
	wg      sync.WaitGroup // accept loops, relays, connections
	polling bool           // poller.run started

	mu    sync.Mutex // guards following
	conns map[uint64]*Conn
	done  bool
}

// Bind opens every socket of the rule. On error nothing stays open and the
// error names the rule, protocol and address.
func Bind(spec Spec) (*Rule, error) {
	if spec.Name == "" {
		panic("forward: Spec.Name is required")
	}
	if !spec.TCP && !spec.UDP {
		return nil, fmt.Errorf("rule %q: no protocol selected", spec.Name)
	}
	serveOnly := spec.Ports == nil && len(spec.TargetPorts) > 0
	if serveOnly && spec.UDP {
		return nil, fmt.Errorf("rule %q: a rule without ports serves TCP only", spec.Name)
	}
	if !serveOnly && (len(spec.Ports) == 0 || len(spec.Ports) != len(spec.TargetPorts)) {
		return nil, fmt.Errorf("rule %q: %d external ports for %d internal ports", spec.Name, len(spec.Ports), len(spec.TargetPorts))
	}
	r := &Rule{spec: spec, stats: spec.Stats, log: spec.Logger, ids: spec.IDs, conns: map[uint64]*Conn{}}
	if r.stats == nil {
		r.stats = &Stats{}
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.log = r.log.With("rule", spec.Name)
	if r.ids == nil {
		r.ids = new(atomic.Uint64)
	}
	r.limit.SetMax(spec.MaxConns)
	r.ctx, r.cancel = context.WithCancel(context.Background())
	listen := spec.Listen
	if !listen.IsValid() {
		listen = netip.IPv4Unspecified()
	}
	if spec.TCP {
		p, err := newPoller()
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("rule %q: %w", spec.Name, err)
		}
		r.poller = p
	}
	if serveOnly {
		for _, tp := range spec.TargetPorts {
			r.tcp = append(r.tcp, newTCPListener(r, nil, tp))
		}
	}
	for i, p := range spec.Ports {
		addr := netip.AddrPortFrom(listen, p)
		if spec.TCP {
			ln, err := listenTCP(addr)
			if err != nil {
				r.Close()
				return nil, fmt.Errorf("rule %q: listen tcp %s: %w", spec.Name, addr, err)
			}
			r.tcp = append(r.tcp, newTCPListener(r, ln, spec.TargetPorts[i]))
		}
		if spec.UDP {
			pc, err := listenUDP(addr)
			if err != nil {
				r.Close()
				return nil, fmt.Errorf("rule %q: listen udp %s: %w", spec.Name, addr, err)
			}
			u, err := newUDPRelay(r, pc, spec.TargetPorts[i])
			if err != nil {
				pc.Close()
				r.Close()
				return nil, fmt.Errorf("rule %q: listen udp %s: %w", spec.Name, addr, err)
			}
			r.udp = append(r.udp, u)
		}
	}
	return r, nil
}

// Start begins accepting connections and datagrams.
func (r *Rule) Start() {
	if r.poller != nil {
		r.polling = true
		go r.poller.run()
	}
	for _, l := range r.tcp {
		if l.ln == nil {
			continue // serves only what Serve is given
		}
		r.wg.Add(1)
		go l.acceptLoop()
	}
	for _, u := range r.udp {
		r.wg.Add(1)
		go u.serve()
	}
	if r.spec.IdleTimeout > 0 && len(r.tcp) > 0 {
		r.wg.Add(1)
		go r.idleReaper()
	}
}

// Stats returns the rule's live counters.
func (r *Rule) Stats() *Stats { return r.stats }

// Name returns the rule name.
func (r *Rule) Name() string { return r.spec.Name }

// Addrs returns the bound local addresses ("tcp 0.0.0.0:554" style), for
// status displays and for tests that bind port 0.
func (r *Rule) Addrs() []net.Addr {
	var out []net.Addr
	for _, l := range r.tcp {
		if l.ln != nil {
			out = append(out, l.ln.Addr())
		}
	}
	for _, u := range r.udp {
		out = append(out, u.pc.LocalAddr())
	}
	return out
}

// Close stops the rule at once: listeners and every live connection and
// session are closed. It waits for all goroutines to finish.
func (r *Rule) Close() {
	r.stopListening()
	r.cancel()
	r.closeConns()
	for _, u := range r.udp {
		u.close()
	}
	r.wg.Wait()
	// Every connection has finished, so none can re-arm: the poller can go.
	if r.poller != nil {
		r.poller.close(r.polling)
	}
}

// Shutdown stops accepting at once, lets live TCP connections finish until
// ctx is done, then closes what is left. UDP sessions end at once: there is
// no end-of-stream to wait for.
func (r *Rule) Shutdown(ctx context.Context) {
	r.stopListening()
	for _, u := range r.udp {
		u.close()
	}
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for r.stats.Active.Load() > 0 {
		select {
		case <-ctx.Done():
			r.Close()
			return
		case <-tick.C:
		}
	}
	r.Close()
}

func (r *Rule) stopListening() {
	r.mu.Lock()
	r.done = true
	r.mu.Unlock()
	for _, l := range r.tcp {
		if l.ln != nil {
			l.ln.Close()
		}
	}
}

func (r *Rule) closeConns() {
	r.mu.Lock()
	cs := make([]*Conn, 0, len(r.conns))
	for _, c := range r.conns {
		cs = append(cs, c)
	}
	r.mu.Unlock()
	for _, c := range cs {
		c.Close()
	}
}

// track registers a live connection; it fails once the rule is closing.
func (r *Rule) track(c *Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done && r.ctx.Err() != nil {
		return false
	}
	r.conns[c.ID] = c
	return true
}

// trackServed registers a connection given to Serve, which no accept
// loop covers: it joins the rule's wait group under the lock, and fails
// once the rule has stopped listening, so that Close never waits for a
// connection that arrived after it began.
func (r *Rule) trackServed(c *Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return false
	}
	r.conns[c.ID] = c
	r.wg.Add(1) // released by finish
	return true
}

func (r *Rule) untrack(c *Conn) {
	r.mu.Lock()
	delete(r.conns, c.ID)
	r.mu.Unlock()
}

// Conns lists the live TCP connections and UDP sessions.
func (r *Rule) Conns() []ConnInfo {
	r.mu.Lock()
	out := make([]ConnInfo, 0, len(r.conns))
	for _, c := range r.conns {
		out = append(out, c.Info())
	}
	r.mu.Unlock()
	for _, u := range r.udp {
		out = append(out, u.sessionsInfo()...)
	}
	return out
}

// Kill closes the connection or session with the given id and reports
// whether it was found.
func (r *Rule) Kill(id uint64) bool {
	r.mu.Lock()
	c := r.conns[id]
	r.mu.Unlock()
	if c != nil {
		c.Close()
		return true
	}
	for _, u := range r.udp {
		if u.kill(id) {
			return true
		}
	}
	return false
}

// idleReaper closes TCP connections with no traffic for IdleTimeout. One
// ticker per rule is far cheaper than a deadline per read.
func (r *Rule) idleReaper() {
	defer r.wg.Done()
	idle := r.spec.IdleTimeout
	every := max(idle/4, 10*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case now := <-t.C:
			r.mu.Lock()
			var stale []*Conn
			for _, c := range r.conns {
				if now.Sub(c.lastActive()) > idle {
					stale = append(stale, c)
				}
			}
			r.mu.Unlock()
			for _, c := range stale {
				r.log.Debug("idle timeout", "conn", c.ID, "client", c.Client)
				c.Close()
			}
		}
	}
}
