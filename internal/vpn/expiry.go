package vpn

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// maxExpiry bounds how far ahead an expiry may be: ten years is "never"
// said differently, and keeps arithmetic far from overflow.
const maxExpiry = 10 * 365 * 24 * time.Hour

// ParseExpiry reads an expiry as `vpn add --expires` and the UI take it:
// empty or "never" (no expiry), a duration from now ("30d", "12h",
// "90m", "1w"), a date ("2027-01-31", end of that day UTC) or an RFC 3339
// time.
func ParseExpiry(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" || strings.EqualFold(s, "never") {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return checkExpiry(s, t, now)
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return checkExpiry(s, t.Add(24*time.Hour-time.Second), now)
	}
	if len(s) < 2 {
		return time.Time{}, expiryError(s)
	}
	n, err := strconv.ParseUint(s[:len(s)-1], 10, 32)
	if err != nil || n == 0 {
		return time.Time{}, expiryError(s)
	}
	var unit time.Duration
	switch s[len(s)-1] {
	case 'm':
		unit = time.Minute
	case 'h':
		unit = time.Hour
	case 'd':
		unit = 24 * time.Hour
	case 'w':
		unit = 7 * 24 * time.Hour
	default:
		return time.Time{}, expiryError(s)
	}
	if n > uint64(maxExpiry/unit) {
		return time.Time{}, fmt.Errorf("expiry %q: more than ten years; leave it empty for no expiry", s)
	}
	return now.Add(time.Duration(n) * unit).UTC(), nil
}

func checkExpiry(s string, t, now time.Time) (time.Time, error) {
	if !t.After(now) {
		return time.Time{}, fmt.Errorf("expiry %q is in the past", s)
	}
	if t.Sub(now) > maxExpiry {
		return time.Time{}, fmt.Errorf("expiry %q: more than ten years; leave it empty for no expiry", s)
	}
	return t.UTC(), nil
}

func expiryError(s string) error {
	return fmt.Errorf("expiry %q: use a duration such as 30d, 12h or 2w, a date such as 2027-01-31, or never", s)
}
