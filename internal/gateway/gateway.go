// Package gateway owns camgate's running state: the live forwarding rules,
// their counters and connections. Everything that changes rules goes
// through Apply: the config file at start, SIGHUP, --watch, the admin API
// and the CLI.
//
// Apply is a transaction. It diffs the running rule table against the new
// one (config.Diff), binds the sockets of added and changed rules first,
// and only when all of them are bound swaps them in and closes what was
// removed or replaced. Untouched rules keep their listeners and their live
// connections. If anything fails, everything new is closed again and the
// old state stays; the error names the rule.
//
// Each rule runs on one of two data planes (kernel.go): userspace
// (package forward) or, when Config.Kernel is set and nothing on the rule
// needs to read the traffic, the kernel (package nft). Apply binds the
// userspace sockets first, then writes every kernel rule in one nftables
// transaction, then swaps; a failed transaction closes what was bound.
//
// The package does not read files or serve HTTP; cmd/camgate and package
// admin do. Policy hooks (access lists, limits, protocol guards) come from
// a Policy supplied in Config.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/forward"
	"github.com/camgate/camgate/internal/portowner"
)

// Config configures a Gateway.
type Config struct {
	// Logger receives rule lifecycle and error logs. Nil discards.
	Logger *slog.Logger
	// Policy builds each rule's admission and protocol hooks. Nil means
	// the built-in allow/deny lists only (see DefaultPolicy).
	Policy Policy
	// Kernel is the kernel data plane (package nft). Nil means every rule
	// runs in userspace; KernelOff then says why, for status and logs.
	Kernel    Kernel
	KernelOff string
	// FDs is the file-descriptor budget every rule draws on, with fair
	// shares. Nil means forward.NewFDBudget (from RLIMIT_NOFILE).
	FDs *forward.Limit
}

func (c Config) fds() *forward.Limit {
	if c.FDs == nil {
		return forward.NewFDBudget()
	}
	return c.FDs
}

// Policy turns a rule's guard settings into forwarding hooks. Package
// guard provides the full implementation.
type Policy interface {
	// Hooks returns the admission check and optional protocol handler for
	// a validated rule. It may keep per-rule state (ban lists, counters)
	// across calls for the same rule name.
	Hooks(r *config.Rule) (admit func(src netip.AddrPort, proto string) (func(), error), handler forward.Handler, err error)
	// Forget drops state kept for rules that no longer exist.
	Forget(names []string)
}

// Gateway is the running rule table.
type Gateway struct {
	log     *slog.Logger
	policy  Policy
	global  *forward.Limit
	fds     *forward.Limit // descriptor budget, see forward.NewFDBudget
	ids     atomic.Uint64
	started time.Time
	kernel  Kernel
	// kernelOff says why kernel is nil.
	kernelOff string

	// applyMu serialises Apply and Close so that two reloads cannot
	// interleave; mu below is held only briefly, so readers never wait for
	// a slow bind.
	applyMu sync.Mutex

	mu       sync.Mutex // guards following
	cfg      *config.Config
	rules    map[string]*ruleState
	closed   bool
	applied  time.Time
	lastErr  string
	applyDur time.Duration
	// kernelApplied is set once the kernel plane has had a transaction.
	kernelApplied bool
	// tunnel is the VPN's side of the rule table (NewTunnel), whose own
	// RTSP rules are listed with the others' connections; nil without.
	tunnel *Tunnel
}

type ruleState struct {
	rule config.Rule
	path Path
	// fwd is the userspace listener set; nil for a kernel rule.
	fwd *forward.Rule
	// stats outlive a rule's replacement, so counters do not reset when
	// a rule is edited.
	stats *forward.Stats
}

