package gateway

import (
	"fmt"
	"net/netip"

	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/forward"
	"github.com/camgate/camgate/internal/nft"
)

// Kernel is the kernel data plane: package nft's Table. Apply installs
// exactly the given rules in one transaction (on error nothing changed);
// Stats reads their counters; Close removes them.
type Kernel interface {
	Apply(rules []nft.Rule) (map[string]nft.Placement, error)
	Stats() (map[string]nft.Stats, error)
	SetBans(bans map[netip.Addr][]netip.Addr) error
	Close() error
}

// HasKernel reports whether the gateway has a kernel plane.
func (g *Gateway) HasKernel() bool { return g.kernel != nil }

// SetKernelBans hands the kernel plane the sources banned from each device
// (by the brute-force guard), so kernel rules to that device refuse them
// too. Without a kernel plane it does nothing.
func (g *Gateway) SetKernelBans(bans map[netip.Addr][]netip.Addr) error {
	if g.kernel == nil {
		return nil
	}
	return g.kernel.SetBans(bans)
}

// The two data planes a running rule can be on.
const (
	PathUserspace = "userspace"
	PathKernel    = "kernel"
)

// Path says which data plane a running rule is on, and why.
type Path struct {
	// Dataplane is "kernel" or "userspace"; empty for a rule not running.
	Dataplane string `json:"dataplane,omitempty"`
	// Why explains the choice in the owner's words.
	Why string `json:"why,omitempty"`
	// Masquerade, for a kernel rule, is true when the device sees this
	// host's address, and Placement explains it.
	Masquerade bool   `json:"masquerade,omitempty"`
	Placement  string `json:"placement,omitempty"`
	// DeviceSeesViewer is true when the device sees the viewer's own
	// address: its per-source lockout then applies per viewer again.
	DeviceSeesViewer bool `json:"device_sees_viewer,omitempty"`
}

// plan decides a rule's data plane. It fails only for a rule that insists
// on the kernel path where it cannot be had.
func (g *Gateway) plan(r *config.Rule, cfg *config.Config) (Path, error) {
	mode := r.Effective(cfg.Dataplane)
	need := r.UserspaceNeed(cfg.ListenAddress)
	switch {
	case mode == config.DataplaneUserspace:
		if r.Dataplane != "" {
			return Path{Dataplane: PathUserspace, Why: "the rule sets dataplane: userspace"}, nil
		}
		return Path{Dataplane: PathUserspace, Why: "the gateway sets dataplane: userspace"}, nil
	case need != "" && r.Dataplane == config.DataplaneKernel:
		return Path{}, fmt.Errorf("rule %q: dataplane kernel, but %s", r.Name, need)
	case need != "":
		return Path{Dataplane: PathUserspace, Why: need}, nil
	case g.kernel == nil && mode == config.DataplaneKernel:
		return Path{}, fmt.Errorf("rule %q: dataplane kernel, but the kernel path is unavailable: %s", r.Name, g.kernelOff)
	case g.kernel == nil:
		return Path{Dataplane: PathUserspace, Why: "the kernel path is unavailable: " + g.kernelOff}, nil
	}
	return Path{Dataplane: PathKernel, Why: "nothing on the rule needs userspace, so nftables forwards it"}, nil
}

// kernelRule turns a validated rule that needs nothing from userspace into
// its nftables form.
func kernelRule(r *config.Rule, cfg *config.Config) (nft.Rule, error) {
	listen, err := config.ListenAddr(r.Listen(cfg.ListenAddress))
	if err != nil {
		return nft.Rule{}, fmt.Errorf("rule %q: listen_address: %w", r.Name, err)
	}
	dev, err := config.ParsePrefix(r.InternalIP)
	if err != nil {
		return nft.Rule{}, fmt.Errorf("rule %q: internal_ip: %w", r.Name, err)
	}
	rate, burst := r.Guard.EffectivePerIPRate()
	return nft.Rule{
		Name: r.Name, TCP: r.Proto().HasTCP(), UDP: r.Proto().HasUDP(), Listen: listen,
		First: r.ExternalPort.First, Last: r.ExternalPort.Last,
		Target: dev.Addr(), TargetFirst: r.Internal().First,
		Allow: r.AllowPrefixes(), Deny: r.DenyPrefixes(),
		MaxConns:   r.MaxConnections,
		PerIPConns: r.Guard.EffectivePerIPConnections(),
		PerIPRate:  rate, PerIPBurst: burst,
		PerIPUDP:   r.Guard.EffectivePerIPUDPSessions(),
		Masquerade: r.MasqueradeMode(),
	}, nil
}

