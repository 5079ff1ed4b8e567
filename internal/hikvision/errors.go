package hikvision

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

var (
	// ErrUnauthorized means the device refused the user name or password.
	// The client does not try again: each try counts towards the lockout.
	ErrUnauthorized = errors.New("wrong user name or password")
	// ErrLocked means the device has locked this source address out after
	// too many failed logins ("illegal login lock").
	ErrLocked = errors.New("locked")
	// ErrNoDigest means the device offered no Digest challenge it and we
	// can both do; camgate never falls back to Basic.
	ErrNoDigest = errors.New("no usable digest authentication challenge")
)

// AuthError is ErrUnauthorized with what the device told us.
type AuthError struct {
	// Device is the host:port that answered.
	Device string
	// RemainingAttempts is how many more failures the device allows
	// before locking, or -1 if it did not say.
	RemainingAttempts int
	// NoCredentials is set when no user name was configured at all.
	NoCredentials bool
}

func (e *AuthError) Error() string {
	if e.NoCredentials {
		return fmt.Sprintf("device %s: needs a user name and password (none given)", e.Device)
	}
	msg := fmt.Sprintf("device %s: %v; not retrying, because every failed login counts towards the device's lockout", e.Device, ErrUnauthorized)
	if e.RemainingAttempts >= 0 {
		msg += fmt.Sprintf(" (%d attempts left before it locks this address)", e.RemainingAttempts)
	}
	return msg
}

func (e *AuthError) Unwrap() error { return ErrUnauthorized }

// LockedError is ErrLocked with what the device told us.
type LockedError struct {
	// Device is the host:port that answered.
	Device string
	// Remaining is how long the lock lasts, or 0 if the device did not say.
	Remaining time.Duration
	// Detail is the device's own wording (subStatusCode, lockStatus...).
	Detail string
}

func (e *LockedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "device %s: %v: too many failed logins from this address", e.Device, ErrLocked)
	if e.Detail != "" {
		fmt.Fprintf(&b, " (%s)", e.Detail)
	}
	if e.Remaining > 0 {
		fmt.Fprintf(&b, "; try again in %v", e.Remaining.Round(time.Second))
	} else {
		b.WriteString("; wait for the lock to expire (30 minutes by default)")
	}
	b.WriteString(", with the right password; camgate does not retry")
	return b.String()
}

func (e *LockedError) Unwrap() error { return ErrLocked }

// StatusError is an answer other than the document asked for: an HTTP
// error status, or an ISAPI ResponseStatus in place of the document.
type StatusError struct {
	// Device is the host:port that answered; Path the request path.
	Device, Path string
	// HTTPStatus is the HTTP status code, 0 if the body was the problem.
	HTTPStatus int
	// Status is the parsed ISAPI status body, if there was one.
	Status Status
	// Location is the redirect target for a 3xx answer.
	Location string
}

func (e *StatusError) Error() string {
	var b strings.Builder
	if e.Device != "" {
		fmt.Fprintf(&b, "device %s: ", e.Device)
	}
	if e.Path != "" {
		fmt.Fprintf(&b, "GET %s: ", e.Path)
	}
	if e.HTTPStatus != 0 {
		fmt.Fprintf(&b, "HTTP %d", e.HTTPStatus)
	} else {
		b.WriteString("device answered with a status")
	}
	st := e.Status
	var parts []string
	if st.StatusCode != 0 {
		parts = append(parts, fmt.Sprintf("statusCode %d", st.StatusCode))
	}
	for _, s := range []string{st.StatusString, st.SubStatusCode, st.ErrorMsg} {
		if s != "" {
			parts = append(parts, s)
		}
	}
	if len(parts) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(parts, ", "))
	}
	if e.Location != "" {
		fmt.Fprintf(&b, "; redirected to %s (use that scheme and port)", e.Location)
	}
	return b.String()
}
