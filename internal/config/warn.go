package config

import (
	"errors"
	"fmt"
	"net/netip"
)

// BindRight says whether the process that will serve the config may listen
// on a port below 1024 (root, CAP_NET_BIND_SERVICE, or a lowered
// net.ipv4.ip_unprivileged_port_start). Package config does no I/O, so the
// caller finds out; Warnings takes the answer.
type BindRight struct {
	// Known is false when the caller could not tell; then only the
	// neutral privileged-port warning is given.
	Known bool
	// Allowed reports whether a port below 1024 (down to Start) may be
	// bound.
	Allowed bool
	// Start is the lowest port anyone may bind (ip_unprivileged_port_start,
	// 1024 by default).
	Start uint16
	// Who names the running user for the message, such as "uid 1000".
	Who string
}

// unprivileged reports whether anyone may bind p. Port 0 asks the kernel
// for a free port, which is never a privileged one.
func (b BindRight) unprivileged(p uint16) bool {
	if p == 0 {
		return true
	}
	start := b.Start
	if start == 0 {
		start = 1024
	}
	return p >= start
}

// Warnings lists what is valid but will likely go wrong when served: a
// rule on the admin UI's port, rules on ports below 1024, and rules the
// running user cannot bind. Each names the rule, the field, the line and
// the fix. It expects a config that passed Validate.
func (c *Config) Warnings(right BindRight) []Problem {
	ps := &problems{cfg: c}
	admin, adminOn := netip.AddrPort{}, c.Admin.IsEnabled()
	if adminOn {
		if ep, err := c.Admin.Endpoint(); err == nil {
			admin = ep.Addr
		}
	}
	for i := range c.Rules {
		r := &c.Rules[i]
		if !r.IsEnabled() {
			continue
		}
		add := ps.forRule(i)
		listen, err := ListenAddr(r.Listen(c.ListenAddress))
		if err != nil {
			continue
		}
		if admin.IsValid() && r.Proto().HasTCP() && r.ExternalPort.Contains(admin.Port()) && sameSocket(listen, admin.Addr()) {
			add("external_port", "port %d is also the admin UI's (admin.listen %s): whichever starts second cannot listen; give the rule another external port, or move the admin UI with admin.listen (for example 0.0.0.0:9443)",
				admin.Port(), admin)
		}
		if low := r.ExternalPort.First; !right.unprivileged(low) {
			add("external_port", "%s", privilegedWarning(low, right))
		}
	}
	if admin.IsValid() && !right.unprivileged(admin.Port()) {
		ps.forSection("admin")("listen", "%s", privilegedWarning(admin.Port(), right))
	}
	return ProblemsOf(errors.Join(ps.list...))
}

func privilegedWarning(port uint16, right BindRight) string {
	fix := "run as root, `setcap cap_net_bind_service=+ep` on the camgate binary, run the packaged service, or use a port ≥ 1024"
	switch {
	case right.Known && !right.Allowed:
		return fmt.Sprintf("port %d is below 1024 and this user (%s) may not listen there: %s", port, right.Who, fix)
	case right.Known:
		return fmt.Sprintf("port %d is below 1024: this user (%s) may listen there, a plain user may not (%s)", port, right.Who, fix)
	default:
		return fmt.Sprintf("port %d is below 1024, which needs a right: %s", port, fix)
	}
}

// sameSocket reports whether listening on a and b would collide: the same
// address, or either is a wildcard ("::" takes IPv4 too).
func sameSocket(a, b netip.Addr) bool {
	return a == b || a.IsUnspecified() || b.IsUnspecified()
}
