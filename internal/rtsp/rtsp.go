// Package rtsp carries RTSP through camgate the way players expect: RTP
// over UDP, and answers that name camgate's external address rather than
// the device's LAN one.
//
// Package guard reads RTSP messages on a rule whose service is rtsp and
// hands each one to a Conn (one per RTSP connection):
//
//   - SETUP over UDP: camgate takes an RTP/RTCP port pair from the
//     external range (Config.First-Last) for the client and an ephemeral
//     pair on its LAN address for the device, tells each side the other's
//     ports in Transport (client_port towards the device, server_port
//     towards the client) and relays both ways (track.go, in batches
//     with package udpbatch, as a plain UDP rule does). The client's
//     real address is learnt from its first packets (latching), and only
//     from the address of its RTSP connection. Pairs are freed on
//     TEARDOWN, when the connection ends and when the session times out.
//     A multicast-only SETUP, or one that finds the range exhausted, is
//     answered 461 at once so that the player falls back to TCP.
//   - A connection through camgate's WireGuard tunnel comes with
//     Addrs.ListenUDP: the client-side pair is then bound through it, in
//     the tunnel's userspace network stack (the range's first free pair
//     there, else any even/odd pair), and the host's range is untouched.
//   - Interleaved TCP passes untouched.
//   - Answers (never requests: the Digest response covers the request
//     URI) get the device's address and port replaced by the host:port
//     the client used: Content-Base, Content-Location, RTP-Info, Location,
//     and the SDP's o=, c= and a=control lines (rewrite.go).
//
// Typical use (cmd/camgate wires it into the guard):
//
//	rel := rtsp.New(rtsp.Config{Logger: log, First: 40000, Last: 40099})
//	c := rel.Open("dvr-rtsp", addrs)
//	defer c.Close()
//	out, answer, p := c.Request(method, target, head)
//	head, body = p.Response(status, head, body)
//
// Non-goals: RTSP over HTTP tunnelling, RTSPS, recording (ANNOUNCE and
// RECORD pass through, but no UDP is relayed towards the device), and
// multicast.
package rtsp

import (
	"log/slog"
	"sync"
	"sync/atomic"
)

// Config configures a Relay.
type Config struct {
	// Logger receives per-session debug lines and warnings. Nil discards.
	Logger *slog.Logger
	// First and Last bound the external UDP range RTP/RTCP pairs are
	// taken from (an RTP port is even, its RTCP port the next). Zero
	// means DefaultFirst-DefaultLast.
	First, Last uint16
}

// The default external range: 100 ports, 50 tracks at once (a video and
// an audio track per viewer: 25 viewers), few enough to forward by hand
// on a home router. Keep in step with config.DefaultRTPPorts.
const (
	DefaultFirst = 40000
	DefaultLast  = 40099
)

// Relay owns the external port range and the per-rule counters. It is
// safe for concurrent use.
type Relay struct {
	log  *slog.Logger
	pool *pool

	mu    sync.Mutex // guards following
	rules map[string]*ruleStats
}

// New returns a Relay.
func New(c Config) *Relay {
	r := &Relay{log: c.Logger, rules: map[string]*ruleStats{}}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.log = r.log.With("component", "rtsp")
	first, last := c.First, c.Last
	if first == 0 && last == 0 {
		first, last = DefaultFirst, DefaultLast
	}
	r.pool = newPool(first, last)
	return r
}

// SetPorts changes the external range for new tracks; live tracks keep
// their ports.
func (r *Relay) SetPorts(first, last uint16) {
	if first == 0 && last == 0 {
		first, last = DefaultFirst, DefaultLast
	}
	r.pool.setRange(first, last)
}

// Pool returns the number of pairs in the range and in use.
func (r *Relay) Pool() (size, inUse int) { return r.pool.size(), r.pool.inUse() }

type ruleStats struct {
	tracks     atomic.Int64
	total      atomic.Uint64
	in, out    atomic.Uint64
	packetsOut atomic.Uint64
	dropped    atomic.Uint64
	foreign    atomic.Uint64
	refused    atomic.Uint64
	timedOut   atomic.Uint64
}

func (r *Relay) rule(name string) *ruleStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.rules[name]
	if s == nil {
		s = &ruleStats{}
		r.rules[name] = s
	}
	return s
}

// Stats are one rule's RTP-over-UDP counters.
type Stats struct {
	// RTPSessions is the number of live UDP tracks (one per SETUP), and
	// RTPSessionsTotal how many have been set up.
	RTPSessions      int64  `json:"rtp_sessions"`
	RTPSessionsTotal uint64 `json:"rtp_sessions_total"`
	// UDPBytesIn (client → device) and UDPBytesOut are relayed payload.
	UDPBytesIn  uint64 `json:"udp_bytes_in"`
	UDPBytesOut uint64 `json:"udp_bytes_out"`
	// UDPPacketsOut counts datagrams relayed to clients.
	UDPPacketsOut uint64 `json:"udp_packets_out"`
	// UDPDropped counts datagrams not relayed: from a stranger, or that
	// could not be sent. Foreign are those from a stranger.
	UDPDropped uint64 `json:"udp_dropped"`
	Foreign    uint64 `json:"udp_foreign"`
	// Refused counts SETUPs answered 461/453 (multicast, range exhausted).
	Refused uint64 `json:"rtp_refused"`
	// TimedOut counts tracks ended by the session timeout.
	TimedOut uint64 `json:"rtp_timed_out"`
}

func (s *ruleStats) snapshot() Stats {
	return Stats{
		RTPSessions: s.tracks.Load(), RTPSessionsTotal: s.total.Load(),
		UDPBytesIn: s.in.Load(), UDPBytesOut: s.out.Load(), UDPPacketsOut: s.packetsOut.Load(),
		UDPDropped: s.dropped.Load(), Foreign: s.foreign.Load(),
		Refused: s.refused.Load(), TimedOut: s.timedOut.Load(),
	}
}

// Stats returns every rule's counters by name.
func (r *Relay) Stats() map[string]Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]Stats, len(r.rules))
	for n, s := range r.rules {
		out[n] = s.snapshot()
	}
	return out
}
