package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/camgate/camgate/internal/admin"
	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/forward"
	"github.com/camgate/camgate/internal/gateway"
	"github.com/camgate/camgate/internal/site"
	"github.com/camgate/camgate/internal/vpn"
)

// vpnService runs the built-in WireGuard server while the vpn section is
// enabled: it starts and stops it as reloads turn the section on and off
// and hands it every new config (device addresses, listen port). It is
// the admin API's VPN. The VPN feature owns this file.
type vpnService struct {
	log    *slog.Logger
	dir    string
	policy gateway.Policy
	gw     *gateway.Gateway
	guards atomic.Pointer[[]vpnGuard]
	// tunnel holds the tunnel's RTSP rules by device RTSP address (see
	// syncTunnelRTSP).
	tunnel atomic.Pointer[map[netip.AddrPort]*forward.Rule]

	mu     sync.Mutex // guards following
	srv    *vpn.Server
	cancel context.CancelFunc
	done   chan struct{}
}

// start starts the VPN for serve if the config enables it, and follows
// later configs.
func (v *vpnService) start(ctx context.Context, log *slog.Logger, s *site.Site) (func(context.Context), error) {
	v.log, v.dir, v.gw, v.policy = log, s.StateDir(), s.Gateway(), s.Gateway().Policy()
	if err := v.apply(s.Config()); err != nil {
		return nil, err
	}
	s.Subscribe(ctx, func(_ context.Context, cfg *config.Config) {
		if err := v.apply(cfg); err != nil {
			v.log.Error("vpn: cannot apply the new config", "component", "vpn", "err", err)
		}
	})
	return func(context.Context) { v.stop() }, nil
}

// apply starts, reconfigures or stops the server to match cfg.
func (v *vpnService) apply(cfg *config.Config) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.setGuards(cfg)
	v.syncTunnelRTSP(cfg)
	switch {
	case !cfg.VPN.Enabled:
		v.stopLocked()
		return nil
	case v.srv != nil:
		return v.srv.Apply(cfg)
	}
	srv, err := vpn.New(vpn.Config{StateDir: v.dir, Logger: v.log, Admit: v.admit, Rules: v}, cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Run(ctx); close(done) }()
	v.srv, v.cancel, v.done = srv, cancel, done
	return nil
}

func (v *vpnService) stop() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.stopLocked()
	v.syncTunnelRTSP(nil)
}

func (v *vpnService) stopLocked() {
	if v.srv == nil {
		return
	}
	v.cancel()
	<-v.done
	v.srv.Close()
	v.srv = nil
	v.log.Info("vpn stopped", "component", "vpn")
}

func (v *vpnService) server() (*vpn.Server, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.srv == nil {
		return nil, admin.ErrVPNOff
	}
	return v.srv, nil
}

// Status, Add and Remove make vpnService the admin API's VPN.
func (v *vpnService) Status() (vpn.Status, error) {
	srv, err := v.server()
	if err != nil {
		return vpn.Status{}, err
	}
	return srv.Status(), nil
}

// Add adds a peer; see vpn.Server.Add.
func (v *vpnService) Add(req vpn.AddRequest) (vpn.Peer, string, error) {
	srv, err := v.server()
	if err != nil {
		return vpn.Peer{}, "", err
	}
	return srv.Add(req)
}

// Remove removes a peer; see vpn.Server.Remove.
func (v *vpnService) Remove(name string) error {
	srv, err := v.server()
	if err != nil {
		return err
	}
	return srv.Remove(name)
}

// Prober hands the running server to the admin API for check's probe
// identities (vpn.Server.Probe).
func (v *vpnService) Prober() (admin.VPNProber, error) {
	srv, err := v.server()
	if err != nil {
		return nil, err
	}
	return srv, nil
}

// startVPN starts the VPN service for serve (see vpnService.start) and
// keeps it for the admin API.
func (svc *services) startVPN(ctx context.Context, log *slog.Logger, s *site.Site) (func(context.Context), error) {
	svc.vpn = &vpnService{}
	return svc.vpn.start(ctx, log, s)
}

// vpnRouterRule names the VPN's mapping on the upstream router.
const vpnRouterRule = "vpn-wireguard"

// withVPNMapping returns cfg with the VPN's UDP port as one more
// `router: true` rule when vpn.router is set, so that package router maps,
// renews and removes it like any rule's port. The rule exists only in what
// the router client sees, never in the gateway or the file.
func withVPNMapping(cfg *config.Config) *config.Config {
	if !cfg.VPN.Enabled || !cfg.VPN.Router || cfg.Rule(vpnRouterRule) != nil {
		return cfg
	}
	c := cfg.Clone()
	p := cfg.VPN.Port()
	c.Rules = append(c.Rules, config.Rule{Name: vpnRouterRule, Description: "camgate's WireGuard VPN", Protocol: config.UDP,
		ExternalPort: config.PortRange{First: p, Last: p}, InternalIP: "127.0.0.1", Router: true})
	return c
}

// vpnGuard is the admission check of one enabled rule, by the device
// address and ports it forwards to.
type vpnGuard struct {
	addr     netip.Addr
	ports    config.PortRange
	tcp, udp bool
	admit    func(netip.AddrPort, string) (func(), error)
}