// New returns an empty gateway. Call Apply to start forwarding.
func New(c Config) *Gateway {
	g := &Gateway{
		log:     c.Logger,
		policy:  c.Policy,
		global:  forward.NewLimit(config.DefaultMaxConnections),
		fds:     c.fds(),
		started: time.Now(),
		rules:   map[string]*ruleState{},
		cfg:     &config.Config{Version: config.CurrentVersion},
		kernel:  c.Kernel,
	}
	g.kernelOff = c.KernelOff
	if g.kernel == nil && g.kernelOff == "" {
		g.kernelOff = "not set up in this process"
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	if g.policy == nil {
		g.policy = DefaultPolicy{}
	}
	return g
}

// Policy returns the policy the gateway was built with, so serve can hand
// the guard to the services that need it (cmd/camgate/serve_guard.go).
func (g *Gateway) Policy() Policy { return g.policy }

// ErrClosed is returned by Apply after Close.
var ErrClosed = errors.New("gateway is shut down")

// Config returns a copy of the running config.
func (g *Gateway) Config() *config.Config {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.cfg.Clone()
}

// Apply makes cfg the running config. It validates cfg, applies the
// difference, and returns what changed. On error nothing has changed.
func (g *Gateway) Apply(ctx context.Context, cfg *config.Config) (config.Change, error) {
	if err := cfg.Validate(); err != nil {
		return config.Change{}, err
	}
	cfg = cfg.Clone()
	g.applyMu.Lock()
	defer g.applyMu.Unlock()
	start := time.Now()

	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return config.Change{}, ErrClosed
	}
	old := g.cfg
	g.mu.Unlock()

	ch := config.Diff(old.Rules, cfg.Rules)
	// A change of the default listen address moves every rule that uses it.
	if old.Listen() != cfg.Listen() {
		ch = relisten(ch, cfg)
	}
	paths, err := g.planAll(cfg)
	if err != nil {
		g.noteErr(err)
		return config.Change{}, err
	}
	ch = g.repath(ch, paths)
	fresh := map[string]*ruleState{}
	for _, name := range append(append([]string{}, ch.Added...), ch.Changed...) {
		if err := ctx.Err(); err != nil {
			closeAll(fresh)
			return config.Change{}, err
		}
		r := cfg.Rule(name)
		if paths[name].Dataplane == PathKernel {
			continue
		}
		st, err := g.bind(r, cfg)
		if err != nil {
			closeAll(fresh)
			g.noteErr(err)
			return config.Change{}, err
		}
		st.path = paths[name]
		fresh[name] = st
	}
	// Userspace is bound; the kernel's rules go in as one transaction.
	if err := g.commitKernel(cfg, ch, paths); err != nil {
		closeAll(fresh)
		g.noteErr(err)
		return config.Change{}, err
	}

	// Everything new is bound: commit.
	g.global.SetMax(cfg.Limits.MaxConns())
	g.mu.Lock()
	kernelNew := map[string]*ruleState{}
	for _, name := range append(append([]string{}, ch.Added...), ch.Changed...) {
		if p := paths[name]; p.Dataplane == PathKernel {
			kernelNew[name] = &ruleState{rule: cfg.Rule(name).Clone(), path: p, stats: g.keptStatsLocked(name)}
		}
	}
	var retire []*forward.Rule
	for _, name := range append(append([]string{}, ch.Removed...), ch.Changed...) {
		if st := g.rules[name]; st != nil {
			if st.fwd != nil {
				retire = append(retire, st.fwd)
			}
			delete(g.rules, name)
		}
	}
	for name, st := range fresh {
		g.rules[name] = st
		st.fwd.Start()
	}
	for name, st := range kernelNew {
		g.rules[name] = st
	}
	for _, name := range ch.Kept {
		// Descriptions and router flags may change without touching sockets.
		g.rules[name].rule = cfg.Rule(name).Clone()
		g.rules[name].path = paths[name]
	}
	// Every running rule gets a fair share of the caps (forward.Limit).
	g.global.SetRules(len(g.rules))
	g.fds.SetRules(len(g.rules))
	g.cfg = cfg
	g.applied = time.Now()
	g.lastErr = ""
	g.applyDur = time.Since(start)
	g.mu.Unlock()

	// Removed and replaced rules close their listeners and connections.
	for _, f := range retire {
		f.Close()
	}
	g.policy.Forget(ch.Removed)
	for _, name := range ch.Added {
		g.log.Info("rule added", append([]any{"rule", name, "forward", describe(cfg.Rule(name), cfg)}, paths[name].attrs()...)...)
	}
	for _, name := range ch.Changed {
		g.log.Info("rule replaced", append([]any{"rule", name, "forward", describe(cfg.Rule(name), cfg)}, paths[name].attrs()...)...)
	}
	for _, name := range ch.Removed {
		g.log.Info("rule removed", "rule", name)
	}
	return ch, nil
}

