package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/gateway"
	"github.com/camgate/camgate/internal/site"
	"github.com/camgate/camgate/internal/store"
)

const serveHelp = `
Run the gateway: listen on every enabled rule's external port and forward
to the device. If the config file does not exist, a commented starter file
is written there first (its rules are disabled until you edit them).

Reload: send SIGHUP (kill -HUP <pid>), or run with --watch to reload when
the file changes. A reload applies only the difference: untouched rules keep
their connections. An invalid file is refused and the last good config keeps
running. SIGINT/SIGTERM stop accepting at once and give live connections
limits.drain_timeout (default 5s) to finish.

Kernel path: with CAP_NET_ADMIN, nftables and IPv4 forwarding, plain rules
(dataplane: auto, nothing that reads the traffic) are forwarded by nftables
in camgate's own table (inet camgate), removed again on exit; the log says
which path each rule took and why. See docs/KERNEL.md.`

func runServe(ctx context.Context, e *env, args []string) error {
	fl := newFlags(e, "serve", "[--config camgate.yaml] [--watch] [--log-format text|json] [--log-level info] [--summary-interval 1m]", serveHelp)
	path := fl.String("config", "camgate.yaml", "config file (created with a starter config if missing)")
	watch := fl.Bool("watch", false, "reload when the config file changes")
	logFormat := fl.String("log-format", "text", "log format: text or json")
	logLevel := fl.String("log-level", "info", "log level: debug, info, warn or error")
	summaryEvery := fl.Duration("summary-interval", time.Minute, "how often to log per-rule counters at debug level")
	if err := parseFlags(fl, args); err != nil {
		return err
	}
	log, err := newLogger(e.stderr, *logFormat, *logLevel)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}

	wrote, err := store.EnsureStarter(*path)
	if err != nil {
		return fmt.Errorf("create starter config %s: %w", *path, err)
	}
	if wrote {
		log.Warn("no config file found, so a starter config was written; edit it to forward your DVR",
			"config", *path,
			"next", "set internal_ip to the DVR's LAN address and enabled: true on the rules you want, then reload with SIGHUP (or run with --watch)")
	}
	// Start watching before the first read: a change that lands between
	// the read and the watcher's first look must not be missed (at worst
	// it causes one extra, harmless, reload).
	var changed <-chan struct{}
	if *watch {
		changed = watchFile(ctx, *path, 500*time.Millisecond)
	}
	cfg, data, err := store.LoadData(*path)
	if err != nil {
		logProblems(log, *path, err)
		return exitError(1)
	}
	stateDir := store.StateDir(*path, cfg)
	lock, err := lockConfig(log, *path, stateDir)
	if err != nil {
		return err
	}
	defer lock.Release()
	policy, err := newPolicy(log.With("component", "guard"), stateDir)
	if err != nil {
		log.Error("cannot start the guard", "err", err)
		return exitError(1)
	}
	g := gateway.New(withKernel(log, gateway.Config{Logger: log.With("component", "gateway"), Policy: policy}))
	if _, err := g.Apply(ctx, cfg); err != nil {
		log.Error("cannot start the gateway", "config", *path, "err", err)
		return exitError(1)
	}
	s := site.New(site.Config{Path: *path, Gateway: g, Logger: log, Data: data})
	var stops []func(context.Context)
	svc := &services{}
	for _, start := range []func(context.Context, *slog.Logger, *site.Site) (func(context.Context), error){svc.startGuard, svc.startEvents, svc.startRTSP, svc.startRouter, svc.startDDNS, svc.startVPN, svc.startAdmin, startKernelBans, startNotify} {
		stop, err := start(ctx, log, s)
		if err != nil {
			log.Error("cannot start", "err", err)
			shutdown(log, g, stops)
			return exitError(1)
		}
		if stop != nil {
			stops = append(stops, stop)
		}
	}
	enabled := 0
	for i := range cfg.Rules {
		if cfg.Rules[i].IsEnabled() {
			enabled++
		}
	}
	log.Info("camgate is running", "version", buildInfo().Version, "commit", buildInfo().Commit, "config", *path, "rules", len(cfg.Rules), "enabled", enabled, "pid", os.Getpid())

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	summary := time.NewTicker(*summaryEvery)
	defer summary.Stop()
	for {
		select {
		case <-ctx.Done():
			shutdown(log, g, stops)
			return nil
		case <-hup:
			reload(ctx, log, s, "SIGHUP")
		case <-changed:
			reload(ctx, log, s, "file changed")
		case <-summary.C:
			g.LogSummary()
		}
	}
}

// lockConfig makes this the one gateway serving path: it takes the lock
// in the state directory (a second `camgate serve` of the same config is
// refused, naming the first one's pid), then removes the temporary files
// a crash between writing and renaming the config left behind.
func lockConfig(log *slog.Logger, path, stateDir string) (*store.StateLock, error) {
	lock, err := store.LockStateDir(stateDir)
	if err != nil {
		log.Error("cannot start", "config", path, "err", err)
		return nil, exitError(1)
	}
	if stale, err := store.RemoveStale(path); err != nil || len(stale) > 0 {
		log.Warn("removed temporary files a crash left next to the config", "config", path, "files", stale, "err", err)
	}
	return lock, nil
}

