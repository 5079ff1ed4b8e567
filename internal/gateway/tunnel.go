package gateway

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/forward"
)

// Tunnel is the rule table's side of the built-in VPN: what a peer opens
// to a device address inside the tunnel reaches the device through the
// rules that forward to it, as if it came from the internet.
//
//   - Admit judges a new TCP connection or UDP flow by the first enabled
//     rule that forwards to its device port (allow/deny, per-source
//     limits, the guard's bans, shared with internet clients by rule); a
//     port no rule forwards is admitted, since the peer's access list
//     already allowed the device.
//   - ServeTCP hands a peer's TCP connection to the live userspace rule
//     that forwards to its device port (Forwarder, then
//     forward.Rule.ServeAccept), so the rule's guard, RTSP relay,
//     counters and connection list apply. A device's RTSP port that no
//     such rule forwards gets a rule of the tunnel's own (below).
//
// The tunnel's own RTSP rules, one per device RTSP port while the VPN is
// on, are built by the policy like a rule whose service is RTSP and
// listen nowhere: with only the VPN on, a peer's player still gets RTP
// over UDP from the relay. They are named vpn_<device>_rtsp (rule names
// have no '_', so they cannot clash), are kept across reloads while the
// device's address and port stay, and close with Close. Their
// connections are listed by the gateway's Connections (under the rule's
// name) and cut by its Kill.
//
// The VPN (package vpn) uses a Tunnel through its Config.Admit and
// Config.Rules; cmd/camgate wires the two and calls Apply on every
// config.
type Tunnel struct {
	g   *Gateway
	log *slog.Logger

	guards atomic.Pointer[[]tunnelGuard]
	rtsp   atomic.Pointer[map[netip.AddrPort]*forward.Rule]

	mu sync.Mutex // serialises Apply and Close
}

// tunnelGuard is the admission check of one enabled rule.
type tunnelGuard struct {
	rule  config.Rule
	admit func(netip.AddrPort, string) (func(), error)
}

// NewTunnel returns g's side of the VPN (one per gateway: a second
// replaces the first in g's connection list). Call Apply with each
// config. Connections through the tunnel's own RTSP rules are listed
// and cut by g's Connections and Kill, like a rule's.
func NewTunnel(g *Gateway, log *slog.Logger) *Tunnel {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := &Tunnel{g: g, log: log}
	g.mu.Lock()
	g.tunnel = t
	g.mu.Unlock()
	return t
}

// rules returns the tunnel's own RTSP rules.
func (t *Tunnel) rules() []*forward.Rule {
	m := t.rtsp.Load()
	if m == nil {
		return nil
	}
	out := make([]*forward.Rule, 0, len(*m))
	for _, r := range *m {
		out = append(out, r)
	}
	return out
}

// Apply takes the admission checks of cfg's rules from the gateway's
// policy (which keeps their per-source counters and bans by rule name, so
// a peer and an internet client share them), and builds, keeps or closes
// the tunnel's RTSP rules: one per device whose address is an IP, while
// cfg.VPN is enabled.
func (t *Tunnel) Apply(cfg *config.Config) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.g.Policy()
	var gs []tunnelGuard
	for i := range cfg.Rules {
		r := &cfg.Rules[i]
		if !r.IsEnabled() {
			continue
		}
		admit, _, err := p.Hooks(r)
		if err != nil || admit == nil {
			continue
		}
		gs = append(gs, tunnelGuard{rule: *r, admit: admit})
	}
	t.guards.Store(&gs)
	if cfg.VPN.Enabled {
		t.syncRTSP(cfg.Devices)
	} else {
		t.syncRTSP(nil)
	}
}

// Close closes the tunnel's RTSP rules (their viewers' connections end).
func (t *Tunnel) Close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.syncRTSP(nil)
}

// Admit judges a peer's new connection or flow from src to the device
// port dst over proto ("tcp" or "udp"); see Tunnel.
func (t *Tunnel) Admit(src, dst netip.AddrPort, proto string) (func(), error) {
	gs := t.guards.Load()
	if gs == nil {
		return nil, nil
	}
	for i := range *gs {
		if g := &(*gs)[i]; forwardsTo(&g.rule, dst, proto) {
			return g.admit(src, proto)
		}
	}
	return nil, nil
}

