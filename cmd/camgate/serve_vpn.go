package main

import (
	"context"
	"log/slog"
	"sync"

	"github.com/camgate/camgate/internal/admin"
	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/gateway"
	"github.com/camgate/camgate/internal/site"
	"github.com/camgate/camgate/internal/vpn"
)

// vpnService runs the built-in WireGuard server while the vpn section is
// enabled: it starts and stops it as reloads turn the section on and off
// and hands it every new config (device addresses, listen port). It is
// the admin API's VPN. The VPN feature owns this file.
type vpnService struct {
	log *slog.Logger
	dir string
	// tun is the rules' side of the tunnel: admission, and peers'
	// connections served by the rules' guards.
	tun *gateway.Tunnel

	mu     sync.Mutex // guards following
	srv    *vpn.Server
	cancel context.CancelFunc
	done   chan struct{}
}

// start starts the VPN for serve if the config enables it, and follows
// later configs.
func (v *vpnService) start(ctx context.Context, log *slog.Logger, s *site.Site) (func(context.Context), error) {
	v.log, v.dir, v.tun = log, s.StateDir(), gateway.NewTunnel(s.Gateway(), log)
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
	v.tun.Apply(cfg)
	switch {
	case !cfg.VPN.Enabled:
		v.stopLocked()
		return nil
	case v.srv != nil:
		return v.srv.Apply(cfg)
	}
	srv, err := vpn.New(vpn.Config{StateDir: v.dir, Logger: v.log, Admit: v.tun.Admit, Rules: v.tun}, cfg)
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
	v.tun.Close()
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
