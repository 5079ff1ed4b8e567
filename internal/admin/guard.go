package admin

import (
	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/guard"
)

// guard returns the running guard, or nil when the gateway runs without
// one (Config.Guard).
func (s *Server) guard() GuardCounters { return s.guardc }

// guardEvent is one guard counter with its metric label.
type guardEvent struct {
	name string
	n    uint64
}

// guardEvents lists a rule's guard counters under their JSON names, which
// are also the event label of camgate_guard_events_total
// (TestGuardEventsCoverCounters keeps the two in step).
func guardEvents(c guard.Counters) []guardEvent {
	return []guardEvent{
		{"denied", c.Denied}, {"limited", c.Limited}, {"banned", c.Banned},
		{"blocked", c.Blocked}, {"malformed", c.Malformed},
		{"auth_failures", c.AuthFailures}, {"auth_successes", c.AuthSuccesses},
		{"bans", c.Bans}, {"lockdown", c.Lockdown}, {"tls_errors", c.TLSErrors},
	}
}

// effective is what protects a rule, with every default applied
// (docs/SECURITY.md): the rule views and the status carry it so that the
// UI's indicator and scripts need not repeat camgate's defaults. It uses
// the config's vocabulary: the same key names, and -1 for "no limit".
type effective struct {
	// Allow is true when an allow list restricts who may connect; Deny
	// when a deny list refuses some sources. Both apply with any policy.
	Allow bool `json:"allow"`
	Deny  bool `json:"deny"`
	// Guard and TLS are the guard's settings; nil when the gateway runs
	// without the guard, which then enforces only allow and deny.
	Guard *effectiveGuard `json:"guard,omitempty"`
	TLS   *effectiveTLS   `json:"tls,omitempty"`
}

// effectiveGuard mirrors config.Guard with the defaults filled in.
type effectiveGuard struct {
	// Service is the protocol the guard reads (http or rtsp), explicit or
	// guessed from the internal port; "" means only the connection-level
	// guards can apply.
	Service string `json:"service"`
	// Auth is the brute-force guard, Hikvision the exploit filter.
	Auth      bool `json:"auth"`
	Hikvision bool `json:"hikvision"`
	// Limits is true when any per-source limit below applies to the
	// rule's protocol.
	Limits            bool            `json:"limits"`
	MaxFailures       int             `json:"max_failures"`
	DeviceMaxFailures int             `json:"device_max_failures"`
	FailureWindow     config.Duration `json:"failure_window"`
	Ban               config.Duration `json:"ban"`
	PerIPConnections  int             `json:"per_ip_connections"`
	PerIPRate         float64         `json:"per_ip_rate"`
	PerIPBurst        int             `json:"per_ip_burst"`
	PerIPUDPSessions  int             `json:"per_ip_udp_sessions"`
}

// effectiveTLS mirrors config.TLS: the mode, and where the certificate
// comes from when camgate terminates TLS.
type effectiveTLS struct {
	Mode string `json:"mode"`
	// Certificate is "files" (cert_file and key_file), "acme" or
	// "self-signed"; empty when the mode is off.
	Certificate string `json:"certificate,omitempty"`
}

// noneIfZero turns an Effective* accessor's "0 means none" back into the
// config's -1.
func noneIfZero[T int | float64](v T) T {
	if v == 0 {
		return -1
	}
	return v
}

// effectiveOf works out what protects r. withGuard says whether the
// gateway runs the guard.
func effectiveOf(r *config.Rule, withGuard bool) effective {
	e := effective{Allow: len(r.Allow) > 0, Deny: len(r.Deny) > 0}
	if !withGuard {
		return e
	}
	g := &r.Guard
	rate, burst := g.EffectivePerIPRate()
	eg := &effectiveGuard{
		Service: r.GuardService(), Auth: r.AuthGuard(), Hikvision: r.HikvisionFilter(),
		MaxFailures: g.EffectiveMaxFailures(), DeviceMaxFailures: noneIfZero(g.EffectiveDeviceMaxFailures()),
		FailureWindow: config.Duration(g.EffectiveFailureWindow()), Ban: config.Duration(g.EffectiveBan()),
		PerIPConnections: noneIfZero(g.EffectivePerIPConnections()), PerIPRate: noneIfZero(rate),
		PerIPBurst: burst, PerIPUDPSessions: noneIfZero(g.EffectivePerIPUDPSessions()),
	}
	if rate == 0 {
		eg.PerIPBurst = -1
	}
	p := r.Proto()
	eg.Limits = (p.HasTCP() && (eg.PerIPConnections > 0 || eg.PerIPRate > 0)) || (p.HasUDP() && eg.PerIPUDPSessions > 0)
	e.Guard = eg
	e.TLS = &effectiveTLS{Mode: config.TLSOff}
	if r.TLS.Terminate() {
		e.TLS.Mode = config.TLSTerminate
		switch {
		case r.TLS.CertFile != "":
			e.TLS.Certificate = "files"
		case r.TLS.ACMEDomain != "":
			e.TLS.Certificate = "acme"
		default:
			e.TLS.Certificate = "self-signed"
		}
	}
	return e
}

// protection is one kind of protection and whether it is in force.
type protection struct {
	name string
	on   bool
}

// protections lists every kind of protection a rule can have, in the
// order the UI's indicator shows them: allowlist, denylist, limits
// (per-source), auth (brute-force guard), hikvision (exploit filter),
// tls (termination).
func protections(e effective) []protection {
	g := e.Guard
	if g == nil {
		g = &effectiveGuard{}
	}
	return []protection{
		{"allowlist", e.Allow}, {"denylist", e.Deny}, {"limits", g.Limits},
		{"auth", g.Auth}, {"hikvision", g.Hikvision},
		{"tls", e.TLS != nil && e.TLS.Mode == config.TLSTerminate},
	}
}
