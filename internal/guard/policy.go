package guard

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/forward"
)

// Config configures a Policy.
type Config struct {
	// Logger receives refusals (rate-limited), bans and filter hits. Nil
	// discards.
	Logger *slog.Logger
	// StateDir keeps the ban list (bans.json) and generated certificates.
	// Empty keeps bans in memory only and certificates are generated per
	// start.
	StateDir string
	// PollInterval is how often the ban file is checked for changes made
	// by `camgate ban clear`: at most this often when a connection is
	// admitted or the list is read, and this often by Run. 0 means 1 s.
	PollInterval time.Duration
	// Now returns the current time. Nil means time.Now; tests move the
	// clock.
	Now func() time.Time
	// RTSP carries RTP over UDP and rewrites the device's address in
	// answers on every rule whose service is rtsp. Nil leaves RTSP rules
	// to the guards they enable (interleaved TCP only, answers unchanged).
	RTSP RTSPRelay
	// Passwords gives the passwords of the devices in the config's devices
	// section, so that the auth guard can judge login answers itself
	// (verify.go). Nil: the guard only counts the device's verdicts.
	Passwords PasswordSource
}

// Policy is the guard: it implements gateway.Policy (Hooks and Forget)
// and keeps per-rule state (counters, per-source tables) across reloads,
// the failure counts per device, and the ban list.
type Policy struct {
	log       *slog.Logger
	stateDir  string
	poll      time.Duration
	now       func() time.Time
	passwords PasswordSource
	rtsp      RTSPRelay
	bufs      sync.Pool // *[]byte copy buffers for the L7 handlers

	// maxPerIP is limits.max_connections_per_ip (0: none).
	maxPerIP atomic.Int64
	// lastPoll is when the ban file was last checked (monotonic nanos
	// since start), so that admission looks at most once per poll.
	lastPoll atomic.Int64
	start    time.Time

	mu       sync.Mutex // guards following
	rules    map[string]*ruleState
	trackers map[string]*tracker // by device (internal_ip)
	publicIP string
	ports    portMap // external port per device port, for ONVIF answers
	// devices are the devices section by name and by "@"+address.
	devices map[string]knownDevice

	gmu    sync.Mutex // guards following
	global map[netip.Prefix]int

	bmu   sync.Mutex // guards following
	bans  map[netip.Prefix][]Ban
	stamp fileStamp // of the ban file as last read or written

	// saveMu serialises writes of the ban file from this process.
	saveMu sync.Mutex

	// events receives bans and blocks (events.go); nil means none.
	events atomic.Pointer[EventSink]
}

