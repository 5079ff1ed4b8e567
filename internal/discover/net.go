package discover

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// ifaceAddr is one interface address to probe from.
type ifaceAddr struct {
	ifi    net.Interface
	prefix netip.Prefix
}

func (ia ifaceAddr) label() string { return fmt.Sprintf("%s (%s)", ia.ifi.Name, ia.prefix.Addr()) }

// pickInterfaces resolves the interface names (or the default set) into
// IPv4 addresses. Extra addresses in a subnet already covered on the same
// interface are skipped: probing from them reaches the same devices.
func pickInterfaces(names []string) ([]ifaceAddr, error) {
	var ifis []net.Interface
	if len(names) == 0 {
		all, err := net.Interfaces()
		if err != nil {
			return nil, fmt.Errorf("list interfaces: %w", err)
		}
		for _, ifi := range all {
			if ifi.Flags&net.FlagUp != 0 && ifi.Flags&net.FlagLoopback == 0 && ifi.Flags&net.FlagMulticast != 0 {
				ifis = append(ifis, ifi)
			}
		}
	} else {
		for _, n := range names {
			ifi, err := net.InterfaceByName(n)
			if err != nil {
				return nil, fmt.Errorf("interface %q: %w", n, err)
			}
			if ifi.Flags&net.FlagUp == 0 {
				return nil, fmt.Errorf("interface %q is down", n)
			}
			ifis = append(ifis, *ifi)
		}
	}
	var out []ifaceAddr
	for _, ifi := range ifis {
		addrs, err := ifi.Addrs()
		if err != nil {
			continue
		}
		var covered []netip.Prefix
	next:
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(ipn.IP)
			if !ok || !ip.Unmap().Is4() {
				continue
			}
			ones, _ := ipn.Mask.Size()
			p := netip.PrefixFrom(ip.Unmap(), ones)
			for _, c := range covered {
				if c.Masked() == p.Masked() {
					continue next
				}
			}
			covered = append(covered, p)
			out = append(out, ifaceAddr{ifi: ifi, prefix: p})
		}
	}
	if len(out) == 0 {
		if len(names) > 0 {
			return nil, fmt.Errorf("%w: %v have no IPv4 address", ErrNoInterfaces, names)
		}
		return nil, fmt.Errorf("%w: no interface is up with an IPv4 address (name one with --interface)", ErrNoInterfaces)
	}
	return out, nil
}

// reply is one parsed datagram on its way to the collector.
type reply struct {
	at   ifaceAddr
	from netip.Addr
	sadp *SADPReply
	wsd  []WSDMatch
}

// run is one Discover call.
type run struct {
	opts    *Options
	log     *slog.Logger
	replies chan reply
}

// listenConfig sets SO_BROADCAST (and, for the group listener,
// SO_REUSEADDR so a SADP tool or simulator on this host can share the port).
func listenConfig(reuse bool) *net.ListenConfig {
	return &net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1)
			if serr == nil && reuse {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
}

