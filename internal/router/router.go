// Package router asks the upstream home router to forward camgate's
// external ports to this host, with PCP (RFC 6887), NAT-PMP (RFC 6886) or
// UPnP IGD (versions 2 and 1), so that a user behind such a router gets
// remote access without opening the router's web page.
//
// camgate runs on a LAN box (a Raspberry Pi or NAS next to the DVR). For
// every enabled rule with `router: true`, the router forwards the rule's
// external port(s), per protocol, to this host's LAN address on the same
// port, where camgate listens and relays to the device:
//
//	internet ─► router WAN:8082 ─(mapping)─► camgate host:8082 ─(rule)─► DVR:80
//
// Typical use by `camgate serve`:
//
//	rc := router.New(router.Config{Logger: log, StateDir: stateDir})
//	go rc.Run(ctx)           // renews leases at half-life
//	rc.Sync(ctx, cfg)        // after every successful gateway.Apply
//	...
//	rc.Close(shutdownCtx)    // deletes every mapping it made
//
// Mode auto tries PCP, then NAT-PMP, then UPnP IGD2, then IGD1. Each
// mapping's outcome (mapped, conflict with a suggested free port, refused,
// unsupported, error) is reported per rule and port in Status, together
// with the router's WAN address and a CGNAT / double-NAT verdict.
// Mappings are persisted in StateDir before they are requested, so a
// crashed gateway renews or deletes them at its next start, without
// duplicates.
//
// Non-goals: IPv6 pinholes (PCP and IGD2 can do them; camgate's rules
// are IPv4 port forwards), mapping to other hosts (secure-mode routers
// refuse it, and camgate relays in userspace anyway), and choosing
// external ports on the user's behalf: a conflict is reported with a
// suggestion, never silently remapped.
package router

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/camgate/camgate/internal/config"
)

// Timeouts. The router is one hop away on the LAN: it answers in
// milliseconds or not at all.
const (
	// defaultRequestTimeout bounds one PCP or NAT-PMP exchange including
	// retransmissions (250 ms, 500 ms, 1 s), and the SSDP search.
	defaultRequestTimeout = 2 * time.Second
	// defaultSOAPTimeout bounds one UPnP HTTP request; some routers' UPnP
	// daemons are slow to write their first byte.
	defaultSOAPTimeout = 3 * time.Second
	// defaultRetryInterval is how long a refused or unanswered mapping
	// waits before it is asked again, and a failed discovery before the
	// next one.
	defaultRetryInterval = time.Minute
	// defaultSyncTimeout bounds one Sync, so serve is never held up for
	// long; mappings not reached stay pending for Run.
	defaultSyncTimeout = 30 * time.Second
	// maxRetryInterval caps the backoff of a mapping that keeps failing.
	maxRetryInterval = time.Hour
	// maxQuietTimeouts is how many requests in a row may go unanswered
	// before a pass stops asking a router that has gone quiet.
	maxQuietTimeouts = 3
	// idleWake is how often Run looks around when nothing is due.
	idleWake = time.Hour
)

// Config configures a Client. The zero value is usable: nothing is
// persisted and the router is found through the default route.
type Config struct {
	// Logger receives state changes of mappings and discovery. Nil
	// means discard.
	Logger *slog.Logger
	// StateDir holds the lease file (router-leases.json) used to reclaim
	// mappings after a crash. Empty means no persistence: mappings left
	// by a crash expire on their own after the lease.
	StateDir string
	// DefaultGateway finds the router when the config names none. Nil
	// means the IPv4 default route from /proc/net/route.
	DefaultGateway func() (netip.Addr, error)
	// UnicastSSDPOnly sends the UPnP search only to the gateway's own
	// address, never to the 239.255.255.250 multicast group. False (the
	// default) sends both; tests on loopback set it so that nothing
	// leaves the machine.
	UnicastSSDPOnly bool
	// RequestTimeout bounds each request to the router: one PCP or
	// NAT-PMP exchange with its retransmissions, one SOAP call, the SSDP
	// search. 0 means 2 s (3 s for SOAP).
	RequestTimeout time.Duration
	// RetryInterval is how long Run waits before asking again for a
	// mapping that failed, and before looking for a router again. 0
	// means one minute.
	RetryInterval time.Duration
	// SyncTimeout bounds one Sync (and one Run pass). 0 means 30 s.
	SyncTimeout time.Duration
}

func (c *Client) requestTimeout() time.Duration {
	return cmp.Or(c.cfg.RequestTimeout, defaultRequestTimeout)
}