// ServeTCP serves a peer's TCP connection from src to the device port dst
// with the rule that forwards there, or the tunnel's RTSP rule for it;
// accept completes the handshake once the rule has admitted the peer, so
// a refused peer's SYN gets a reset, as from a closed port. handled is
// false when no rule serves dst (no rule, a kernel-path rule): the VPN
// then relays the connection itself after Admit. An error is a refusal,
// to count against the peer.
func (t *Tunnel) ServeTCP(src, dst netip.AddrPort, accept func() (net.Conn, error)) (handled bool, err error) {
	fwd, _ := t.g.Forwarder(dst, "tcp")
	if fwd == nil {
		if m := t.rtsp.Load(); m != nil {
			fwd = (*m)[dst]
		}
	}
	if fwd == nil {
		return false, nil
	}
	// An accept error is a peer gone or revoked, not a refusal.
	if err := fwd.ServeAccept(src, dst.Port(), accept); errors.Is(err, forward.ErrRefused) {
		return true, err
	}
	return true, nil
}

// rtspRule returns the tunnel's RTSP rule for dst, or nil.
func (t *Tunnel) rtspRule(dst netip.AddrPort) *forward.Rule {
	m := t.rtsp.Load()
	if m == nil {
		return nil
	}
	return (*m)[dst]
}

// syncRTSP keeps one tunnel RTSP rule per device RTSP port of devices
// (nil: none). The caller holds t.mu.
func (t *Tunnel) syncRTSP(devices []config.Device) {
	old := map[netip.AddrPort]*forward.Rule{}
	if m := t.rtsp.Load(); m != nil {
		old = *m
	}
	next := map[netip.AddrPort]*forward.Rule{}
	for i := range devices {
		d := &devices[i]
		a, err := netip.ParseAddr(d.Address)
		if err != nil {
			continue // a host name: the VPN's access lists resolve it, the relay follows rules only
		}
		_, port, _ := d.Ports()
		dst := netip.AddrPortFrom(a.Unmap(), port)
		name := "vpn_" + d.Name + "_rtsp"
		if r := old[dst]; r != nil && r.Name() == name {
			next[dst] = r
			continue
		}
		r, err := t.bindRTSP(name, d.Name, dst)
		if err != nil {
			t.log.Warn("vpn: no RTSP relay in the tunnel for a device; peers' players fall back to RTSP over TCP", "component", "vpn", "device", d.Name, "err", err)
			continue
		}
		next[dst] = r
	}
	t.rtsp.Store(&next)
	for dst, r := range old {
		if next[dst] != r {
			r.Close()
		}
	}
}

// bindRTSP builds a device's tunnel RTSP rule: the policy's hooks for an
// RTSP rule to dst, after the admission of whatever rule forwards dst
// (one on the kernel path, say).
func (t *Tunnel) bindRTSP(name, device string, dst netip.AddrPort) (*forward.Rule, error) {
	rule := config.Rule{Name: name, Protocol: config.TCP, InternalIP: dst.Addr().String(), Device: device,
		ExternalPort: config.PortRange{First: dst.Port(), Last: dst.Port()},
		Guard:        config.Guard{Service: config.ServiceRTSP}}
	guardAdmit, handler, err := t.g.Policy().Hooks(&rule)
	if err != nil {
		return nil, err
	}
	admit := func(src netip.AddrPort, proto string) (func(), error) {
		rel, err := t.Admit(src, dst, proto)
		if err != nil || guardAdmit == nil {
			return rel, err
		}
		rel2, err := guardAdmit(src, proto)
		if err != nil {
			if rel != nil {
				rel()
			}
			return nil, err
		}
		return func() {
			if rel2 != nil {
				rel2()
			}
			if rel != nil {
				rel()
			}
		}, nil
	}
	r, err := forward.Bind(forward.Spec{Name: name, Target: dst.Addr().String(), TargetPorts: []uint16{dst.Port()},
		TCP: true, Admit: admit, Handler: handler, Logger: t.log, IDs: &t.g.ids})
	if err != nil {
		return nil, err
	}
	r.Start()
	return r, nil
}
