package config

import "time"

// DefaultUnguardedIdleTimeout closes TCP connections of a rule with no
// protocol guard (GuardService is empty: raw HTTPS, the SDK port 8000,
// port ranges) after this long without a byte either way. Such rules
// cannot tell a viewer from a socket held open to fill the gateway's
// connection cap (issue #14.9); a live stream or a client's heartbeat is
// never idle that long. Guarded rules read their protocol and keep their
// own timeouts. A rule's idle_timeout overrides it.
const DefaultUnguardedIdleTimeout = 5 * time.Minute

// Idle returns the effective TCP idle timeout: idle_timeout if set, else
// DefaultUnguardedIdleTimeout for rules without a protocol guard, else 0
// (none; TCP keepalive still runs).
func (r *Rule) Idle() time.Duration {
	if r.IdleTimeout > 0 {
		return r.IdleTimeout.D()
	}
	if r.GuardService() == "" {
		return DefaultUnguardedIdleTimeout
	}
	return 0
}
