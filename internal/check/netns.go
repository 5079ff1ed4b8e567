package check

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/camgate/camgate/internal/netns"
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
		path := netns.Path(name)
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
		err := netns.Do(f.Netns, func() (err error) {
			c, err = dial(ctx, network, addr)
			return err
		})
		return c, err
	}
}
