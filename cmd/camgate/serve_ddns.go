package main

import (
	"context"
	"log/slog"
	"net/netip"
	"path/filepath"

	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/ddns"
	"github.com/camgate/camgate/internal/router"
	"github.com/camgate/camgate/internal/site"
	"github.com/camgate/camgate/internal/wan"
)

// startDDNS runs the dynamic DNS updater for serve (docs/DDNS.md). It
// always runs, idle while there is no ddns section, so that a reload can
// turn it on; each reload hands it the new settings. It starts before the
// admin UI, which shows its status, and after router automation, whose
// WAN address it uses.
func (svc *services) startDDNS(ctx context.Context, log *slog.Logger, s *site.Site) (func(context.Context), error) {
	u := ddns.New(ddns.Config{
		Source:    ddns.AddrFunc(func(ctx context.Context) (netip.Addr, error) { return publicAddr(svc.router, s), nil }),
		StateDir:  s.StateDir(),
		BaseDir:   filepath.Dir(s.Path()),
		Logger:    log,
		UserAgent: "camgate/" + buildInfo().Version,
	})
	svc.ddns = u
	s.Subscribe(ctx, func(_ context.Context, cfg *config.Config) { u.SetSettings(cfg.DDNS) })
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { u.Run(runCtx); close(done) }()
	return func(context.Context) { cancel(); <-done }, nil
}

// publicAddr is the site's public address: the router's WAN address when
// router automation knows one that is reachable from the internet, else
// the config's public_ip, else none yet.
func publicAddr(rc *router.Client, s *site.Site) netip.Addr {
	if rc != nil {
		ip := rc.Status().ExternalIP
		if class, _ := wan.Classify(ip); ip.IsValid() && class == wan.Public {
			return ip
		}
	}
	if ip, err := netip.ParseAddr(s.Config().PublicIP); err == nil {
		return ip
	}
	return netip.Addr{}
}
