package admin

import (
	"net/netip"
	"sync"
	"time"
)

// Login throttling: each source may fail freeAttempts times; after that
// every failure locks it out for twice as long as the last, from
// lockoutBase up to lockoutMax. A success clears the record; a record
// untouched for lockoutForget is dropped.
const (
	freeAttempts  = 3
	lockoutBase   = time.Second
	lockoutMax    = 15 * time.Minute
	lockoutForget = 24 * time.Hour
	// maxLockoutEntries bounds memory under a spray of source addresses;
	// the stalest record goes first.
	maxLockoutEntries = 10000
)

type failRecord struct {
	fails int
	until time.Time
	last  time.Time
	// inflight are attempts being checked right now: they count before
	// the password is hashed, so that concurrent or trickled requests
	// cannot all pass the check before the first failure is recorded
	// (issue 14).
	inflight int
}

// lockout is the per-source record of failed logins and setup attempts.
type lockout struct {
	mu sync.Mutex // guards following
	m  map[netip.Prefix]*failRecord
}

func newLockout() *lockout { return &lockout{m: map[netip.Prefix]*failRecord{}} }

// sourceKey groups IPv6 sources by /64, the block one subscriber gets, so
// that rotating through a prefix does not reset the lockout.
func sourceKey(a netip.Addr) netip.Prefix {
	if a.Is6() && !a.Is4In6() {
		p, _ := a.Prefix(64)
		return p
	}
	return netip.PrefixFrom(a.Unmap(), 32)
}

// check returns how long src must still wait, or 0.
func (l *lockout) check(src netip.Addr, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	rec := l.m[sourceKey(src)]
	if rec == nil || !now.Before(rec.until) {
		return 0
	}
	return rec.until.Sub(now)
}

// busyWait is the Retry-After for a source whose attempts are all in
// flight.
const busyWait = time.Second

// begin takes an attempt slot for src before its request body is read
// and its password hashed: a source has as many slots as it has free
// attempts left (one once those are spent). It returns how long to wait
// when there is none, else a function that gives the slot back.
func (l *lockout) begin(src netip.Addr, now time.Time) (time.Duration, func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	key := sourceKey(src)
	rec := l.m[key]
	if rec != nil && now.Before(rec.until) {
		return rec.until.Sub(now), nil
	}
	if rec == nil {
		l.evictLocked(now)
		rec = &failRecord{}
		l.m[key] = rec
	}
	if rec.inflight >= max(1, freeAttempts-rec.fails) {
		return busyWait, nil
	}
	rec.inflight++
	rec.last = now
	return 0, func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if r := l.m[key]; r == rec && r.inflight > 0 {
			r.inflight--
		}
	}
}

// fail records a failure and returns the lockout it starts (0 while the
// free attempts last).
func (l *lockout) fail(src netip.Addr, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	key := sourceKey(src)
	rec := l.m[key]
	if rec == nil {
		l.evictLocked(now)
		rec = &failRecord{}
		l.m[key] = rec
	}
	rec.fails++
	rec.last = now
	if rec.fails <= freeAttempts {
		return 0
	}
	d := lockoutBase
	for i := freeAttempts + 1; i < rec.fails && d < lockoutMax; i++ {
		d *= 2
	}
	d = min(d, lockoutMax)
	rec.until = now.Add(d)
	return d
}

// succeed clears src's record.
func (l *lockout) succeed(src netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.m, sourceKey(src))
}

func (l *lockout) evictLocked(now time.Time) {
	for k, r := range l.m {
		if now.Sub(r.last) > lockoutForget && !now.Before(r.until) && r.inflight == 0 {
			delete(l.m, k)
		}
	}
	evictStalest(l.m, maxLockoutEntries, func(r *failRecord) time.Time { return r.last })
}

// evictStalest deletes the entries of m with the earliest time (by last)
// until there is room for one more under max. The per-source tables and
// the session store use it when they are full; a linear scan is fine at
// that rate.
func evictStalest[K comparable, V any](m map[K]V, max int, last func(V) time.Time) {
	for len(m) >= max {
		var stalest K
		var st time.Time
		for k, v := range m {
			if t := last(v); st.IsZero() || t.Before(st) {
				stalest, st = k, t
			}
		}
		delete(m, stalest)
	}
}

// locked returns the number of sources currently locked out, for metrics.
func (l *lockout) locked(now time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.m {
		if now.Before(r.until) {
			n++
		}
	}
	return n
}
