package forward

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/camgate/camgate/internal/udpbatch"
)

// maxDatagram is the largest UDP payload.
const maxDatagram = udpbatch.MaxDatagram

// udpRelay serves one external UDP port. One goroutine reads the clients'
// datagrams in batches (recvmmsg); each client address gets a session with
// its own connected socket to the device, so the device's replies are
// matched to the client by socket alone, and a goroutine that sends them
// back in batches (sendmmsg) from the external port. Per-client order is
// kept: a client's datagrams go through one socket in arrival order.
type udpRelay struct {
	rule       *Rule
	pc         *net.UDPConn
	rc         syscall.RawConn // pc's
	family     int             // pc's address family: how replies are addressed
	gso        *udpbatch.GSO   // pc's segmentation offload, for replies
	targetPort uint16
	target     string
	// now is a coarse clock, advanced by the janitor, so that the hot path
	// stamps sessions without calling time.Now per datagram.
	now atomic.Int64

	stop chan struct{}
	once sync.Once

	mu       sync.Mutex // guards following
	sessions map[netip.AddrPort]*udpSession
	// lru lists the sessions by their last datagram either way, most
	// recent first: eviction takes the back, expiry walks from it.
	lru    sessionList
	closed bool
}

type udpSession struct {
	id      uint64
	client  netip.AddrPort
	name    udpbatch.Sockaddr // client, for the relay's socket
	dev     *net.UDPConn
	rc      syscall.RawConn // dev's
	gso     *udpbatch.GSO   // dev's segmentation offload
	started time.Time
	last    atomic.Int64 // relay.now at the last datagram either way
	in, out atomic.Uint64
	release func()
	// prev and next link the relay's lru list; guarded by the relay's mu.
	// inTable is set while the session is in the table (and the list).
	prev, next *udpSession
	inTable    bool
}

func newUDPRelay(r *Rule, pc *net.UDPConn, targetPort uint16) (*udpRelay, error) {
	u := &udpRelay{
		rule: r, pc: pc, targetPort: targetPort,
		target:   net.JoinHostPort(r.spec.Target, strconv.Itoa(int(targetPort))),
		stop:     make(chan struct{}),
		sessions: map[netip.AddrPort]*udpSession{},
	}
	var err error
	if u.rc, err = pc.SyscallConn(); err != nil {
		return nil, err
	}
	if u.family, err = udpbatch.Family(u.rc); err != nil {
		return nil, err
	}
	u.gso = udpbatch.NewGSO(u.family)
	u.now.Store(time.Now().UnixNano())
	return u, nil
}

func (u *udpRelay) close() {
	u.once.Do(func() {
		close(u.stop)
		u.pc.Close()
		u.mu.Lock()
		u.closed = true
		for s := u.lru.back; s != nil; s = u.lru.back {
			u.removeLocked(s)
		}
		u.mu.Unlock()
	})
}

// serve is the client-side read loop.
func (u *udpRelay) serve() {
	r := u.rule
	defer r.wg.Done()
	r.wg.Add(1)
	go u.janitor()
	for {
		b, n, err := udpbatch.Recv(u.rc)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			r.log.Debug("udp read", "err", err)
			continue
		}
		u.toDevice(b, n)
		b.Put()
	}
}

