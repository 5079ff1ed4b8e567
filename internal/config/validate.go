package config

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
)

// MaxRangeLen bounds a port range: every port in it is a listener, and a
// typo such as "1-65535" should not open the whole port space.
const MaxRangeLen = 1024

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// problems collects Problems for one config.
type problems struct {
	cfg  *Config
	list []error
}

func (ps *problems) add(p Problem) { ps.list = append(ps.list, p) }

// forRule returns an adder that names rule i and looks up field lines.
func (ps *problems) forRule(i int) func(field, format string, args ...any) {
	r := &ps.cfg.Rules[i]
	label := r.Name
	if label == "" {
		label = fmt.Sprintf("rules[%d]", i)
	}
	return func(field, format string, args ...any) {
		line := r.line
		top, _, _ := strings.Cut(field, ".")
		if l, ok := r.fieldLines[top]; ok {
			line = l
		}
		ps.add(Problem{Rule: label, Field: field, Line: line, Message: fmt.Sprintf(format, args...)})
	}
}

func (ps *problems) forSection(section string) func(field, format string, args ...any) {
	return func(field, format string, args ...any) {
		f := section
		if field != "" {
			f = section + "." + field
		}
		ps.add(Problem{Field: f, Message: fmt.Sprintf(format, args...)})
	}
}

// Validate checks the whole config and returns every problem found, joined
// with errors.Join, or nil. Each problem names the rule and field.
func (c *Config) Validate() error {
	ps := &problems{cfg: c}
	switch c.Version {
	case CurrentVersion:
	case 0:
		ps.add(Problem{Field: "version", Message: fmt.Sprintf("missing; add \"version: %d\" at the top of the file", CurrentVersion)})
	default:
		ps.add(Problem{Field: "version", Message: fmt.Sprintf("%d is not supported by this camgate (it reads version %d)", c.Version, CurrentVersion)})
	}
	if _, err := ListenAddr(c.ListenAddress); err != nil {
		ps.add(Problem{Field: "listen_address", Message: fmt.Sprintf("%q is not an IP address (use 0.0.0.0, :: or one of this host's addresses)", c.ListenAddress)})
	}
	if c.Limits.MaxConnections < 0 {
		ps.add(Problem{Field: "limits.max_connections", Message: "must not be negative"})
	}
	if c.Limits.DrainTimeout < 0 {
		ps.add(Problem{Field: "limits.drain_timeout", Message: "must not be negative"})
	}
	if c.Limits.MaxConnectionsPerIP < 0 {
		ps.add(Problem{Field: "limits.max_connections_per_ip", Message: "must not be negative"})
	}
	if c.PublicIP != "" {
		if _, err := netip.ParseAddr(c.PublicIP); err != nil {
			ps.add(Problem{Field: "public_ip", Message: fmt.Sprintf("%q is not an IP address", c.PublicIP)})
		}
	}
	names := map[string]int{}
	for i := range c.Rules {
		r := &c.Rules[i]
		add := ps.forRule(i)
		validateRule(r, add)
		if r.Name != "" {
			if j, dup := names[r.Name]; dup {
				add("name", "duplicate name: rules[%d] is also called %q; names must be unique", j, r.Name)
			} else {
				names[r.Name] = i
			}
		}
	}
	checkConflicts(c, ps)
	validateGatewayDataplane(c, ps)
	validateAdmin(&c.Admin, ps.forSection("admin"))
	validateRouter(&c.Router, ps.forSection("router"))
	validateRTSP(c, ps.forSection("rtsp"))
	validateDDNS(&c.DDNS, ps.forSection("ddns"))
	validateNotify(&c.Notify, ps.forSection("notify"))
	validateDevices(c, ps)
	validateVPN(&c.VPN, ps.forSection("vpn"))
	return errors.Join(ps.list...)
}

// ValidateRule checks one rule on its own, without the conflict checks
// that need the whole table. The API uses it for quick per-field feedback.
func ValidateRule(r *Rule) error {
	c := &Config{Version: CurrentVersion, Rules: []Rule{*r}}
	ps := &problems{cfg: c}
	validateRule(&c.Rules[0], ps.forRule(0))
	return errors.Join(ps.list...)
}

