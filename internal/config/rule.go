package config

import (
	"net/netip"
	"slices"
	"time"
)

// Rule is one row of the port-forwarding table: traffic arriving on
// ExternalPort is forwarded to InternalIP:InternalPort.
type Rule struct {
	// Name identifies the rule: lower-case letters, digits and '-'.
	Name string `yaml:"name" json:"name"`
	// Description is free text, the router menu's "Description" column.
	Description string `yaml:"description,omitempty" json:"description,omitempty"`
	// Protocol is tcp, udp or both. Empty means tcp.
	Protocol Protocol `yaml:"protocol,omitempty" json:"protocol,omitempty"`
	// ExternalPort is the port (or range) camgate listens on.
	ExternalPort PortRange `yaml:"external_port" json:"external_port"`
	// InternalIP is the device's IPv4 or IPv6 address, or a host name that
	// is resolved each time a connection is dialled.
	InternalIP string `yaml:"internal_ip" json:"internal_ip"`
	// InternalPort is the device's port (or a range of the same length).
	// Zero means the same as ExternalPort.
	InternalPort PortRange `yaml:"internal_port,omitempty" json:"internal_port,omitempty"`
	// Enabled switches the rule on or off. Nil means enabled.
	Enabled *bool `yaml:"enabled,omitempty" json:"enabled,omitempty"`
	// ListenAddress overrides Config.ListenAddress for this rule.
	ListenAddress string `yaml:"listen_address,omitempty" json:"listen_address,omitempty"`
	// Allow lists the source CIDRs that may connect. Empty means everyone
	// not denied.
	Allow []string `yaml:"allow,omitempty" json:"allow,omitempty"`
	// Deny lists source CIDRs that are refused; it wins over Allow.
	Deny []string `yaml:"deny,omitempty" json:"deny,omitempty"`
	// MaxConnections caps this rule's concurrent TCP connections.
	// 0 means only the global cap applies.
	MaxConnections int `yaml:"max_connections,omitempty" json:"max_connections,omitempty"`
	// DialTimeout bounds connecting to the device. 0 means DefaultDialTimeout.
	DialTimeout Duration `yaml:"dial_timeout,omitempty" json:"dial_timeout,omitempty"`
	// IdleTimeout closes a TCP connection with no traffic either way for
	// this long. 0 means no idle timeout (TCP keepalive still runs).
	IdleTimeout Duration `yaml:"idle_timeout,omitempty" json:"idle_timeout,omitempty"`
	// UDPIdleTimeout ends a UDP session after this long without datagrams.
	// 0 means DefaultUDPIdleTimeout.
	UDPIdleTimeout Duration `yaml:"udp_idle_timeout,omitempty" json:"udp_idle_timeout,omitempty"`
	// UDPMaxSessions bounds the UDP session table. 0 means
	// DefaultUDPMaxSessions.
	UDPMaxSessions int `yaml:"udp_max_sessions,omitempty" json:"udp_max_sessions,omitempty"`
	// Router asks the upstream router to forward this rule's external
	// port(s) to this host (see the router section).
	Router bool `yaml:"router,omitempty" json:"router,omitempty"`
	// Guard configures the per-rule protections (see guard.go).
	Guard Guard `yaml:"guard,omitempty" json:"guard,omitzero"`
	// TLS configures HTTPS termination (see guard.go).
	TLS TLS `yaml:"tls,omitempty" json:"tls,omitzero"`
	// Dataplane is userspace, kernel or auto; empty means the gateway's (docs/KERNEL.md).
	Dataplane Dataplane `yaml:"dataplane,omitempty" json:"dataplane,omitempty"`
	// Masquerade is auto, on or off for kernel rules; empty means auto (docs/KERNEL.md).
	Masquerade string `yaml:"masquerade,omitempty" json:"masquerade,omitempty"`
	// Device names the entry of the devices section this rule forwards
	// to. Optional: without it the device is found by internal_ip.
	Device string `yaml:"device,omitempty" json:"device,omitempty"`

	// line is where the rule starts in the file, and fieldLines where each
	// key was written; both are zero for rules that did not come from YAML.
	line       int
	fieldLines map[string]int
}

// IsEnabled reports whether the rule should be forwarding.
func (r *Rule) IsEnabled() bool { return r.Enabled == nil || *r.Enabled }

// SetEnabled switches the rule on or off.
func (r *Rule) SetEnabled(on bool) { r.Enabled = &on }