func (c *Client) soapTimeout() time.Duration {
	return cmp.Or(c.cfg.RequestTimeout, defaultSOAPTimeout)
}

func (c *Client) retryInterval() time.Duration {
	return cmp.Or(c.cfg.RetryInterval, defaultRetryInterval)
}

func (c *Client) syncTimeout() time.Duration {
	return cmp.Or(c.cfg.SyncTimeout, defaultSyncTimeout)
}

// Client keeps the router's mappings in line with the rule table. Its
// methods are safe for concurrent use; conversations with the router are
// serialised.
type Client struct {
	cfg  Config
	log  *slog.Logger
	kick chan struct{} // wakes Run after Sync changed the plan

	opMu     sync.Mutex // serialises router conversations; guards following
	settings config.Router
	want     map[key]want
	order    []key          // wanted keys in rule order
	dups     []Mapping      // rules whose port another rule already claimed
	leases   map[key]*lease // current mappings, via m
	stale    []*lease       // mappings to delete: removed rules, other routers, earlier runs
	m        mapper         // the router in use; nil until one answers
	local    netip.Addr     // this host's LAN address toward m
	discErr  error          // why m is nil
	discAt   time.Time      // last discovery attempt
	extIP    netip.Addr
	epoch    epochMark
	loaded   bool // state file read
	closed   bool
	saved    []byte // last state file content written
	updated  time.Time

	mu     sync.Mutex // guards following
	status Status
}

// want is one mapping the rule table asks for.
type want struct {
	rule   string
	desc   string
	listen string     // the rule's listen address
	la     netip.Addr // parsed; invalid if it does not parse
}

// listensFor reports whether the rule listens where the router will send
// its traffic: on every address, or on local itself.
func (w want) listensFor(local netip.Addr) bool {
	return w.la.IsValid() && (w.la.IsUnspecified() || w.la.Unmap() == local)
}

// epochMark remembers the router's last epoch to notice reboots.
type epochMark struct {
	valid  bool
	server uint32
	client time.Time
}

// New returns a Client. It does nothing until Sync.
func New(cfg Config) *Client {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c := &Client{cfg: cfg, log: log.With("component", "router"), kick: make(chan struct{}, 1),
		want: map[key]want{}, leases: map[key]*lease{}}
	c.status = Status{Mode: string(config.RouterOff), WAN: WANUnknown, Mappings: []Mapping{}}
	return c
}

// Status returns a snapshot. It never waits for the router.
func (c *Client) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.status
	s.Mappings = slices.Clone(c.status.Mappings)
	return s
}

// Sync reconciles the router's mappings with cfg: for cfg.Router.Mode
// other than off, every enabled rule with Router=true gets a mapping per
// protocol and external port (one per port of a range) to this host's
// LAN address, internal port = external port. Mappings of removed or
// disabled rules are deleted. Sync is bounded by Config.SyncTimeout;
// per-mapping problems are reported in Status, and the error is only for
// total failure (no router found: ErrNoRouter).
func (c *Client) Sync(ctx context.Context, cfg *config.Config) error {
	c.opMu.Lock()
	defer c.opMu.Unlock()
	if c.closed {
		return ErrClosed
	}
	defer c.wake()
	ctx, cancel := context.WithTimeout(ctx, c.syncTimeout())
	defer cancel()
	c.loadStateLocked()
	rc := cfg.Router
	changed := settingsChanged(c.settings, rc)
	c.settings = rc
	c.setWantLocked(cfg)
	if !rc.Enabled() {
		c.dropMapperLocked()
		c.removeStaleLocked(ctx, true)
		c.finishLocked()
		return nil
	}
	if c.m == nil || changed || c.localChanged() {
		if err := c.discoverLocked(ctx); err != nil {
			c.removeStaleLocked(ctx, true)
			c.finishLocked()
			return err
		}
	}
	c.reconcileLocked(ctx, true)
	c.refreshExternalIPLocked(ctx)
	c.finishLocked()
	return nil
}

// Run renews leases at half-life, retries failed mappings and deletes
// stale ones, until ctx is done.
func (c *Client) Run(ctx context.Context) {
	t := time.NewTimer(idleWake)
	defer t.Stop()
	for {
		t.Reset(c.nextWake())
		select {
		case <-ctx.Done():
			return
		case <-c.kick:
		case <-t.C:
			c.maintain(ctx)
		}
	}
}

