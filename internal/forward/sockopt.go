package forward

import (
	"context"
	"net"
	"net/netip"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// keepAlive probes a silent peer after a minute, then every 15 s, and
// gives up after 4 misses: dead camera links are noticed in about two
// minutes, while a healthy idle RTSP session costs nothing.
var keepAlive = net.KeepAliveConfig{Enable: true, Idle: 60 * time.Second, Interval: 15 * time.Second, Count: 4}

// reusePort sets SO_REUSEPORT (and SO_REUSEADDR) so a rule being replaced
// can bind its new socket before the old one is closed.
func reusePort(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); serr != nil {
			return
		}
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

func listenNetwork(kind string, a netip.Addr) string {
	switch {
	case a.Is4():
		return kind + "4"
	case a.IsUnspecified():
		return kind // "::" listens on both families
	default:
		return kind + "6"
	}
}

// listenControl sets SO_REUSEPORT and the keepalive options on a TCP
// listener. Linux copies them to every accepted socket (the keepalive
// timer included), so accepting costs no setsockopt per connection:
// measured, the four keepalive options were 4 of the ~39 syscalls a
// forwarded short connection cost.
func listenControl(network, address string, c syscall.RawConn) error {
	if err := reusePort(network, address, c); err != nil {
		return err
	}
	var serr error
	err := c.Control(func(fd uintptr) {
		for _, o := range [][3]int{
			{unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
			{unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, int(keepAlive.Idle / time.Second)},
			{unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, int(keepAlive.Interval / time.Second)},
			{unix.IPPROTO_TCP, unix.TCP_KEEPCNT, keepAlive.Count},
		} {
			if serr = unix.SetsockoptInt(int(fd), o[0], o[1], o[2]); serr != nil {
				return
			}
		}
	})
	if err != nil {
		return err
	}
	return serr
}

func listenTCP(addr netip.AddrPort) (*net.TCPListener, error) {
	// KeepAlive -1: accepted sockets inherit the listener's options
	// instead of Go setting them again on each (listenControl).
	lc := net.ListenConfig{Control: listenControl, KeepAlive: -1}
	ln, err := lc.Listen(context.Background(), listenNetwork("tcp", addr.Addr()), addr.String())
	if err != nil {
		return nil, explainListen("tcp", addr, err)
	}
	return ln.(*net.TCPListener), nil
}

// udpSocketBuffer is asked for on UDP sockets: RTP arrives in bursts (a
// key frame is dozens of datagrams at once) and the default 208 KiB
// receive buffer drops the tail of a burst under load.
const udpSocketBuffer = 4 << 20

func listenUDP(addr netip.AddrPort) (*net.UDPConn, error) {
	lc := net.ListenConfig{Control: reusePort}
	pc, err := lc.ListenPacket(context.Background(), listenNetwork("udp", addr.Addr()), addr.String())
	if err != nil {
		return nil, explainListen("udp", addr, err)
	}
	uc := pc.(*net.UDPConn)
	setBuffers(uc)
	return uc, nil
}

// setBuffers raises a UDP socket's buffers, with the FORCE variants first
// (they pass the sysctl maximum when running as root).
func setBuffers(c *net.UDPConn) {
	rc, err := c.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		for _, o := range [][2]int{{unix.SO_RCVBUFFORCE, unix.SO_RCVBUF}, {unix.SO_SNDBUFFORCE, unix.SO_SNDBUF}} {
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o[0], udpSocketBuffer) != nil {
				unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o[1], udpSocketBuffer)
			}
		}
	})
}

// congestionControl returns a Dialer.Control that sets the TCP congestion
// control before connect. Before, not after: the system default's init
// runs when the connection is established, and BBR's marks the socket as
// paced, which a later switch does not undo (measured: a switch after the
// first 16 KiB gave a few percent less than setting it at dial). A name
// the kernel refuses (unknown, or not allowed without CAP_NET_ADMIN)
// leaves the system default: not worth failing a connection for.
func congestionControl(name string) func(network, address string, c syscall.RawConn) error {
	return func(_, _ string, c syscall.RawConn) error {
		c.Control(func(fd uintptr) {
			unix.SetsockoptString(int(fd), unix.IPPROTO_TCP, unix.TCP_CONGESTION, name)
		})
		return nil
	}
}
