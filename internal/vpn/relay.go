package vpn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// udpIdle ends a UDP flow through the tunnel after this long without a
// datagram either way, as a rule's UDP sessions do (RTP pauses are short;
// a player's RTCP keeps a live one going).
const udpIdle = 120 * time.Second

// tcpInFlight bounds half-open connections from the tunnel: the device is
// dialled before the peer's handshake completes.
const tcpInFlight = 256

// connSet tracks the connections through the tunnel per peer, so that
// revoking a peer cuts them and Close ends them all.
type connSet struct {
	mu sync.Mutex // guards following
	m  map[netip.Addr]map[io.Closer]struct{}
}

// add tracks c for peer; false means the set is closed (c is not kept).
func (cs *connSet) add(peer netip.Addr, c io.Closer) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.m[peer] == nil {
		cs.m[peer] = map[io.Closer]struct{}{}
	}
	cs.m[peer][c] = struct{}{}
}

func (cs *connSet) remove(peer netip.Addr, c io.Closer) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	delete(cs.m[peer], c)
	if len(cs.m[peer]) == 0 {
		delete(cs.m, peer)
	}
}

func (cs *connSet) closePeer(peer netip.Addr) {
	cs.mu.Lock()
	conns := cs.m[peer]
	delete(cs.m, peer)
	cs.mu.Unlock()
	for c := range conns {
		c.Close()
	}
}

func (cs *connSet) closeAll() {
	cs.mu.Lock()
	m := cs.m
	cs.m = map[netip.Addr]map[io.Closer]struct{}{}
	cs.mu.Unlock()
	for _, conns := range m {
		for c := range conns {
			c.Close()
		}
	}
}

func addrOf(a tcpip.Address) netip.Addr {
	ip, _ := netip.AddrFromSlice(a.AsSlice())
	return ip.Unmap()
}

// startForwarders makes the stack hand every new TCP connection and UDP
// flow from a peer to the server.
func (s *Server) startForwarders() {
	tf := tcp.NewForwarder(s.tun.stack, 0, tcpInFlight, s.onTCP)
	s.tun.stack.SetTransportProtocolHandler(tcp.ProtocolNumber, tf.HandlePacket)
	uf := udp.NewForwarder(s.tun.stack, s.onUDP)
	s.tun.stack.SetTransportProtocolHandler(udp.ProtocolNumber, uf.HandlePacket)
}

// onTCP serves one TCP connection from a peer. A device port a rule
// forwards (in userspace) is served by that rule (Config.Rules): the
// handshake completes first, as it does for an internet client, and the
// rule's guard takes over. Any other allowed port is dialled from the
// host first, so a device that refuses makes the peer see a reset, then
// relayed. It runs on a goroutine of the stack's forwarder.
func (s *Server) onTCP(r *tcp.ForwarderRequest) {
	id := r.ID()
	src, dst := addrOf(id.RemoteAddress), addrOf(id.LocalAddress)
	if !s.filter.allows(src, dst) {
		r.Complete(true)
		return
	}
	peer := netip.AddrPortFrom(src, id.RemotePort)
	target := netip.AddrPortFrom(dst, id.LocalPort)
	if s.serveByRule(r, peer, target) {
		return
	}
	release, ok := s.admitted(peer, target, "tcp")
	if !ok {
		r.Complete(true)
		return
	}
	defer release()
	ctx, cancel := context.WithTimeout(context.Background(), s.dialTO)
	var d net.Dialer
	dc, err := d.DialContext(ctx, "tcp", target.String())
	cancel()
	if err != nil {
		s.log.Debug("vpn: cannot reach device", "peer", src, "target", target, "err", err)
		r.Complete(true)
		return
	}
	cc, err := s.accept(r, target)
	if err != nil {
		dc.Close()
		return
	}
	s.serveTCP(src, target, cc, dc.(*net.TCPConn))
}

// accept completes a forwarder request's handshake.
func (s *Server) accept(r *tcp.ForwarderRequest, local netip.AddrPort) (*TunnelConn, error) {
	var wq waiter.Queue
	ep, terr := r.CreateEndpoint(&wq)
	if terr != nil {
		r.Complete(true)
		return nil, fmt.Errorf("vpn: accept from %s: %s", addrOf(r.ID().RemoteAddress), terr)
	}
	r.Complete(false)
	return newTunnelConn(s.tun.stack, &wq, ep, local), nil
}

// serveByRule hands a peer's connection to Config.Rules and reports
// whether it took it. The connection is cut with the others of its peer
// on revocation.
func (s *Server) serveByRule(r *tcp.ForwarderRequest, peer, target netip.AddrPort) bool {
	if s.rules == nil {
		return false
	}
	var cc *TunnelConn
	accepted := false // the request is completed, either way
	handled, err := s.rules.ServeTCP(peer, target, func() (net.Conn, error) {
		if accepted {
			return nil, errors.New("vpn: connection already accepted")
		}
		accepted = true
		c, err := s.accept(r, target)
		if err != nil {
			return nil, err
		}
		s.relays.Add(1)
		s.conns.add(peer.Addr(), c)
		cc = c
		if !s.filter.allows(peer.Addr(), target.Addr()) {
			return nil, fmt.Errorf("vpn: peer %s was revoked", peer.Addr())
		}
		return c, nil
	})
	if cc != nil {
		s.conns.remove(peer.Addr(), cc)
		cc.Close()
		s.relays.Done()
	}
	if err != nil {
		s.countRefused(peer, target, "tcp", err)
	}
	if handled && !accepted {
		r.Complete(true) // refused before the handshake: a reset
	}
	return handled || accepted
}