// Close deletes every mapping this client made (clean shutdown) and
// makes later Syncs fail with ErrClosed. Mappings the router did not
// confirm deleted stay in the state file for the next start; they also
// expire by themselves when their lease runs out.
func (c *Client) Close(ctx context.Context) error {
	c.opMu.Lock()
	defer c.opMu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	c.loadStateLocked()
	c.want, c.order, c.dups = map[key]want{}, nil, nil
	for _, k := range sortedKeys(c.leases) {
		c.stale = append(c.stale, c.leases[k])
	}
	c.leases = map[key]*lease{}
	c.removeStaleLocked(ctx, true)
	c.finishLocked()
	if n := len(c.stale); n > 0 {
		return fmt.Errorf("%d router mapping(s) could not be deleted (the router did not confirm); they expire with their lease, and the next start retries", n)
	}
	return nil
}

func (c *Client) wake() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func settingsChanged(a, b config.Router) bool {
	return a.EffectiveMode() != b.EffectiveMode() || a.GatewayAddr() != b.GatewayAddr() || a.LocalAddr() != b.LocalAddr()
}

// setWantLocked computes the wanted mappings from the rule table.
func (c *Client) setWantLocked(cfg *config.Config) {
	c.want, c.order, c.dups = map[key]want{}, nil, nil
	if !cfg.Router.Enabled() {
		return
	}
	owner := map[key]string{}
	for i := range cfg.Rules {
		r := &cfg.Rules[i]
		if !r.IsEnabled() || !r.Router || r.ExternalPort.IsZero() {
			continue
		}
		listen := r.Listen(cfg.ListenAddress)
		la, _ := config.ListenAddr(listen)
		var protos []string
		if r.Proto().HasTCP() {
			protos = append(protos, "tcp")
		}
		if r.Proto().HasUDP() {
			protos = append(protos, "udp")
		}
		for _, p := range protos {
			for port := int(r.ExternalPort.First); port <= int(r.ExternalPort.Last); port++ {
				k := key{p, uint16(port)}
				if o, dup := owner[k]; dup {
					c.dups = append(c.dups, Mapping{Rule: r.Name, Protocol: p, ExternalPort: k.Port, InternalPort: k.Port,
						State: StateConflict, Message: fmt.Sprintf("rule %q already maps %s port %d on the router; a router forwards a port to one place only", o, p, k.Port)})
					continue
				}
				owner[k] = r.Name
				c.want[k] = want{rule: r.Name, desc: cfg.Router.Prefix() + " " + r.Name, listen: listen, la: la}
				c.order = append(c.order, k)
			}
		}
	}
}

// loadStateLocked reads the state file once; its leases become stale
// until a discovery adopts those that belong to the router in use.
func (c *Client) loadStateLocked() {
	if c.loaded || c.cfg.StateDir == "" {
		c.loaded = true
		return
	}
	c.loaded = true
	ls, err := readState(filepath.Join(c.cfg.StateDir, stateFileName))
	if err != nil {
		c.log.Warn("router lease file: some entries were ignored", "err", err)
	}
	if len(ls) > 0 {
		c.log.Info("found router mappings from an earlier run; they will be renewed or deleted", "count", len(ls))
	}
	for _, l := range ls {
		l.state = StatePending
		c.stale = append(c.stale, l)
	}
}

// dropMapperLocked forgets the router in use; its mappings become stale.
func (c *Client) dropMapperLocked() {
	for _, k := range sortedKeys(c.leases) {
		c.stale = append(c.stale, c.leases[k])
	}
	c.leases = map[key]*lease{}
	c.m, c.discErr, c.epoch = nil, nil, epochMark{}
}

