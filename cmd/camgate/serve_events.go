package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/guard"
	"github.com/camgate/camgate/internal/notify"
	"github.com/camgate/camgate/internal/site"
)

// startEvents runs the notifier for serve (docs/ADMIN.md,
// "Notifications"): the guard hands it bans and exploit-filter blocks as
// they happen, and a watcher turns a device starting to lock camgate out
// and a config file a reload refused into events. The admin UI's banner
// lists them; the notify section posts them to a webhook. It runs after
// startGuard and before startAdmin.
func (svc *services) startEvents(ctx context.Context, log *slog.Logger, s *site.Site) (func(context.Context), error) {
	n := notify.New(notify.Config{BaseDir: filepath.Dir(s.Path()), Logger: log.With("component", "notify")})
	svc.notify = n
	s.Subscribe(ctx, func(_ context.Context, cfg *config.Config) { n.SetSettings(cfg.Notify) })
	if svc.guard != nil {
		svc.guard.SetEvents(guardEvents{n})
	}
	rctx, cancel := context.WithCancel(context.Background())
	var done [2]chan struct{}
	done[0], done[1] = make(chan struct{}), make(chan struct{})
	go func() { defer close(done[0]); n.Run(rctx) }()
	go func() { defer close(done[1]); watchEvents(rctx, n, s, svc.guard) }()
	return func(context.Context) {
		if svc.guard != nil {
			svc.guard.SetEvents(nil)
		}
		cancel()
		<-done[0]
		<-done[1]
	}, nil
}

// guardEvents turns the guard's events into notifications.
type guardEvents struct{ n *notify.Notifier }

func (g guardEvents) GuardEvent(e guard.Event) {
	switch e.Kind {
	case guard.EventBan:
		g.n.Publish(notify.Event{Kind: config.EventBan, Time: e.Time, Rule: e.Rule, Source: e.Source.String(), Device: e.Device,
			Title: "camgate banned " + e.Source.String(),
			Message: fmt.Sprintf("%s is banned from rule %s until %s: %s. Lift it on the Bans page if it was you.",
				e.Source, e.Rule, e.Until.Format(time.RFC3339), e.Detail)})
	case guard.EventBlock:
		g.n.Publish(notify.Event{Kind: config.EventBlock, Time: e.Time, Rule: e.Rule, Source: e.Client.Addr().String(),
			Title: "camgate blocked an exploit attempt",
			Message: fmt.Sprintf("rule %s: the exploit filter refused a request from %s (%s). The device never saw it.",
				e.Rule, e.Client.Addr(), e.Detail)})
	}
}

// watchEvents polls what has no event of its own: a device whose login
// budget is spent (the guard then holds logins back so the device does
// not lock its accounts), and a config file a reload refused. Each
// becomes one event when it starts.
func watchEvents(ctx context.Context, n *notify.Notifier, s *site.Site, g *guard.Policy) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	refused := s.FileState().Refused
	holding := map[string]bool{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if r := s.FileState().Refused; r != refused {
			refused = r
			if r != "" {
				n.Publish(notify.Event{Kind: config.EventConfigRefused, Title: "camgate refused its config file",
					Message: fmt.Sprintf("%s on disk was refused, so the last good config keeps running: %s", filepath.Base(s.Path()), r)})
			}
		}
		if g == nil {
			continue
		}
		for _, d := range g.DeviceLogins() {
			locked := d.HeldBack > 0 || (d.Budget > 0 && d.Failures >= d.Budget)
			if locked && !holding[d.Device] {
				n.Publish(notify.Event{Kind: config.EventDeviceLockout, Device: d.Device,
					Title: "a device is close to locking camgate out",
					Message: fmt.Sprintf("device %s counted %d failed logins from camgate (budget %d); camgate holds further logins back until one succeeds, so the device does not lock its accounts. Check who is trying passwords.",
						d.Device, d.Failures, d.Budget)})
			}
			holding[d.Device] = locked
		}
	}
}
