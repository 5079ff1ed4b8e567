package guard

import (
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/camgate/camgate/internal/forward"
)

// SourceKey is the unit that per-source limits, failure counts and bans
// apply to: an IPv4 address, or the /64 around an IPv6 address (one
// subscriber's network, in which a host can pick addresses at will).
func SourceKey(a netip.Addr) netip.Prefix {
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return netip.PrefixFrom(a, 32)
	}
	p, _ := a.Prefix(64)
	return p
}

// counters are a rule's guard counters, updated without locks.
type counters struct {
	denied, limited, banned, blocked, malformed atomic.Uint64
	authFail, authOK, bans, lockdown, tlsErrs   atomic.Uint64
}

func (c *counters) snapshot() Counters {
	return Counters{
		Denied: c.denied.Load(), Limited: c.limited.Load(), Banned: c.banned.Load(),
		Blocked: c.blocked.Load(), Malformed: c.malformed.Load(),
		AuthFailures: c.authFail.Load(), AuthSuccesses: c.authOK.Load(),
		Bans: c.bans.Load(), Lockdown: c.lockdown.Load(), TLSErrors: c.tlsErrs.Load(),
	}
}

// ruleState is kept per rule name across reloads: counters, log
// throttles and the per-source tables.
type ruleState struct {
	name string
	c    counters
	// One throttle per kind of event, so a scan's denials cannot hide
	// filter hits.
	denyLog, limitLog, filterLog, authLog forward.LogThrottle

	mu        sync.Mutex // guards following
	conns     map[netip.Prefix]int
	udp       map[netip.Prefix]int
	buckets   map[netip.Prefix]*bucket
	lastSweep time.Time
}

func newRuleState(name string) *ruleState {
	return &ruleState{
		name:    name,
		conns:   map[netip.Prefix]int{},
		udp:     map[netip.Prefix]int{},
		buckets: map[netip.Prefix]*bucket{},
	}
}

// refusal is an admission refusal: it wraps forward.ErrRefused so the
// forwarder counts it, and says why.
type refusal struct{ why string }

func (r *refusal) Error() string { return r.why }
func (r *refusal) Unwrap() error { return forward.ErrRefused }

func refuse(format string, args ...any) error { return &refusal{why: fmt.Sprintf(format, args...)} }

// admit is a rule's admission check: allow/deny, ban list, connection
// rate, per-source caps on this rule and over all rules.
func (p *Policy) admit(rs *ruleState, rg *ruleGuard, src netip.AddrPort, proto string) (func(), error) {
	addr := src.Addr().Unmap()
	if !rg.acl.Permits(addr) {
		rs.c.denied.Add(1)
		err := rg.acl.Check(addr)
		rs.denyLog.Log(p.log, p.now(), slog.LevelInfo, "connection denied by the access list",
			"rule", rg.name, "client", src, "proto", proto, "reason", err)
		return nil, refuse("%v", err)
	}
	key := SourceKey(addr)
	now := p.now()
	if b, ok := p.banned(key, rg.name, rg.device, now); ok {
		rs.c.banned.Add(1)
		rs.denyLog.Log(p.log, now, slog.LevelInfo, "connection from a banned source refused",
			"rule", rg.name, "client", src, "proto", proto, "until", b.Until.Format(time.RFC3339))
		return nil, refuse("source %s is banned until %s", key, b.Until.Format(time.RFC3339))
	}
	if addr.IsLoopback() {
		// The host itself, or a reverse proxy on it: per-source limits
		// would cap every client behind it at once. (Loopback sources
		// cannot come from the network: the kernel drops them.)
		return nil, nil
	}
	if proto == "udp" {
		return p.admitUDP(rs, rg, key, src, now)
	}
	rs.mu.Lock()
	if rg.rate > 0 {
		rs.sweepLocked(now, rg)
		b := rs.buckets[key]
		if b == nil {
			b = &bucket{tokens: float64(rg.burst), last: now}
			rs.buckets[key] = b
		}
		if !b.take(now, rg.rate, float64(rg.burst)) {
			rs.mu.Unlock()
			return nil, p.limited(rs, rg, src, proto, "source %s opens connections faster than %g/s (burst %d)", key, rg.rate, rg.burst)
		}
	}
	if rg.perConns > 0 && rs.conns[key] >= rg.perConns {
		rs.mu.Unlock()
		return nil, p.limited(rs, rg, src, proto, "source %s has %d connections on this rule (per_ip_connections)", key, rg.perConns)
	}
	rs.conns[key]++
	rs.mu.Unlock()

	p.gmu.Lock()
	if max := p.maxPerIP.Load(); max > 0 && int64(p.global[key]) >= max {
		p.gmu.Unlock()
		rs.release(rs.conns, key)
		return nil, p.limited(rs, rg, src, proto, "source %s has %d connections over all rules (limits.max_connections_per_ip)", key, max)
	}
	p.global[key]++
	p.gmu.Unlock()

	var once atomic.Bool
	return func() {
		if once.Swap(true) {
			return
		}
		rs.release(rs.conns, key)
		p.gmu.Lock()
		if p.global[key] <= 1 {
			delete(p.global, key)
		} else {
			p.global[key]--
		}
		p.gmu.Unlock()
	}, nil
}

