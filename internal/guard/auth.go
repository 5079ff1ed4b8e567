package guard

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"
)

// The brute-force guard.
//
// The device (a Hikvision DVR) locks the source address after 7 failed
// admin logins, and behind camgate every remote user has camgate's
// address, so one guesser would lock out the owner. camgate therefore
// counts failed logins itself, per source and per device, and makes sure
// the device never sees more than it can take:
//
//   - A login attempt is a request carrying Authorization, or a POST to a
//     known session-login path (Hikvision's web UI logs in that way).
//   - Before such a request is forwarded, it takes a slot: a source may
//     have at most max_failures minus its recent failures attempts in
//     flight. With pipelining or parallel connections the rest wait for
//     answers, so the count cannot be outrun.
//   - The device's 401 to an attempt is a failure (except a digest
//     "stale" nonce, which is not a wrong password); a 2xx is a success
//     and resets the source's count. An attempt whose answer camgate
//     never sees (the client hung up) counts as failed: the device may
//     have counted it.
//   - max_failures failures within failure_window ban the source for ban,
//     on every rule that forwards to the same device, and cut its live
//     guarded connections to it.
//   - device_max_failures is a budget for all sources together: once the
//     device has seen that many failures in the window, only sources that
//     logged in successfully recently may try; others get 503 until the
//     window passes. This holds a distributed guesser (a botnet) below the
//     device's own lock.

// authParams are a rule's brute-force settings.
type authParams struct {
	rule, device string
	maxFail      int
	deviceMax    int // 0: no device budget
	window       time.Duration
	ban          time.Duration
}

// outcome is the device's verdict on one login attempt.
type outcome int

const (
	neutral outcome = iota // neither (3xx, 403, 5xx, a stale nonce)
	success                // 2xx
	failure                // 401, or no answer seen
)

var (
	errBanned   = errors.New("source is banned")
	errLockdown = errors.New("the device has seen too many failed logins; only sources that logged in recently may try")
	errWaitLong = errors.New("timed out waiting for earlier login attempts to be answered")
)

// maxAttemptWait bounds how long an attempt waits for a slot.
const maxAttemptWait = 30 * time.Second

// tracker counts login attempts to one device.
type tracker struct {
	p      *Policy
	device string

	mu         sync.Mutex // guards following
	srcs       map[netip.Prefix]*authSource
	devFails   []time.Time
	devPending int
	lastSweep  time.Time
}

type authSource struct {
	fails        []time.Time
	pending      int
	trustedUntil time.Time
	// bannedUntil is set with the ban, under the tracker's lock, so that
	// no attempt slips in before the ban list has it.
	bannedUntil time.Time
	// wake is closed when a slot may have freed up.
	wake chan struct{}
	// live are the source's guarded connections to the device, cut when
	// it is banned.
	live map[*session]struct{}
}

func newTracker(p *Policy, device string) *tracker {
	return &tracker{p: p, device: device, srcs: map[netip.Prefix]*authSource{}}
}

func (t *tracker) sourceLocked(src netip.Prefix) *authSource {
	s := t.srcs[src]
	if s == nil {
		s = &authSource{}
		t.srcs[src] = s
	}
	return s
}

func prune(ts []time.Time, now time.Time, window time.Duration) []time.Time {
	i := 0
	for i < len(ts) && now.Sub(ts[i]) >= window {
		i++
	}
	return ts[i:]
}

// ticket is a reserved login attempt; settle it exactly once.
type ticket struct {
	t   *tracker
	src netip.Prefix
	ap  *authParams
	rs  *ruleState
	mu  sync.Mutex
	set bool
}

