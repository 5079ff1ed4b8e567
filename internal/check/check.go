// Package check tests whether each port-forwarding rule works, in three
// layers, and says in one line what is wrong and how to fix it:
//
//  1. gateway: camgate's listener is up on the rule's external port, for
//     each protocol, and no other program holds that port;
//  2. inside: the device answers on its internal port, with a probe that
//     fits the port (HTTP, HTTPS, RTSP, the server/SDK port, UDP);
//  3. outside: the public address is usable for port forwarding (not
//     CGNAT, not private) and the same probe succeeds through it, by a
//     hairpin connection to public-IP:external-port or from a source the
//     caller names (an address to bind, or a network namespace).
//
// Each layer's result is OK (✓), Fail (✗) or Unknown (?, inconclusive).
// Results come from real probes only. A failed hairpin is Unknown, never
// Fail, because many routers cannot loop traffic back to their own public
// address.
//
// Usage:
//
//	rep, err := check.Run(ctx, check.Config{PublicIP: ip}, cfg, nil) // every enabled rule
//	rep.Failed()      // true when any layer is ✗
//	rep.WriteText(os.Stdout)
//	json.NewEncoder(os.Stdout).Encode(rep)
//
// The probes are polite: one connection per layer and protocol, no
// credentials, nothing written to the device. Non-goals: testing from the
// real internet (the caller supplies an outside vantage point with
// Config.From), and port ranges beyond their first port.
package check

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/portowner"
)

// DefaultTimeout bounds each probe when Config.Timeout is zero. Devices on
// the LAN answer in milliseconds; a busy DVR can take a second or two.
const DefaultTimeout = 3 * time.Second

// Config configures a Run. The zero value checks layers 1 and 2 and uses
// the config file's public_ip for layer 3.
type Config struct {
	// PublicIP is the site's public address given by the user
	// (--public-ip). It wins over the router and the config file. The
	// zero Addr means not given.
	PublicIP netip.Addr
	// RouterWAN asks the upstream router for its WAN address (UPnP,
	// NAT-PMP or PCP), read-only. Nil means no router automation is
	// configured; it is used only when PublicIP is not given.
	RouterWAN func(ctx context.Context) (netip.Addr, error)
	// From is where the outside probe comes from: "" (this host: a hairpin
	// through the router), an IP address to bind as the source, or
	// "netns:NAME" (or "netns:/path/to/ns") to run the probe inside that
	// network namespace. See ParseFrom.
	From string
	// Timeout bounds each probe. Zero means DefaultTimeout.
	Timeout time.Duration
	// Parallel is how many rules are checked at once. Zero means 4.
	Parallel int
	// ProcRoot is where /proc is mounted, for finding which program holds
	// a port. Empty means "/proc".
	ProcRoot string
	// Now returns the current time, for certificate expiry. Nil means
	// time.Now.
	Now func() time.Time
	// Logger receives debug lines about probes. Nil discards.
	Logger *slog.Logger
	// KernelRules lists the rules nftables forwards in the kernel on this
	// host (package nft's InstalledRules). Nil means none are looked for.
	KernelRules func() (map[string]bool, error)
	// VPNProbe asks the running gateway for a short-lived WireGuard probe
	// identity, for the VPN's outside layer (vpn.go). Nil means check
	// cannot ask, and that layer is Unknown.
	VPNProbe func(ctx context.Context) (VPNProbe, error)
}

func (c *Config) timeout() time.Duration {
	if c.Timeout <= 0 {
		return DefaultTimeout
	}
	return c.Timeout
}

func (c *Config) now() time.Time {
	if c.Now == nil {
		return time.Now()
	}
	return c.Now()
}

func (c *Config) procRoot() string {
	if c.ProcRoot == "" {
		return "/proc"
	}
	return c.ProcRoot
}

func (c *Config) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger.With("component", "check")
}

// Status is a layer's verdict.
type Status string

// The verdicts.
const (
	OK      Status = "ok"      // ✓ the layer works
	Fail    Status = "fail"    // ✗ the layer is broken: see Reason and Fix
	Unknown Status = "unknown" // ? camgate cannot tell: see Reason
)

// Symbol returns ✓, ✗ or ?.
func (s Status) Symbol() string {
	switch s {
	case OK:
		return "✓"
	case Fail:
		return "✗"
	default:
		return "?"
	}
}

// Layer names one of the three layers.
type Layer string

// The layers, in the order they are checked.
const (
	LayerGateway Layer = "gateway"
	LayerInside  Layer = "inside"
	LayerOutside Layer = "outside"
)