// Proto returns the effective protocol.
func (r *Rule) Proto() Protocol {
	if r.Protocol == "" {
		return TCP
	}
	return r.Protocol
}

// Internal returns the effective internal port range.
func (r *Rule) Internal() PortRange {
	if r.InternalPort.IsZero() {
		return r.ExternalPort
	}
	return r.InternalPort
}

// InternalPortFor maps an external port of the rule onto the matching
// internal port: ranges map one to one, in order.
func (r *Rule) InternalPortFor(external uint16) uint16 {
	in := r.Internal()
	return in.First + (external - r.ExternalPort.First)
}

// Dial returns the effective dial timeout.
func (r *Rule) Dial() time.Duration {
	if r.DialTimeout <= 0 {
		return DefaultDialTimeout
	}
	return r.DialTimeout.D()
}

// UDPIdle returns the effective UDP session idle timeout.
func (r *Rule) UDPIdle() time.Duration {
	if r.UDPIdleTimeout <= 0 {
		return DefaultUDPIdleTimeout
	}
	return r.UDPIdleTimeout.D()
}

// UDPSessions returns the effective UDP session table bound.
func (r *Rule) UDPSessions() int {
	if r.UDPMaxSessions <= 0 {
		return DefaultUDPMaxSessions
	}
	return r.UDPMaxSessions
}

// Listen returns the rule's effective listen address given the config-wide
// default.
func (r *Rule) Listen(def string) string {
	if r.ListenAddress != "" {
		return r.ListenAddress
	}
	if def == "" {
		return DefaultListenAddress
	}
	return def
}

// AllowPrefixes parses Allow. It must only be called on a validated rule;
// entries that do not parse are skipped.
func (r *Rule) AllowPrefixes() []netip.Prefix { return parsePrefixes(r.Allow) }

// DenyPrefixes parses Deny, like AllowPrefixes.
func (r *Rule) DenyPrefixes() []netip.Prefix { return parsePrefixes(r.Deny) }

func parsePrefixes(ss []string) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(ss))
	for _, s := range ss {
		if p, err := ParsePrefix(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// ParsePrefix parses a CIDR, or a bare address as a single-host prefix.
func ParsePrefix(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// Line is the line in the config file where the rule starts, or 0.
func (r *Rule) Line() int { return r.line }

// Clone returns a deep copy of the rule.
func (r Rule) Clone() Rule {
	out := r
	if r.Enabled != nil {
		v := *r.Enabled
		out.Enabled = &v
	}
	out.Allow = slices.Clone(r.Allow)
	out.Deny = slices.Clone(r.Deny)
	out.Guard = r.Guard.clone()
	return out
}

// SameForwarding reports whether two rules forward identically, ignoring
// the description and where they were written. A rule whose forwarding is
// unchanged keeps its listeners and live connections across a reload.
func (r *Rule) SameForwarding(o *Rule) bool {
	a, b := r.Clone(), o.Clone()
	a.Description, b.Description = "", ""
	a.line, b.line = 0, 0
	a.fieldLines, b.fieldLines = nil, nil
	a.Router, b.Router = false, false // router mappings are reconciled separately
	if a.IsEnabled() != b.IsEnabled() {
		return false
	}
	a.Enabled, b.Enabled = nil, nil
	return a.Protocol.normal() == b.Protocol.normal() &&
		a.Internal() == b.Internal() &&
		equalRest(a, b)
}

func (p Protocol) normal() Protocol {
	if p == "" {
		return TCP
	}
	return p
}

func equalRest(a, b Rule) bool {
	a.Protocol, b.Protocol = "", ""
	a.InternalPort, b.InternalPort = PortRange{}, PortRange{}
	return a.Name == b.Name && a.ExternalPort == b.ExternalPort &&
		a.InternalIP == b.InternalIP && a.ListenAddress == b.ListenAddress &&
		slices.Equal(a.Allow, b.Allow) && slices.Equal(a.Deny, b.Deny) &&
		a.MaxConnections == b.MaxConnections && a.DialTimeout == b.DialTimeout &&
		a.IdleTimeout == b.IdleTimeout && a.UDPIdleTimeout == b.UDPIdleTimeout &&
		a.UDPMaxSessions == b.UDPMaxSessions && a.Guard.equal(b.Guard) && a.TLS == b.TLS &&
		a.Dataplane == b.Dataplane && a.Masquerade == b.Masquerade
}