func (p *Policy) admitUDP(rs *ruleState, rg *ruleGuard, key netip.Prefix, src netip.AddrPort, now time.Time) (func(), error) {
	rs.mu.Lock()
	if rg.perUDP > 0 && rs.udp[key] >= rg.perUDP {
		rs.mu.Unlock()
		return nil, p.limited(rs, rg, src, "udp", "source %s has %d UDP sessions on this rule (per_ip_udp_sessions)", key, rg.perUDP)
	}
	rs.udp[key]++
	rs.mu.Unlock()
	var once atomic.Bool
	return func() {
		if !once.Swap(true) {
			rs.release(rs.udp, key)
		}
	}, nil
}

func (p *Policy) limited(rs *ruleState, rg *ruleGuard, src netip.AddrPort, proto, format string, args ...any) error {
	rs.c.limited.Add(1)
	err := refuse(format, args...)
	rs.limitLog.Log(p.log, p.now(), slog.LevelInfo, "connection over a per-source limit refused",
		"rule", rg.name, "client", src, "proto", proto, "reason", err)
	return err
}

func (rs *ruleState) release(m map[netip.Prefix]int, key netip.Prefix) {
	rs.mu.Lock()
	if m[key] <= 1 {
		delete(m, key)
	} else {
		m[key]--
	}
	rs.mu.Unlock()
}

// sweepLocked drops full token buckets (sources idle long enough to have
// earned a full burst back) once in a while, so a scan from many
// addresses does not grow the table for ever.
func (rs *ruleState) sweepLocked(now time.Time, rg *ruleGuard) {
	since := now.Sub(rs.lastSweep)
	// Every 10 s, or every second while a scan from many addresses grows
	// the table; never on every connection, which would make the sweep
	// itself the attack.
	if since < time.Second || since < 10*time.Second && len(rs.buckets) < 4096 {
		return
	}
	rs.lastSweep = now
	for k, b := range rs.buckets {
		if b.full(now, rg.rate, float64(rg.burst)) {
			delete(rs.buckets, k)
		}
	}
}

// bucket is a token bucket: it refills at rate per second up to burst,
// and each new connection takes one token.
type bucket struct {
	tokens float64
	last   time.Time
}

func (b *bucket) refill(now time.Time, rate, burst float64) {
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(burst, b.tokens+d.Seconds()*rate)
		b.last = now
	}
}

func (b *bucket) take(now time.Time, rate, burst float64) bool {
	b.refill(now, rate, burst)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (b *bucket) full(now time.Time, rate, burst float64) bool {
	b.refill(now, rate, burst)
	return b.tokens >= burst
}
