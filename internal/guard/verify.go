package guard

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"hash"
	"log/slog"
	"net/netip"
	"strings"

	"github.com/camgate/camgate/internal/config"
)

// Checking login answers against the device's own password.
//
// When camgate knows the password of the account the owner logs in with
// (`camgate device add` stores it in the state directory), the guard
// judges Digest and Basic answers itself, before the device sees them:
//
//   - a right answer is forwarded unchanged;
//   - a wrong answer never reaches the device: the request is forwarded
//     without its Authorization field, so the device answers with a
//     fresh 401 challenge and counts nothing, and the source's failure
//     counts towards its ban as before.
//
// The Digest response is recomputed from the parameters the client sent
// (realm, nonce, cnonce, nc, qop, uri), which is all a client can prove
// knowledge of the password with; the device still checks that the nonce
// is one it issued and fresh. camgate issues no challenge of its own, so
// clients see the device's realm and nonces and nothing about the device
// changes. Answers camgate cannot judge (another user name, qop=auth-int,
// userhash, an unknown algorithm, Hikvision's hashed sessionLogin body)
// go to the device under the device-wide budget (auth.go).

// AuthCheck is the verdict on one Authorization field.
type AuthCheck int

const (
	// AuthUnknown: camgate cannot tell (another account, an unsupported
	// scheme or Digest variant, a malformed field).
	AuthUnknown AuthCheck = iota
	// AuthRight: the answer proves the known password.
	AuthRight
	// AuthWrong: the answer is for the known account and the password is
	// wrong.
	AuthWrong
)

func (a AuthCheck) String() string {
	switch a {
	case AuthRight:
		return "right"
	case AuthWrong:
		return "wrong"
	}
	return "unknown"
}

// Credentials are the account camgate knows on a device. The zero value
// judges nothing (every answer is AuthUnknown).
type Credentials struct {
	User, Password string
}

// Check judges an Authorization field value (RFC 9110 §11.6.2) sent with
// a request of the given method (HTTP or RTSP). The Digest uri parameter
// is used as the client sent it; the device compares it with the request
// target itself.
func (c Credentials) Check(method, authorization string) AuthCheck {
	if c.User == "" || c.Password == "" {
		return AuthUnknown
	}
	scheme, rest, _ := strings.Cut(strings.TrimSpace(authorization), " ")
	switch {
	case strings.EqualFold(scheme, "basic"):
		return c.checkBasic(strings.TrimSpace(rest))
	case strings.EqualFold(scheme, "digest"):
		params, ok := parseAuthParams(rest)
		if !ok {
			return AuthUnknown
		}
		return c.checkDigest(method, params)
	}
	return AuthUnknown
}

func (c Credentials) checkBasic(token string) AuthCheck {
	b, err := base64.StdEncoding.DecodeString(token)
	if err != nil {
		return AuthUnknown
	}
	user, pass, ok := strings.Cut(string(b), ":")
	if !ok || user != c.User {
		return AuthUnknown
	}
	return verdictOf(subtle.ConstantTimeCompare([]byte(pass), []byte(c.Password)) == 1)
}

func verdictOf(right bool) AuthCheck {
	if right {
		return AuthRight
	}
	return AuthWrong
}

// checkDigest recomputes the response of RFC 7616 §3.4.1 (and RFC 2069's
// form without qop).
func (c Credentials) checkDigest(method string, p map[string]string) AuthCheck {
	if p["username"] != c.User || strings.EqualFold(p["userhash"], "true") {
		return AuthUnknown
	}
	realm, nonce, uri, resp := p["realm"], p["nonce"], p["uri"], strings.ToLower(p["response"])
	if nonce == "" || uri == "" || resp == "" {
		return AuthUnknown
	}
	var h func() hash.Hash
	algo := strings.ToUpper(p["algorithm"])
	sess := strings.HasSuffix(algo, "-SESS")
	switch strings.TrimSuffix(algo, "-SESS") {
	case "", "MD5":
		h = md5.New
	case "SHA-256":
		h = sha256.New
	default:
		return AuthUnknown
	}
	hx := func(parts ...string) string {
		d := h()
		d.Write([]byte(strings.Join(parts, ":")))
		return hex.EncodeToString(d.Sum(nil))
	}
	ha1 := hx(c.User, realm, c.Password)
	if sess {
		ha1 = hx(ha1, nonce, p["cnonce"])
	}
	ha2 := hx(method, uri)
	var want string
	switch qop := p["qop"]; qop {
	case "":
		want = hx(ha1, nonce, ha2)
	case "auth":
		want = hx(ha1, nonce, p["nc"], p["cnonce"], qop, ha2)
	default:
		return AuthUnknown // auth-int needs the body
	}
	return verdictOf(subtle.ConstantTimeCompare([]byte(resp), []byte(want)) == 1)
}

