package forward

import (
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Limit is a counting cap shared between rules: the gateway's connection
// cap and its file-descriptor budget. The zero value has no cap.
//
// Fair shares (issue #14.8, #14.9): with n rules, each rule is entitled to
// max/n. A rule below its entitlement takes a slot while any is left; a
// rule above it only while more than the reserve (max/8) is free. A
// flooded rule therefore stops max/8 short of the cap, and that reserve
// is there for the rules that hold less than their share: one rule's
// attacker cannot lock the owner out of the others.
type Limit struct {
	max    atomic.Int64
	active atomic.Int64
	rules  atomic.Int64 // rules sharing the cap; fairness applies above 1
}

// share is one rule's holding of a Limit.
type share struct{ n atomic.Int64 }

// NewLimit returns a cap of max concurrent holders (0 = unlimited).
func NewLimit(max int) *Limit {
	l := &Limit{}
	l.SetMax(max)
	return l
}

// SetMax changes the cap; holders above a lowered cap are not cut.
func (l *Limit) SetMax(max int) { l.max.Store(int64(max)) }

// SetRules divides the cap among n rules (see Limit).
func (l *Limit) SetRules(n int) { l.rules.Store(int64(n)) }

// Max returns the cap (0 = none).
func (l *Limit) Max() int64 { return l.max.Load() }

// Active returns the number of current holders.
func (l *Limit) Active() int64 { return l.active.Load() }

// acquire takes one slot with no share accounting, or reports false at
// the cap.
func (l *Limit) acquire() bool { return l.take(nil, 1) }

func (l *Limit) release() { l.give(nil, 1) }

// take takes n slots for the rule holding s (nil: outside any share, and
// never into the reserve), or reports false.
func (l *Limit) take(s *share, n int64) bool {
	if l == nil {
		return true
	}
	used := l.active.Add(n)
	m := l.max.Load()
	if m <= 0 {
		if s != nil {
			s.n.Add(n)
		}
		return true
	}
	ok := used <= m
	if rules := l.rules.Load(); ok && rules > 1 {
		// Above its entitlement (or outside any share) a holder may not
		// dig into the reserve.
		if s == nil || s.n.Load()+n > m/rules {
			ok = used <= m-m/8
		}
	}
	if !ok {
		l.active.Add(-n)
		return false
	}
	if s != nil {
		s.n.Add(n)
	}
	return true
}

func (l *Limit) give(s *share, n int64) {
	if l == nil {
		return
	}
	l.active.Add(-n)
	if s != nil {
		s.n.Add(-n)
	}
}

// NewFDBudget returns the file-descriptor budget for forwarding, derived
// from RLIMIT_NOFILE (which Go raises to the hard limit at start): the
// limit less a headroom for listeners, accept(2) of connections that are
// then refused with a reset, the admin UI, logs and the state files.
func NewFDBudget() *Limit {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == unix.RLIM_INFINITY {
		return NewLimit(0)
	}
	return NewLimit(fdBudget(int64(rl.Cur)))
}

// fdBudget is limit less the headroom: 64 plus 1/32 of the limit (96 of
// 1,024; 689 of 20,000).
func fdBudget(limit int64) int {
	return int(max(limit-(64+limit/32), 16))
}
