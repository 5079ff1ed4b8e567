package main

import (
	"context"
	"log/slog"

	"github.com/camgate/camgate/internal/admin"
	"github.com/camgate/camgate/internal/site"
)

// startAdmin starts the admin UI and API for serve on admin.listen
// (default HTTPS on 0.0.0.0:8443) and returns a function that stops it.
//
// When admin.listen is left at its default and the port cannot be bound
// (another camgate, or another program, has it), forwarding matters more
// than the UI: the error is logged and serve carries on. An explicitly
// configured address that cannot be bound stops serve, since the owner
// asked for it. admin.enabled: false (or listen: off) turns the UI off.
func startAdmin(ctx context.Context, log *slog.Logger, s *site.Site) (func(context.Context), error) {
	cfg := s.Config()
	alog := log.With("component", "admin")
	if !cfg.Admin.IsEnabled() {
		alog.Info("admin UI and API are off (admin.enabled: false or admin.listen: off)")
		return nil, nil
	}
	srv, err := admin.New(admin.Config{Site: s, Logger: alog, Version: buildInfo().Version, DDNS: ddnsStatus(s)})
	if err != nil {
		return nil, err
	}
	run, err := admin.Listen(ctx, srv, cfg.Admin)
	if err != nil {
		if cfg.Admin.Listen == "" {
			alog.Error("admin UI not started; forwarding carries on without it", "err", err,
				"fix", "free port 8443, or set admin.listen to another address (admin.enabled: false turns the UI off)")
			return nil, nil
		}
		return nil, err
	}
	return func(ctx context.Context) { run.Shutdown(ctx) }, nil
}