// parseAuthParams parses a comma-separated list of name=value or
// name="quoted value" pairs (RFC 9110 §11.2). Names are lower-cased; a
// repeated name makes the list ambiguous and is refused, as is anything
// it cannot read.
func parseAuthParams(s string) (map[string]string, bool) {
	out := map[string]string{}
	for {
		s = strings.TrimLeft(s, " \t,")
		if s == "" {
			return out, len(out) > 0
		}
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return nil, false
		}
		name := strings.ToLower(strings.TrimSpace(s[:eq]))
		if name == "" || strings.ContainsAny(name, " \t\",") {
			return nil, false
		}
		s = strings.TrimLeft(s[eq+1:], " \t")
		var val string
		if strings.HasPrefix(s, `"`) {
			var b strings.Builder
			i := 1
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				b.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, false
			}
			val, s = b.String(), s[i+1:]
		} else {
			end := strings.IndexByte(s, ',')
			if end < 0 {
				end = len(s)
			}
			val, s = strings.TrimSpace(s[:end]), s[end:]
		}
		if _, dup := out[name]; dup {
			return nil, false
		}
		out[name] = val
		s = strings.TrimLeft(s, " \t")
		if s != "" && s[0] != ',' {
			return nil, false
		}
	}
}

// login judges a login attempt before it may reach the device. A wrong
// answer camgate can verify is taken out of the request (the device
// then only challenges) and counted against the source; it returns a nil
// ticket and no error. Otherwise the attempt takes a slot of the source
// and the device budget (tracker.reserve).
func (s *session) login(ctx context.Context, m *message) (*ticket, error) {
	t, ap := s.h.tr, s.h.rg.auth
	verdict := AuthUnknown
	if m.auth != "" {
		if cr, ok := s.h.p.credentials(s.h.rg); ok {
			verdict = cr.Check(m.method, m.auth)
		}
	}
	if verdict != AuthWrong {
		return t.reserve(ctx, s.src, ap, s.h.rs, verdict == AuthRight)
	}
	if t.isBanned(s.src, ap) || t.refused(s.src, ap, s.h.rs) {
		return nil, errBanned
	}
	s.h.rs.authLog.Log(s.h.p.log, s.h.p.now(), slog.LevelInfo, "wrong password stopped by camgate; the device did not see it",
		"rule", s.h.rg.name, "client", s.c.Client)
	m.dropAuthorization()
	return nil, nil
}

// isBanned reports whether src is banned from the device.
func (t *tracker) isBanned(src netip.Prefix, ap *authParams) bool {
	now := t.p.now()
	if _, ok := t.p.banned(src, ap.rule, ap.device, now); ok {
		return true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.srcs[src]
	return s != nil && now.Before(s.bannedUntil)
}

// dropAuthorization removes the Authorization field from the head.
func (m *message) dropAuthorization() {
	const name = "authorization:"
	head := m.head
	out := make([]byte, 0, len(head))
	for len(head) > 0 {
		i := bytes.Index(head, []byte("\r\n"))
		if i < 0 {
			out = append(out, head...)
			break
		}
		line := head[:i+2]
		head = head[i+2:]
		if len(line) > len(name) && equalFold(line[:len(name)], name) {
			continue
		}
		out = append(out, line...)
	}
	m.head, m.auth, m.authorization = out, "", false
}

// PasswordSource gives a device's password by device name; credstore.Store
// is one.
type PasswordSource interface {
	Get(name string) (string, error)
}

// credentials returns the account camgate knows on the rule's device:
// the devices section names the device (by the rule's device field or
// its address) and the password source has its password.
func (p *Policy) credentials(rg *ruleGuard) (Credentials, bool) {
	if p.passwords == nil {
		return Credentials{}, false
	}
	p.mu.Lock()
	d, ok := p.devices[rg.deviceName]
	if !ok {
		d, ok = p.devices["@"+rg.device]
	}
	p.mu.Unlock()
	if !ok {
		return Credentials{}, false
	}
	pw, err := p.passwords.Get(d.name)
	if err != nil {
		return Credentials{}, false
	}
	return Credentials{User: d.user, Password: pw}, true
}

// knownDevice is a devices-section entry as the guard needs it.
type knownDevice struct{ name, user string }

// Rules camgate cannot read: the device's own HTTPS passed through raw,
// and the server/SDK ports (8000, 8443 for SDK over TLS). Logins over
// them reach the device unseen and count towards its lock. camgate can
// only slow them down: unless the rule sets per_ip_rate, a source may
// open opaqueRate new connections per second (burst opaqueBurst) instead
// of the default. The audit flags such rules, and device add writes none
// by default (docs/SECURITY.md).
const (
	opaqueRate  = 0.5
	opaqueBurst = 10
)

// opaqueLogin reports whether the rule forwards a login port camgate
// cannot read.
func opaqueLogin(r *config.Rule) bool {
	if r.TLS.Terminate() || r.GuardService() != "" || !r.Proto().HasTCP() {
		return false
	}
	in := r.Internal()
	return in.Contains(443) || in.Contains(8000) || in.Contains(8443)
}
