package forward

import (
	"errors"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// maxDatagram is the largest UDP payload (65,535 minus the 8-byte UDP and
// 20-byte IPv4 headers is 65,507; IPv6 allows a little more).
const maxDatagram = 65536

// udpRelay serves one external UDP port. One goroutine reads every
// datagram from clients; each client address gets a session with its own
// connected socket to the device, so the device's replies can be matched
// to the client by socket alone, and a goroutine that sends them back from
// the external port.
type udpRelay struct {
	rule       *Rule
	pc         *net.UDPConn
	targetPort uint16
	target     string
	// now is a coarse clock, advanced by the janitor, so that the hot path
	// stamps sessions without calling time.Now per datagram.
	now atomic.Int64

	stop chan struct{}
	once sync.Once

	mu       sync.Mutex // guards following
	sessions map[netip.AddrPort]*udpSession
	closed   bool
}

type udpSession struct {
	id      uint64
	client  netip.AddrPort
	dev     *net.UDPConn
	started time.Time
	last    atomic.Int64 // relay.now at the last datagram either way
	in, out atomic.Uint64
	release func()
}

func newUDPRelay(r *Rule, pc *net.UDPConn, targetPort uint16) *udpRelay {
	u := &udpRelay{
		rule: r, pc: pc, targetPort: targetPort,
		target:   net.JoinHostPort(r.spec.Target, strconv.Itoa(int(targetPort))),
		stop:     make(chan struct{}),
		sessions: map[netip.AddrPort]*udpSession{},
	}
	u.now.Store(time.Now().UnixNano())
	return u
}

func (u *udpRelay) close() {
	u.once.Do(func() {
		close(u.stop)
		u.pc.Close()
		u.mu.Lock()
		u.closed = true
		ss := make([]*udpSession, 0, len(u.sessions))
		for _, s := range u.sessions {
			ss = append(ss, s)
		}
		u.mu.Unlock()
		for _, s := range ss {
			s.dev.Close()
		}
	})
}

// serve is the client-side read loop.
func (u *udpRelay) serve() {
	r := u.rule
	defer r.wg.Done()
	r.wg.Add(1)
	go u.janitor()
	buf := make([]byte, maxDatagram)
	for {
		n, src, err := u.pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			r.log.Debug("udp read", "err", err)
			continue
		}
		src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
		s := u.session(src)
		if s == nil {
			r.stats.Dropped.Add(1)
			continue
		}
		s.last.Store(u.now.Load())
		if _, err := s.dev.Write(buf[:n]); err != nil {
			// ECONNREFUSED here is the device's ICMP "port unreachable"
			// for an earlier datagram: count it, keep the session.
			r.stats.Dropped.Add(1)
			continue
		}
		s.in.Add(uint64(n))
		r.stats.BytesIn.Add(uint64(n))
	}
}

// session finds or creates the session for src, or returns nil when the
// datagram must be dropped (refused by policy, device unreachable).
func (u *udpRelay) session(src netip.AddrPort) *udpSession {
	u.mu.Lock()
	s := u.sessions[src]
	u.mu.Unlock()
	if s != nil {
		return s
	}
	r := u.rule
	var release func()
	if r.spec.Admit != nil {
		rel, err := r.spec.Admit(src, "udp")
		if err != nil {
			r.stats.Refused.Add(1)
			r.log.Debug("udp session refused", "client", src, "reason", err)
			return nil
		}
		release = rel
	}
	d := net.Dialer{Timeout: r.spec.dialTimeout()}
	c, err := d.Dial("udp", u.target)
	if err != nil {
		if release != nil {
			release()
		}
		r.stats.DialErrs.Add(1)
		r.log.Warn("cannot reach device", "target", u.target, "client", src, "err", err)
		return nil
	}
	dev := c.(*net.UDPConn)
	setBuffers(dev)
	s = &udpSession{id: r.ids.Add(1), client: src, dev: dev, started: time.Now(), release: release}
	s.last.Store(u.now.Load())
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		dev.Close()
		if release != nil {
			release()
		}
		return nil
	}
	if len(u.sessions) >= r.spec.udpMax() {
		u.evictOldestLocked()
	}
	u.sessions[src] = s
	u.mu.Unlock()
	r.stats.Sessions.Add(1)
	r.stats.SessTotal.Add(1)
	r.wg.Add(1)
	go u.replies(s)
	return s
}