// discoverLocked finds the router per the settings and adopts the
// leases that belong to it.
func (c *Client) discoverLocked(ctx context.Context) error {
	// The mappings made so far stay where they are until another router
	// answers: a router that is only slow to come back must not see them
	// deleted.
	c.m, c.epoch = nil, epochMark{}
	c.discAt = time.Now()
	gw, local, err := c.endpoints()
	if err != nil {
		c.discErr = fmt.Errorf("%w: %v", ErrNoRouter, err)
		c.markAllLocked(StateError, err.Error())
		return c.discErr
	}
	c.local = local
	mode := c.settings.EffectiveMode()
	results := c.probeAll(ctx, protocolsFor(mode), gw, local, true)
	var found *probeResult
	for i := range results {
		if results[i].err == nil && results[i].m != nil {
			found = &results[i]
			break
		}
	}
	if found == nil {
		err := noRouterError(mode, gw, results)
		level := slog.LevelWarn
		if c.discErr != nil && c.discErr.Error() == err.Error() {
			level = slog.LevelDebug // said so already; retries are quiet
		}
		c.discErr = err
		c.log.Log(ctx, level, "no router answered; will try again", "mode", mode, "gateway", gw, "retry_in", c.retryInterval(), "err", err)
		c.markAllLocked(StateError, err.Error())
		return err
	}
	c.m, c.discErr = found.m, nil
	if found.ext.IsValid() {
		c.extIP = found.ext
	}
	if found.hasEpoch {
		c.epoch = epochMark{valid: true, server: found.epoch, client: time.Now()}
	}
	device, control := c.m.describe()
	c.log.Info("router found", "protocol", c.m.protocol(), "gateway", gw, "local_address", local, "device", device, "control_url", control)
	// Mappings made through another router, protocol or address are
	// deleted through that one; those from an earlier run or an earlier
	// discovery that this router can renew are adopted (PCP needs their
	// nonce, and nobody wants a mapping deleted and made again).
	for _, k := range sortedKeys(c.leases) {
		if l := c.leases[k]; !l.belongsTo(c.m, c.local) {
			delete(c.leases, k)
			c.stale = append(c.stale, l)
		}
	}
	kept := c.stale[:0]
	for _, l := range c.stale {
		if l.belongsTo(c.m, c.local) && c.leases[l.key()] == nil {
			c.leases[l.key()] = l
			continue
		}
		kept = append(kept, l)
	}
	c.stale = kept
	return nil
}

// localChanged reports whether this host's address toward the router in
// use has changed (a new DHCP lease), which calls for a new discovery.
func (c *Client) localChanged() bool {
	if c.m == nil || c.settings.LocalAddr().IsValid() {
		return false
	}
	local, err := localAddrFor(c.m.gateway())
	return err == nil && local != c.local
}

// endpoints resolves the gateway and this host's LAN address.
func (c *Client) endpoints() (gw, local netip.Addr, err error) {
	gw = c.settings.GatewayAddr()
	if !gw.IsValid() {
		find := c.cfg.DefaultGateway
		if find == nil {
			find = defaultGateway
		}
		if gw, err = find(); err != nil {
			return gw, local, err
		}
	}
	local = c.settings.LocalAddr()
	if !local.IsValid() {
		if local, err = localAddrFor(gw); err != nil {
			return gw, local, err
		}
	}
	return gw, local, nil
}

func protocolsFor(mode config.RouterMode) []Protocol {
	switch mode {
	case config.RouterPCP:
		return []Protocol{ProtoPCP}
	case config.RouterNATPMP:
		return []Protocol{ProtoNATPMP}
	case config.RouterUPnP:
		return []Protocol{ProtoUPnPIGD2}
	}
	return []Protocol{ProtoPCP, ProtoNATPMP, ProtoUPnPIGD2}
}

// probeResult is the outcome of asking the gateway one protocol.
type probeResult struct {
	proto    Protocol
	m        mapper
	ext      netip.Addr
	epoch    uint32
	hasEpoch bool
	err      error
}

// probeAll asks the gateway every protocol at once (so that auto mode
// costs one timeout, not three, when nothing answers) and returns the
// results in the order given. With firstOnly, the probes of lower
// priority are cancelled as soon as one answers whose betters all failed.
// Every goroutine is waited for.
func (c *Client) probeAll(ctx context.Context, protos []Protocol, gw, local netip.Addr, firstOnly bool) []probeResult {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := make([]probeResult, len(protos))
	done := make([]bool, len(protos))
	type indexed struct {
		i int
		r probeResult
	}
	ch := make(chan indexed, len(protos))
	for i, p := range protos {
		go func() { ch <- indexed{i, c.probe(ctx, p, gw, local)} }()
	}
	for range protos {
		x := <-ch
		out[x.i], done[x.i] = x.r, true
		if !firstOnly {
			continue
		}
		// The best answer so far wins once everything better has failed.
		for j := range protos {
			if !done[j] {
				break
			}
			if out[j].err == nil {
				cancel()
				break
			}
		}
	}
	for i := range out {
		if out[i].err == nil && out[i].m == nil {
			out[i].err = errors.New("no answer")
		}
	}
	return out
}

