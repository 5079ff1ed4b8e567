package gateway

import (
	"net/netip"
	"strings"

	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/forward"
)

// Forwarder returns the live userspace rule that forwards proto ("tcp" or
// "udp") to the device port dst, with its config (shared: do not modify
// it), so that a connection reaching the device another way (a VPN peer's)
// can be served by that rule's guard with forward.Rule.Serve. The first
// enabled rule in config order whose internal_ip is dst's address and
// whose internal ports hold dst's port wins, skipping rules on the kernel
// path (they have no handler). A rule that terminates TLS is found too: a
// served connection reached the device's own port and speaks its plain
// protocol, so the guard skips TLS for it (forward.Conn.Served) and judges
// the rest. It returns nil when none is left.
func (g *Gateway) Forwarder(dst netip.AddrPort, proto string) (*forward.Rule, *config.Rule) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i := range g.cfg.Rules {
		r := &g.cfg.Rules[i]
		if !r.IsEnabled() || !forwardsTo(r, dst, proto) {
			continue
		}
		st := g.rules[r.Name]
		if st == nil || st.fwd == nil {
			continue
		}
		return st.fwd, &st.rule
	}
	return nil, nil
}

// forwardsTo reports whether r forwards proto to dst.
func forwardsTo(r *config.Rule, dst netip.AddrPort, proto string) bool {
	switch {
	case strings.EqualFold(proto, "tcp") && !r.Proto().HasTCP(),
		strings.EqualFold(proto, "udp") && !r.Proto().HasUDP():
		return false
	}
	a, err := netip.ParseAddr(r.InternalIP)
	if err != nil || a.Unmap() != dst.Addr().Unmap() {
		return false
	}
	in := r.Internal()
	return dst.Port() >= in.First && dst.Port() <= in.Last
}