// evictOldestLocked ends the least recently active session to make room.
// A linear scan is fine: it runs only when the table is full.
func (u *udpRelay) evictOldestLocked() {
	var oldest *udpSession
	for _, s := range u.sessions {
		if oldest == nil || s.last.Load() < oldest.last.Load() {
			oldest = s
		}
	}
	if oldest != nil {
		delete(u.sessions, oldest.client)
		oldest.dev.Close()
		u.rule.stats.Evicted.Add(1)
	}
}

// replies carries the device's datagrams back to one client, from the
// external port, until the session's socket is closed (idle expiry,
// eviction, rule removal).
func (u *udpRelay) replies(s *udpSession) {
	r := u.rule
	defer r.wg.Done()
	defer u.endSession(s)
	rc, err := s.dev.SyscallConn()
	if err != nil {
		return
	}
	for {
		// Wait without a buffer, then borrow one only to move a datagram:
		// thousands of quiet sessions must not pin 64 KiB each.
		if err := waitReadable(rc); err != nil {
			if errors.Is(err, syscall.ECONNREFUSED) {
				r.stats.Dropped.Add(1) // ICMP unreachable from the device
				continue
			}
			return
		}
		bp := bigPool.get()
		n, err := s.dev.Read(*bp)
		if n > 0 {
			if _, werr := u.pc.WriteToUDPAddrPort((*bp)[:n], s.client); werr != nil {
				r.stats.Dropped.Add(1)
			} else {
				s.out.Add(uint64(n))
				r.stats.BytesOut.Add(uint64(n))
			}
			s.last.Store(u.now.Load())
		}
		bigPool.put(bp)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if errors.Is(err, syscall.ECONNREFUSED) {
				r.stats.Dropped.Add(1)
				continue
			}
			return
		}
	}
}

func (u *udpRelay) endSession(s *udpSession) {
	s.dev.Close()
	u.mu.Lock()
	if u.sessions[s.client] == s {
		delete(u.sessions, s.client)
	}
	u.mu.Unlock()
	if s.release != nil {
		s.release()
	}
	u.rule.stats.Sessions.Add(-1)
}

// janitor advances the coarse clock and ends idle sessions.
func (u *udpRelay) janitor() {
	r := u.rule
	defer r.wg.Done()
	idle := r.spec.udpIdle()
	every := min(max(idle/8, 10*time.Millisecond), time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-u.stop:
			return
		case now := <-t.C:
			u.now.Store(now.UnixNano())
			cutoff := now.Add(-idle).UnixNano()
			u.mu.Lock()
			for k, s := range u.sessions {
				if s.last.Load() < cutoff {
					delete(u.sessions, k)
					s.dev.Close()
				}
			}
			u.mu.Unlock()
		}
	}
}

func (u *udpRelay) sessionsInfo() []ConnInfo {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make([]ConnInfo, 0, len(u.sessions))
	for _, s := range u.sessions {
		out = append(out, ConnInfo{ID: s.id, Rule: u.rule.spec.Name, Proto: "udp", Client: s.client,
			Target: u.target, Started: s.started, BytesIn: s.in.Load(), BytesOut: s.out.Load()})
	}
	return out
}

func (u *udpRelay) kill(id uint64) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	for k, s := range u.sessions {
		if s.id == id {
			delete(u.sessions, k)
			s.dev.Close()
			return true
		}
	}
	return false
}

// bigPool holds datagram-sized buffers for the reply path.
var bigPool = bufPool{size: maxDatagram}