// NewPolicy returns a Policy with the ban list loaded from StateDir.
func NewPolicy(c Config) (*Policy, error) {
	p := &Policy{
		log:       c.Logger,
		stateDir:  c.StateDir,
		poll:      c.PollInterval,
		now:       c.Now,
		passwords: c.Passwords,
		rtsp:      c.RTSP,
		rules:     map[string]*ruleState{},
		trackers:  map[string]*tracker{},
		global:    map[netip.Prefix]int{},
		bans:      map[netip.Prefix][]Ban{},
		start:     time.Now(),
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.poll <= 0 {
		p.poll = time.Second
	}
	if p.now == nil {
		p.now = time.Now
	}
	p.bufs.New = func() any { b := make([]byte, copyBufSize); return &b }
	if p.stateDir != "" {
		if _, err := p.syncBans(); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// SetGlobal applies the gateway-wide settings of cfg: the per-source
// connection cap over all rules (limits.max_connections_per_ip) and the
// public address used in self-signed certificates. Call it with every
// config the gateway runs.
func (p *Policy) SetGlobal(cfg *config.Config) {
	p.maxPerIP.Store(int64(cfg.Limits.MaxConnectionsPerIP))
	devs := make(map[string]knownDevice, 2*len(cfg.Devices))
	for _, d := range cfg.Devices {
		kd := knownDevice{name: d.Name, user: d.Username()}
		devs[d.Name] = kd
		devs["@"+strings.ToLower(d.Address)] = kd
	}
	p.mu.Lock()
	p.publicIP = cfg.PublicIP
	p.ports = newPortMap(cfg)
	p.devices = devs
	p.mu.Unlock()
}

// ruleGuard is one rule's settings as of the last Hooks call. It is
// immutable: a reload builds a new one.
type ruleGuard struct {
	name       string
	device     string // internal_ip, lower case
	deviceName string // the rule's device field
	acl        ACL
	perConns   int
	rate       float64
	burst      int
	perUDP     int

	service string // "", http or rtsp
	filter  *Filter
	auth    *authParams
	tls     *tls.Config
	relay   RTSPRelay // RTSP rules: RTP over UDP, address rewriting
}

func (rg *ruleGuard) l7() bool {
	return rg.service != "" && (rg.filter != nil || rg.auth != nil) || rg.tls != nil || rg.relay != nil
}

// Hooks returns the rule's admission check and, when the rule enables a
// protocol-aware guard or TLS termination, its connection handler. Plain
// rules get a nil handler and keep the zero-copy relay.
func (p *Policy) Hooks(r *config.Rule) (func(netip.AddrPort, string) (func(), error), forward.Handler, error) {
	rg := &ruleGuard{
		name:       r.Name,
		device:     strings.ToLower(r.InternalIP),
		deviceName: r.Device,
		acl:        ACL{Allow: r.AllowPrefixes(), Deny: r.DenyPrefixes()},
		service: func() string {
			if r.AuthGuard() || r.HikvisionFilter() || r.TLS.Terminate() {
				return r.GuardService()
			}
			return ""
		}(),
	}
	g := &r.Guard
	rg.perConns = g.EffectivePerIPConnections()
	rg.rate, rg.burst = g.EffectivePerIPRate()
	if g.PerIPRate == 0 && opaqueLogin(r) {
		rg.rate, rg.burst = opaqueRate, opaqueBurst
	}
	rg.perUDP = g.EffectivePerIPUDPSessions()
	if r.HikvisionFilter() {
		rg.filter = NewFilter(HikvisionSignatures())
	}
	if p.rtsp != nil && r.GuardService() == config.ServiceRTSP && !r.TLS.Terminate() {
		// Every RTSP rule gets the relay: without it a player's default
		// transport (UDP) hangs, and answers leak the LAN address.
		rg.service, rg.relay = config.ServiceRTSP, p.rtsp
	}
	if r.AuthGuard() {
		rg.auth = &authParams{
			rule: r.Name, device: rg.device,
			maxFail: g.EffectiveMaxFailures(), deviceMax: g.EffectiveDeviceMaxFailures(),
			window: g.EffectiveFailureWindow(), ban: g.EffectiveBan(),
		}
	}
	if r.TLS.Terminate() {
		tc, err := p.tlsConfig(r)
		if err != nil {
			return nil, nil, fmt.Errorf("tls: %w", err)
		}
		rg.tls = tc
	}
	p.mu.Lock()
	rs := p.rules[r.Name]
	if rs == nil {
		rs = newRuleState(r.Name)
		p.rules[r.Name] = rs
	}
	var tr *tracker
	if rg.auth != nil {
		tr = p.trackers[rg.device]
		if tr == nil {
			tr = newTracker(p, rg.device)
			p.trackers[rg.device] = tr
		}
		tr.setBudget(rg.auth.deviceMax)
	}
	p.mu.Unlock()

	admit := func(src netip.AddrPort, proto string) (func(), error) { return p.admit(rs, rg, src, proto) }
	if !rg.l7() {
		return admit, nil, nil
	}
	return admit, &handler{p: p, rs: rs, rg: rg, tr: tr}, nil
}

// Forget drops the counters and per-source tables of removed rules. Bans
// stay (they expire on their own, and a rule that comes back keeps them).
func (p *Policy) Forget(names []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, n := range names {
		delete(p.rules, n)
	}
}

// Counters are one rule's guard counters, for the API and the UI.
type Counters struct {
	// Denied connections and UDP sessions refused by allow/deny.
	Denied uint64 `json:"denied"`
	// Limited connections and sessions refused by a per-source cap or the
	// connection rate.
	Limited uint64 `json:"limited"`
	// Banned connections, sessions and requests refused because the
	// source is banned.
	Banned uint64 `json:"banned"`
	// Blocked requests matched an exploit signature (403).
	Blocked uint64 `json:"blocked"`
	// Malformed requests were refused as malformed or oversized (400, 414,
	// 431, 505).
	Malformed uint64 `json:"malformed"`
	// AuthFailures and AuthSuccesses count the device's answers to login
	// attempts.
	AuthFailures  uint64 `json:"auth_failures"`
	AuthSuccesses uint64 `json:"auth_successes"`
	// Bans issued for this rule's traffic.
	Bans uint64 `json:"bans"`
	// Lockdown counts login attempts held back because the device's
	// failure budget was spent (guard.device_max_failures).
	Lockdown uint64 `json:"lockdown"`
	// TLSErrors counts failed TLS handshakes.
	TLSErrors uint64 `json:"tls_errors"`
}

// Counters returns a rule's counters, and false if the rule is unknown.
func (p *Policy) Counters(rule string) (Counters, bool) {
	p.mu.Lock()
	rs := p.rules[rule]
	p.mu.Unlock()
	if rs == nil {
		return Counters{}, false
	}
	return rs.c.snapshot(), true
}

// AllCounters returns every known rule's counters by name.
func (p *Policy) AllCounters() map[string]Counters {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]Counters, len(p.rules))
	for n, rs := range p.rules {
		out[n] = rs.c.snapshot()
	}
	return out
}

// DeviceLogins returns the brute-force guard's view of every device that
// a guarded rule forwards to, by address.
func (p *Policy) DeviceLogins() []DeviceLogins {
	p.mu.Lock()
	trs := make([]*tracker, 0, len(p.trackers))
	for _, t := range p.trackers {
		trs = append(trs, t)
	}
	p.mu.Unlock()
	out := make([]DeviceLogins, 0, len(trs))
	for _, t := range trs {
		out = append(out, t.snapshot())
	}
	slices.SortFunc(out, func(a, b DeviceLogins) int { return strings.Compare(a.Device, b.Device) })
	return out
}

// Bans returns the bans in force, oldest first.
func (p *Policy) Bans() []Ban {
	p.pollBans()
	return p.bansNow()
}

func (p *Policy) bansNow() []Ban {
	now := p.now()
	p.bmu.Lock()
	var all []Ban
	for _, bs := range p.bans {
		all = append(all, bs...)
	}
	p.bmu.Unlock()
	return activeBans(all, now)
}

// Unban lifts the bans matching src (the zero Addr: every source) and
// rule (empty: every rule), forgets the sources' failed logins, persists
// the list and returns how many bans in force it lifted.
func (p *Policy) Unban(src netip.Addr, rule string) int {
	// saveMu is held from the clear to the write: a poll of the ban file
	// in between would otherwise merge the cleared bans back from the
	// file it read before the write.
	p.saveMu.Lock()
	defer p.saveMu.Unlock()
	now := p.now()
	cr := clearRecord{Source: src.Unmap(), Rule: rule, At: now}
	n, cleared := p.applyClear(cr, now)
	if n > 0 || len(cleared) > 0 {
		if err := p.saveBansLocked(); err != nil {
			p.log.Error("cannot save the ban list", "err", err)
		}
		p.log.Info("bans lifted", "source", addrOrAll(src), "rule", orAll(rule), "count", n)
	}
	return n
}

// applyClear removes matching bans from memory and resets the failure
// counts of the sources they named.
func (p *Policy) applyClear(cr clearRecord, now time.Time) (active int, cleared []Ban) {
	p.bmu.Lock()
	for k, bs := range p.bans {
		keep := bs[:0]
		for _, b := range bs {
			if cr.matches(b) {
				cleared = append(cleared, b)
				if b.Active(now) {
					active++
				}
				continue
			}
			keep = append(keep, b)
		}
		if len(keep) == 0 {
			delete(p.bans, k)
		} else {
			p.bans[k] = keep
		}
	}
	p.bmu.Unlock()
	p.mu.Lock()
	trs := make([]*tracker, 0, len(p.trackers))
	for _, t := range p.trackers {
		trs = append(trs, t)
	}
	p.mu.Unlock()
	for _, t := range trs {
		t.forgive(cr)
	}
	return active, cleared
}

func addrOrAll(a netip.Addr) string {
	if !a.IsValid() {
		return "all"
	}
	return a.String()
}

func orAll(s string) string {
	if s == "" {
		return "all"
	}
	return s
}

// banned returns the ban in force for src on rule or device, if any.
func (p *Policy) banned(src netip.Prefix, rule, device string, now time.Time) (Ban, bool) {
	p.pollBans()
	p.bmu.Lock()
	defer p.bmu.Unlock()
	for _, b := range p.bans[src] {
		if b.Active(now) && b.covers(rule, device) {
			return b, true
		}
	}
	return Ban{}, false
}

// addBan records a ban and persists the list.
func (p *Policy) addBan(b Ban) {
	p.bmu.Lock()
	p.bans[b.Source] = append(slices.DeleteFunc(p.bans[b.Source], func(o Ban) bool {
		return o.Rule == b.Rule && o.Device == b.Device
	}), b)
	p.bmu.Unlock()
	p.log.Warn("source banned", "rule", b.Rule, "source", b.Source, "device", b.Device,
		"until", b.Until.Format(time.RFC3339), "reason", b.Reason)
	p.emit(Event{Kind: EventBan, Time: b.Since, Rule: b.Rule, Source: b.Source, Device: b.Device, Detail: b.Reason, Until: b.Until})
	if err := p.saveBans(); err != nil {
		p.log.Error("cannot save the ban list; the ban holds until camgate restarts", "err", err)
	}
}

// saveBans writes the ban list, first honouring any clear records that
// `camgate ban clear` left in the file.
func (p *Policy) saveBans() error {
	p.saveMu.Lock()
	defer p.saveMu.Unlock()
	return p.saveBansLocked()
}

// saveBansLocked is saveBans with saveMu held.
func (p *Policy) saveBansLocked() error {
	if p.stateDir == "" {
		return nil
	}
	now := p.now()
	err := withBanFile(p.stateDir, func(f *banFile) (bool, error) {
		for _, cr := range f.Cleared {
			p.applyClear(cr, now)
		}
		f.Cleared = nil
		f.Bans = p.bansNow()
		return true, nil
	})
	p.bmu.Lock()
	p.stamp = stampOf(BanFile(p.stateDir))
	p.bmu.Unlock()
	return err
}

// syncBans merges the ban file into memory: clear records are applied,
// bans in force that memory lacks are added. It reports whether anything
// changed, and rewrites the file when it consumed clear records.
func (p *Policy) syncBans() (bool, error) {
	p.saveMu.Lock()
	defer p.saveMu.Unlock()
	now := p.now()
	changed := false
	err := withBanFile(p.stateDir, func(f *banFile) (bool, error) {
		for _, cr := range f.Cleared {
			if n, cleared := p.applyClear(cr, now); n > 0 || len(cleared) > 0 {
				changed = true
				p.log.Info("bans lifted by camgate ban clear", "source", addrOrAll(cr.Source), "rule", orAll(cr.Rule), "count", n)
			}
		}
		p.bmu.Lock()
		for _, b := range f.Bans {
			if !b.Active(now) || !b.Source.IsValid() {
				continue
			}
			dup := false
			for _, o := range p.bans[b.Source] {
				dup = dup || (o.Rule == b.Rule && o.Device == b.Device)
			}
			if !dup {
				p.bans[b.Source] = append(p.bans[b.Source], b)
				changed = true
			}
		}
		p.bmu.Unlock()
		if len(f.Cleared) == 0 {
			return false, nil
		}
		f.Cleared = nil
		f.Bans = p.bansNow()
		return true, nil
	})
	p.bmu.Lock()
	p.stamp = stampOf(BanFile(p.stateDir))
	p.bmu.Unlock()
	return changed, err
}

// pollBans merges the ban file if another process changed it since it
// was last read, checking at most once per poll interval. This is how a
// running gateway picks up `camgate ban clear` without a goroutine: the
// next connection from a cleared source looks, and is admitted.
func (p *Policy) pollBans() {
	if p.stateDir == "" {
		return
	}
	now := int64(time.Since(p.start))
	last := p.lastPoll.Load()
	if now-last < int64(p.poll) || !p.lastPoll.CompareAndSwap(last, now) {
		return
	}
	p.bmu.Lock()
	was := p.stamp
	p.bmu.Unlock()
	if stampOf(BanFile(p.stateDir)) == was {
		return
	}
	if _, err := p.syncBans(); err != nil {
		p.log.Error("cannot read the ban list", "err", err)
	}
}

// Run checks the ban file for changes every poll interval and prunes
// expired bans once a minute, until ctx is done. It is optional:
// admission and Bans check the file too, so Run only makes a clear show
// in the log (and the file lose expired bans) without waiting for
// traffic.
func (p *Policy) Run(ctx context.Context) {
	t := time.NewTicker(p.poll)
	defer t.Stop()
	lastPrune := p.now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p.pollBans()
		if now := p.now(); now.Sub(lastPrune) >= time.Minute {
			lastPrune = now
			if p.pruneBans(now) {
				if err := p.saveBans(); err != nil {
					p.log.Error("cannot save the ban list", "err", err)
				}
			}
		}
	}
}

// pruneBans drops expired bans from memory and reports whether any were.
func (p *Policy) pruneBans(now time.Time) bool {
	p.bmu.Lock()
	defer p.bmu.Unlock()
	pruned := false
	for k, bs := range p.bans {
		keep := slices.DeleteFunc(bs, func(b Ban) bool { return !b.Active(now) })
		pruned = pruned || len(keep) != len(bs)
		if len(keep) == 0 {
			delete(p.bans, k)
		} else {
			p.bans[k] = keep
		}
	}
	return pruned
}