// serveTCP relays an accepted tunnel connection until either side ends
// or the peer is revoked.
func (s *Server) serveTCP(src netip.Addr, target netip.AddrPort, cc *TunnelConn, dc *net.TCPConn) {
	both := &closers{cc, dc}
	s.relays.Add(1)
	defer s.relays.Done()
	s.conns.add(src, both)
	defer s.conns.remove(src, both)
	defer both.Close()
	if !s.filter.allows(src, target.Addr()) { // revoked while dialling
		return
	}
	relayTCP(cc, dc)
}

// closers closes several things as one.
type closers []io.Closer

func (cs *closers) Close() error {
	for _, c := range *cs {
		c.Close()
	}
	return nil
}

// relayTCP copies both ways, passing on half-closes, until both ends are
// done.
func relayTCP(cc *TunnelConn, dc *net.TCPConn) {
	done := make(chan struct{})
	go func() {
		copyHalf(dc, cc)
		close(done)
	}()
	copyHalf(cc, dc)
	<-done
}

type halfCloser interface {
	io.Writer
	CloseWrite() error
}

// copyHalf moves one direction and half-closes dst at the end; on an
// error it closes src's reader side by closing both (the caller's
// deferred Close).
func copyHalf(dst halfCloser, src io.Reader) {
	_, err := io.Copy(dst, src)
	dst.CloseWrite()
	if err != nil {
		if c, ok := src.(io.Closer); ok {
			c.Close()
		}
		if c, ok := dst.(io.Closer); ok {
			c.Close()
		}
	}
}

// onUDP serves one new UDP flow from a peer (a source and destination
// address pair) with its own host socket to the device. It runs on the
// stack's packet path, so it only starts the relay.
func (s *Server) onUDP(r *udp.ForwarderRequest) {
	id := r.ID()
	src, dst := addrOf(id.RemoteAddress), addrOf(id.LocalAddress)
	if !s.filter.allows(src, dst) {
		return
	}
	target := netip.AddrPortFrom(dst, id.LocalPort)
	release, ok := s.admitted(netip.AddrPortFrom(src, id.RemotePort), target, "udp")
	if !ok {
		return
	}
	var wq waiter.Queue
	ep, terr := r.CreateEndpoint(&wq)
	if terr != nil {
		release()
		return
	}
	cc := gonet.NewUDPConn(&wq, ep)
	dc, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(target))
	if err != nil {
		cc.Close()
		release()
		return
	}
	s.relays.Add(1)
	go s.serveUDP(src, cc, dc, release)
}

// admitted asks Config.Admit about a new connection or flow; a refusal
// is counted against the peer. release is never nil.
func (s *Server) admitted(src, dst netip.AddrPort, proto string) (release func(), ok bool) {
	release = func() {}
	if s.admit == nil {
		return release, true
	}
	rel, err := s.admit(src, dst, proto)
	if err != nil {
		s.countRefused(src, dst, proto, err)
		return release, false
	}
	if rel != nil {
		release = rel
	}
	return release, true
}

// countRefused counts a connection or flow a rule's guard refused
// against its peer.
func (s *Server) countRefused(src, dst netip.AddrPort, proto string, err error) {
	if acl := s.filter.lookup(src.Addr()); acl != nil {
		acl.refused.Add(1)
	}
	s.filter.refused.Add(1)
	s.log.Debug("vpn: refused by the rule's guard", "peer", src, "target", dst, "proto", proto, "err", err)
}

// serveUDP relays one flow until it has been idle for udpIdle.
func (s *Server) serveUDP(src netip.Addr, cc *gonet.UDPConn, dc *net.UDPConn, release func()) {
	defer s.relays.Done()
	defer release()
	both := &closers{cc, dc}
	s.conns.add(src, both)
	defer s.conns.remove(src, both)
	defer both.Close()
	done := make(chan struct{})
	go func() {
		pumpUDP(cc, dc)
		both.Close()
		close(done)
	}()
	pumpUDP(dc, cc)
	both.Close()
	<-done
}

// udpConn is what pumpUDP needs of a host or netstack UDP socket.
type udpConn interface {
	Read([]byte) (int, error)
	Write([]byte) (int, error)
	SetReadDeadline(time.Time) error
}

// pumpUDP copies datagrams from src to dst until src is idle for udpIdle
// or fails.
func pumpUDP(dst, src udpConn) {
	buf := make([]byte, 65535)
	for {
		src.SetReadDeadline(time.Now().Add(udpIdle))
		n, err := src.Read(buf)
		if err != nil {
			return
		}
		dst.Write(buf[:n])
	}
}
