// Package netlab builds the end-to-end test topology out of Linux network
// namespaces and veth pairs, and removes it again, even when a test fails:
//
//	ns wan  198.18.0.10/24 (+ .11-.19)   eth0 ─┐
//	ns gw   198.18.0.1/24 on wan0            ◄─┘   198.19.0.1/24 on lan0 ─┐
//	ns lan  198.19.0.64/24 (+ .65-.69)  eth0                              ◄─┘
//
// 198.18.0.0/15 is the RFC 2544 benchmarking range; it exists only inside
// these namespaces and no namespace has a route out of the machine. The gw
// namespace does not forward IP packets unless asked (Options.Forwarding),
// so traffic from wan reaches lan only through a process listening in gw:
// camgate, or miniupnpd's DNAT when gw plays the home router.
//
// A test calls New, starts processes with Lab.Start (or runs Go code inside
// a namespace with Lab.Do), and lets t.Cleanup tear it all down. Without
// root, or without the ip command, New skips the test with a clear message.
//
// With Options.IPv6 the same links also carry IPv6 from the documentation
// prefix 2001:db8::/32 (2001:db8:18::/64 on the wan side, 2001:db8:19::/64
// on the lan side), with the same host numbers.
//
// Non-goal: more than one gateway.
package netlab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/netns"
)

// Addresses of the topology. Extra client addresses on wan are
// WANClient(1..9) = 198.18.0.11-.19; extra LAN hosts 198.19.0.65-.69.
var (
	WANAddr   = netip.MustParseAddr("198.18.0.10")
	GWWANAddr = netip.MustParseAddr("198.18.0.1")
	GWLANAddr = netip.MustParseAddr("198.19.0.1")
	LANAddr   = netip.MustParseAddr("198.19.0.64")
)

// IPv6 addresses of the topology, present with Options.IPv6.
var (
	WANAddr6   = netip.MustParseAddr("2001:db8:18::10")
	GWWANAddr6 = netip.MustParseAddr("2001:db8:18::1")
	GWLANAddr6 = netip.MustParseAddr("2001:db8:19::1")
	LANAddr6   = netip.MustParseAddr("2001:db8:19::64")
)

// WANClient returns the i-th extra client address in wan (1 ≤ i ≤ 9).
func WANClient(i int) netip.Addr { return netip.AddrFrom4([4]byte{198, 18, 0, byte(10 + i)}) }

// LANHost returns the i-th extra host address in lan (1 ≤ i ≤ 5).
func LANHost(i int) netip.Addr { return netip.AddrFrom4([4]byte{198, 19, 0, byte(64 + i)}) }

// Options tune the topology.
type Options struct {
	// Forwarding turns on IPv4 forwarding in gw, for tests where gw is a
	// router (miniupnpd, nftables DNAT). Default off.
	Forwarding bool
	// Multicast adds a 224.0.0.0/4 route on lan's eth0, needed by SADP and
	// WS-Discovery. Default off.
	Multicast bool
	// IPv6 adds the IPv6 addresses (WANAddr6 and the others) and default
	// routes. gw still forwards nothing itself. Default off.
	IPv6 bool
}

// Lab is one instance of the topology. Namespace names carry a random
// suffix so parallel tests do not collide.
type Lab struct {
	// WAN, GW and LAN are the namespace names, for `ip netns exec`.
	WAN, GW, LAN string

	t     testing.TB
	mu    sync.Mutex // guards following
	procs []*Proc
	extra []string // namespaces added after New (NATViewer)
}

// Skip reports why end-to-end tests cannot run here, or "".
func Skip() string {
	if os.Geteuid() != 0 {
		return "needs root to create network namespaces (run the tests as root, as CI does)"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "needs the ip command from iproute2 (apt-get install iproute2)"
	}
	return ""
}

