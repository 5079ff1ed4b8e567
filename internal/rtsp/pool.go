package rtsp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
)

// ErrExhausted means every RTP/RTCP pair of the external range is in use;
// the SETUP is answered 461 so that the player falls back to TCP.
var ErrExhausted = errors.New("rtsp: no free rtp port pair in the external range")

// pool hands out even/odd RTP/RTCP port pairs from the external range.
type pool struct {
	mu     sync.Mutex // guards following
	first  uint16     // even
	last   uint16     // last port usable as RTCP
	used   map[uint16]bool
	cursor uint16
}

func newPool(first, last uint16) *pool {
	p := &pool{used: map[uint16]bool{}}
	p.setRange(first, last)
	return p
}

// setRange changes the range; pairs in use outside it stay in use until
// freed.
func (p *pool) setRange(first, last uint16) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if first%2 == 1 {
		first++
	}
	p.first, p.last = first, last
	if p.cursor < first || p.cursor >= last {
		p.cursor = first
	}
}

// size is the number of pairs in the range.
func (p *pool) size() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sizeLocked()
}

func (p *pool) sizeLocked() int {
	if p.last <= p.first {
		return 0
	}
	return (int(p.last) - int(p.first) + 1) / 2
}

// bounds returns the range: its first (even) port and its last.
func (p *pool) bounds() (first, last uint16) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.first, p.last
}

// inUse is the number of pairs handed out.
func (p *pool) inUse() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.used)
}

// take binds the next free pair on addr. Ports another program holds are
// skipped.
func (p *pool) take(addr netip.Addr) (port uint16, rtp, rtcp *net.UDPConn, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := p.sizeLocked()
	for i := 0; i < n; i++ {
		port = p.cursor
		p.cursor += 2
		if p.cursor < p.first || int(p.cursor)+1 > int(p.last) {
			p.cursor = p.first
		}
		if p.used[port] {
			continue
		}
		rtp, rtcp, err = bindPair(addr, port)
		if err != nil {
			continue
		}
		p.used[port] = true
		return port, rtp, rtcp, nil
	}
	return 0, nil, nil, ErrExhausted
}

// put gives a pair back.
func (p *pool) put(port uint16) {
	p.mu.Lock()
	delete(p.used, port)
	p.mu.Unlock()
}

// bindPair binds port and port+1 on addr.
func bindPair(addr netip.Addr, port uint16) (rtp, rtcp *net.UDPConn, err error) {
	rtp, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, port)))
	if err != nil {
		return nil, nil, err
	}
	rtcp, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, port+1)))
	if err != nil {
		rtp.Close()
		return nil, nil, err
	}
	return rtp, rtcp, nil
}

// bindEphemeralPair binds an even/odd pair of free ports on addr, for the
// device side (the device sends to whatever client_port camgate declares).
func bindEphemeralPair(addr netip.Addr) (rtp, rtcp *net.UDPConn, err error) {
	for i := 0; i < 32; i++ {
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, 0)))
		if err != nil {
			return nil, nil, err
		}
		port := uint16(c.LocalAddr().(*net.UDPAddr).Port)
		if port%2 == 1 || port == 65534 {
			c.Close()
			continue
		}
		r2, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, port+1)))
		if err != nil {
			c.Close()
			continue
		}
		return c, r2, nil
	}
	return nil, nil, fmt.Errorf("rtsp: no free rtp port pair on %s", addr)
}

// bindListenPair binds an even/odd pair through listen (Addrs.ListenUDP,
// a network stack other than the host's, so the pool does not track it):
// the first pair of first-last that is free there, as on the host, else
// any free pair.
func bindListenPair(listen func(uint16) (net.PacketConn, error), first, last uint16) (port uint16, rtp, rtcp net.PacketConn, err error) {
	for p := int(first); p+1 <= int(last); p += 2 {
		if rtp, err = listen(uint16(p)); err != nil {
			continue
		}
		if rtcp, err = listen(uint16(p + 1)); err != nil {
			rtp.Close()
			continue
		}
		return uint16(p), rtp, rtcp, nil
	}
	for i := 0; i < 32; i++ {
		if rtp, err = listen(0); err != nil {
			return 0, nil, nil, fmt.Errorf("rtsp: bind the client-side rtp port: %w", err)
		}
		port = netPort(rtp.LocalAddr())
		if port == 0 || port%2 == 1 || port == 65534 {
			rtp.Close()
			continue
		}
		if rtcp, err = listen(port + 1); err != nil {
			rtp.Close()
			continue
		}
		return port, rtp, rtcp, nil
	}
	return 0, nil, nil, errors.New("rtsp: no free even/odd rtp port pair on the connection's address")
}

// netAddrPort returns a UDP address as a netip.AddrPort, IPv4-mapped
// addresses unmapped; the zero value if a is not an IP address.
func netAddrPort(a net.Addr) netip.AddrPort {
	var ap netip.AddrPort
	if ua, ok := a.(*net.UDPAddr); ok {
		ap = ua.AddrPort()
	} else if a != nil {
		ap, _ = netip.ParseAddrPort(a.String())
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

func netPort(a net.Addr) uint16 { return netAddrPort(a).Port() }

func localPort(c *net.UDPConn) uint16 { return uint16(c.LocalAddr().(*net.UDPAddr).Port) }