func (c *Client) probe(ctx context.Context, p Protocol, gw, local netip.Addr) probeResult {
	r := probeResult{proto: p}
	switch p {
	case ProtoPCP:
		r.epoch, r.err = pcpProbe(ctx, gw, local, c.requestTimeout())
		r.hasEpoch = r.err == nil
		if r.err == nil {
			r.m = &pcpMapper{gw: gw, local: local, timeout: c.requestTimeout()}
		}
	case ProtoNATPMP:
		m := newNATPMPMapper(gw, local, c.requestTimeout())
		res, err := m.client.GetExternalAddress()
		if err != nil {
			r.err = m.classify(err)
			break
		}
		r.m, r.ext = m, netip.AddrFrom4(res.ExternalIPAddress)
		r.epoch, r.hasEpoch = res.SecondsSinceStartOfEpoc, true
	default:
		m, err := discoverUPnP(ctx, c.log, gw, local, !c.cfg.UnicastSSDPOnly, c.soapTimeout(), c.requestTimeout())
		if err != nil {
			r.err = err
			break
		}
		r.m, r.proto = m, m.proto
		if ip, err := m.externalIP(ctx); err == nil {
			r.ext = ip
		}
	}
	return r
}

func noRouterError(mode config.RouterMode, gw netip.Addr, rs []probeResult) error {
	errs := make([]error, 0, len(rs))
	for _, r := range rs {
		errs = append(errs, fmt.Errorf("%s: %w", family(r.proto), r.err))
	}
	return fmt.Errorf("%w at %s (mode %s): %w", ErrNoRouter, gw, mode, errors.Join(errs...))
}

// markAllLocked sets every wanted mapping to state with msg.
func (c *Client) markAllLocked(state State, msg string) {
	now := time.Now()
	for _, k := range c.order {
		l := c.leaseForLocked(k)
		l.state, l.msg, l.suggested, l.retryAt = state, msg, 0, now.Add(c.retryInterval())
	}
}

// leaseForLocked returns the lease for k, creating it for the router in
// use (or a placeholder while none answers).
func (c *Client) leaseForLocked(k key) *lease {
	if l := c.leases[k]; l != nil {
		return l
	}
	l := &lease{Proto: k.Proto, Port: k.Port, Internal: c.local, state: StatePending}
	if c.m != nil {
		l.Method, l.Gateway = c.m.protocol(), c.m.gateway()
		if l.Method == ProtoPCP {
			l.Nonce = newNonce().String()
		}
		if u, ok := c.m.(*upnpMapper); ok {
			l.Service, l.Control = u.urn, u.control
		}
	}
	c.leases[k] = l
	return l
}

// reconcileLocked deletes unwanted mappings and asks for the wanted ones
// that are not mapped (all) or whose renewal is due (!all).
func (c *Client) reconcileLocked(ctx context.Context, all bool) {
	for _, k := range sortedKeys(c.leases) {
		l := c.leases[k]
		if _, ok := c.want[k]; !ok || (c.m != nil && !l.belongsTo(c.m, c.local)) {
			delete(c.leases, k)
			c.stale = append(c.stale, l)
		}
	}
	c.removeStaleLocked(ctx, all)
	if c.m == nil {
		return
	}
	now := time.Now()
	var todo []*lease
	for _, k := range c.order {
		w := c.want[k]
		l := c.leaseForLocked(k)
		l.Rule = w.rule
		if !w.listensFor(c.local) {
			l.state, l.suggested = StateError, 0
			l.msg = fmt.Sprintf("the rule listens on %s only, but the router forwards to %s; set the rule's listen_address to 0.0.0.0 or %s", w.listen, c.local, c.local)
			if l.Held {
				delete(c.leases, k)
				c.stale = append(c.stale, l)
			}
			continue
		}
		due := l.state != StateMapped || !now.Before(l.renewAt) || l.Desc != w.desc
		if !all && l.state != StateMapped && now.Before(l.retryAt) {
			due = false
		}
		if due {
			l.Desc = w.desc
			todo = append(todo, l)
		}
	}
	if len(todo) == 0 {
		return
	}
	// Low ports last: routers built on miniupnpd (OpenWrt, many ISP
	// boxes) forbid them by default and, over PCP and NAT-PMP, search
	// the whole port space before answering, stalling for seconds; the
	// other mappings should not wait behind that.
	slices.SortStableFunc(todo, func(a, b *lease) int {
		return cmp.Compare(lowPort(a.Port), lowPort(b.Port))
	})
	// Record the intent (with PCP nonces) before asking, so a crash in
	// between still leaves enough to reclaim.
	for _, l := range todo {
		l.wasHeld, l.Held = l.Held, true
	}
	c.saveStateLocked()
	c.mapAllLocked(ctx, todo)
	if c.m == nil {
		return // it went quiet
	}
	// A router reboot noticed on the way (epoch) wiped the mappings not
	// yet renewed in this pass; ask for them once more.
	var again []*lease
	for _, k := range c.order {
		if l := c.leases[k]; l != nil && l.state == StateMapped && !time.Now().Before(l.renewAt) {
			again = append(again, l)
		}
	}
	if len(again) > 0 {
		c.mapAllLocked(ctx, again)
	}
}

