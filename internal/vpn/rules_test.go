package vpn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/camgate/camgate/internal/forward"
)

// tunnelLab is a Server's netstack and forwarders without WireGuard,
// wired packet for packet to a second userspace stack standing in for a
// peer: what the peer's stack sends enters the server's tunnel (through
// the filter) and the other way.
type tunnelLab struct {
	s    *Server
	peer *stack.Stack
	addr netip.Addr // the peer's tunnel address
}

func newTunnelLab(t *testing.T, rules Rules, allowed ...netip.Addr) *tunnelLab {
	t.Helper()
	l := &tunnelLab{addr: netip.MustParseAddr("100.88.0.2")}
	s := &Server{log: slog.New(slog.DiscardHandler), dialTO: 2 * time.Second, rules: rules}
	s.conns.m = map[netip.Addr]map[io.Closer]struct{}{}
	acl := &peerACL{name: "alice", allowed: map[netip.Addr]bool{}, refused: new(atomic.Uint64)}
	for _, a := range allowed {
		acl.allowed[a] = true
	}
	s.filter.set(aclTable{l.addr: acl})
	var err error
	if s.tun, err = newNetTUN(&s.filter); err != nil {
		t.Fatal(err)
	}
	s.startForwarders()
	l.s = s

	ep := channel.New(256, mtu, "")
	l.peer = stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol},
	})
	if err := l.peer.CreateNIC(1, ep); err != nil {
		t.Fatal(err)
	}
	l.peer.AddProtocolAddress(1, tcpip.ProtocolAddress{Protocol: ipv4.ProtocolNumber,
		AddressWithPrefix: tcpip.AddrFrom4(l.addr.As4()).WithPrefix()}, stack.AddressProperties{})
	l.peer.AddRoute(tcpip.Route{Destination: header.IPv4EmptySubnet, NIC: 1})

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { // peer → tunnel
		defer func() { done <- struct{}{} }()
		for {
			pkt := ep.ReadContext(ctx)
			if pkt == nil {
				return
			}
			v := pkt.ToView()
			pkt.DecRef()
			s.tun.Write([][]byte{v.AsSlice()}, 0)
			v.Release()
		}
	}()
	go func() { // tunnel → peer
		defer func() { done <- struct{}{} }()
		bufs, sizes := [][]byte{make([]byte, 65536)}, []int{0}
		for {
			if _, err := s.tun.Read(bufs, sizes, 0); err != nil {
				return
			}
			pkb := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(append([]byte(nil), bufs[0][:sizes[0]]...))})
			ep.InjectInbound(ipv4.ProtocolNumber, pkb)
			pkb.DecRef()
		}
	}()
	t.Cleanup(func() {
		s.conns.closeAll()
		s.relays.Wait()
		cancel()
		s.tun.Close()
		<-done
		<-done
		l.peer.Close()
		ep.Close()
	})
	return l
}

// dial connects from the peer's stack to dst through the tunnel.
func (l *tunnelLab) dial(dst netip.AddrPort) (*gonet.TCPConn, error) {
	c, _, err := l.dialEP(dst)
	return c, err
}

// dialEP is dial, also returning the peer's endpoint (for its options).
func (l *tunnelLab) dialEP(dst netip.AddrPort) (*gonet.TCPConn, tcpip.Endpoint, error) {
	var wq waiter.Queue
	ep, terr := l.peer.NewEndpoint(tcp.ProtocolNumber, ipv4.ProtocolNumber, &wq)
	if terr != nil {
		return nil, nil, errors.New(terr.String())
	}
	entry, ch := waiter.NewChannelEntry(waiter.WritableEvents | waiter.EventHUp | waiter.EventErr)
	wq.EventRegister(&entry)
	defer wq.EventUnregister(&entry)
	terr = ep.Connect(tcpip.FullAddress{NIC: 1, Addr: tcpip.AddrFrom4(dst.Addr().As4()), Port: dst.Port()})
	if _, ok := terr.(*tcpip.ErrConnectStarted); ok {
		select {
		case <-ch:
			terr = ep.LastError()
		case <-time.After(5 * time.Second):
			terr = &tcpip.ErrTimeout{}
		}
	}
	if terr != nil {
		ep.Close()
		return nil, nil, fmt.Errorf("connect %s: %s", dst, terr)
	}
	return gonet.NewTCPConn(&wq, ep), ep, nil
}

// ruleFor serves every connection with one forward.Rule, as cmd/camgate
// does with the rule forwarding to dst; it records what it was given.
type ruleFor struct {
	r    *forward.Rule
	dst  netip.AddrPort
	got  atomic.Pointer[net.Conn]
	errs chan error
}

func (rf *ruleFor) ServeTCP(src, dst netip.AddrPort, accept func() (net.Conn, error)) (bool, error) {
	if dst != rf.dst {
		return false, nil
	}
	err := rf.r.ServeAccept(src, dst.Port(), func() (net.Conn, error) {
		c, err := accept()
		if c != nil {
			rf.got.Store(&c)
		}
		return c, err
	})
	rf.errs <- err
	if errors.Is(err, forward.ErrRefused) {
		return true, err
	}
	return true, nil
}

