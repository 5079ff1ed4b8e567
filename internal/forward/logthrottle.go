package forward

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// LogThrottle keeps one kind of log line from flooding the log: at most
// logBurst lines per logWindow, and the next line after a quiet spell says
// how many were left out ("suppressed_since_last"), so a scan cannot flood
// the log but its size stays visible. A device that is down, or a scan of
// a rule whose device is down, then costs ten lines a minute, not one per
// connection (#13.10); package guard uses it for its refusal lines too.
// The zero value is ready to use.
type LogThrottle struct {
	mu         sync.Mutex // guards following
	start      time.Time
	n          int
	suppressed int
}

const (
	logWindow = time.Minute
	logBurst  = 10
)

// Log writes the line at level unless this kind is over its budget.
func (t *LogThrottle) Log(l *slog.Logger, now time.Time, level slog.Level, msg string, args ...any) {
	t.mu.Lock()
	if now.Sub(t.start) >= logWindow {
		t.start, t.n = now, 0
	}
	if t.n >= logBurst {
		t.suppressed++
		t.mu.Unlock()
		return
	}
	t.n++
	sup := t.suppressed
	t.suppressed = 0
	t.mu.Unlock()
	if sup > 0 {
		args = append(args, "suppressed_since_last", sup)
	}
	l.Log(context.Background(), level, msg, args...)
}
