package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/camgate/camgate/internal/sdnotify"
	"github.com/camgate/camgate/internal/site"
)

// startNotify tells systemd that serve is up (Type=notify in the packaged
// unit) and, when the unit sets WatchdogSec, pings the watchdog while the
// gateway answers its status. It runs last of serve's start functions, so
// READY=1 means the rules, the guard, the admin UI and router automation
// have all started. Outside systemd it does nothing.
func startNotify(ctx context.Context, log *slog.Logger, s *site.Site) (func(context.Context), error) {
	n := sdnotify.New(os.Getenv, os.Getpid())
	if !n.Enabled() {
		return nil, nil
	}
	if err := n.Send("READY=1"); err != nil {
		log.Warn("cannot tell systemd that camgate is ready", "component", "systemd", "err", err)
	}
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Status takes the gateway's lock: a deadlocked gateway stops the
		// pings, and systemd restarts the service.
		n.Watchdog(wctx, func() bool { s.Gateway().Status(); return true })
	}()
	return func(ctx context.Context) {
		n.Send("STOPPING=1")
		cancel()
		select {
		case <-done:
		case <-ctx.Done(): // a hung status call; the process is exiting anyway
		}
	}, nil
}
