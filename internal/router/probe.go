package router

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/camgate/camgate/internal/config"
)

// Report is a read-only look at the router, for `camgate router status`
// when no gateway is running: what answers, the WAN address and verdict,
// the router's mapping list (UPnP only) and where each router: true rule
// stands in it. Probe changes nothing on the router.
type Report struct {
	// Mode is the configured mode; with off, every protocol is probed
	// anyway so the user can see what would work.
	Mode string `json:"mode"`
	// Gateway and LocalAddress are the router and this host's address
	// toward it.
	Gateway      netip.Addr `json:"gateway,omitzero"`
	LocalAddress netip.Addr `json:"local_address,omitzero"`
	// Checks has one entry per protocol probed, in auto mode's order.
	Checks []Check `json:"checks"`
	// Protocol is the one Sync would use (the first that answered).
	Protocol   Protocol   `json:"protocol,omitempty"`
	Device     string     `json:"device,omitempty"`
	ControlURL string     `json:"control_url,omitempty"`
	ExternalIP netip.Addr `json:"external_ip,omitzero"`
	WAN        WANClass   `json:"wan"`
	Advice     string     `json:"advice,omitempty"`
	// Entries is the router's mapping table, read with UPnP's
	// GetGenericPortMappingEntry; EntriesNote says why it is empty when
	// it could not be read (PCP and NAT-PMP cannot list mappings).
	Entries     []Entry `json:"entries"`
	EntriesNote string  `json:"entries_note,omitempty"`
	// Rules has one entry per router: true rule, protocol and port, with
	// its state judged from Entries: mapped (to this host), conflict
	// (another host holds it) or pending (not mapped).
	Rules []Mapping `json:"rules"`
	// Error is set when nothing answered.
	Error string `json:"error,omitempty"`
}

// Check is the outcome of probing one protocol.
type Check struct {
	Protocol  Protocol `json:"protocol"`
	Available bool     `json:"available"`
	Detail    string   `json:"detail"`
}

// Probe looks at the router with cfg's router section without changing
// anything: PCP ANNOUNCE, NAT-PMP's external-address request and UPnP
// discovery plus GetExternalIPAddress and GetGenericPortMappingEntry.
func (c *Client) Probe(ctx context.Context, cfg *config.Config) (*Report, error) {
	rc := cfg.Router
	mode := rc.EffectiveMode()
	rep := &Report{Mode: string(mode), WAN: WANUnknown, Checks: []Check{}, Entries: []Entry{}, Rules: []Mapping{}}
	probeCfg := *cfg
	probeCfg.Router.Mode = config.RouterAuto // list the router: true rules even when off
	sub := &Client{cfg: c.cfg, log: c.log, settings: rc, want: map[key]want{}, leases: map[key]*lease{}}
	sub.setWantLocked(&probeCfg)
	gw, local, err := sub.endpoints()
	if err != nil {
		rep.Error = err.Error()
		return rep, fmt.Errorf("%w: %v", ErrNoRouter, err)
	}
	rep.Gateway, rep.LocalAddress = gw, local
	protos := protocolsFor(mode)
	if mode == config.RouterOff {
		protos = protocolsFor(config.RouterAuto)
	}
	results := c.probeAll(ctx, protos, gw, local, false)
	var upnp *upnpMapper
	for _, r := range results {
		ch := Check{Protocol: r.proto, Available: r.err == nil}
		switch {
		case r.err != nil:
			ch.Detail = r.err.Error()
		case r.hasEpoch:
			ch.Detail = fmt.Sprintf("answers (epoch %d s)", r.epoch)
		default:
			ch.Detail = "answers"
		}
		if r.err == nil {
			if r.ext.IsValid() && r.ext.IsGlobalUnicast() {
				ch.Detail += fmt.Sprintf(", WAN address %s", r.ext)
			}
			if rep.Protocol == "" {
				rep.Protocol = r.proto
				rep.Device, rep.ControlURL = r.m.describe()
			}
			if !rep.ExternalIP.IsValid() && r.ext.IsValid() && !r.ext.IsUnspecified() {
				rep.ExternalIP = r.ext
			}
			if u, ok := r.m.(*upnpMapper); ok {
				upnp = u
				if rep.Device == "" {
					rep.Device, rep.ControlURL = u.describe()
				}
			}
		}
		rep.Checks = append(rep.Checks, ch)
	}
	var noRouter error
	if rep.Protocol == "" {
		noRouter = noRouterError(mode, gw, results)
		rep.Error = noRouter.Error()
	}
	if rep.ExternalIP.IsValid() {
		rep.WAN, rep.Advice = ClassifyWAN(rep.ExternalIP)
	}
	switch {
	case upnp != nil:
		entries, err := upnp.list(ctx)
		rep.Entries = append(rep.Entries, entries...)
		if err != nil {
			rep.EntriesNote = "the list may be incomplete: " + err.Error()
		}
	case rep.Protocol != "":
		rep.EntriesNote = "PCP and NAT-PMP cannot list mappings, and UPnP did not answer; the rule states below are unknown"
	}
	for _, k := range sub.order {
		w := sub.want[k]
		m := Mapping{Rule: w.rule, Protocol: k.Proto, ExternalPort: k.Port, InternalAddr: local, InternalPort: k.Port, State: StatePending, Message: "not mapped"}
		if upnp == nil {
			m.Message = "unknown: the router cannot list its mappings"
		}
		for _, e := range rep.Entries {
			if e.Protocol != k.Proto || e.ExternalPort != k.Port {
				continue
			}
			if e.InternalClient == local.String() && e.InternalPort == k.Port {
				left := "permanent"
				if e.LeaseSeconds > 0 {
					left = (time.Duration(e.LeaseSeconds) * time.Second).String() + " left"
				}
				m.State, m.Message = StateMapped, fmt.Sprintf("%q, %s", e.Description, left)
			} else {
				m.State = StateConflict
				m.Message = fmt.Sprintf("held by %s:%d (%q)", e.InternalClient, e.InternalPort, e.Description)
			}
		}
		rep.Rules = append(rep.Rules, m)
	}
	rep.Rules = append(rep.Rules, sub.dups...)
	return rep, noRouter
}
