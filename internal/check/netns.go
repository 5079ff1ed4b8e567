package check

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// From is a parsed Config.From: where the outside probe comes from.
type From struct {
	// Addr is a local source address to bind; zero if not given.
	Addr netip.Addr
	// Netns is the path of a network namespace file; empty if not given.
	Netns string
}

// IsZero reports whether no vantage point was given (a hairpin from this
// host).
func (f From) IsZero() bool { return !f.Addr.IsValid() && f.Netns == "" }

// String names the vantage point for messages.
func (f From) String() string {
	switch {
	case f.Netns != "":
		return "network namespace " + filepath.Base(f.Netns)
	case f.Addr.IsValid():
		return "source address " + f.Addr.String()
	default:
		return "this host"
	}
}

// ParseFrom parses "", an IP address, or "netns:NAME". A bare NAME is
// looked up under /var/run/netns (where `ip netns add` puts it); a NAME
// with a slash is a path (e.g. /proc/1234/ns/net).
func ParseFrom(s string) (From, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return From{}, nil
	}
	if name, ok := strings.CutPrefix(s, "netns:"); ok {
		if name == "" {
			return From{}, fmt.Errorf("--from %q: give a namespace name after \"netns:\"", s)
		}
		path := name
		if !strings.Contains(name, "/") {
			path = filepath.Join("/var/run/netns", name)
		}
		if _, err := os.Stat(path); err != nil {
			return From{}, fmt.Errorf("--from %q: network namespace: %w", s, err)
		}
		return From{Netns: path}, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return From{}, fmt.Errorf("--from %q: not an IP address or netns:NAME", s)
	}
	return From{Addr: a.Unmap()}, nil
}

// dialFunc opens a connection; probes take one so the same probe runs
// from this host, a bound source address or another namespace.
type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// dialer returns a dialFunc for the vantage point.
func (f From) dialer() dialFunc {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		if f.Addr.IsValid() {
			if strings.HasPrefix(network, "udp") {
				d.LocalAddr = &net.UDPAddr{IP: f.Addr.AsSlice()}
			} else {
				d.LocalAddr = &net.TCPAddr{IP: f.Addr.AsSlice()}
			}
		}
		return d.DialContext(ctx, network, addr)
	}
	if f.Netns == "" {
		return dial
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := inNetns(f.Netns, func() (err error) {
			c, err = dial(ctx, network, addr)
			return err
		})
		return c, err
	}
}

// inNetns runs fn on an OS thread that has joined the network namespace
// at path, and returns the thread to its own namespace afterwards. A
// socket created inside fn belongs to that namespace for its whole life,
// so the connection can be used from any goroutine once fn returns. (The
// technique of internal/netlab's Lab.Do, repeated here so that non-test
// code does not import a test helper.)
func inNetns(path string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// If anything below fails before the thread is back in its own
		// namespace, it stays locked and Go discards it when this
		// goroutine exits, so no other goroutine runs in the wrong
		// namespace.
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- fmt.Errorf("netns: %w", err)
			return
		}
		defer orig.Close()
		target, err := os.Open(path)
		if err != nil {
			errc <- fmt.Errorf("netns %s: %w", path, err)
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("netns %s: setns: %w", path, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("netns %s: setns back: %w", path, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
