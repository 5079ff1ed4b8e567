package vpn

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"syscall"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// TunnelConn is a peer's TCP connection to a device address, ending in
// the tunnel's userspace stack. It is what a rule's guard gets through
// Config.Rules: a net.Conn (with CloseWrite) that can also be reset
// (SetLinger), reports a reset from the peer as syscall.ECONNRESET, and
// binds UDP ports at the device address the peer reached (ListenUDP), so
// that the RTSP relay can send a peer's RTP from there.
type TunnelConn struct {
	*gonet.TCPConn
	ep    tcpip.Endpoint
	stack *stack.Stack
	local netip.AddrPort // the device address and port the peer reached
}

func newTunnelConn(s *stack.Stack, wq *waiter.Queue, ep tcpip.Endpoint, local netip.AddrPort) *TunnelConn {
	return &TunnelConn{TCPConn: gonet.NewTCPConn(wq, ep), ep: ep, stack: s, local: local}
}

// Read reads from the peer; see TunnelConn for errors.
func (c *TunnelConn) Read(b []byte) (int, error) {
	n, err := c.TCPConn.Read(b)
	return n, c.wrap(err)
}

// Write writes to the peer; see TunnelConn for errors.
func (c *TunnelConn) Write(b []byte) (int, error) {
	n, err := c.TCPConn.Write(b)
	return n, c.wrap(err)
}

// wrap marks an error of a connection the stack has torn down (a reset
// from the peer, or a retransmission timeout) as a reset, which is how a
// relay knows to pass a reset on rather than a clean end (gonet reports
// only the stack's error text).
func (c *TunnelConn) wrap(err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	if tcp.EndpointState(c.ep.State()) == tcp.StateError {
		return fmt.Errorf("%w (%w)", err, syscall.ECONNRESET)
	}
	return err
}

// SetLinger is net.TCPConn's: 0 makes Close send a reset.
func (c *TunnelConn) SetLinger(sec int) error {
	c.ep.SocketOptions().SetLinger(tcpip.LingerOption{Enabled: sec >= 0, Timeout: time.Duration(max(sec, 0)) * time.Second})
	return nil
}

// ListenUDP binds a UDP socket in the tunnel's stack at the device
// address the peer reached, on port (0: any free port). Datagrams the
// peer sends there come to the socket, not to the stack's UDP forwarder,
// after the peer's access list (the filter sees every packet first);
// what is written to it goes into the tunnel from the device's address.
// The caller closes it.
func (c *TunnelConn) ListenUDP(port uint16) (net.PacketConn, error) {
	proto := ipv4.ProtocolNumber
	if c.local.Addr().Is6() {
		proto = ipv6.ProtocolNumber
	}
	la := tcpip.FullAddress{NIC: nicID, Addr: tcpip.AddrFromSlice(c.local.Addr().AsSlice()), Port: port}
	pc, err := gonet.DialUDP(c.stack, &la, nil, proto)
	if err != nil {
		return nil, fmt.Errorf("vpn: bind udp %s in the tunnel: %w", netip.AddrPortFrom(c.local.Addr(), port), err)
	}
	return pc, nil
}