// New builds the topology and registers its removal with t.Cleanup.
func New(t testing.TB, opts Options) *Lab {
	t.Helper()
	if why := Skip(); why != "" {
		t.Skip("netlab: " + why)
	}
	var b [3]byte
	rand.Read(b[:])
	sfx := hex.EncodeToString(b[:])
	l := &Lab{WAN: "cgwan-" + sfx, GW: "cggw-" + sfx, LAN: "cglan-" + sfx, t: t}
	t.Cleanup(l.close)
	for _, ns := range []string{l.WAN, l.GW, l.LAN} {
		l.must("ip", "netns", "add", ns)
		l.must("ip", "-n", ns, "link", "set", "lo", "up")
	}
	l.must("ip", "link", "add", "eth0", "netns", l.WAN, "type", "veth", "peer", "name", "wan0", "netns", l.GW)
	l.must("ip", "link", "add", "eth0", "netns", l.LAN, "type", "veth", "peer", "name", "lan0", "netns", l.GW)
	wan := []string{WANAddr.String() + "/24"}
	for i := 1; i <= 9; i++ {
		wan = append(wan, WANClient(i).String()+"/24")
	}
	for _, a := range wan {
		l.must("ip", "-n", l.WAN, "addr", "add", a, "dev", "eth0")
	}
	l.must("ip", "-n", l.GW, "addr", "add", GWWANAddr.String()+"/24", "dev", "wan0")
	l.must("ip", "-n", l.GW, "addr", "add", GWLANAddr.String()+"/24", "dev", "lan0")
	l.must("ip", "-n", l.LAN, "addr", "add", LANAddr.String()+"/24", "dev", "eth0")
	for i := 1; i <= 5; i++ {
		l.must("ip", "-n", l.LAN, "addr", "add", LANHost(i).String()+"/24", "dev", "eth0")
	}
	for ns, dev := range map[string][]string{l.WAN: {"eth0"}, l.GW: {"wan0", "lan0"}, l.LAN: {"eth0"}} {
		for _, d := range dev {
			l.must("ip", "-n", ns, "link", "set", d, "up")
		}
	}
	l.must("ip", "-n", l.WAN, "route", "add", "default", "via", GWWANAddr.String())
	l.must("ip", "-n", l.LAN, "route", "add", "default", "via", GWLANAddr.String())
	if opts.Forwarding {
		l.must("ip", "netns", "exec", l.GW, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	}
	if opts.Multicast {
		l.must("ip", "-n", l.LAN, "route", "add", "224.0.0.0/4", "dev", "eth0")
	}
	if opts.IPv6 {
		// nodad: the addresses are usable at once, not after duplicate
		// address detection's second or so.
		for _, a := range []struct {
			ns, dev string
			addr    netip.Addr
		}{{l.WAN, "eth0", WANAddr6}, {l.GW, "wan0", GWWANAddr6}, {l.GW, "lan0", GWLANAddr6}, {l.LAN, "eth0", LANAddr6}} {
			l.must("ip", "-n", a.ns, "-6", "addr", "add", a.addr.String()+"/64", "dev", a.dev, "nodad")
		}
		l.must("ip", "-n", l.WAN, "-6", "route", "add", "default", "via", GWWANAddr6.String())
		l.must("ip", "-n", l.LAN, "-6", "route", "add", "default", "via", GWLANAddr6.String())
	}
	return l
}

func (l *Lab) must(args ...string) {
	l.t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		l.t.Fatalf("netlab: %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// Exec runs a command inside namespace ns and returns its combined output.
// It fails the test on a non-zero exit.
func (l *Lab) Exec(ns string, name string, args ...string) string {
	l.t.Helper()
	out, err := l.Command(ns, name, args...).CombinedOutput()
	if err != nil {
		l.t.Fatalf("netlab: in %s: %s %s: %v\n%s", ns, name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Command returns an unstarted command that runs inside namespace ns.
func (l *Lab) Command(ns string, name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// CommandContext is Command with a context that kills the process.
func (l *Lab) CommandContext(ctx context.Context, ns string, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// Do runs fn on an OS thread that has joined namespace ns. Sockets created
// inside fn stay in that namespace for their whole life, so a test can
// listen or dial there and use the socket afterwards from any goroutine.
func (l *Lab) Do(ns string, fn func() error) error {
	return netns.Do(netns.Path(ns), fn)
}

// Listen opens a listener inside namespace ns.
func (l *Lab) Listen(ns, network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := l.Do(ns, func() (err error) { ln, err = net.Listen(network, addr); return })
	return ln, err
}

// ListenPacket opens a packet socket inside namespace ns.
func (l *Lab) ListenPacket(ns, network, addr string) (net.PacketConn, error) {
	var pc net.PacketConn
	err := l.Do(ns, func() (err error) { pc, err = net.ListenPacket(network, addr); return })
	return pc, err
}

// Dial connects from inside namespace ns. laddr may be "" or an address
// to bind first (for example one of the extra wan client addresses).
func (l *Lab) Dial(ns, network, laddr, raddr string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := l.Do(ns, func() error {
		d := net.Dialer{Timeout: timeout}
		if laddr != "" {
			var err error
			switch {
			case strings.HasPrefix(network, "tcp"):
				d.LocalAddr, err = net.ResolveTCPAddr(network, laddr)
			default:
				d.LocalAddr, err = net.ResolveUDPAddr(network, laddr)
			}
			if err != nil {
				return err
			}
		}
		// Create the socket here; the connect may finish on any thread.
		var err error
		c, err = d.Dial(network, raddr)
		return err
	})
	return c, err
}

// WaitTCP waits until something in namespace ns accepts TCP connections on
// addr, or fails the test after timeout.
func (l *Lab) WaitTCP(ns, addr string, timeout time.Duration) {
	l.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c, err := l.Dial(ns, "tcp", "", addr, 500*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("netlab: nothing listening on %s in %s after %v: %v", addr, ns, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (l *Lab) close() {
	l.mu.Lock()
	procs := l.procs
	l.procs = nil
	l.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].Stop()
	}
	l.mu.Lock()
	all := append(l.extra, l.WAN, l.GW, l.LAN)
	l.mu.Unlock()
	for _, ns := range all {
		// Kill anything a test started by other means, then remove.
		if out, err := exec.Command("ip", "netns", "pids", ns).Output(); err == nil {
			for _, pid := range strings.Fields(string(out)) {
				var p int
				fmt.Sscan(pid, &p)
				if p > 0 {
					syscall.Kill(p, syscall.SIGKILL)
				}
			}
		}
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			l.t.Logf("netlab: remove %s: %v %s", ns, err, bytes.TrimSpace(out))
		}
	}
}
