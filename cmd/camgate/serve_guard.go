package main

import (
	"context"
	"log/slog"

	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/credstore"
	"github.com/camgate/camgate/internal/gateway"
	"github.com/camgate/camgate/internal/guard"
	"github.com/camgate/camgate/internal/site"
)

// newPolicy builds the guard policy for serve: access lists, per-source
// limits, the brute-force guard with its ban list in stateDir, the
// Hikvision exploit filter and TLS termination (docs/SECURITY.md). The
// guard feature owns this file.
func newPolicy(log *slog.Logger, stateDir string) (gateway.Policy, error) {
	gc := guard.Config{Logger: log, StateDir: stateDir, RTSP: newRTSPRelay(log)}
	if stateDir != "" {
		// The auth guard judges login answers itself for the devices
		// whose password `device add` stored (issue 14).
		gc.Passwords = credstore.New(stateDir)
	}
	p, err := guard.NewPolicy(gc)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// startGuard hands the guard the gateway-wide settings
// (limits.max_connections_per_ip, public_ip) after every applied config,
// runs its ban-file watcher (which picks up `camgate ban clear` and prunes
// expired bans), and keeps it in svc.guard so the admin API can list and
// lift bans and show counters. It returns a function that stops the
// watcher.
func (svc *services) startGuard(ctx context.Context, log *slog.Logger, s *site.Site) (func(context.Context), error) {
	p, ok := s.Gateway().Policy().(*guard.Policy)
	if !ok {
		return nil, nil
	}
	svc.guard = p
	s.Subscribe(ctx, func(_ context.Context, cfg *config.Config) { p.SetGlobal(cfg) })
	rctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.Run(rctx)
	}()
	return func(context.Context) {
		cancel()
		<-done
	}, nil
}