// shutdown stops the admin UI and router automation, then the gateway
// with its drain period.
func shutdown(log *slog.Logger, g *gateway.Gateway, stops []func(context.Context)) {
	drain := g.Config().Limits.Drain()
	log.Info("shutting down: no new connections; draining live ones", "drain_timeout", drain)
	dctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	for i := len(stops) - 1; i >= 0; i-- {
		stops[i](dctx)
	}
	g.Close(dctx)
	log.Info("stopped")
}

// reload applies the file's config, or keeps the running one and says why.
func reload(ctx context.Context, log *slog.Logger, s *site.Site, why string) {
	path := s.Path()
	start := time.Now()
	ch, err := s.Reload(ctx)
	var pe *fs.PathError
	switch {
	case err == nil:
	case errors.As(err, &pe) || isConfigProblem(err):
		logProblems(log, path, err)
		log.Error("config refused; still serving the last good config", "config", path, "trigger", why)
		return
	default:
		log.Error("reload failed; still serving the last good config", "config", path, "trigger", why, "err", err)
		return
	}
	log.Info("config reloaded", "trigger", why, "added", ch.Added, "removed", ch.Removed,
		"replaced", ch.Changed, "kept", len(ch.Kept), "took", time.Since(start).Round(time.Microsecond))
}

// isConfigProblem reports whether err is made of config.Problem values
// (a bad file) rather than a failure to apply (a busy port).
func isConfigProblem(err error) bool {
	var p config.Problem
	return errors.As(err, &p)
}

func logProblems(log *slog.Logger, path string, err error) {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		log.Error("cannot read config", "config", path, "err", err)
		return
	}
	for _, p := range config.ProblemsOf(err) {
		log.Error("config problem", "config", path, "problem", p.Error())
	}
}

// watchFile signals when path's content changes. Polling is deliberate: it
// sees editors that replace the file by rename, and network filesystems,
// the same way, and costs one stat per interval.
func watchFile(ctx context.Context, path string, every time.Duration) <-chan struct{} {
	out := make(chan struct{}, 1)
	sum := func() [32]byte {
		b, _ := os.ReadFile(path)
		return sha256.Sum256(b)
	}
	last := sum() // taken now, not when the goroutine first runs
	go func() {
		var lastMod time.Time
		var lastSize int64
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			fi, err := os.Stat(path)
			if err != nil || (fi.ModTime().Equal(lastMod) && fi.Size() == lastSize) {
				continue
			}
			lastMod, lastSize = fi.ModTime(), fi.Size()
			if s := sum(); s != last {
				last = s
				select {
				case out <- struct{}{}:
				default:
				}
			}
		}
	}()
	return out
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("--log-format %q: use text or json", format)
	}
}

const validateHelp = `
Check a config file and report every problem at once, each naming the rule,
the field and the line. Exit code 0 when the file is valid, 1 when it has
problems. A valid file can still get warnings (exit code 0): a rule on the
admin UI's port, and rules on ports below 1024, which the user running
validate may not be able to listen on.`

func runValidate(ctx context.Context, e *env, args []string) error {
	fl := newFlags(e, "validate", "[--config camgate.yaml] [--json]", validateHelp)
	path := fl.String("config", "camgate.yaml", "config file to check")
	asJSON := fl.Bool("json", false, "print the result as JSON")
	if err := parseFlags(fl, args); err != nil {
		return err
	}
	cfg, err := store.Load(*path)
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("cannot read %s: %w", *path, pe.Err)
	}
	probs := config.ProblemsOf(err)
	warnings := []config.Problem{}
	if len(probs) == 0 {
		warnings = append(warnings, cfg.Warnings(bindRight())...)
	}
	if *asJSON {
		if probs == nil {
			probs = []config.Problem{}
		}
		if err := writeJSON(e.stdout, map[string]any{"file": *path, "valid": len(probs) == 0, "problems": probs, "warnings": warnings}); err != nil {
			return err
		}
	} else if len(probs) == 0 {
		enabled := 0
		for i := range cfg.Rules {
			if cfg.Rules[i].IsEnabled() {
				enabled++
			}
		}
		fmt.Fprintf(e.stdout, "%s: OK (%d rules, %d enabled)\n", *path, len(cfg.Rules), enabled)
		printWarnings(e.stdout, *path, warnings)
	} else {
		for _, p := range probs {
			loc := *path
			if p.Line > 0 {
				loc = fmt.Sprintf("%s:%d", *path, p.Line)
				p.Line = 0
			}
			fmt.Fprintf(e.stdout, "%s: %s\n", loc, p.Error())
		}
		fmt.Fprintf(e.stdout, "%d problem(s) found\n", len(probs))
	}
	if len(probs) > 0 {
		return exitError(1)
	}
	return nil
}