func (r *run) do(ctx context.Context, targets []ifaceAddr) ([]Device, error) {
	ctx, cancel := context.WithTimeout(ctx, r.opts.timeout())
	defer cancel()
	sadpTo, wsdTo := r.opts.sadpAddr(), r.opts.wsdAddr()
	uuid := newUUID()

	var wg sync.WaitGroup
	var conns []net.PacketConn
	// Until the closer below owns them, close the sockets on an early return.
	handedOver := false
	defer func() {
		if !handedOver {
			for _, c := range conns {
				c.Close()
			}
		}
	}()

	var events []Progress // events produced before the collector starts
	var again []resend    // probes to repeat during the window
	sent := 0
	for _, at := range targets {
		var failed []error
		if !r.opts.SkipSADP {
			c, err := r.probe(ctx, at, sadpTo, sadpProbe(uuid), true)
			if err != nil {
				failed = append(failed, fmt.Errorf("sadp: %w", err))
			} else {
				conns = append(conns, c)
				again = append(again, resend{c, at, sadpTo, sadpProbe(uuid), true})
				wg.Add(1)
				go r.read(&wg, c, at, SourceSADP)
			}
		}
		if !r.opts.SkipWSD {
			c, err := r.probe(ctx, at, wsdTo, wsdProbe(uuid), false)
			if err != nil {
				failed = append(failed, fmt.Errorf("ws-discovery: %w", err))
			} else {
				conns = append(conns, c)
				again = append(again, resend{c, at, wsdTo, wsdProbe(uuid), false})
				wg.Add(1)
				go r.read(&wg, c, at, SourceWSD)
			}
		}
		if len(failed) > 0 {
			events = append(events, Progress{Kind: Failed, Interface: at.ifi.Name, Addr: at.prefix.Addr(), Err: errors.Join(failed...)})
		}
		if len(failed) < 2 && !(r.opts.SkipSADP && r.opts.SkipWSD) {
			sent++
			events = append(events, Progress{Kind: Probing, Interface: at.ifi.Name, Addr: at.prefix.Addr()})
		}
	}
	if sent == 0 {
		return nil, fmt.Errorf("no probe could be sent: %w", ErrNoInterfaces)
	}
	if !r.opts.SkipSADP && sadpTo.Addr().IsMulticast() {
		if c, err := r.groupListener(targets, sadpTo); err != nil {
			r.log.Debug("sadp group listener unavailable; relying on unicast replies", "err", err)
		} else {
			conns = append(conns, c)
			wg.Add(1)
			go r.read(&wg, c, ifaceAddr{}, SourceSADP)
		}
	}
	// The window's end closes every socket, which ends the readers, which
	// closes the reply channel, which ends collect.
	handedOver = true
	go closeAtEnd(ctx, conns)
	resent := make(chan struct{})
	go r.repeat(ctx, again, resent)
	go func() { wg.Wait(); close(r.replies) }()
	devs := r.collect(targets, events)
	<-resent
	return devs, nil
}

// closeAtEnd closes the sockets when the discovery window ends.
func closeAtEnd(ctx context.Context, conns []net.PacketConn) {
	<-ctx.Done()
	for _, c := range conns {
		c.Close()
	}
}

// resend is a probe to repeat.
type resend struct {
	c         net.PacketConn
	at        ifaceAddr
	dst       netip.AddrPort
	msg       []byte
	broadcast bool
}

// repeat sends every probe again at one third and two thirds of the
// window: UDP gets lost, and a link that has just come up drops its first
// packets. Replies to the copies are merged like any other. It closes done
// when it returns.
func (r *run) repeat(ctx context.Context, probes []resend, done chan<- struct{}) {
	defer close(done)
	deadline, _ := ctx.Deadline()
	step := time.Until(deadline) / 3
	for range 2 {
		select {
		case <-ctx.Done():
			return
		case <-time.After(step):
		}
		for _, p := range probes {
			r.send(p.c, p.at, p.dst, p.msg, p.broadcast)
		}
	}
}

// send writes msg to dst, and for SADP to the group also to the
// broadcast addresses.
func (r *run) send(c net.PacketConn, at ifaceAddr, dst netip.AddrPort, msg []byte, broadcast bool) error {
	if _, err := c.WriteTo(msg, net.UDPAddrFromAddrPort(dst)); err != nil {
		return fmt.Errorf("send to %s: %w", dst, err)
	}
	r.log.Debug("probe sent", "to", dst, "from", at.label())
	if broadcast && dst.Addr().IsMulticast() {
		for _, b := range broadcastAddrs(at.prefix) {
			if _, err := c.WriteTo(msg, net.UDPAddrFromAddrPort(netip.AddrPortFrom(b, dst.Port()))); err != nil {
				r.log.Debug("broadcast probe failed", "to", b, "err", err)
			}
		}
	}
	return nil
}

// probe opens a socket on at, sends msg to dst (plus the broadcast
// addresses for SADP to the group), and returns the socket for reading.
func (r *run) probe(ctx context.Context, at ifaceAddr, dst netip.AddrPort, msg []byte, broadcast bool) (net.PacketConn, error) {
	c, err := listenConfig(false).ListenPacket(ctx, "udp4", netip.AddrPortFrom(at.prefix.Addr(), 0).String())
	if err != nil {
		return nil, err
	}
	if dst.Addr().IsMulticast() {
		p := ipv4.NewPacketConn(c)
		if err := p.SetMulticastInterface(&at.ifi); err != nil {
			c.Close()
			return nil, fmt.Errorf("set multicast interface %s: %w", at.ifi.Name, err)
		}
		p.SetMulticastLoopback(true) // a simulator or device on this host answers too
		p.SetMulticastTTL(1)         // discovery is link-local by nature
	}
	if err := r.send(c, at, dst, msg, broadcast); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// broadcastAddrs are the limited broadcast and the subnet's directed
// broadcast (if the prefix has one).
func broadcastAddrs(p netip.Prefix) []netip.Addr {
	out := []netip.Addr{netip.AddrFrom4([4]byte{255, 255, 255, 255})}
	if p.Bits() > 0 && p.Bits() < 31 {
		a := p.Masked().Addr().As4()
		host := uint32(1)<<(32-p.Bits()) - 1
		v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3]) | host
		out = append(out, netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}))
	}
	return out
}

