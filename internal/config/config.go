// Package config defines camgate's configuration: the port-forwarding rule
// table and the sections that later features add (admin, router, devices).
//
// It uses the vocabulary of a home router's "Port Forwarding / Virtual
// Server" menu: external port, internal IP, internal port, protocol and
// description. Parse decodes YAML strictly and remembers the line of every
// rule and field, Validate reports every problem at once with the rule and
// field it concerns, and Diff compares two rule tables.
//
// The package does no I/O: reading and writing files is package store's job.
//
//	cfg, err := config.Parse(data)       // strict YAML, unknown keys rejected with line numbers
//	if err == nil { err = cfg.Validate() } // every problem, errors.Join of Problem values
//	d := config.Diff(old.Rules, cfg.Rules) // added, removed, changed, kept
package config

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// CurrentVersion is the only schema version this build understands.
const CurrentVersion = 1

// Defaults for fields left at their zero value. They are documented in
// docs/CONFIG.md; keep the two in step.
const (
	DefaultListenAddress  = "0.0.0.0"
	DefaultDialTimeout    = 5 * time.Second
	DefaultDrainTimeout   = 5 * time.Second
	DefaultUDPIdleTimeout = 120 * time.Second
	DefaultUDPMaxSessions = 4096
	// DefaultMaxConnections is the global cap on forwarded TCP connections.
	// Each one costs two file descriptors; with the usual hard limit of
	// 20,000 this leaves room for listeners, sessions and the admin API.
	DefaultMaxConnections = 9500
)

// Config is the whole camgate.yaml file.
type Config struct {
	// Version is the schema version; it must be CurrentVersion.
	Version int `yaml:"version"`
	// ListenAddress is the address rules listen on unless a rule sets its
	// own. Empty means DefaultListenAddress. "::" listens on both families.
	ListenAddress string `yaml:"listen_address,omitempty"`
	// StateDir holds generated certificates, the admin account, the audit
	// log and router leases. Empty means a "camgate-state" directory next to
	// the config file (resolved by package store).
	StateDir string `yaml:"state_dir,omitempty"`
	// Limits are the gateway-wide caps.
	Limits Limits `yaml:"limits,omitempty"`
	// Rules is the port-forwarding table, in the order the user wrote it.
	Rules []Rule `yaml:"rules"`
	// Admin configures the web UI and REST API.
	Admin Admin `yaml:"admin,omitempty"`
	// Router configures upstream router automation (UPnP IGD, NAT-PMP, PCP).
	Router Router `yaml:"router,omitempty"`
	// RTSP configures RTP over UDP on RTSP rules (docs/RTSP.md).
	RTSP RTSP `yaml:"rtsp,omitempty"`
	// PublicIP is the site's public address as the user knows it, used by
	// `camgate check` when the router cannot tell. Optional.
	PublicIP string `yaml:"public_ip,omitempty"`
	// DDNS keeps a DNS name pointed at the public address (ddns.go).
	DDNS DDNS `yaml:"ddns,omitempty"`
	// Notify sends security events to a webhook (notify.go).
	Notify Notify `yaml:"notify,omitempty"`
	// Dataplane is every rule's default data plane: auto, userspace or kernel (docs/KERNEL.md).
	Dataplane Dataplane `yaml:"dataplane,omitempty"`
	// Devices are the recorders and cameras camgate knows by name (see
	// device.go). Optional; rules work without them.
	Devices []Device `yaml:"devices,omitempty"`
	// VPN is the built-in WireGuard server (see vpn.go). Optional; off by default.
	VPN VPN `yaml:"vpn,omitempty"`
}

// Limits are gateway-wide caps. Zero values mean the documented defaults.
type Limits struct {
	// MaxConnections caps forwarded TCP connections over all rules.
	// 0 means DefaultMaxConnections.
	MaxConnections int `yaml:"max_connections,omitempty"`
	// DrainTimeout is how long live connections may finish after a
	// shutdown or after their rule is removed. 0 means DefaultDrainTimeout.
	DrainTimeout Duration `yaml:"drain_timeout,omitempty"`
	// MaxConnectionsPerIP caps concurrent TCP connections from one source
	// address over all rules. 0 means no gateway-wide per-source cap.
	MaxConnectionsPerIP int `yaml:"max_connections_per_ip,omitempty"`
}

// Listen returns the effective default listen address.
func (c *Config) Listen() string {
	if c.ListenAddress == "" {
		return DefaultListenAddress
	}
	return c.ListenAddress
}

// MaxConnections returns the effective global TCP connection cap.
func (l Limits) MaxConns() int {
	if l.MaxConnections <= 0 {
		return DefaultMaxConnections
	}
	return l.MaxConnections
}

// Drain returns the effective drain period.
func (l Limits) Drain() time.Duration {
	if l.DrainTimeout <= 0 {
		return DefaultDrainTimeout
	}
	return l.DrainTimeout.D()
}

// Rule returns the rule with the given name, or nil.
func (c *Config) Rule(name string) *Rule {
	for i := range c.Rules {
		if c.Rules[i].Name == name {
			return &c.Rules[i]
		}
	}
	return nil
}

