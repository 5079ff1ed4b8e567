package sdnotify

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// listen opens a real unixgram socket standing in for systemd's.
func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func read(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	b := make([]byte, 512)
	k, err := c.Read(b)
	if err != nil {
		t.Fatalf("no notification: %v", err)
	}
	return string(b[:k])
}

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestSend(t *testing.T) {
	for _, name := range []string{filepath.Join(t.TempDir(), "notify"), "@camgate-sdnotify-test-" + strings.ReplaceAll(t.Name(), "/", "-") + time.Now().Format("150405.000000000")} {
		t.Run(strings.TrimPrefix(name[:1], "/")+"socket", func(t *testing.T) {
			sock := listen(t, name)
			n := New(env(map[string]string{"NOTIFY_SOCKET": name}), 1)
			if !n.Enabled() {
				t.Fatal("Enabled() = false with NOTIFY_SOCKET set")
			}
			if err := n.Send("READY=1"); err != nil {
				t.Fatal(err)
			}
			if got := read(t, sock); got != "READY=1" {
				t.Errorf("got %q, want READY=1", got)
			}
		})
	}
}

func TestOutsideSystemd(t *testing.T) {
	n := New(env(nil), 1)
	if n.Enabled() || n.WatchdogInterval() != 0 {
		t.Fatalf("got enabled %v, watchdog %v; want nothing without NOTIFY_SOCKET", n.Enabled(), n.WatchdogInterval())
	}
	if err := n.Send("READY=1"); err != nil {
		t.Errorf("Send outside systemd: %v, want nil", err)
	}
	n.Watchdog(context.Background(), func() bool { return true }) // returns at once
}

func TestWatchdogInterval(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want time.Duration
	}{
		{"set", map[string]string{"WATCHDOG_USEC": "30000000"}, 30 * time.Second},
		{"for this pid", map[string]string{"WATCHDOG_USEC": "1000", "WATCHDOG_PID": "42"}, time.Millisecond},
		{"for another pid", map[string]string{"WATCHDOG_USEC": "1000", "WATCHDOG_PID": "7"}, 0},
		{"garbage", map[string]string{"WATCHDOG_USEC": "soon"}, 0},
		{"unset", nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := New(env(tt.env), 42).WatchdogInterval(); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// TestWatchdog: pings arrive while healthy, and stop while not.
func TestWatchdog(t *testing.T) {
	name := filepath.Join(t.TempDir(), "notify")
	sock := listen(t, name)
	n := New(env(map[string]string{"NOTIFY_SOCKET": name, "WATCHDOG_USEC": "40000"}), 1)
	var ok atomic.Bool
	ok.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Watchdog(ctx, ok.Load); close(done) }()
	defer func() { cancel(); <-done }()
	if got := read(t, sock); got != "WATCHDOG=1" {
		t.Fatalf("got %q, want WATCHDOG=1", got)
	}
	ok.Store(false)
	time.Sleep(50 * time.Millisecond)
	// Drain what was sent before the flip, then expect silence.
	sock.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	for b := make([]byte, 64); ; {
		if _, err := sock.Read(b); err != nil {
			break
		}
	}
	sock.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := sock.Read(make([]byte, 64)); err == nil {
		t.Error("a watchdog ping arrived while unhealthy")
	}
}