// groupListener joins the SADP group on the SADP port, for devices that
// answer to the group instead of to the prober.
func (r *run) groupListener(targets []ifaceAddr, group netip.AddrPort) (net.PacketConn, error) {
	c, err := listenConfig(true).ListenPacket(context.Background(), "udp4", fmt.Sprintf("0.0.0.0:%d", group.Port()))
	if err != nil {
		return nil, err
	}
	p := ipv4.NewPacketConn(c)
	joined := 0
	seen := map[int]bool{}
	for _, at := range targets {
		if seen[at.ifi.Index] {
			continue
		}
		seen[at.ifi.Index] = true
		if err := p.JoinGroup(&at.ifi, &net.UDPAddr{IP: group.Addr().AsSlice()}); err == nil {
			joined++
		}
	}
	if joined == 0 {
		c.Close()
		return nil, errors.New("could not join the group on any interface")
	}
	return c, nil
}

// read parses datagrams from c until it is closed. at is the zero value
// for the group listener; the interface is then found from the sender.
func (r *run) read(wg *sync.WaitGroup, c net.PacketConn, at ifaceAddr, src Source) {
	defer wg.Done()
	buf := make([]byte, maxDatagram)
	for {
		n, addr, err := c.ReadFrom(buf)
		if err != nil {
			return // closed at the end of the window
		}
		ua, ok := addr.(*net.UDPAddr)
		if !ok {
			continue
		}
		from, _ := netip.AddrFromSlice(ua.IP)
		rep := reply{at: at, from: from.Unmap()}
		switch src {
		case SourceSADP:
			s, err := ParseSADP(buf[:n])
			if err != nil {
				r.log.Debug("ignored sadp datagram", "from", addr, "err", err)
				continue
			}
			rep.sadp = &s
		case SourceWSD:
			w, err := ParseWSD(buf[:n])
			if err != nil {
				r.log.Debug("ignored ws-discovery datagram", "from", addr, "err", err)
				continue
			}
			rep.wsd = w
		}
		r.replies <- rep
	}
}

// collect merges replies until the readers are done, reporting progress.
func (r *run) collect(targets []ifaceAddr, events []Progress) []Device {
	emit := func(p Progress) {
		if r.opts.Progress != nil {
			r.opts.Progress(p)
		}
	}
	for _, e := range events {
		emit(e)
	}
	// Replies counts distinct (sender, protocol) pairs: a device answers
	// the multicast and both broadcast probes, and we want "1 reply".
	type key struct {
		at, from netip.Addr
		src      Source
	}
	seen := map[key]bool{}
	counts := map[netip.Addr]int{}
	var m merger
	for rep := range r.replies {
		at := rep.at
		if !at.prefix.IsValid() { // group listener: attribute by sender's subnet
			at = targets[0]
			for _, t := range targets {
				if t.prefix.Contains(rep.from) {
					at = t
					break
				}
			}
		}
		src := SourceSADP
		if rep.sadp != nil {
			m.addSADP(*rep.sadp, at.ifi.Name, rep.from)
		}
		for _, w := range rep.wsd {
			m.addWSD(w, at.ifi.Name, rep.from)
			src = SourceWSD
		}
		k := key{at.prefix.Addr(), rep.from, src}
		if seen[k] {
			continue
		}
		seen[k] = true
		counts[at.prefix.Addr()]++
		emit(Progress{Kind: Reply, Interface: at.ifi.Name, Addr: at.prefix.Addr(), Source: src, From: rep.from, Replies: counts[at.prefix.Addr()]})
	}
	for _, t := range targets {
		emit(Progress{Kind: Done, Interface: t.ifi.Name, Addr: t.prefix.Addr(), Replies: counts[t.prefix.Addr()]})
	}
	return m.result()
}