// mapAllLocked asks for each lease in turn, stopping early (leaving the
// rest pending) when the router has gone quiet or time is up.
func (c *Client) mapAllLocked(ctx context.Context, todo []*lease) {
	quiet := 0
	for _, l := range todo {
		if ctx.Err() != nil || quiet >= maxQuietTimeouts || c.m == nil {
			why := "camgate ran out of time for this pass"
			if quiet >= maxQuietTimeouts {
				why = "the router stopped answering"
			}
			c.setStateLocked(l, StatePending, "not asked yet: "+why+"; will retry", 0)
			l.retryAt = time.Now().Add(c.retryInterval())
			l.Held = l.wasHeld // never sent: the router has what it had
			continue
		}
		if c.mapOneLocked(ctx, l) {
			quiet++
		} else {
			quiet = 0
		}
	}
	if quiet >= maxQuietTimeouts {
		c.log.Warn("the router stopped answering; will look for it again", "gateway", c.m.gateway())
		c.discErr = fmt.Errorf("%w: the router at %s stopped answering", ErrNoRouter, c.m.gateway())
		c.m = nil // rediscover next time; the leases stay for when it is back
	}
}

// mapOneLocked asks for one mapping and records the outcome. It reports
// whether the router failed to answer in time.
func (c *Client) mapOneLocked(ctx context.Context, l *lease) (timedOut bool) {
	lifetime := c.settings.LeaseDuration()
	g, err := c.m.add(ctx, l, lifetime)
	now := time.Now()
	if g.hasEpoch {
		c.checkEpochLocked(g.epoch, now)
	}
	if err == nil {
		l.Held = true
		l.suggested, l.fails = 0, 0
		if g.external.Addr().IsValid() && !g.external.Addr().IsUnspecified() {
			l.ExternalIP = g.external.Addr()
			c.extIP = l.ExternalIP
		}
		renew := g.lifetime / 2
		l.Expires = now.Add(g.lifetime)
		if g.permanent {
			l.Expires, renew = time.Time{}, lifetime/2
		}
		l.renewAt = now.Add(renew)
		c.setStateLocked(l, StateMapped, "", 0)
		return false
	}
	me := asMapError(err)
	l.fails++
	if errors.Is(err, errTimeout) {
		// The router may have made the mapping and lost only the answer:
		// keep it Held so that it is deleted later.
		msg, suggested := err.Error(), uint16(0)
		if l.Port < 1024 && family(l.Method) != "upnp" {
			suggested = c.highPortLocked(l)
			msg = fmt.Sprintf("%s; routers built on miniupnpd (OpenWrt and many ISP boxes) do not answer PCP or NAT-PMP for ports their rules forbid, "+
				"and by default they forbid ports below 1024: use an external port of 1024 or more, such as %d, or mode upnp, whose routers say so plainly", err, suggested)
		}
		c.setStateLocked(l, StateError, msg, suggested)
		l.retryAt = now.Add(c.backoff(l.fails))
		return true
	}
	if me.state == StateConflict {
		if s, ok := c.m.(suggester); ok {
			port, holder := s.suggest(ctx, l, c.wantedLocked)
			if me.suggested == 0 {
				me.suggested = port
			}
			if holder != "" {
				me.msg += "; port " + strconv.Itoa(int(l.Port)) + " is " + holder
			}
		}
		if me.suggested != 0 {
			me.msg += fmt.Sprintf("; external port %d is free: change the rule's external_port, or free %d on the router", me.suggested, l.Port)
		}
	}
	if me.state == StateRefused && l.Port < 1024 && me.suggested == 0 {
		me.suggested = c.highPortLocked(l)
		me.msg += fmt.Sprintf("; many routers allow only external ports of 1024 or more: try %d", me.suggested)
	}
	// A definite no means the router does not hold the mapping (a
	// refused renewal means it dropped it); after a garbled answer it
	// might, so it stays Held and is deleted when no longer wanted.
	l.Held = me.state == StateError
	l.Expires = time.Time{}
	c.setStateLocked(l, me.state, me.Error(), me.suggested)
	l.retryAt = now.Add(c.backoff(l.fails))
	return false
}

// backoff is the wait before the n-th retry of a failing mapping: the
// retry interval, doubled per failure, up to an hour.
func (c *Client) backoff(n int) time.Duration {
	d := c.retryInterval()
	for i := 1; i < n && d < maxRetryInterval; i++ {
		d *= 2
	}
	return min(d, max(maxRetryInterval, c.retryInterval()))
}