func validateRule(r *Rule, add func(field, format string, args ...any)) {
	switch {
	case r.Name == "":
		add("name", "missing; give the rule a short name such as \"dvr-web\"")
	case !nameRE.MatchString(r.Name):
		add("name", "%q must be lower-case letters, digits and '-' (at most 63, not starting or ending with '-')", r.Name)
	}
	switch r.Proto() {
	case TCP, UDP, Both:
	default:
		add("protocol", "%q is not tcp, udp or both", string(r.Protocol))
	}
	validateReflection(r, add)
	ext, in := r.ExternalPort, r.Internal()
	if ext.IsZero() {
		add("external_port", "missing; the port people connect to from outside, e.g. 8082")
	} else if ext.Len() > MaxRangeLen {
		add("external_port", "range %s has %d ports; at most %d are allowed in one rule", ext, ext.Len(), MaxRangeLen)
	}
	if !ext.IsZero() && !r.InternalPort.IsZero() && in.Len() != ext.Len() {
		add("internal_port", "range %s has %d ports but external_port %s has %d; they must be the same length", in, in.Len(), ext, ext.Len())
	}
	switch {
	case r.InternalIP == "":
		add("internal_ip", "missing; the LAN address of the device, e.g. 192.168.1.64")
	default:
		if err := checkHost(r.InternalIP); err != nil {
			add("internal_ip", "%v", err)
		}
	}
	if r.ListenAddress != "" {
		if _, err := netip.ParseAddr(r.ListenAddress); err != nil {
			add("listen_address", "%q is not an IP address", r.ListenAddress)
		}
	}
	for field, list := range map[string][]string{"allow": r.Allow, "deny": r.Deny} {
		for _, s := range list {
			if _, err := ParsePrefix(s); err != nil {
				add(field, "%q is not a CIDR such as 203.0.113.0/24 or 2001:db8::/32", s)
			}
		}
	}
	if r.MaxConnections < 0 {
		add("max_connections", "must not be negative")
	}
	if r.UDPMaxSessions < 0 {
		add("udp_max_sessions", "must not be negative")
	}
	for field, d := range map[string]Duration{"dial_timeout": r.DialTimeout, "idle_timeout": r.IdleTimeout, "udp_idle_timeout": r.UDPIdleTimeout} {
		if d < 0 {
			add(field, "must not be negative")
		}
	}
	if r.UDPMaxSessions > 0 && !r.Proto().HasUDP() {
		add("udp_max_sessions", "is set but the rule's protocol is %s; it only applies to udp or both", r.Proto())
	}
	validateGuard(r, add)
	validateDataplane(r, add)
}

// checkHost accepts an IP address or an RFC 1123 host name.
func checkHost(s string) error {
	if _, err := netip.ParseAddr(s); err == nil {
		return nil
	}
	if looksLikeIP(s) {
		return fmt.Errorf("%q is not a valid IP address", s)
	}
	if len(s) > 253 {
		return fmt.Errorf("host name is longer than 253 characters")
	}
	for _, label := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		if label == "" || len(label) > 63 || strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") {
			return fmt.Errorf("%q is neither an IP address nor a valid host name", s)
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("%q is neither an IP address nor a valid host name", s)
			}
		}
	}
	return nil
}

// looksLikeIP reports whether s is made of digits and dots (or contains a
// colon), so that "192.168.1.300" is called a bad address, not a host name.
func looksLikeIP(s string) bool {
	if strings.Contains(s, ":") {
		return true
	}
	return strings.Trim(s, "0123456789.") == "" && strings.Contains(s, ".")
}

// checkConflicts rejects two enabled rules that would listen on the same
// address, protocol and port.
func checkConflicts(c *Config, ps *problems) {
	type claim struct {
		rule  int
		addr  netip.Addr
		proto Protocol
		ports PortRange
	}
	var claims []claim
	for i := range c.Rules {
		r := &c.Rules[i]
		if !r.IsEnabled() || r.ExternalPort.IsZero() {
			continue
		}
		addr, err := ListenAddr(r.Listen(c.ListenAddress))
		if err != nil {
			continue
		}
		for _, p := range []Protocol{TCP, UDP} {
			if (p == TCP && !r.Proto().HasTCP()) || (p == UDP && !r.Proto().HasUDP()) {
				continue
			}
			cl := claim{i, addr, p, r.ExternalPort}
			for _, o := range claims {
				if o.proto == cl.proto && o.ports.Overlaps(cl.ports) && addrsOverlap(o.addr, cl.addr) {
					other := c.Rules[o.rule].Name
					ps.forRule(i)("external_port", "%s/%s is already used by rule %q on %s; pick another external port",
						p, r.ExternalPort, other, o.addr)
					break
				}
			}
			claims = append(claims, cl)
		}
	}
}

// addrsOverlap reports whether listening on a and b would collide: the
// same address, or a wildcard of a family that covers the other.
func addrsOverlap(a, b netip.Addr) bool {
	if a == b {
		return true
	}
	dual := func(x netip.Addr) bool { return x.Is6() && x.IsUnspecified() }
	if dual(a) || dual(b) {
		return true
	}
	if a.IsUnspecified() && a.Is4() == b.Unmap().Is4() {
		return true
	}
	if b.IsUnspecified() && b.Is4() == a.Unmap().Is4() {
		return true
	}
	return false
}