// applyKernel installs every kernel rule of the new table in one
// transaction and returns their placements.
func (g *Gateway) applyKernel(cfg *config.Config, paths map[string]Path) (map[string]nft.Placement, error) {
	var rules []nft.Rule
	for i := range cfg.Rules {
		r := &cfg.Rules[i]
		if paths[r.Name].Dataplane != PathKernel {
			continue
		}
		kr, err := kernelRule(r, cfg)
		if err != nil {
			return nil, err
		}
		rules = append(rules, kr)
	}
	placed, err := g.kernel.Apply(rules)
	if err != nil {
		return nil, fmt.Errorf("kernel data plane: %w", err)
	}
	return placed, nil
}

// kernelSnapshot converts nft counters into the userspace stats shape, so
// the status page, dashboard and /metrics show both planes alike.
func kernelSnapshot(s nft.Stats, udpOnly bool) forward.Snapshot {
	snap := forward.Snapshot{
		Active: s.Active, Total: s.Total, BytesIn: s.BytesIn, BytesOut: s.BytesOut, Refused: s.Refused,
	}
	if udpOnly {
		snap.Sessions, snap.SessTotal, snap.Active, snap.Total = s.Active, s.Total, 0, 0
	}
	return snap
}

// planAll plans every enabled rule of cfg.
func (g *Gateway) planAll(cfg *config.Config) (map[string]Path, error) {
	paths := map[string]Path{}
	for i := range cfg.Rules {
		r := &cfg.Rules[i]
		if !r.IsEnabled() {
			continue
		}
		p, err := g.plan(r, cfg)
		if err != nil {
			return nil, err
		}
		paths[r.Name] = p
	}
	return paths, nil
}

// repath marks kept rules whose data plane changes (the gateway-wide
// setting moved, or the kernel path came or went) as changed.
func (g *Gateway) repath(ch config.Change, paths map[string]Path) config.Change {
	g.mu.Lock()
	defer g.mu.Unlock()
	var kept []string
	for _, name := range ch.Kept {
		if st := g.rules[name]; st != nil && st.path.Dataplane != paths[name].Dataplane {
			ch.Changed = append(ch.Changed, name)
		} else {
			kept = append(kept, name)
		}
	}
	ch.Kept = kept
	return ch
}

// commitKernel runs the kernel transaction for a change, and fills in the
// placement of each kernel rule's path.
func (g *Gateway) commitKernel(cfg *config.Config, ch config.Change, paths map[string]Path) error {
	if g.kernel == nil || (ch.Empty() && g.kernelApplied) {
		return nil
	}
	placed, err := g.applyKernel(cfg, paths)
	if err != nil {
		return err
	}
	g.kernelApplied = true
	for name, pl := range placed {
		p := paths[name]
		p.Masquerade, p.Placement, p.DeviceSeesViewer = pl.Masquerade, pl.Why, !pl.Masquerade
		paths[name] = p
	}
	return nil
}

// keptStatsLocked returns the stats a replaced rule had, so counters of
// the userspace plane carry over when a rule moves.
func (g *Gateway) keptStatsLocked(name string) *forward.Stats {
	if st := g.rules[name]; st != nil {
		return st.stats
	}
	return &forward.Stats{}
}

// userspaceLocked lists the running userspace rules.
func (g *Gateway) userspaceLocked() []*forward.Rule {
	out := make([]*forward.Rule, 0, len(g.rules))
	for _, st := range g.rules {
		if st.fwd != nil {
			out = append(out, st.fwd)
		}
	}
	return out
}

// kernelStats reads the kernel plane's counters, or nil when no rule is
// on it.
func (g *Gateway) kernelStats() map[string]nft.Stats {
	if g.kernel == nil {
		return nil
	}
	g.mu.Lock()
	any := false
	for _, st := range g.rules {
		any = any || st.fwd == nil
	}
	g.mu.Unlock()
	if !any {
		return nil
	}
	st, err := g.kernel.Stats()
	if err != nil {
		g.log.Debug("read kernel counters", "err", err)
	}
	return st
}

// kernelListening describes a kernel rule's ports as status shows them.
func kernelListening(r *config.Rule, cfg *config.Config) []string {
	var out []string
	for _, proto := range []string{"tcp", "udp"} {
		if (proto == "tcp" && r.Proto().HasTCP()) || (proto == "udp" && r.Proto().HasUDP()) {
			out = append(out, fmt.Sprintf("%s %s:%s (kernel)", proto, r.Listen(cfg.ListenAddress), r.ExternalPort))
		}
	}
	return out
}

// attrs are the path's log attributes.
func (p Path) attrs() []any {
	a := []any{"dataplane", p.Dataplane, "why", p.Why}
	if p.Placement != "" {
		a = append(a, "masquerade", p.Masquerade, "placement", p.Placement)
	}
	return a
}