// relisten marks kept rules that follow the default listen address as
// changed.
func relisten(ch config.Change, cfg *config.Config) config.Change {
	var kept []string
	for _, name := range ch.Kept {
		if cfg.Rule(name).ListenAddress == "" {
			ch.Changed = append(ch.Changed, name)
		} else {
			kept = append(kept, name)
		}
	}
	ch.Kept = kept
	return ch
}

func (g *Gateway) noteErr(err error) {
	g.mu.Lock()
	g.lastErr = err.Error()
	g.mu.Unlock()
}

func closeAll(m map[string]*ruleState) {
	for _, st := range m {
		if st.fwd != nil {
			st.fwd.Close()
		}
	}
}

// bind opens a rule's sockets without starting it.
func (g *Gateway) bind(r *config.Rule, cfg *config.Config) (*ruleState, error) {
	addr, err := config.ListenAddr(r.Listen(cfg.ListenAddress))
	if err != nil {
		return nil, fmt.Errorf("rule %q: listen_address: %w", r.Name, err)
	}
	ext, in := r.ExternalPort, r.Internal()
	ports := make([]uint16, 0, ext.Len())
	targets := make([]uint16, 0, ext.Len())
	for i := 0; i < ext.Len(); i++ {
		ports = append(ports, ext.First+uint16(i))
		targets = append(targets, in.First+uint16(i))
	}
	if err := checkPorts(r, addr, ports); err != nil {
		return nil, err
	}
	admit, handler, err := g.policy.Hooks(r)
	if err != nil {
		return nil, fmt.Errorf("rule %q: %w", r.Name, err)
	}
	g.mu.Lock()
	stats := &forward.Stats{}
	if old := g.rules[r.Name]; old != nil {
		stats = old.stats
	}
	g.mu.Unlock()
	fwd, err := forward.Bind(forward.Spec{
		Name:           r.Name,
		Listen:         addr,
		Ports:          ports,
		Target:         r.InternalIP,
		TargetPorts:    targets,
		TCP:            r.Proto().HasTCP(),
		UDP:            r.Proto().HasUDP(),
		DialTimeout:    r.Dial(),
		IdleTimeout:    r.Idle(),
		MaxConns:       r.MaxConnections,
		Global:         g.global,
		FDs:            g.fds,
		UDPIdle:        r.UDPIdle(),
		UDPMaxSessions: r.UDPSessions(),
		Admit:          admit,
		Handler:        handler,
		IDs:            &g.ids,
		Stats:          stats,
		Logger:         g.log,
	})
	if err != nil {
		return nil, err
	}
	return &ruleState{rule: r.Clone(), fwd: fwd, stats: stats}, nil
}

// checkPorts refuses ports another process holds, naming it. Rule
// listeners set SO_REUSEPORT so that a rule being replaced can bind its
// new socket before the old one closes; the kernel would also let a second
// camgate (or any program of the same user that sets it) share the port
// and split the viewers between the two. Checking the socket table first
// keeps SO_REUSEPORT to this process's own sockets: those are the rule's
// own replacement (validation keeps two rules off one port).
func checkPorts(r *config.Rule, addr netip.Addr, ports []uint16) error {
	idx := portowner.NewIndex("/proc")
	for _, proto := range []string{"tcp", "udp"} {
		if (proto == "tcp" && !r.Proto().HasTCP()) || (proto == "udp" && !r.Proto().HasUDP()) {
			continue
		}
		if err := idx.CheckPorts(proto, addr, ports); err != nil {
			var iu *portowner.InUseError
			errors.As(err, &iu)
			return fmt.Errorf("rule %q: listen %s %s: %w", r.Name, proto, netip.AddrPortFrom(addr, iu.Port), err)
		}
	}
	return nil
}

func describe(r *config.Rule, cfg *config.Config) string {
	return fmt.Sprintf("%s %s:%s -> %s:%s", r.Proto(), r.Listen(cfg.ListenAddress), r.ExternalPort,
		r.InternalIP, r.Internal())
}

// Close stops accepting on every rule at once, lets live connections
// drain until ctx is done, then closes them. Apply fails afterwards.
func (g *Gateway) Close(ctx context.Context) {
	g.applyMu.Lock()
	defer g.applyMu.Unlock()
	g.mu.Lock()
	g.closed = true
	rules := g.rules
	g.rules = map[string]*ruleState{}
	g.mu.Unlock()
	var wg sync.WaitGroup
	for _, st := range rules {
		if st.fwd == nil {
			continue
		}
		wg.Add(1)
		go func(f *forward.Rule) {
			defer wg.Done()
			f.Shutdown(ctx)
		}(st.fwd)
	}
	wg.Wait()
	if g.kernel != nil {
		if err := g.kernel.Close(); err != nil {
			g.log.Error("remove the nftables table", "err", err)
		}
	}
}

