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
// address, so one guesser would lock out the owner. The device's count
// does not decay with time: only a successful login (or the lock running
// out) resets it. camgate therefore makes sure the device never sees as
// many failures as it takes to lock:
//
//   - A login attempt is a request carrying Authorization, or a POST to a
//     known session-login path (Hikvision's web UI logs in that way).
//   - When camgate knows the password (verify.go), it judges Digest and
//     Basic answers for that account itself: a wrong one never reaches
//     the device, so it cannot add to the device's count at all, and the
//     owner's right one always can.
//   - Every other attempt (another account, the hashed sessionLogin body,
//     or any attempt when the password is unknown) reaches the device
//     under a device-wide budget, device_max_failures, counted like the
//     device counts: failures since the last success, with no decay.
//     The last deviceReserve attempts of the budget are kept for sources
//     that logged in successfully before (trustMemory), so a guesser who
//     spends the rest does not starve the owner. Past the budget the
//     attempt gets 503. The default budget (5) stays two below the
//     device's lock (7), which leaves room for camgate's own logins
//     (check, device add, the live view).
//   - Before an attempt is forwarded it takes a slot: a source may have
//     at most max_failures minus its recent failures attempts in flight,
//     and the budget counts attempts in flight, so neither can be
//     outrun with pipelining or parallel connections.
//   - The device's 401 to an attempt is a failure (except a digest
//     "stale" nonce, which is not a wrong password); a 2xx is a success:
//     it resets the source's count and the device's. An attempt whose
//     answer camgate never sees (the client hung up) counts as failed:
//     the device may have counted it.
//   - max_failures failures of a source within failure_window (judged by
//     camgate or by the device) ban the source for ban, on every rule that
//     forwards to the same device, and cut its live guarded connections.

// deviceReserve is how many attempts of the device budget only sources
// that logged in before may use; trustMemory is how long camgate
// remembers such a source.
const (
	deviceReserve = 2
	trustMemory   = 30 * 24 * time.Hour
)

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
	errLockdown = errors.New("the device has seen too many failed logins since its last successful one; only sources that logged in before may try")
	errWaitLong = errors.New("timed out waiting for earlier login attempts to be answered")
)

// maxAttemptWait bounds how long an attempt waits for a slot.
const maxAttemptWait = 30 * time.Second

// tracker counts login attempts to one device.
type tracker struct {
	p      *Policy
	device string

	mu   sync.Mutex // guards following
	srcs map[netip.Prefix]*authSource
	// devFails are the failures the device has counted since the last
	// success camgate saw; like the device's own count, they never decay.
	devFails   int
	devPending int
	lastFail   time.Time
	lastOK     time.Time
	heldBack   int // attempts refused with 503 since the last success
	budget     int // the last device_max_failures of a rule (status)
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

// budget returns how many failures the device may have counted (with the
// attempts in flight) for an attempt to go ahead: the budget less the
// reserve for a source that never logged in, the whole budget for one
// that did, and one more for an answer camgate verified against the
// stored password (it will succeed and reset the count; the extra one
// covers a device that refuses it anyway, and stays below the lock when
// the budget is the default). 0 means no budget.
func budget(ap *authParams, trusted, verified bool) int {
	switch {
	case ap.deviceMax <= 0:
		return 0
	case verified:
		return ap.deviceMax + 1
	case trusted:
		return ap.deviceMax
	}
	return max(1, ap.deviceMax-min(deviceReserve, ap.deviceMax/2))
}

// reserve waits until src may send one more login attempt to the device.
// verified says camgate checked the answer against the known password.
func (t *tracker) reserve(ctx context.Context, src netip.Prefix, ap *authParams, rs *ruleState, verified bool) (*ticket, error) {
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
		if b := budget(ap, now.Before(s.trustedUntil), verified); b > 0 && t.devFails+t.devPending >= b {
			t.heldBack++
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
		s.trustedUntil = now.Add(trustMemory)
		t.devFails, t.heldBack, t.lastOK = 0, 0, now
	case failure:
		tk.rs.c.authFail.Add(1)
		t.devFails++
		t.lastFail = now
		ban, cut = t.failLocked(s, tk.src, ap, now)
	}
	if s.wake != nil {
		close(s.wake)
		s.wake = nil
	}
	t.mu.Unlock()
	t.enforce(ban, cut, tk.rs)
}

// failLocked counts a failed login of src and returns the ban it earns,
// if any, with the live connections to cut.
func (t *tracker) failLocked(s *authSource, src netip.Prefix, ap *authParams, now time.Time) (*Ban, []*session) {
	s.fails = append(prune(s.fails, now, ap.window), now)
	if len(s.fails) < ap.maxFail {
		return nil, nil
	}
	ban := &Ban{
		Source: src, Rule: ap.rule, Device: ap.device,
		Reason:   fmt.Sprintf("%d failed logins within %s", len(s.fails), ap.window),
		Failures: len(s.fails), Since: now, Until: now.Add(ap.ban),
	}
	s.fails = nil
	s.trustedUntil = time.Time{}
	s.bannedUntil = ban.Until
	var cut []*session
	for c := range s.live {
		cut = append(cut, c)
	}
	return ban, cut
}

// enforce records a ban and cuts the banned source's connections.
func (t *tracker) enforce(ban *Ban, cut []*session, rs *ruleState) {
	if ban == nil {
		return
	}
	rs.c.bans.Add(1)
	t.p.addBan(*ban)
	for _, c := range cut {
		c.cut()
	}
}

// refused counts a wrong answer camgate judged itself: it never reached
// the device, so only the source's count grows. It reports whether the
// source is banned now; a connection that is not may go on, with the
// answer stripped.
func (t *tracker) refused(src netip.Prefix, ap *authParams, rs *ruleState) (banned bool) {
	now := t.p.now()
	rs.c.authFail.Add(1)
	t.mu.Lock()
	s := t.sourceLocked(src)
	ban, cut := t.failLocked(s, src, ap, now)
	t.mu.Unlock()
	t.enforce(ban, cut, rs)
	return ban != nil
}

// DeviceLogins is the brute-force guard's view of one device.
type DeviceLogins struct {
	// Device is the rules' internal_ip.
	Device string `json:"device"`
	// Failures the device has counted from camgate since the last
	// successful login camgate saw (the device's own count may be higher
	// if logins bypass camgate).
	Failures int `json:"failures"`
	// Budget is guard.device_max_failures (0: none).
	Budget int `json:"budget"`
	// HeldBack counts attempts refused with 503 since the last success.
	HeldBack int `json:"held_back"`
	// LastFailure and LastSuccess are when camgate last saw each.
	LastFailure time.Time `json:"last_failure,omitzero"`
	LastSuccess time.Time `json:"last_success,omitzero"`
}

func (t *tracker) setBudget(n int) {
	t.mu.Lock()
	t.budget = max(n, 0)
	t.mu.Unlock()
}

func (t *tracker) snapshot() DeviceLogins {
	t.mu.Lock()
	defer t.mu.Unlock()
	return DeviceLogins{Device: t.device, Failures: t.devFails, Budget: t.budget, HeldBack: t.heldBack,
		LastFailure: t.lastFail, LastSuccess: t.lastOK}
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
