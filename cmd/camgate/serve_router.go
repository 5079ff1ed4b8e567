package main

import (
	"context"
	"log/slog"

	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/router"
	"github.com/camgate/camgate/internal/site"
)

// startRouter starts upstream router automation for serve and returns a
// function that removes its mappings. The router feature owns this file.
//
// The client always runs, even with router.mode: off, so that mappings a
// crashed camgate left behind are deleted and a reload can turn the mode
// on. Syncs run on a goroutine of their own, newest config first, so a
// slow or absent router never holds up a reload or an API edit; Run
// renews leases at half-life. The client is kept in svc.router for the
// admin API. On shutdown both stop, then Close deletes
// every mapping (bounded by the drain period).
func (svc *services) startRouter(ctx context.Context, log *slog.Logger, s *site.Site) (func(context.Context), error) {
	rc := router.New(router.Config{Logger: log, StateDir: s.StateDir()})
	runCtx, cancel := context.WithCancel(context.Background())
	latest := make(chan *config.Config, 1)
	done := make(chan struct{}, 2)
	go func() { rc.Run(runCtx); done <- struct{}{} }()
	go func() { syncRouter(runCtx, log, rc, latest); done <- struct{}{} }()
	svc.router = rc
	s.Subscribe(ctx, func(_ context.Context, cfg *config.Config) {
		// Keep only the newest config; Subscribe's callers are serialised.
		select {
		case <-latest:
		default:
		}
		latest <- withVPNMapping(cfg)
	})
	return func(ctx context.Context) {
		cancel()
		<-done
		<-done
		if err := rc.Close(ctx); err != nil {
			log.Warn("router mappings not all removed", "component", "router", "err", err)
		}
	}, nil
}

// syncRouter applies each new config to the router until ctx is done.
func syncRouter(ctx context.Context, log *slog.Logger, rc *router.Client, latest <-chan *config.Config) {
	for {
		select {
		case <-ctx.Done():
			return
		case cfg := <-latest:
			if err := rc.Sync(ctx, cfg); err != nil && ctx.Err() == nil {
				log.Debug("router sync failed; the router client retries in the background", "component", "router", "err", err)
			}
		}
	}
}