// tunnelDevice listens on 127.0.0.1 and returns the device address a
// peer dials for it: 198.19.0.64 on the same port (the rule's target
// is 127.0.0.1, its internal port that port).
func tunnelDevice(t *testing.T, handle func(c *net.TCPConn)) (netip.AddrPort, uint16) {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); handle(c.(*net.TCPConn)) }()
		}
	}()
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	return netip.AddrPortFrom(netip.MustParseAddr("198.19.0.64"), port), port
}

func serveRule(t *testing.T, port uint16, admit func(netip.AddrPort, string) (func(), error)) *forward.Rule {
	t.Helper()
	r, err := forward.Bind(forward.Spec{Name: "dvr1-web", Target: "127.0.0.1", TargetPorts: []uint16{port}, TCP: true, Admit: admit})
	if err != nil {
		t.Fatal(err)
	}
	r.Start()
	t.Cleanup(r.Close)
	return r
}

// TestPeerConnectionServedByRule: a peer's connection to a port a rule
// forwards reaches the rule as a *TunnelConn from the peer's tunnel
// address, is listed by the rule, moves data both ways, and is cut when
// the peer is revoked.
func TestPeerConnectionServedByRule(t *testing.T) {
	dst, port := tunnelDevice(t, func(c *net.TCPConn) { io.Copy(c, c) })
	rf := &ruleFor{r: serveRule(t, port, nil), dst: dst, errs: make(chan error, 4)}
	l := newTunnelLab(t, rf, dst.Addr())
	c, err := l.dial(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("echo through the rule: %q, %v", buf, err)
	}
	got := rf.got.Load()
	if got == nil {
		t.Fatal("the rule was given no connection")
	}
	if _, ok := (*got).(*TunnelConn); !ok {
		t.Fatalf("the rule got a %T, want a *TunnelConn", *got)
	}
	conns := rf.r.Conns()
	if len(conns) != 1 || conns[0].Client.Addr() != l.addr {
		t.Fatalf("rule connections %+v, want one from %s", conns, l.addr)
	}
	// Revoking the peer cuts the connection, and the rule lets go of it.
	l.s.filter.set(aclTable{})
	l.s.conns.closePeer(l.addr)
	select {
	case err := <-rf.errs:
		if err != nil {
			t.Fatalf("ServeAccept: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("revoking the peer did not end the rule's connection")
	}
	if n := len(rf.r.Conns()); n != 0 {
		t.Fatalf("%d connections listed after the revocation", n)
	}
}

// TestPeerRefusedBeforeHandshake: a peer the rule's admission refuses
// gets a reset to its SYN, as from a closed port, and the refusal is
// counted against the peer.
func TestPeerRefusedBeforeHandshake(t *testing.T) {
	dst, port := tunnelDevice(t, func(c *net.TCPConn) { c.Write([]byte("must not be seen")) })
	rf := &ruleFor{dst: dst, errs: make(chan error, 4), r: serveRule(t, port, func(netip.AddrPort, string) (func(), error) {
		return nil, fmt.Errorf("%w: not on the allow list", forward.ErrRefused)
	})}
	l := newTunnelLab(t, rf, dst.Addr())
	start := time.Now()
	if c, err := l.dial(dst); err == nil {
		c.Close()
		t.Fatal("the refused peer completed a handshake")
	} else if !strings.Contains(err.Error(), "refused") || time.Since(start) > 2*time.Second {
		t.Fatalf("dial: %v after %v; want refused at once", err, time.Since(start))
	}
	if rf.got.Load() != nil {
		t.Fatal("the refused connection was accepted")
	}
	if n := l.s.filter.lookup(l.addr).total(); n != 1 {
		t.Fatalf("the peer's refused count is %d, want 1", n)
	}
}

// TestTunnelResetsPropagate: a device reset reaches the peer as a reset
// (TunnelConn.SetLinger), and a peer's reset reaches the device as one
// (TunnelConn reports it as syscall.ECONNRESET).
func TestTunnelResetsPropagate(t *testing.T) {
	t.Run("device resets", func(t *testing.T) {
		dst, port := tunnelDevice(t, func(c *net.TCPConn) {
			c.Read(make([]byte, 64))
			c.Write([]byte("partial"))
			time.Sleep(50 * time.Millisecond)
			c.SetLinger(0)
		})
		rf := &ruleFor{r: serveRule(t, port, nil), dst: dst, errs: make(chan error, 4)}
		l := newTunnelLab(t, rf, dst.Addr())
		c, err := l.dial(dst)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		got, err := io.ReadAll(c)
		if err == nil || !strings.Contains(err.Error(), "reset") {
			t.Fatalf("peer read %q, %v; want a reset", got, err)
		}
	})
	t.Run("peer resets", func(t *testing.T) {
		devErr := make(chan error, 1)
		dst, port := tunnelDevice(t, func(c *net.TCPConn) {
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err := io.ReadAll(c)
			devErr <- err
		})
		rf := &ruleFor{r: serveRule(t, port, nil), dst: dst, errs: make(chan error, 4)}
		l := newTunnelLab(t, rf, dst.Addr())
		c, ep, err := l.dialEP(dst)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("hello"))
		time.Sleep(100 * time.Millisecond)
		// The peer's stack closes with linger 0 (TunnelConn.SetLinger's
		// option, on the peer's side): a reset.
		(&TunnelConn{TCPConn: c, ep: ep}).SetLinger(0)
		c.Close()
		if err := <-devErr; !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("device read: %v, want a reset", err)
		}
	})
}
