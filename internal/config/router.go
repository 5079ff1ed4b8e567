package config

import (
	"net/netip"
	"strings"
	"time"
)

// RouterMode selects how camgate asks the upstream router for port
// mappings.
type RouterMode string

// The router modes. Auto tries PCP, then NAT-PMP, then UPnP IGD2, then
// IGD1, and keeps the first that answers.
const (
	RouterOff    RouterMode = "off"
	RouterAuto   RouterMode = "auto"
	RouterUPnP   RouterMode = "upnp"
	RouterNATPMP RouterMode = "natpmp"
	RouterPCP    RouterMode = "pcp"
)

// Router defaults and bounds, documented in docs/ROUTER.md.
const (
	// DefaultRouterLease is the mapping lifetime asked for; camgate renews
	// at half of what the router grants.
	DefaultRouterLease = time.Hour
	// MinRouterLease keeps renewals from hammering the router; several
	// routers (miniupnpd's PCP among them) raise shorter lifetimes anyway.
	MinRouterLease = time.Minute
	// MaxRouterLease is the longest lease UPnP IGD2 allows (604800 s).
	MaxRouterLease = 7 * 24 * time.Hour
	// DefaultRouterDescriptionPrefix starts every mapping's description.
	DefaultRouterDescriptionPrefix = "camgate"
	// maxDescriptionPrefix leaves room for the rule name in the 64 or so
	// characters routers keep.
	maxDescriptionPrefix = 24
)

// Router configures upstream router automation: UPnP IGD, NAT-PMP or PCP
// mappings for rules with `router: true`. The zero value is "off".
type Router struct {
	// Mode is off, auto, upnp, natpmp or pcp. Empty means off.
	Mode RouterMode `yaml:"mode,omitempty" json:"mode,omitempty"`
	// Lease is the mapping lifetime to ask for; mappings are renewed at
	// half-life and removed on shutdown. 0 means DefaultRouterLease.
	Lease Duration `yaml:"lease,omitempty" json:"lease,omitempty"`
	// DescriptionPrefix starts each mapping's description on the router
	// ("camgate dvr-web"). Empty means DefaultRouterDescriptionPrefix.
	DescriptionPrefix string `yaml:"description_prefix,omitempty" json:"description_prefix,omitempty"`
	// Gateway is the router's LAN IPv4 address. Empty means the default
	// gateway from the routing table.
	Gateway string `yaml:"gateway,omitempty" json:"gateway,omitempty"`
	// LocalAddress is this host's LAN IPv4 address that mappings point
	// at. Empty means the address the kernel uses to reach the gateway.
	LocalAddress string `yaml:"local_address,omitempty" json:"local_address,omitempty"`
}

// EffectiveMode returns the mode, with empty meaning off. Names are
// matched case-insensitively.
func (r Router) EffectiveMode() RouterMode {
	m := RouterMode(strings.ToLower(strings.TrimSpace(string(r.Mode))))
	if m == "" {
		return RouterOff
	}
	return m
}

// Enabled reports whether router automation is on.
func (r Router) Enabled() bool { return r.EffectiveMode() != RouterOff }

// LeaseDuration returns the effective lease.
func (r Router) LeaseDuration() time.Duration {
	if r.Lease <= 0 {
		return DefaultRouterLease
	}
	return r.Lease.D()
}

// Prefix returns the effective description prefix.
func (r Router) Prefix() string {
	if r.DescriptionPrefix == "" {
		return DefaultRouterDescriptionPrefix
	}
	return r.DescriptionPrefix
}

// GatewayAddr returns the gateway override, or the zero Addr when the
// routing table should be used. It must only be called on a validated
// config.
func (r Router) GatewayAddr() netip.Addr {
	a, _ := netip.ParseAddr(r.Gateway)
	return a
}

// LocalAddr returns the local address override, or the zero Addr.
func (r Router) LocalAddr() netip.Addr {
	a, _ := netip.ParseAddr(r.LocalAddress)
	return a
}

// validateRouter checks the router section.
func validateRouter(r *Router, add func(field, format string, args ...any)) {
	switch r.EffectiveMode() {
	case RouterOff, RouterAuto, RouterUPnP, RouterNATPMP, RouterPCP:
	default:
		add("mode", "%q is not off, auto, upnp, natpmp or pcp", string(r.Mode))
	}
	switch {
	case r.Lease < 0:
		add("lease", "must not be negative")
	case r.Lease > 0 && r.Lease.D() < MinRouterLease:
		add("lease", "%s is too short; at least %s (the default is %s)", r.Lease.D(), MinRouterLease, DefaultRouterLease)
	case r.Lease.D() > MaxRouterLease:
		add("lease", "%s is too long; at most %s (UPnP IGD's limit)", r.Lease.D(), MaxRouterLease)
	}
	if len(r.DescriptionPrefix) > maxDescriptionPrefix {
		add("description_prefix", "is %d characters; at most %d, so the rule name still fits in the router's description", len(r.DescriptionPrefix), maxDescriptionPrefix)
	}
	for _, c := range r.DescriptionPrefix {
		if c < 0x20 || c > 0x7e || strings.ContainsRune(`<>&"'`, c) {
			add("description_prefix", "%q must be plain printable ASCII without <, >, &, quotes (some routers mangle the rest)", r.DescriptionPrefix)
			break
		}
	}
	for _, f := range [...]struct{ field, s string }{{"gateway", r.Gateway}, {"local_address", r.LocalAddress}} {
		field, s := f.field, f.s
		if s == "" {
			continue
		}
		a, err := netip.ParseAddr(s)
		switch {
		case err != nil:
			add(field, "%q is not an IP address", s)
		case !a.Is4():
			add(field, "%q is not an IPv4 address; router automation speaks IPv4 only", s)
		case a.IsUnspecified() || a.IsMulticast():
			add(field, "%q cannot be used; give a unicast LAN address", s)
		}
	}
}