// setGuards takes the admission checks of cfg's rules from the gateway's
// policy (the guard), which keeps their per-source counters and bans by
// rule name: a peer and an internet client share them.
func (v *vpnService) setGuards(cfg *config.Config) {
	var gs []vpnGuard
	for i := range cfg.Rules {
		r := &cfg.Rules[i]
		a, err := netip.ParseAddr(r.InternalIP)
		if !r.IsEnabled() || err != nil || v.policy == nil {
			continue
		}
		admit, _, err := v.policy.Hooks(r)
		if err != nil || admit == nil {
			continue
		}
		gs = append(gs, vpnGuard{addr: a.Unmap(), ports: r.Internal(), tcp: r.Proto().HasTCP(), udp: r.Proto().HasUDP(), admit: admit})
	}
	v.guards.Store(&gs)
}

// admit is the VPN's Config.Admit: the first rule that forwards to dst
// with proto judges the peer; a device port no rule forwards is admitted
// (the peer's access list already allowed the device).
func (v *vpnService) admit(src, dst netip.AddrPort, proto string) (func(), error) {
	gs := v.guards.Load()
	if gs == nil {
		return nil, nil
	}
	for _, g := range *gs {
		p := dst.Port()
		if g.addr != dst.Addr() || p < g.ports.First || p > g.ports.Last || !(strings.EqualFold(proto, "tcp") && g.tcp || strings.EqualFold(proto, "udp") && g.udp) {
			continue
		}
		return g.admit(src, proto)
	}
	return nil, nil
}

// ServeTCP is the VPN's Config.Rules: a peer's TCP connection to a device
// port that a userspace rule forwards is served by that rule
// (forward.Rule.Serve), so the rule's guard (admission, the HTTP, RTSP and
// ONVIF reader, the exploit filter, login judging, address rewriting, the
// RTSP relay) runs on it, and it shows in the rule's counters and
// connection list. A device's RTSP port that no such rule forwards gets
// the tunnel's own RTSP rule (tunnelRTSP). Any other port (no rule, a
// kernel-path rule, a rule that terminates TLS) is left to the VPN's plain
// relay after admit.
func (v *vpnService) ServeTCP(src, dst netip.AddrPort, accept func() (net.Conn, error)) (bool, error) {
	var fwd *forward.Rule
	if v.gw != nil {
		fwd, _ = v.gw.Forwarder(dst, "tcp")
	}
	if fwd == nil {
		if fwd = v.tunnelRTSP(dst); fwd == nil {
			return false, nil
		}
	}
	// Admission before the handshake: a refused peer's SYN gets a reset,
	// as from a closed port. An accept error is a peer gone or revoked.
	if err := fwd.ServeAccept(src, dst.Port(), accept); errors.Is(err, forward.ErrRefused) {
		return true, err
	}
	return true, nil
}

// tunnelRTSP returns the tunnel's RTSP rule for a device's RTSP port that
// no userspace rule forwards, or nil if dst is no device's RTSP port.
func (v *vpnService) tunnelRTSP(dst netip.AddrPort) *forward.Rule {
	m := v.tunnel.Load()
	if m == nil {
		return nil
	}
	return (*m)[dst]
}

// syncTunnelRTSP keeps one RTSP rule without ports per device RTSP port
// (vpn_<device>_rtsp), built by the guard like a rule's, so that a peer's
// player gets the same RTSP relay (RTP over UDP from the device's address
// in the tunnel, address rewriting) when camgate forwards nothing from the
// internet: the VPN-only setup. Its admission is the guard's default for
// RTSP plus whatever rule forwards that port on the kernel path (admit).
// A rule whose device, address and port stay is kept, with its viewers.
// Its name cannot clash with a rule's: rule names have no '_'. A nil cfg
// closes them all.
func (v *vpnService) syncTunnelRTSP(cfg *config.Config) {
	old := map[netip.AddrPort]*forward.Rule{}
	if m := v.tunnel.Load(); m != nil {
		old = *m
	}
	next := map[netip.AddrPort]*forward.Rule{}
	if cfg != nil && cfg.VPN.Enabled && v.policy != nil {
		for i := range cfg.Devices {
			d := &cfg.Devices[i]
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
			r, err := v.bindTunnelRTSP(name, d.Name, dst)
			if err != nil {
				v.log.Warn("vpn: no RTSP relay in the tunnel for a device; peers' players fall back to RTSP over TCP", "component", "vpn", "device", d.Name, "err", err)
				continue
			}
			next[dst] = r
		}
	}
	v.tunnel.Store(&next)
	for dst, r := range old {
		if next[dst] != r {
			r.Close()
		}
	}
}

// bindTunnelRTSP builds a device's tunnel RTSP rule.
func (v *vpnService) bindTunnelRTSP(name, device string, dst netip.AddrPort) (*forward.Rule, error) {
	rule := config.Rule{Name: name, Protocol: config.TCP, InternalIP: dst.Addr().String(), Device: device,
		ExternalPort: config.PortRange{First: dst.Port(), Last: dst.Port()},
		Guard:        config.Guard{Service: config.ServiceRTSP}}
	guardAdmit, handler, err := v.policy.Hooks(&rule)
	if err != nil {
		return nil, err
	}
	admit := func(src netip.AddrPort, proto string) (func(), error) {
		rel, err := v.admit(src, dst, proto)
		if err != nil {
			return nil, err
		}
		if guardAdmit == nil {
			return rel, nil
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
		TCP: true, Admit: admit, Handler: handler, Logger: v.log})
	if err != nil {
		return nil, err
	}
	r.Start()
	return r, nil
}