// Result is one layer's verdict for one rule and protocol.
type Result struct {
	// Layer is gateway, inside or outside.
	Layer Layer `json:"layer"`
	// Protocol is tcp or udp.
	Protocol string `json:"protocol"`
	// Probe is what was sent (see Kind): http, https, tls, rtsp, sdk,
	// ssh, tcp, udp, rtp, discovery, or listener for the gateway layer.
	Probe Kind `json:"probe"`
	// Target is the address probed ("198.19.0.64:80").
	Target string `json:"target,omitempty"`
	// Status is the verdict.
	Status Status `json:"status"`
	// Reason says what was found, in one line.
	Reason string `json:"reason"`
	// Fix says what to do, in one line; empty when nothing needs doing.
	Fix string `json:"fix,omitempty"`
	// Details holds what the probe learnt (HTTP status, Server header,
	// certificate subject and expiry...), for the API and --json.
	Details map[string]string `json:"details,omitempty"`

	// fingerprint identifies the server that answered (see outcome).
	fingerprint string
}

// RuleReport is every layer's result for one rule.
type RuleReport struct {
	Rule        string   `json:"rule"`
	Description string   `json:"description,omitempty"`
	Enabled     bool     `json:"enabled"`
	Results     []Result `json:"results"`
}

// PublicAddress is what layer 3 knows about the site's public address.
type PublicAddress struct {
	// IP is the public address, if known.
	IP netip.Addr `json:"ip,omitzero"`
	// Source is where it came from: flag, router or config.
	Source string `json:"source,omitempty"`
	// Class is public, cgnat, private, reserved or unknown (see Classify).
	Class AddrClass `json:"class"`
	// Note explains the class when it matters.
	Note string `json:"note,omitempty"`
	// RouterError is set when the router was asked and did not answer.
	RouterError string `json:"router_error,omitempty"`
}

// Report is the outcome of a Run. It marshals to JSON as is.
type Report struct {
	Public PublicAddress `json:"public"`
	// From is the outside vantage point, when one was given.
	From  string       `json:"from,omitempty"`
	Rules []RuleReport `json:"rules"`
	// VPN is the built-in WireGuard VPN's port, when the vpn section is
	// enabled and checked (see Run).
	VPN *RuleReport `json:"vpn,omitempty"`
	// Counts of results by status.
	OK      int `json:"ok"`
	Failed  int `json:"failed"`
	Unknown int `json:"unknown"`
}

// HasFailures reports whether any layer of any rule is ✗.
func (r *Report) HasFailures() bool { return r.Failed > 0 }

// ErrUnknownRule is returned by Run for a rule name not in the config.
var ErrUnknownRule = errors.New("no such rule")

// Run checks the named rules of cfg, or every enabled rule when names is
// empty. The VPN's port is checked too when the vpn section is enabled
// and names is empty or holds "vpn" (VPNRule; a rule of that name wins).
// It returns an error only for bad input (an unknown rule name or
// an unusable Config.From); probe failures are results, not errors.
func Run(ctx context.Context, c Config, cfg *config.Config, names []string) (Report, error) {
	checkVPN := cfg.VPN.Enabled && len(names) == 0
	vpnOnly := false
	if cfg.Rule(VPNRule) == nil && slices.Contains(names, VPNRule) {
		if !cfg.VPN.Enabled {
			return Report{}, fmt.Errorf("%w: vpn (the vpn section is off; set vpn: {enabled: true} to check it)", ErrUnknownRule)
		}
		checkVPN = true
		names = slices.DeleteFunc(slices.Clone(names), func(n string) bool { return n == VPNRule })
		vpnOnly = len(names) == 0
	}
	var rules []config.Rule
	if !vpnOnly {
		var err error
		if rules, err = selectRules(cfg, names); err != nil {
			return Report{}, err
		}
	}
	from, err := ParseFrom(c.From)
	if err != nil {
		return Report{}, err
	}
	r := &runner{c: c, cfg: cfg, from: from, log: c.logger()}
	rep := Report{From: c.From}
	rep.Public = r.publicAddress(ctx)
	r.public = rep.Public
	r.owners = portowner.NewIndex(c.procRoot())
	if c.KernelRules != nil {
		r.kernel, _ = c.KernelRules() // unreadable (no CAP_NET_ADMIN): listeners only
	}

	rep.Rules = make([]RuleReport, len(rules))
	par := c.Parallel
	if par <= 0 {
		par = 4
	}
	sem := make(chan struct{}, par)
	var wg sync.WaitGroup
	for i, rule := range rules {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			rep.Rules[i] = r.checkRule(ctx, rule)
		}()
	}
	if checkVPN {
		vr := r.vpnLayers(ctx)
		rep.VPN = &vr
	}
	wg.Wait()
	all := rep.Rules
	if rep.VPN != nil {
		all = append(slices.Clone(all), *rep.VPN)
	}
	for _, rr := range all {
		for _, res := range rr.Results {
			switch res.Status {
			case OK:
				rep.OK++
			case Fail:
				rep.Failed++
			default:
				rep.Unknown++
			}
		}
	}
	return rep, nil
}

