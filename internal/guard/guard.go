// Package guard makes an exposed camera port safe: it is camgate's
// implementation of gateway.Policy.
//
// For every rule, Policy.Hooks returns an admission check that the data
// plane (package forward) calls when a TCP connection is accepted or a
// UDP session starts, and, when the rule asks for it, a connection
// handler that sits in the byte stream:
//
//   - allow/deny source CIDR lists (acl.go);
//   - per-source caps and a connection-rate token bucket per rule, and a
//     gateway-wide per-source cap (limits.go); a source is an IPv4
//     address or an IPv6 /64;
//   - the ban list, persisted in the state directory and shared with the
//     `camgate ban` command (bans.go);
//   - `guard: auth`, the brute-force guard: it reads HTTP or RTSP just
//     enough to see login attempts and the device's answers, judges Digest
//     and Basic answers itself when the device's password is stored
//     (Credentials.Check, verify.go), and bans a source and holds back
//     attempts so that the device's own lockout (which, behind a gateway,
//     locks out every remote user) is never reached (auth.go, handler.go,
//     message.go);
//   - `guard: hikvision`, a table of known attack requests (CVE-2021-36260,
//     CVE-2017-7921, ...) plus path-traversal and malformed-request checks,
//     refused with 403 before they reach the device (filter.go);
//   - `tls: terminate`, HTTPS towards the internet and plain HTTP to the
//     device, with certificates from files, ACME or a kept self-signed
//     one (tls.go).
//
// Typical use (cmd/camgate's serve):
//
//	p, err := guard.NewPolicy(guard.Config{Logger: log, StateDir: dir})
//	g := gateway.New(gateway.Config{Policy: p})
//	go p.Run(ctx)     // picks up `camgate ban clear`, prunes expired bans
//	p.SetGlobal(cfg)  // after every applied config
//
// Rules with no protocol-aware guard and no TLS get no handler, so their
// bytes keep the zero-copy relay; their admission check costs a few map
// operations per connection.
//
// Non-goals: HTTP/2 (ALPN offers only http/1.1), rewriting URLs in RTSP
// answers, inspecting TLS the device terminates itself, and deciding
// whether a device is vulnerable (package audit does that).
package guard
