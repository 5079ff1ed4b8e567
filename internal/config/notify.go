package config

import (
	"net/url"
	"slices"
	"strings"
	"time"
)

// Notify sends security events to the owner through a webhook
// (docs/ADMIN.md, "Notifications"): bans, exploit-filter blocks, a device
// locking camgate out, and a config file a reload refused. The zero value
// sends nothing.
type Notify struct {
	// URL receives a POST per event. For ntfy (https://ntfy.sh or a
	// self-hosted server) it is the topic's URL,
	// "https://ntfy.sh/my-camgate-alerts". Empty means off.
	URL string `yaml:"url,omitempty" json:"url,omitempty"`
	// Format is ntfy (the default: the message as the body, Title,
	// Priority and Tags headers, which ntfy and Gotify-style bridges
	// read) or json (one JSON object per event).
	Format string `yaml:"format,omitempty" json:"format,omitempty"`
	// TokenFile holds a bearer token sent as "Authorization: Bearer ...",
	// such as an ntfy access token. Relative paths are against the config
	// file's folder. Optional.
	TokenFile string `yaml:"token_file,omitempty" json:"token_file,omitempty"`
	// Events lists the kinds to send: ban, block, device-lockout,
	// config-refused. Empty means all of them.
	Events []string `yaml:"events,omitempty" json:"events,omitempty"`
	// Burst is how many events may go out at once, and Every how often
	// one more is allowed after that. Events beyond are not sent; the
	// next message says how many were held back. 0 means
	// DefaultNotifyBurst and DefaultNotifyEvery.
	Burst int      `yaml:"burst,omitempty" json:"burst,omitempty"`
	Every Duration `yaml:"every,omitempty" json:"every,omitempty"`
}

// Notification defaults: a flood of exploit probes must not become a
// flood of messages on the owner's phone.
const (
	DefaultNotifyBurst = 5
	DefaultNotifyEvery = 5 * time.Minute
)

// Notification event kinds.
const (
	EventBan           = "ban"
	EventBlock         = "block"
	EventDeviceLockout = "device-lockout"
	EventConfigRefused = "config-refused"
)

// NotifyEvents are the kinds Notify.Events may name.
var notifyEvents = []string{EventBan, EventBlock, EventDeviceLockout, EventConfigRefused}

// clone copies the events list, so a clone's edit cannot reach the live
// config.
func (n Notify) clone() Notify {
	n.Events = slices.Clone(n.Events)
	return n
}

// Enabled reports whether notifications are on.
func (n Notify) Enabled() bool { return strings.TrimSpace(n.URL) != "" }

// JSON reports whether events go out as JSON rather than ntfy's format.
func (n Notify) JSON() bool { return strings.EqualFold(n.Format, "json") }

// Wants reports whether events of kind are sent.
func (n Notify) Wants(kind string) bool {
	return len(n.Events) == 0 || slices.Contains(n.Events, kind)
}

// EffectiveBurst returns the burst with its default applied.
func (n Notify) EffectiveBurst() int { return orDefault(n.Burst, DefaultNotifyBurst) }

// EffectiveEvery returns the refill interval with its default applied.
func (n Notify) EffectiveEvery() time.Duration {
	if n.Every <= 0 {
		return DefaultNotifyEvery
	}
	return n.Every.D()
}

func validateNotify(n *Notify, add func(field, format string, args ...any)) {
	if n.URL != "" {
		u, err := url.Parse(n.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add("url", "%q is not an http(s) URL such as https://ntfy.sh/my-camgate-alerts", n.URL)
		} else if u.User != nil {
			add("url", "must not hold a password; put a token in token_file")
		}
	}
	switch strings.ToLower(n.Format) {
	case "", "ntfy", "json":
	default:
		add("format", "%q is not ntfy or json", n.Format)
	}
	for _, e := range n.Events {
		if !slices.Contains(notifyEvents, e) {
			add("events", "%q is not one of %s", e, strings.Join(notifyEvents, ", "))
		}
	}
	if n.Burst < 0 {
		add("burst", "must not be negative")
	}
	if n.Every < 0 {
		add("every", "must not be negative")
	}
}