// reserve waits until src may send one more login attempt to the device.
func (t *tracker) reserve(ctx context.Context, src netip.Prefix, ap *authParams, rs *ruleState) (*ticket, error) {
	deadline := time.NewTimer(maxAttemptWait)
	defer deadline.Stop()
	for {
		now := t.p.now()
		if _, ok := t.p.banned(src, ap.rule, ap.device, now); ok {
			return nil, errBanned
		}
		t.mu.Lock()
		t.sweepLocked(now, ap.window)
		s := t.sourceLocked(src)
		if now.Before(s.bannedUntil) {
			t.mu.Unlock()
			return nil, errBanned
		}
		s.fails = prune(s.fails, now, ap.window)
		t.devFails = prune(t.devFails, now, ap.window)
		if ap.deviceMax > 0 && now.After(s.trustedUntil) && len(t.devFails)+t.devPending >= ap.deviceMax {
			t.mu.Unlock()
			return nil, errLockdown
		}
		if len(s.fails)+s.pending < ap.maxFail {
			s.pending++
			t.devPending++
			t.mu.Unlock()
			return &ticket{t: t, src: src, ap: ap, rs: rs}, nil
		}
		if s.wake == nil {
			s.wake = make(chan struct{})
		}
		wake := s.wake
		t.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-deadline.C:
			return nil, errWaitLong
		}
	}
}

// settle records the device's answer to the attempt.
func (tk *ticket) settle(o outcome) {
	tk.mu.Lock()
	if tk.set {
		tk.mu.Unlock()
		return
	}
	tk.set = true
	tk.mu.Unlock()
	t, ap := tk.t, tk.ap
	now := t.p.now()
	t.mu.Lock()
	s := t.sourceLocked(tk.src)
	s.pending--
	t.devPending--
	var ban *Ban
	var cut []*session
	switch o {
	case success:
		tk.rs.c.authOK.Add(1)
		s.fails = nil
		s.trustedUntil = now.Add(ap.ban)
	case failure:
		tk.rs.c.authFail.Add(1)
		s.fails = append(prune(s.fails, now, ap.window), now)
		t.devFails = append(prune(t.devFails, now, ap.window), now)
		if len(s.fails) >= ap.maxFail {
			ban = &Ban{
				Source: tk.src, Rule: ap.rule, Device: ap.device,
				Reason:   fmt.Sprintf("%d failed logins within %s", len(s.fails), ap.window),
				Failures: len(s.fails), Since: now, Until: now.Add(ap.ban),
			}
			s.fails = nil
			s.trustedUntil = time.Time{}
			s.bannedUntil = ban.Until
			for c := range s.live {
				cut = append(cut, c)
			}
		}
	}
	if s.wake != nil {
		close(s.wake)
		s.wake = nil
	}
	t.mu.Unlock()
	if ban != nil {
		tk.rs.c.bans.Add(1)
		t.p.addBan(*ban)
		for _, c := range cut {
			c.cut()
		}
	}
}

// attach registers a live guarded connection of src; detach removes it.
func (t *tracker) attach(src netip.Prefix, s *session) {
	t.mu.Lock()
	as := t.sourceLocked(src)
	if as.live == nil {
		as.live = map[*session]struct{}{}
	}
	as.live[s] = struct{}{}
	t.mu.Unlock()
}

func (t *tracker) detach(src netip.Prefix, s *session) {
	t.mu.Lock()
	if as := t.srcs[src]; as != nil {
		delete(as.live, s)
	}
	t.mu.Unlock()
}

// forgive forgets the failed logins of the sources a clear names.
func (t *tracker) forgive(cr clearRecord) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, s := range t.srcs {
		if !cr.Source.IsValid() || k.Contains(cr.Source) {
			s.fails = nil
			s.bannedUntil = time.Time{}
		}
	}
}

// sweepLocked drops idle sources once a minute.
func (t *tracker) sweepLocked(now time.Time, window time.Duration) {
	if now.Sub(t.lastSweep) < time.Minute {
		return
	}
	t.lastSweep = now
	for k, s := range t.srcs {
		s.fails = prune(s.fails, now, window)
		if len(s.fails) == 0 && s.pending == 0 && len(s.live) == 0 && now.After(s.trustedUntil) &&
			now.After(s.bannedUntil) && s.wake == nil {
			delete(t.srcs, k)
		}
	}
}
