package main

import (
	"context"
	"log/slog"
	"net/netip"
	"os"

	"github.com/camgate/camgate/internal/admin"
	"github.com/camgate/camgate/internal/ddns"
	"github.com/camgate/camgate/internal/guard"
	"github.com/camgate/camgate/internal/notify"
	"github.com/camgate/camgate/internal/router"
	"github.com/camgate/camgate/internal/site"
)

// services holds what serve started that other parts of serve use: each
// start method fills its field, and startAdmin, which runs last, hands
// them to the admin API as typed fields of admin.Config (no registry: a
// renamed method breaks the build here).
type services struct {
	guard  *guard.Policy    // nil when the gateway runs without the guard
	router *router.Client   // nil until startRouter ran
	vpn    *vpnService      // nil until startVPN ran
	rtsp   *rtspRelay       // nil when the guard runs without the RTSP relay
	ddns   *ddns.Updater    // nil until startDDNS ran
	notify *notify.Notifier // nil until startEvents ran
}

// adminConfig is the admin API's configuration for serve.
func (svc *services) adminConfig(log *slog.Logger, s *site.Site) admin.Config {
	c := admin.Config{Site: s, Logger: log, Version: buildInfo().Version}
	// Assign only non-nil pointers: a nil *guard.Policy in an interface
	// field would not compare equal to nil.
	if svc.guard != nil {
		c.Guard, c.Bans = svc.guard, svc.guard
	}
	if svc.router != nil {
		c.Router = svc.router
	}
	if svc.vpn != nil {
		c.VPN = svc.vpn
	}
	if svc.rtsp != nil {
		c.RTSP = svc.rtsp.Relay
	}
	if svc.ddns != nil {
		c.DDNS = svc.ddns
	}
	if svc.notify != nil {
		c.Events = svc.notify
	}
	// CAMGATE_SADP_ADDR points the Add device page's discovery at one
	// address (a device on a routed subnet, or a test's simulator)
	// instead of the LAN's multicast group.
	if ap, err := netip.ParseAddrPort(os.Getenv("CAMGATE_SADP_ADDR")); err == nil {
		c.DiscoverAt = ap
	}
	return c
}

// startAdmin starts the admin UI and API for serve on admin.listen
// (default HTTPS on 0.0.0.0:8443) and returns a function that stops it.
//
// When admin.listen is left at its default and the port cannot be bound
// (another camgate, or another program, has it), forwarding matters more
// than the UI: the error is logged and serve carries on. An explicitly
// configured address that cannot be bound stops serve, since the owner
// asked for it. admin.enabled: false (or listen: off) turns the UI off.
func (svc *services) startAdmin(ctx context.Context, log *slog.Logger, s *site.Site) (func(context.Context), error) {
	cfg := s.Config()
	alog := log.With("component", "admin")
	if !cfg.Admin.IsEnabled() {
		alog.Info("admin UI and API are off (admin.enabled: false or admin.listen: off)")
		return nil, nil
	}
	hub := newLiveHub(s, log)
	ac := svc.adminConfig(alog, s)
	ac.Live = hub
	srv, err := admin.New(ac)
	if err != nil {
		hub.Close()
		return nil, err
	}
	run, err := admin.Listen(ctx, srv, cfg.Admin)
	if err != nil {
		hub.Close()
		if cfg.Admin.Listen == "" {
			alog.Error("admin UI not started; forwarding carries on without it", "err", err,
				"fix", "free port 8443, or set admin.listen to another address (admin.enabled: false turns the UI off)")
			return nil, nil
		}
		return nil, err
	}
	// Live streams never end by themselves: end them first.
	return func(ctx context.Context) { hub.Close(); run.Shutdown(ctx) }, nil
}
