package main

import (
	"context"
	"log/slog"
	"net/netip"
	"path/filepath"

	"github.com/camgate/camgate/internal/admin"
	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/ddns"
	"github.com/camgate/camgate/internal/router"
	"github.com/camgate/camgate/internal/site"
	"github.com/camgate/camgate/internal/wan"
)

// startDDNS runs the dynamic DNS updater for serve (docs/DDNS.md). It
// always runs, idle while there is no ddns section, so that a reload can
// turn it on; each reload hands it the new settings. It starts before the
// admin UI, which shows its status.
func startDDNS(ctx context.Context, log *slog.Logger, s *site.Site) (func(context.Context), error) {
	u := ddns.New(ddns.Config{
		Source:    ddns.AddrFunc(func(ctx context.Context) (netip.Addr, error) { return publicAddr(s), nil }),
		StateDir:  s.StateDir(),
		BaseDir:   filepath.Dir(s.Path()),
		Logger:    log,
		UserAgent: "camgate/" + buildInfo().Version,
	})
	s.Register("ddns", u)
	s.Subscribe(ctx, func(_ context.Context, cfg *config.Config) { u.SetSettings(cfg.DDNS) })
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { u.Run(runCtx); close(done) }()
	return func(context.Context) { cancel(); <-done }, nil
}

// publicAddr is the site's public address: the router's WAN address when
// router automation knows one that is reachable from the internet, else
// the config's public_ip, else none yet.
func publicAddr(s *site.Site) netip.Addr {
	if rc, ok := s.Lookup("router").(interface{ Status() router.Status }); ok {
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

// ddnsStatus gives the admin UI the updater's status, or nil without one.
func ddnsStatus(s *site.Site) admin.DDNSReporter {
	if u, ok := s.Lookup("ddns").(*ddns.Updater); ok {
		return u
	}
	return nil
}
