package forward

import "sync/atomic"

// Stats are one rule's counters. Every field is an atomic updated on the
// hot path without locks; readers take a Snapshot.
type Stats struct {
	Active    atomic.Int64  // live TCP connections
	Total     atomic.Uint64 // TCP connections accepted and forwarded
	Sessions  atomic.Int64  // live UDP sessions
	SessTotal atomic.Uint64 // UDP sessions created
	BytesIn   atomic.Uint64 // client → device, TCP and UDP payload
	BytesOut  atomic.Uint64 // device → client
	DialErrs  atomic.Uint64 // device unreachable
	Refused   atomic.Uint64 // refused by a cap or by policy (Admit)
	Dropped   atomic.Uint64 // UDP datagrams that could not be delivered
	Evicted   atomic.Uint64 // UDP sessions evicted because the table was full
}

// Snapshot is a copy of Stats at one moment, ready for JSON.
type Snapshot struct {
	Active    int64  `json:"active"`
	Total     uint64 `json:"total"`
	Sessions  int64  `json:"udp_sessions"`
	SessTotal uint64 `json:"udp_sessions_total"`
	BytesIn   uint64 `json:"bytes_in"`
	BytesOut  uint64 `json:"bytes_out"`
	DialErrs  uint64 `json:"dial_errors"`
	Refused   uint64 `json:"refused"`
	Dropped   uint64 `json:"dropped"`
	Evicted   uint64 `json:"evicted"`
}

// Snapshot reads every counter.
func (s *Stats) Snapshot() Snapshot {
	return Snapshot{
		Active: s.Active.Load(), Total: s.Total.Load(),
		Sessions: s.Sessions.Load(), SessTotal: s.SessTotal.Load(),
		BytesIn: s.BytesIn.Load(), BytesOut: s.BytesOut.Load(),
		DialErrs: s.DialErrs.Load(), Refused: s.Refused.Load(),
		Dropped: s.Dropped.Load(), Evicted: s.Evicted.Load(),
	}
}
