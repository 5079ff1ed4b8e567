// Package sdnotify speaks systemd's service notification protocol
// (sd_notify(3)): "READY=1" once serving, "WATCHDOG=1" pings within
// WatchdogSec, "STOPPING=1" on the way out. Each message is one datagram
// to the AF_UNIX socket named in $NOTIFY_SOCKET.
//
//	n := sdnotify.New(os.Getenv)
//	n.Send("READY=1")
//	go n.Watchdog(ctx, healthy) // pings at half of WATCHDOG_USEC
//
// Outside systemd (no $NOTIFY_SOCKET) every call does nothing, so serve
// can call it unconditionally. The package does not implement file
// descriptor passing or socket activation.
package sdnotify

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"
)

// Notifier sends notifications to systemd. The zero value (and the value
// New returns outside systemd) sends nothing.
type Notifier struct {
	socket   string
	watchdog time.Duration
}

// New reads $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID through
// getenv. The watchdog counts only when WATCHDOG_PID is unset or is pid.
func New(getenv func(string) string, pid int) *Notifier {
	n := &Notifier{socket: getenv("NOTIFY_SOCKET")}
	if usec, err := strconv.ParseInt(getenv("WATCHDOG_USEC"), 10, 64); err == nil && usec > 0 {
		if p := getenv("WATCHDOG_PID"); p == "" || p == strconv.Itoa(pid) {
			n.watchdog = time.Duration(usec) * time.Microsecond
		}
	}
	return n
}

// Enabled reports whether systemd is listening.
func (n *Notifier) Enabled() bool { return n != nil && n.socket != "" }

// WatchdogInterval returns the unit's WatchdogSec, or 0 when it has none.
func (n *Notifier) WatchdogInterval() time.Duration {
	if n == nil {
		return 0
	}
	return n.watchdog
}

// Send sends one notification, such as "READY=1" or "STATUS=serving 3
// rules". Names starting with "@" are abstract sockets, which Go's net
// package maps for us.
func (n *Notifier) Send(state string) error {
	if !n.Enabled() {
		return nil
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: n.socket, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sd_notify %s: %w", n.socket, err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		return fmt.Errorf("sd_notify %s: %w", n.socket, err)
	}
	return nil
}

// Watchdog sends "WATCHDOG=1" at half the watchdog interval, each time
// healthy returns true, until ctx is done. A healthy that hangs (a stuck
// gateway) stops the pings, and systemd restarts the service. Without a
// watchdog it returns at once.
func (n *Notifier) Watchdog(ctx context.Context, healthy func() bool) {
	every := n.WatchdogInterval() / 2
	if !n.Enabled() || every <= 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if healthy() {
			n.Send("WATCHDOG=1")
		}
	}
}