// toDevice sends a batch of client datagrams on to their sessions: one
// table lookup under the lock for the whole batch, then one sendmmsg per
// session present in the batch.
func (u *udpRelay) toDevice(b *udpbatch.Batch, n int) {
	r := u.rule
	var srcs [udpbatch.Size]netip.AddrPort
	var sess [udpbatch.Size]*udpSession
	misses := 0
	now := u.now.Load()
	u.mu.Lock()
	for i := 0; i < n; i++ {
		srcs[i] = b.Addr(i)
		if sess[i] = u.sessions[srcs[i]]; sess[i] == nil {
			misses++
			continue
		}
		// Stamp and reorder under the lookup's lock: the list stays in
		// the exact order of activity, whatever the clock's resolution.
		sess[i].last.Store(now)
		u.lru.moveToFront(sess[i])
	}
	u.mu.Unlock()
	if misses > 0 {
		// New clients: create their sessions (this dials; rare).
		var tried [udpbatch.Size]bool
		for i := 0; i < n; i++ {
			if sess[i] != nil || tried[i] {
				continue
			}
			s := u.session(srcs[i]) // nil: refused or unreachable, dropped below
			for j := i; j < n; j++ {
				if srcs[j] == srcs[i] {
					sess[j], tried[j] = s, true
				}
			}
		}
	}
	var done [udpbatch.Size]bool
	for i := 0; i < n; i++ {
		if done[i] {
			continue
		}
		s := sess[i]
		if s == nil {
			r.stats.Dropped.Add(1)
			continue
		}
		for j := i; j < n; j++ {
			if !done[j] && sess[j] == s {
				b.Queue(j)
				done[j] = true
			}
		}
		sent, dropped, err := b.Send(s.rc, nil, s.gso)
		if err != nil && !errors.Is(err, net.ErrClosed) {
			r.log.Debug("udp send to device", "client", s.client, "err", err)
		}
		if dropped > 0 {
			// ECONNREFUSED here is the device's ICMP "port unreachable"
			// for an earlier datagram: count it, keep the session.
			r.stats.Dropped.Add(uint64(dropped))
		}
		s.in.Add(uint64(sent))
		r.stats.BytesIn.Add(uint64(sent))
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
	if !u.takeFD() {
		if release != nil {
			release()
		}
		r.stats.Refused.Add(1)
		r.log.Debug("udp session refused", "client", src, "reason", "file-descriptor budget reached")
		return nil
	}
	dev, err := u.dial()
	var rc syscall.RawConn
	family := 0
	if err == nil {
		if rc, err = dev.SyscallConn(); err == nil {
			family, err = udpbatch.Family(rc)
		}
		if err != nil {
			dev.Close()
		}
	}
	if err != nil {
		r.spec.FDs.give(&r.fdShare, 1)
		if release != nil {
			release()
		}
		r.stats.DialErrs.Add(1)
		r.unreachable.Log(r.log, time.Now(), slog.LevelWarn, "cannot reach device", "target", u.target, "client", src, "err", err)
		return nil
	}
	setBuffers(dev)
	s = &udpSession{id: r.ids.Add(1), client: src, dev: dev, rc: rc, gso: udpbatch.NewGSO(family), started: time.Now(), release: release}
	s.name.Set(src, u.family)
	s.last.Store(u.now.Load())
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		dev.Close()
		r.spec.FDs.give(&r.fdShare, 1)
		if release != nil {
			release()
		}
		return nil
	}
	for len(u.sessions) >= r.spec.udpMax() && u.lru.back != nil {
		u.removeLocked(u.lru.back)
		r.stats.Evicted.Add(1)
	}
	u.sessions[src] = s
	u.lru.pushFront(s)
	s.inTable = true
	r.stats.Sessions.Add(1)
	u.mu.Unlock()
	r.stats.SessTotal.Add(1)
	r.wg.Add(1)
	go u.replies(s)
	return s
}

func (u *udpRelay) dial() (*net.UDPConn, error) {
	// DialContext, not DialUDP: see Conn.dial.
	d := net.Dialer{Timeout: u.rule.spec.dialTimeout()}
	c, err := d.DialContext(u.rule.ctx, "udp", u.target)
	if err != nil {
		return nil, err
	}
	return c.(*net.UDPConn), nil
}

// removeLocked takes s out of the table and closes its socket, which
// ends its replies goroutine (that releases its admission slot). The
// session count follows the table, so it never exceeds the bound.
func (u *udpRelay) removeLocked(s *udpSession) {
	if u.dropLocked(s) {
		u.rule.spec.FDs.give(&u.rule.fdShare, 1)
	}
}

// dropLocked is removeLocked keeping the session's descriptor slot in the
// budget, for a new session to take over; it reports whether s was in
// the table.
func (u *udpRelay) dropLocked(s *udpSession) bool {
	if !s.inTable {
		return false
	}
	s.inTable = false
	delete(u.sessions, s.client)
	u.lru.remove(s)
	u.rule.stats.Sessions.Add(-1)
	s.dev.Close()
	return true
}

