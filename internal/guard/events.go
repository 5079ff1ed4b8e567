package guard

import (
	"net/netip"
	"time"
)

// EventSink is told of the guard's security events as they happen, for
// the owner's banner and notifications (package notify, wired by serve).
// GuardEvent is called on the connection's goroutine, so it must not
// block: it should queue, or drop when busy.
type EventSink interface {
	GuardEvent(Event)
}

// Event kinds.
const (
	EventBan   = "ban"   // a source was banned
	EventBlock = "block" // the exploit filter refused a request
)

// Event is one security event.
type Event struct {
	Kind   string         `json:"kind"`
	Time   time.Time      `json:"time"`
	Rule   string         `json:"rule"`
	Client netip.AddrPort `json:"client,omitzero"`
	// Source is the banned prefix (ban).
	Source netip.Prefix `json:"source,omitzero"`
	Device string       `json:"device,omitempty"`
	// Detail is the ban's reason, or the blocked request's signature,
	// method and path (clipped, as logged).
	Detail string    `json:"detail"`
	Until  time.Time `json:"until,omitzero"`
}

// SetEvents makes sink receive the guard's events from now on; nil
// stops them. serve builds the guard before the notifier, hence a
// setter rather than a Config field.
func (p *Policy) SetEvents(sink EventSink) {
	if sink == nil {
		p.events.Store(nil)
		return
	}
	p.events.Store(&sink)
}

// emit hands e to the event sink, if any.
func (p *Policy) emit(e Event) {
	if s := p.events.Load(); s != nil {
		(*s).GuardEvent(e)
	}
}
