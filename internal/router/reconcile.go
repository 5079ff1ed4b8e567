package router

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/camgate/camgate/internal/config"
)

// Reconciliation: the wanted mappings (from the rule table) against the
// leases camgate holds, the state file, and the Status snapshot. Every
// method here runs with opMu held.

// settingsChanged reports whether the router must be looked for again.
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
	rtp := false // the RTP range is wanted once, for the first RTSP rule
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
		// An RTSP rule's viewers on UDP get media from the external RTP
		// range (docs/RTSP.md), which the router must forward as well.
		if !rtp && r.Proto().HasTCP() && r.GuardService() == config.ServiceRTSP && !r.TLS.Terminate() {
			rtp = true
			pr := cfg.RTSP.Ports()
			for port := int(pr.First); port <= int(pr.Last); port++ {
				k := key{"udp", uint16(port)}
				if _, dup := owner[k]; dup {
					continue
				}
				owner[k] = r.Name
				c.want[k] = want{rule: r.Name, desc: cfg.Router.Prefix() + " " + r.Name + " rtp", listen: listen, la: la}
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