// Clone returns a deep copy, so callers can edit a config without touching
// one that is live.
func (c *Config) Clone() *Config {
	if c == nil {
		return nil
	}
	out := *c
	out.Rules = make([]Rule, len(c.Rules))
	for i := range c.Rules {
		out.Rules[i] = c.Rules[i].Clone()
	}
	out.Admin = c.Admin.clone()
	out.Notify = c.Notify.clone()
	if c.Devices != nil {
		out.Devices = make([]Device, len(c.Devices))
		for i := range c.Devices {
			out.Devices[i] = c.Devices[i].clone()
		}
	}
	return &out
}

// Protocol is a rule's transport: tcp, udp or both.
type Protocol string

// The protocols a rule may forward.
const (
	TCP  Protocol = "tcp"
	UDP  Protocol = "udp"
	Both Protocol = "both"
)

// HasTCP reports whether p includes TCP.
func (p Protocol) HasTCP() bool { return p == TCP || p == Both }

// HasUDP reports whether p includes UDP.
func (p Protocol) HasUDP() bool { return p == UDP || p == Both }

// UnmarshalYAML accepts the spellings routers use: TCP, udp, "TCP/UDP",
// "both", "all".
func (p *Protocol) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	*p = ParseProtocol(s)
	return nil
}

// ParseProtocol normalises a protocol name. Unknown names are returned
// lower-cased so that Validate can report them.
func ParseProtocol(s string) Protocol {
	switch v := strings.ToLower(strings.TrimSpace(s)); v {
	case "tcp/udp", "udp/tcp", "tcp+udp", "all", "tcpudp":
		return Both
	default:
		return Protocol(v)
	}
}

// PortRange is a single port or an inclusive range "first-last".
// The zero value means "not set".
type PortRange struct {
	First, Last uint16
}

// IsZero reports whether the range is unset.
func (r PortRange) IsZero() bool { return r.First == 0 && r.Last == 0 }

// Len is the number of ports in the range.
func (r PortRange) Len() int {
	if r.IsZero() {
		return 0
	}
	return int(r.Last) - int(r.First) + 1
}

// Contains reports whether port p is in the range.
func (r PortRange) Contains(p uint16) bool { return p >= r.First && p <= r.Last }

// Overlaps reports whether two ranges share a port.
func (r PortRange) Overlaps(o PortRange) bool { return r.First <= o.Last && o.First <= r.Last }

func (r PortRange) String() string {
	if r.First == r.Last {
		return strconv.Itoa(int(r.First))
	}
	return fmt.Sprintf("%d-%d", r.First, r.Last)
}

// ParsePortRange parses "8082" or "10000-10009". Ports must be 1–65535 and
// the range must not run backwards.
func ParsePortRange(s string) (PortRange, error) {
	s = strings.TrimSpace(s)
	first, last, isRange := strings.Cut(s, "-")
	a, err := parsePort(first)
	if err != nil {
		return PortRange{}, err
	}
	if !isRange {
		return PortRange{a, a}, nil
	}
	b, err := parsePort(last)
	if err != nil {
		return PortRange{}, err
	}
	if b < a {
		return PortRange{}, fmt.Errorf("range %q runs backwards", s)
	}
	return PortRange{a, b}, nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("%q is not a port number", s)
	}
	if n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %d is outside 1-65535", n)
	}
	return uint16(n), nil
}

// UnmarshalYAML accepts an integer or a string. A malformed value is kept
// as an error for Validate to report against the rule and field, so that
// one bad port does not hide the other problems in the file.
func (r *PortRange) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fieldError(n, "must be a port number or a range like \"10000-10009\"")
	}
	pr, err := ParsePortRange(n.Value)
	if err != nil {
		return fieldError(n, err.Error())
	}
	*r = pr
	return nil
}

// MarshalYAML writes a single port as a number and a range as a string.
func (r PortRange) MarshalYAML() (any, error) {
	if r.First == r.Last {
		return int(r.First), nil
	}
	return r.String(), nil
}

// fieldError reports a malformed value as a *yaml.TypeError, which the
// decoder collects and carries on, so one bad value does not hide the rest.
func fieldError(n *yaml.Node, msg string) error {
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: col %d: %s", n.Line, n.Column, msg)}}
}

// Duration is a time.Duration written as "30s", "2m" or "1h" in YAML.
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// UnmarshalYAML parses Go duration syntax. A bare number is seconds.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fieldError(n, "must be a duration like \"30s\" or \"2m\"")
	}
	if secs, err := strconv.Atoi(n.Value); err == nil {
		*d = Duration(time.Duration(secs) * time.Second)
		return nil
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fieldError(n, fmt.Sprintf("%q is not a duration like \"30s\" or \"2m\"", n.Value))
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the Go duration syntax.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// MarshalJSON writes the Go duration syntax, matching the YAML form.
func (d Duration) MarshalJSON() ([]byte, error) {
	return []byte(strconv.Quote(time.Duration(d).String())), nil
}

// UnmarshalJSON accepts "30s" or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if secs, err := strconv.ParseFloat(s, 64); err == nil {
		*d = Duration(time.Duration(secs * float64(time.Second)))
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration like \"30s\"", s)
	}
	*d = Duration(v)
	return nil
}

// ListenAddr resolves a listen address string into an address. The empty
// string and "0.0.0.0" are the IPv4 wildcard; "::" is the dual-stack one.
func ListenAddr(s string) (netip.Addr, error) {
	if s == "" {
		s = DefaultListenAddress
	}
	return netip.ParseAddr(s)
}