// selectRules returns copies of the rules to check.
func selectRules(cfg *config.Config, names []string) ([]config.Rule, error) {
	if len(names) == 0 {
		var out []config.Rule
		for _, r := range cfg.Rules {
			if r.IsEnabled() {
				out = append(out, r.Clone())
			}
		}
		return out, nil
	}
	var out []config.Rule
	var missing []string
	for _, n := range names {
		r := cfg.Rule(n)
		if r == nil {
			missing = append(missing, n)
			continue
		}
		out = append(out, r.Clone())
	}
	if len(missing) > 0 {
		have := make([]string, 0, len(cfg.Rules))
		for _, r := range cfg.Rules {
			have = append(have, r.Name)
		}
		slices.Sort(have)
		return nil, fmt.Errorf("%w: %s (the config has: %s)", ErrUnknownRule, strings.Join(missing, ", "), strings.Join(have, ", "))
	}
	return out, nil
}

// runner holds what one Run shares between rules.
type runner struct {
	c      Config
	cfg    *config.Config
	from   From
	log    *slog.Logger
	public PublicAddress
	owners *portowner.Index
	// kernel holds the rules on the kernel path (docs/KERNEL.md).
	kernel map[string]bool
}

// publicAddress finds the public IP: the flag, then the router, then the
// config file.
func (r *runner) publicAddress(ctx context.Context) PublicAddress {
	var pa PublicAddress
	var routerIP netip.Addr
	if r.c.RouterWAN != nil {
		rctx, cancel := context.WithTimeout(ctx, r.c.timeout())
		ip, err := r.c.RouterWAN(rctx)
		cancel()
		if err != nil {
			pa.RouterError = err.Error()
		} else {
			routerIP = ip
		}
	}
	switch {
	case r.c.PublicIP.IsValid():
		pa.IP, pa.Source = r.c.PublicIP, "flag"
	case routerIP.IsValid() && !routerIP.IsUnspecified():
		pa.IP, pa.Source = routerIP, "router"
	case r.cfg.PublicIP != "":
		if ip, err := netip.ParseAddr(r.cfg.PublicIP); err == nil {
			pa.IP, pa.Source = ip, "config"
		}
	}
	pa.IP = pa.IP.Unmap()
	pa.Class, pa.Note = Classify(pa.IP)
	if pa.Source == "flag" && routerIP.IsValid() && routerIP != pa.IP {
		pa.Note = strings.TrimSpace(pa.Note + fmt.Sprintf(" The router reports %s as its WAN address, not %s.", routerIP, pa.IP))
	}
	return pa
}

// checkRule runs the three layers for each of the rule's protocols.
func (r *runner) checkRule(ctx context.Context, rule config.Rule) RuleReport {
	rr := RuleReport{Rule: rule.Name, Description: rule.Description, Enabled: rule.IsEnabled()}
	var protos []string
	if rule.Proto().HasTCP() {
		protos = append(protos, "tcp")
	}
	if rule.Proto().HasUDP() {
		protos = append(protos, "udp")
	}
	for _, proto := range protos {
		kind, why := ChooseKind(&rule, proto)
		rr.Results = append(rr.Results, r.gatewayLayer(ctx, &rule, proto))
		inside := r.insideLayer(ctx, &rule, proto, kind, why)
		rr.Results = append(rr.Results, inside)
		if lock, ok := r.loginLayer(ctx, &rule, kind, inside); ok {
			rr.Results = append(rr.Results, lock)
		}
		outKind := kind
		if proto == "tcp" && rule.TLS.Terminate() {
			// Remote clients speak TLS to camgate, which speaks plain
			// HTTP to the device.
			outKind = KindHTTPS
		}
		rr.Results = append(rr.Results, r.outsideLayer(ctx, &rule, proto, outKind, inside))
	}
	if isRTSPRule(&rule) {
		rr.Results = append(rr.Results, r.rtpLayers(ctx, &rule)...)
	}
	return rr
}

// rangeNote mentions that only the first port of a range was probed.
func rangeNote(rule *config.Rule) string {
	if n := rule.ExternalPort.Len(); n > 1 {
		return fmt.Sprintf(" (first of %d ports)", n)
	}
	return ""
}