func lowPort(p uint16) int {
	if p < 1024 {
		return 1
	}
	return 0
}

// highPortLocked suggests a port of 1024 or more for a low one that the
// router will not map: 10000 plus the port (554 becomes 10554), or the
// next one no rule wants.
func (c *Client) highPortLocked(l *lease) uint16 {
	for p := 10000 + int(l.Port); p <= 65535; p++ {
		if !c.wantedLocked(l.Proto, uint16(p)) {
			return uint16(p)
		}
	}
	return 0
}

// wantedLocked reports whether camgate wants proto/port for some rule.
func (c *Client) wantedLocked(proto string, port uint16) bool {
	_, ok := c.want[key{proto, port}]
	return ok
}

// setStateLocked records a state change and logs transitions only, so
// that a retried conflict does not fill the log every minute.
func (c *Client) setStateLocked(l *lease, s State, msg string, suggested uint16) {
	if l.state != s || l.msg != msg {
		attrs := []any{"rule", l.Rule, "protocol", l.Proto, "port", l.Port, "state", s}
		switch s {
		case StateMapped:
			c.log.Info("router mapping made", append(attrs, "via", l.Method, "to", l.Internal, "expires", l.Expires.Round(time.Second))...)
		case StatePending:
			c.log.Debug("router mapping pending", append(attrs, "why", msg)...)
		default:
			if suggested != 0 {
				attrs = append(attrs, "suggested_port", suggested)
			}
			c.log.Warn("router mapping failed", append(attrs, "why", msg)...)
		}
	}
	l.state, l.msg, l.suggested = s, msg, suggested
}

// checkEpochLocked notices a router reboot: every mapping is then due.
func (c *Client) checkEpochLocked(server uint32, now time.Time) {
	if c.epoch.valid && epochLost(c.epoch.server, c.epoch.client, server, now) {
		c.log.Warn("the router restarted and lost its mappings (epoch went back); asking again for all of them",
			"previous_epoch", c.epoch.server, "epoch", server)
		for _, l := range c.leases {
			if l.state == StateMapped {
				l.renewAt = now
			}
		}
	}
	c.epoch = epochMark{valid: true, server: server, client: now}
}

// removeStaleLocked deletes stale mappings. With all false, only those
// whose retry time has come are tried.
func (c *Client) removeStaleLocked(ctx context.Context, all bool) {
	now := time.Now()
	var kept []*lease
	quiet := map[string]int{} // per router: unanswered deletes in a row
	for _, l := range c.stale {
		where := string(l.Method) + "@" + l.Gateway.String()
		switch {
		case !l.Held, !l.Expires.IsZero() && now.After(l.Expires):
			continue // the router does not have it any more
		case !l.Method.valid():
			continue // never asked: a placeholder from a failed discovery
		case !all && now.Before(l.retryAt):
			kept = append(kept, l)
			continue
		case quiet[where] >= maxQuietTimeouts || ctx.Err() != nil:
			l.retryAt = now.Add(c.retryInterval()) // not now: that router is quiet
			kept = append(kept, l)
			continue
		}
		m := c.m
		if !l.belongsTo(m, c.local) {
			var err error
			if m, err = mapperFor(l, c.requestTimeoutFor(l.Method)); err != nil {
				c.log.Warn("cannot delete a stale router mapping", "protocol", l.Proto, "port", l.Port, "err", err)
				continue
			}
		}
		err := m.remove(ctx, l)
		if err == nil {
			c.log.Info("router mapping deleted", "rule", l.Rule, "protocol", l.Proto, "port", l.Port, "via", l.Method)
			continue
		}
		if errors.Is(err, errTimeout) {
			quiet[where]++
		}
		c.log.Warn("could not delete a router mapping; will retry", "rule", l.Rule, "protocol", l.Proto, "port", l.Port, "via", l.Method, "err", err)
		l.retryAt = now.Add(c.retryInterval())
		kept = append(kept, l)
	}
	c.stale = kept
}

func (p Protocol) valid() bool {
	switch p {
	case ProtoPCP, ProtoNATPMP, ProtoUPnPIGD1, ProtoUPnPIGD2:
		return true
	}
	return false
}

func (c *Client) requestTimeoutFor(p Protocol) time.Duration {
	if family(p) == "upnp" {
		return c.soapTimeout()
	}
	return c.requestTimeout()
}