// RuleStatus is one rule's state for status displays and the API.
type RuleStatus struct {
	config.Rule
	Listening []string         `json:"listening"`
	Stats     forward.Snapshot `json:"stats"`
	// Path is the data plane the rule runs on, and why.
	Path Path `json:"path"`
}

// Status is the gateway's state.
type Status struct {
	Started       time.Time    `json:"started"`
	Uptime        string       `json:"uptime"`
	LastApplied   time.Time    `json:"last_applied"`
	ApplyDuration string       `json:"apply_duration"`
	LastError     string       `json:"last_error,omitempty"`
	Connections   int64        `json:"connections"`
	MaxConns      int          `json:"max_connections"`
	FDsInUse      int64        `json:"fds_in_use"` // sockets and pipes counted in the budget
	FDBudget      int64        `json:"fd_budget"`  // from RLIMIT_NOFILE; 0 = none
	Rules         []RuleStatus `json:"rules"`
}

// Status returns every rule of the running config, enabled or not, in
// config order, with its counters.
func (g *Gateway) Status() Status {
	kstats := g.kernelStats()
	g.mu.Lock()
	defer g.mu.Unlock()
	st := Status{
		Started: g.started, Uptime: time.Since(g.started).Round(time.Second).String(),
		LastApplied: g.applied, ApplyDuration: g.applyDur.String(), LastError: g.lastErr,
		Connections: g.global.Active(), MaxConns: g.cfg.Limits.MaxConns(),
		FDsInUse: g.fds.Active(), FDBudget: g.fds.Max(),
	}
	for _, r := range g.cfg.Rules {
		rs := RuleStatus{Rule: r.Clone(), Listening: []string{}}
		if s := g.rules[r.Name]; s != nil {
			rs.Path = s.path
			if s.fwd == nil {
				rs.Stats = kernelSnapshot(kstats[r.Name], !r.Proto().HasTCP())
				rs.Listening = kernelListening(&r, g.cfg)
			} else {
				rs.Stats = s.stats.Snapshot()
				for _, a := range s.fwd.Addrs() {
					rs.Listening = append(rs.Listening, a.Network()+" "+a.String())
				}
			}
		}
		st.Rules = append(st.Rules, rs)
	}
	return st
}

// Connections lists live connections and UDP sessions, oldest first.
func (g *Gateway) Connections() []forward.ConnInfo {
	rules := g.servingRules()
	var out []forward.ConnInfo
	for _, f := range rules {
		out = append(out, f.Conns()...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Kill cuts one connection or UDP session by id.
func (g *Gateway) Kill(id uint64) bool {
	rules := g.servingRules()
	for _, f := range rules {
		if f.Kill(id) {
			return true
		}
	}
	return false
}

// servingRules returns the userspace rules and the tunnel's own RTSP
// rules: every rule that holds connections.
func (g *Gateway) servingRules() []*forward.Rule {
	g.mu.Lock()
	rules, t := g.userspaceLocked(), g.tunnel
	g.mu.Unlock()
	if t != nil {
		rules = append(rules, t.rules()...)
	}
	return rules
}

// Addrs returns the bound addresses of a running rule, for tests and
// status; nil if the rule is not running.
func (g *Gateway) Addrs(rule string) []net.Addr {
	g.mu.Lock()
	defer g.mu.Unlock()
	if st := g.rules[rule]; st != nil && st.fwd != nil {
		return st.fwd.Addrs()
	}
	return nil
}

// LogSummary writes one debug line per running rule with its counters.
func (g *Gateway) LogSummary() {
	for _, r := range g.Status().Rules {
		if len(r.Listening) == 0 {
			continue
		}
		s := r.Stats
		g.log.Debug("rule summary", "rule", r.Name, "active", s.Active, "total", s.Total,
			"udp_sessions", s.Sessions, "bytes_in", s.BytesIn, "bytes_out", s.BytesOut,
			"dial_errors", s.DialErrs, "refused", s.Refused, "dropped", s.Dropped, "evicted", s.Evicted)
	}
}