// takeFD counts a new session's socket in the gateway's descriptor
// budget. A rule that has used up its fair share makes room by evicting
// its own least recently active session, so a flood of new sources
// recycles the flooded rule's sessions and never takes the others'
// (#14.8).
func (u *udpRelay) takeFD() bool {
	r := u.rule
	if r.spec.FDs.take(&r.fdShare, 1) {
		return true
	}
	// The slot passes straight from the evicted session to the new one:
	// giving it back first would let other rules' reserve use block the
	// swap. The victim is the rule's least recently active session on
	// any of its ports (a port range floods some ports before others).
	var victim *udpRelay
	var oldest int64
	for _, v := range r.udp {
		v.mu.Lock()
		if b := v.lru.back; b != nil && (victim == nil || b.last.Load() < oldest) {
			victim, oldest = v, b.last.Load()
		}
		v.mu.Unlock()
	}
	if victim == nil {
		return false
	}
	victim.mu.Lock()
	defer victim.mu.Unlock()
	if s := victim.lru.back; s != nil && victim.dropLocked(s) {
		r.stats.Evicted.Add(1)
		return true
	}
	return false
}

// replies carries the device's datagrams back to one client, from the
// external port, in batches, until the session's socket is closed (idle
// expiry, eviction, rule removal).
func (u *udpRelay) replies(s *udpSession) {
	r := u.rule
	defer r.wg.Done()
	defer u.endSession(s)
	for {
		b, n, err := udpbatch.Recv(s.rc)
		if err != nil {
			if errors.Is(err, syscall.ECONNREFUSED) {
				r.stats.Dropped.Add(1) // ICMP unreachable from the device
				continue
			}
			return
		}
		for i := 0; i < n; i++ {
			b.Queue(i)
		}
		u.touch(s)
		sent, dropped, err := b.Send(u.rc, &s.name, u.gso)
		b.Put()
		if dropped > 0 {
			r.stats.Dropped.Add(uint64(dropped))
		}
		s.out.Add(uint64(sent))
		r.stats.BytesOut.Add(uint64(sent))
		if err != nil && errors.Is(err, net.ErrClosed) {
			return // the rule is closing
		}
	}
}

// touch records a reply: the device's stream keeps a session alive as
// much as the client's datagrams do (RTP flows device → viewer).
func (u *udpRelay) touch(s *udpSession) {
	now := u.now.Load()
	u.mu.Lock()
	s.last.Store(now)
	if s.inTable {
		u.lru.moveToFront(s)
	}
	u.mu.Unlock()
}

func (u *udpRelay) endSession(s *udpSession) {
	u.mu.Lock()
	u.removeLocked(s)
	u.mu.Unlock()
	s.dev.Close()
	if s.release != nil {
		s.release()
	}
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
			for s := u.lru.back; s != nil && s.last.Load() < cutoff; s = u.lru.back {
				u.removeLocked(s)
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
	for _, s := range u.sessions {
		if s.id == id {
			u.removeLocked(s)
			return true
		}
	}
	return false
}

// sessionList is an intrusive doubly linked list of sessions, most
// recently active at the front. Moving a session costs a few pointer
// writes under the relay's lock, which the batch's table lookup holds
// anyway.
type sessionList struct{ front, back *udpSession }

func (l *sessionList) pushFront(s *udpSession) {
	s.prev, s.next = nil, l.front
	if l.front != nil {
		l.front.prev = s
	} else {
		l.back = s
	}
	l.front = s
}

func (l *sessionList) remove(s *udpSession) {
	if s.prev != nil {
		s.prev.next = s.next
	} else {
		l.front = s.next
	}
	if s.next != nil {
		s.next.prev = s.prev
	} else {
		l.back = s.prev
	}
	s.prev, s.next = nil, nil
}

func (l *sessionList) moveToFront(s *udpSession) {
	if l.front == s {
		return
	}
	l.remove(s)
	l.pushFront(s)
}
