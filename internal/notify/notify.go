// Package notify brings security events to the owner: it keeps the
// recent ones for the admin UI's banner, and posts them to a webhook
// (camgate.yaml's notify section) in ntfy's format or as JSON,
// rate-limited so that a flood of exploit probes is not a flood of
// messages on a phone.
//
//	n := notify.New(notify.Config{Logger: log, BaseDir: dir})
//	n.SetSettings(cfg.Notify)
//	go n.Run(ctx)
//	n.Publish(notify.Event{Kind: config.EventBan, Title: "...", Message: "..."})
//
// Publish never blocks: events beyond the rate limit (per kind, so a
// flood of blocked probes does not hold back a ban), or beyond a full
// queue while the webhook is slow, are counted and not sent, and the next
// message of that kind says how many were held back. The package does not know where
// events come from; serve wires the guard and the config file to it.
package notify

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/camgate/camgate/internal/config"
)

// Event is one security event.
type Event struct {
	Kind  string    `json:"kind"`
	Time  time.Time `json:"time"`
	Title string    `json:"title"`
	// Message says what happened and what to do, in words for people.
	Message string `json:"message"`
	Rule    string `json:"rule,omitempty"`
	// Source is the client address or banned prefix, if any.
	Source string `json:"source,omitempty"`
	Device string `json:"device,omitempty"`
}

// Config configures a Notifier.
type Config struct {
	// BaseDir resolves a relative notify.token_file (the config file's
	// folder). Empty means the working directory.
	BaseDir string
	// Logger receives send failures. Nil discards.
	Logger *slog.Logger
	// Client posts to the webhook. Nil means a client with a 10 s
	// timeout.
	Client *http.Client
	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
}

// keepRecent is how many events the UI can list.
const keepRecent = 100

// queueLen bounds the events waiting for a slow webhook.
const queueLen = 32

// Status is what the notifier did since the start.
type Status struct {
	Enabled   bool      `json:"enabled"`
	Sent      int       `json:"sent"`
	HeldBack  int       `json:"held_back"`
	Failed    int       `json:"failed"`
	LastError string    `json:"last_error,omitempty"`
	LastSent  time.Time `json:"last_sent,omitzero"`
}

// Notifier keeps recent events and sends them to the webhook. Its methods
// are safe for concurrent use.
type Notifier struct {
	c     Config
	log   *slog.Logger
	queue chan outgoing

	mu       sync.Mutex // guards following
	settings config.Notify
	recent   []Event
	// buckets rate-limits each kind on its own, so that a flood of
	// blocked probes does not hold back the ban that follows it.
	buckets map[string]*bucket
	status  Status
}

// bucket is one kind's token bucket.
type bucket struct {
	tokens   float64
	refilled time.Time
	// held counts events not sent since the last one that was.
	held int
}

// outgoing is a queued message: the event and how many were held back
// before it.
type outgoing struct {
	e        Event
	settings config.Notify
	held     int
}

// New returns a Notifier that sends nothing until SetSettings turns the
// webhook on.
func New(c Config) *Notifier {
	n := &Notifier{c: c, log: c.Logger, queue: make(chan outgoing, queueLen)}
	if n.log == nil {
		n.log = slog.New(slog.DiscardHandler)
	}
	if n.c.Client == nil {
		n.c.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if n.c.Now == nil {
		n.c.Now = time.Now
	}
	return n
}

// SetSettings applies the notify section; a change refills the rate
// limit.
func (n *Notifier) SetSettings(s config.Notify) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.buckets == nil || n.settings.URL != s.URL || n.settings.EffectiveBurst() != s.EffectiveBurst() {
		n.buckets = map[string]*bucket{}
	}
	n.settings = s
	n.settings.Events = slices.Clone(s.Events)
	n.status.Enabled = s.Enabled()
}

// Publish records e and queues it for the webhook if the settings want
// it and the rate limit allows. It never blocks.
func (n *Notifier) Publish(e Event) {
	if e.Time.IsZero() {
		e.Time = n.c.Now()
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.recent = append(n.recent, e)
	if len(n.recent) > keepRecent {
		n.recent = slices.Delete(n.recent, 0, len(n.recent)-keepRecent)
	}
	s := n.settings
	if !s.Enabled() || !s.Wants(e.Kind) {
		return
	}
	b := n.buckets[e.Kind]
	if b == nil {
		b = &bucket{tokens: float64(s.EffectiveBurst()), refilled: n.c.Now()}
		n.buckets[e.Kind] = b
	}
	if !b.take(s, n.c.Now()) {
		b.held++
		n.status.HeldBack++
		return
	}
	select {
	case n.queue <- outgoing{e: e, settings: s, held: b.held}:
		b.held = 0
	default:
		b.held++
		n.status.HeldBack++
	}
}

// take takes one token: Burst at once, then one per Every.
func (b *bucket) take(s config.Notify, now time.Time) bool {
	if add := float64(now.Sub(b.refilled)) / float64(s.EffectiveEvery()); add > 0 {
		b.tokens = min(float64(s.EffectiveBurst()), b.tokens+add)
	}
	b.refilled = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// Recent returns the kept events, newest first.
func (n *Notifier) Recent() []Event {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := slices.Clone(n.recent)
	slices.Reverse(out)
	return out
}

// Status returns what the notifier did since the start.
func (n *Notifier) Status() Status {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.status
}

// Run sends queued events until ctx ends.
func (n *Notifier) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case o := <-n.queue:
			err := n.send(ctx, o)
			n.mu.Lock()
			if err != nil {
				n.status.Failed++
				n.status.LastError = err.Error()
			} else {
				n.status.Sent++
				n.status.LastSent = n.c.Now()
			}
			n.mu.Unlock()
			if err != nil && !errors.Is(err, context.Canceled) {
				n.log.Warn("cannot send a notification", "kind", o.e.Kind, "err", err)
			}
		}
	}
}
