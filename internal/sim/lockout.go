package sim

import (
	"net/netip"
	"sync"
	"time"
)

// lockout is the "Illegal Login Lock": after max consecutive failed
// logins a source IP is refused, even with the right password, for dur.
// Like the real device it counts per source IP, not per user, so every
// client behind one NAT or gateway shares one counter.
type lockout struct {
	max int // <= 0: never lock
	dur time.Duration
	now func() time.Time

	mu    sync.Mutex // guards following
	src   map[netip.Addr]*srcState
	total int
}

type srcState struct {
	fails       int
	lockedUntil time.Time
}

// maxTrackedSources bounds the table; entries that are not locked are
// dropped first when it fills.
const maxTrackedSources = 4096

func newLockout(max int, dur time.Duration) *lockout {
	return &lockout{max: max, dur: dur, now: time.Now, src: map[netip.Addr]*srcState{}}
}

// expireLocked forgets src's lock once it has run out.
func (l *lockout) expireLocked(a netip.Addr, now time.Time) *srcState {
	s := l.src[a]
	if s != nil && !s.lockedUntil.IsZero() && !now.Before(s.lockedUntil) {
		delete(l.src, a)
		return nil
	}
	return s
}

// locked reports whether a is locked, and for how much longer.
func (l *lockout) locked(a netip.Addr) (bool, time.Duration) {
	a = a.Unmap()
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	s := l.expireLocked(a, now)
	if s == nil || s.lockedUntil.IsZero() {
		return false, 0
	}
	return true, s.lockedUntil.Sub(now)
}

// fail counts a failed login from a. It returns whether a is now locked
// and how many attempts remain before it would be.
func (l *lockout) fail(a netip.Addr) (locked bool, remaining int) {
	a = a.Unmap()
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.total++
	s := l.expireLocked(a, now)
	if s == nil {
		if len(l.src) >= maxTrackedSources {
			l.pruneLocked()
		}
		s = &srcState{}
		l.src[a] = s
	}
	if !s.lockedUntil.IsZero() {
		return true, 0
	}
	s.fails++
	if l.max <= 0 {
		return false, 0
	}
	if s.fails >= l.max {
		s.lockedUntil = now.Add(l.dur)
		return true, 0
	}
	return false, l.max - s.fails
}

func (l *lockout) pruneLocked() {
	for k, v := range l.src {
		if v.lockedUntil.IsZero() {
			delete(l.src, k)
		}
	}
	for k := range l.src {
		if len(l.src) < maxTrackedSources {
			break
		}
		delete(l.src, k)
	}
}

// succeed resets a's count (a successful login, or an explicit unlock).
func (l *lockout) succeed(a netip.Addr) {
	a = a.Unmap()
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.src, a)
}

// remaining returns how many attempts a has left (max when unknown).
func (l *lockout) remaining(a netip.Addr) int {
	if l.max <= 0 {
		return 0
	}
	return max(0, l.max-l.failures(a))
}

func (l *lockout) failures(a netip.Addr) int {
	a = a.Unmap()
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.expireLocked(a, l.now())
	if s == nil {
		return 0
	}
	return s.fails
}

func (l *lockout) totalFailures() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}
