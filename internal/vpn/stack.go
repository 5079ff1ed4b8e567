package vpn

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"

	"golang.zx2c4.com/wireguard/tun"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
)

// nicID is the one interface of the netstack.
const nicID tcpip.NICID = 1

// mtu is WireGuard's usual inner MTU (1500 minus 80 bytes of IPv6 + UDP +
// WireGuard headers), what wg-quick picks on an Ethernet path.
const mtu = 1420

// netTUN is the tun.Device WireGuard reads from and writes to. Packets a
// peer sends arrive in Write, pass the per-peer filter and go into a
// userspace TCP/IP stack (gVisor) in promiscuous mode, so that camgate
// answers for every device address a peer may reach; what the stack sends
// back leaves through Read. The wireguard-go netstack package does the
// same for a fixed set of local addresses; camgate needs promiscuous mode,
// forwarders and the filter, so it builds its own from the same parts.
type netTUN struct {
	ep     *channel.Endpoint
	stack  *stack.Stack
	filter *filter
	events chan tun.Event
	ctx    context.Context
	cancel context.CancelFunc
	closed atomic.Bool
}

func newNetTUN(f *filter) (*netTUN, error) {
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, ipv6.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol},
	})
	ctx, cancel := context.WithCancel(context.Background())
	t := &netTUN{
		ep:     channel.New(4096, mtu, ""),
		stack:  s,
		filter: f,
		events: make(chan tun.Event, 1),
		ctx:    ctx,
		cancel: cancel,
	}
	sack := tcpip.TCPSACKEnabled(true)
	if err := s.SetTransportProtocolOption(tcp.ProtocolNumber, &sack); err != nil {
		return nil, fmt.Errorf("netstack: enable SACK: %v", err)
	}
	// Buffers as tailscale's netstack sizes them: gVisor's defaults (1 MB
	// send, auto-tuning off) held a device → phone stream to a third of a
	// plain wireguard-go pair's throughput.
	snd := tcpip.TCPSendBufferSizeRangeOption{Min: 4 << 10, Default: 1 << 20, Max: 8 << 20}
	rcv := tcpip.TCPReceiveBufferSizeRangeOption{Min: 4 << 10, Default: 1 << 20, Max: 8 << 20}
	moderate := tcpip.TCPModerateReceiveBufferOption(true)
	cc := tcpip.CongestionControlOption("cubic")
	for _, opt := range []tcpip.SettableTransportProtocolOption{&snd, &rcv, &moderate, &cc} {
		if err := s.SetTransportProtocolOption(tcp.ProtocolNumber, opt); err != nil {
			return nil, fmt.Errorf("netstack: tcp option %T: %v", opt, err)
		}
	}
	if err := s.CreateNIC(nicID, t.ep); err != nil {
		return nil, fmt.Errorf("netstack: create NIC: %v", err)
	}
	// Promiscuous: accept packets for any destination (the devices'
	// addresses); spoofing: answer from them. The filter has already
	// decided which destinations a peer may use.
	if err := s.SetPromiscuousMode(nicID, true); err != nil {
		return nil, fmt.Errorf("netstack: promiscuous mode: %v", err)
	}
	if err := s.SetSpoofing(nicID, true); err != nil {
		return nil, fmt.Errorf("netstack: spoofing: %v", err)
	}
	s.AddRoute(tcpip.Route{Destination: header.IPv4EmptySubnet, NIC: nicID})
	s.AddRoute(tcpip.Route{Destination: header.IPv6EmptySubnet, NIC: nicID})
	t.events <- tun.EventUp
	return t, nil
}

func (t *netTUN) File() *os.File           { return nil }
func (t *netTUN) MTU() (int, error)        { return mtu, nil }
func (t *netTUN) Name() (string, error)    { return "camgate", nil }
func (t *netTUN) Events() <-chan tun.Event { return t.events }
func (t *netTUN) BatchSize() int           { return 32 }

// Read hands WireGuard the packets the stack sends, as many as are queued
// (up to len(bufs)) once at least one is.
func (t *netTUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	pkt := t.ep.ReadContext(t.ctx)
	if pkt == nil {
		return 0, os.ErrClosed
	}
	n := 0
	for pkt != nil {
		view := pkt.ToView()
		pkt.DecRef()
		sizes[n], _ = view.Read(bufs[n][offset:])
		view.Release()
		n++
		if n == len(bufs) {
			break
		}
		pkt = t.ep.Read()
	}
	return n, nil
}

// Write takes the packets peers sent; the filter drops (and counts) those
// a peer may not send.
func (t *netTUN) Write(bufs [][]byte, offset int) (int, error) {
	for _, b := range bufs {
		p := b[offset:]
		if len(p) == 0 || !t.filter.pass(p) {
			continue
		}
		pkb := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(p)})
		switch p[0] >> 4 {
		case 4:
			t.ep.InjectInbound(header.IPv4ProtocolNumber, pkb)
		case 6:
			t.ep.InjectInbound(header.IPv6ProtocolNumber, pkb)
		}
		pkb.DecRef()
	}
	return len(bufs), nil
}

// Close stops the stack; Read then returns os.ErrClosed.
func (t *netTUN) Close() error {
	if !t.closed.CompareAndSwap(false, true) {
		return nil
	}
	t.cancel()
	t.stack.RemoveNIC(nicID)
	t.stack.Close()
	t.ep.Close()
	close(t.events)
	return nil
}
