package forward

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// warnLimit keeps one kind of warning from flooding the log: at most
// warnBurst lines per warnWindow, and the next line after a quiet spell
// says how many were left out. A device that is down, or a scan of a
// rule whose device is down, then costs ten lines a minute, not one per
// connection (#13.10); package guard limits its refusal lines the same
// way.
type warnLimit struct {
	mu      sync.Mutex // guards following
	start   time.Time
	n       int
	skipped int
}

const (
	warnWindow = time.Minute
	warnBurst  = 10
)

func (w *warnLimit) warn(l *slog.Logger, msg string, args ...any) {
	now := time.Now()
	w.mu.Lock()
	if now.Sub(w.start) >= warnWindow {
		w.start, w.n = now, 0
	}
	if w.n >= warnBurst {
		w.skipped++
		w.mu.Unlock()
		return
	}
	w.n++
	skipped := w.skipped
	w.skipped = 0
	w.mu.Unlock()
	if skipped > 0 {
		args = append(args, "suppressed_since_last", skipped)
	}
	l.Log(context.Background(), slog.LevelWarn, msg, args...)
}
