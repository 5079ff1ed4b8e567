package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/camgate/camgate/internal/config"
)

// Discovery: which router, which address of this host, and which
// protocol answers.

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