// maintain is one Run pass: rediscover if needed, renew what is due,
// retry failures, delete stale mappings.
func (c *Client) maintain(ctx context.Context) {
	c.opMu.Lock()
	defer c.opMu.Unlock()
	if c.closed {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, c.syncTimeout())
	defer cancel()
	if c.settings.Enabled() && len(c.order) > 0 && (c.localChanged() ||
		c.m == nil && !time.Now().Before(c.discAt.Add(c.retryInterval()))) {
		if err := c.discoverLocked(ctx); err != nil {
			c.removeStaleLocked(ctx, false)
			c.finishLocked()
			return
		}
	}
	c.reconcileLocked(ctx, false)
	c.refreshExternalIPLocked(ctx)
	c.finishLocked()
}

// nextWake is how long Run sleeps before the next due renewal, retry or
// discovery.
func (c *Client) nextWake() time.Duration {
	c.opMu.Lock()
	defer c.opMu.Unlock()
	now := time.Now()
	next := now.Add(idleWake)
	early := func(t time.Time) {
		if t.Before(next) {
			next = t
		}
	}
	if c.closed {
		return idleWake
	}
	if c.settings.Enabled() && c.m == nil && len(c.order) > 0 {
		early(c.discAt.Add(c.retryInterval()))
	}
	if c.m != nil {
		for _, k := range c.order {
			if l := c.leases[k]; l != nil {
				if l.state == StateMapped {
					early(l.renewAt)
				} else {
					early(l.retryAt)
				}
			}
		}
	}
	for _, l := range c.stale {
		early(l.retryAt)
	}
	return max(next.Sub(now), 0)
}

// finishLocked refreshes the WAN address, saves the state file and
// publishes the status.
func (c *Client) finishLocked() {
	c.updated = time.Now()
	c.saveStateLocked()
	c.publishLocked()
}

// refreshExternalIPLocked asks the router for its WAN address.
func (c *Client) refreshExternalIPLocked(ctx context.Context) {
	if c.m == nil || ctx.Err() != nil {
		return
	}
	ip, err := c.m.externalIP(ctx)
	if err != nil {
		c.log.Debug("cannot read the router's WAN address", "err", err)
		return
	}
	if ip.IsValid() && ip != c.extIP {
		class, advice := ClassifyWAN(ip)
		if class == WANPublic {
			c.log.Info("router WAN address", "external_ip", ip)
		} else {
			c.log.Warn("the router's WAN address is not public; forwarding will not work from the internet", "external_ip", ip, "verdict", class, "advice", advice)
		}
	}
	c.extIP = ip
}

// saveStateLocked writes the state file if its content changed.
func (c *Client) saveStateLocked() {
	if c.cfg.StateDir == "" {
		return
	}
	all := append(slices.Collect(maps.Values(c.leases)), c.stale...)
	data, err := encodeState(all)
	if err != nil || string(data) == string(c.saved) {
		return
	}
	if err := writeState(c.cfg.StateDir, data); err != nil {
		c.log.Warn("cannot save router leases; a crash now would leave mappings until they expire", "err", err)
		return
	}
	c.saved = data
}

// publishLocked builds the Status snapshot.
func (c *Client) publishLocked() {
	s := Status{Mode: string(c.settings.EffectiveMode()), WAN: WANUnknown, Updated: c.updated, Mappings: []Mapping{}, Stale: len(c.stale)}
	s.LocalAddress = c.local
	if c.m != nil {
		s.Protocol = c.m.protocol()
		s.Gateway = c.m.gateway()
		s.Device, s.ControlURL = c.m.describe()
	} else if gw := c.settings.GatewayAddr(); gw.IsValid() {
		s.Gateway = gw
	}
	if c.discErr != nil && c.settings.Enabled() {
		s.Error = c.discErr.Error()
	}
	if c.extIP.IsValid() {
		s.ExternalIP = c.extIP
		s.WAN, s.Advice = ClassifyWAN(c.extIP)
	}
	for _, k := range c.order {
		w := c.want[k]
		l := c.leases[k]
		m := Mapping{Rule: w.rule, Protocol: k.Proto, ExternalPort: k.Port, InternalAddr: c.local, InternalPort: k.Port, State: StatePending}
		if l != nil {
			m.State, m.Message, m.SuggestedPort = l.state, l.msg, l.suggested
			if l.state == StateMapped {
				m.Expires = l.Expires
			}
		}
		s.Mappings = append(s.Mappings, m)
	}
	s.Mappings = append(s.Mappings, c.dups...)
	c.mu.Lock()
	c.status = s
	c.mu.Unlock()
}

func sortedKeys(m map[key]*lease) []key {
	ks := make([]key, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.SortFunc(ks, func(a, b key) int {
		return cmp.Or(cmp.Compare(a.Proto, b.Proto), cmp.Compare(a.Port, b.Port))
	})
	return ks
}
