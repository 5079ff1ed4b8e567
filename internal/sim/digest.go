package sim

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"sync"
	"time"
)

// This file is the server side of HTTP Digest authentication (RFC 7616,
// with the RFC 2069 form without qop that RTSP clients and old firmware
// use). Nonces are stateless: the issue time plus an HMAC over it, so any
// nonce the device issued can be checked without remembering it, and a
// forged or foreign one is recognised. Only nonce-count values of
// successful qop=auth logins are remembered, to refuse replays.

// digestAlgo is one digest algorithm (RFC 7616 section 3.2).
type digestAlgo struct {
	name    string // as offered: "MD5", "SHA-256", "MD5-sess", "SHA-256-sess"
	newHash func() hash.Hash
	sess    bool
}

func lookupAlgo(name string) (digestAlgo, bool) {
	switch strings.ToUpper(name) {
	case "MD5":
		return digestAlgo{"MD5", md5.New, false}, true
	case "MD5-SESS":
		return digestAlgo{"MD5-sess", md5.New, true}, true
	case "SHA-256":
		return digestAlgo{"SHA-256", sha256.New, false}, true
	case "SHA-256-SESS":
		return digestAlgo{"SHA-256-sess", sha256.New, true}, true
	}
	return digestAlgo{}, false
}

func (a digestAlgo) h(parts ...string) string {
	h := a.newHash()
	h.Write([]byte(strings.Join(parts, ":")))
	return hex.EncodeToString(h.Sum(nil))
}

// Limits on remembered nonce counts; past them a client is asked for a
// fresh nonce (stale=true) rather than the device growing without bound.
const (
	maxTrackedNonces   = 10000
	maxCountsPerNonce  = 4096
	maxAuthHeaderBytes = 4096
	maxAuthParams      = 32
)

// digestAuth issues challenges and checks responses for one realm.
type digestAuth struct {
	realm    string
	algos    []digestAlgo
	key      [32]byte
	opaque   string
	lifetime time.Duration
	now      func() time.Time

	mu   sync.Mutex // guards following
	used map[string]*nonceUse
}

// nonceUse remembers the nonce counts seen with one nonce.
type nonceUse struct {
	expires time.Time
	counts  map[string]struct{}
}

func newDigestAuth(realm string, algos []string, lifetime time.Duration) (*digestAuth, error) {
	a := &digestAuth{realm: realm, lifetime: lifetime, now: time.Now, used: map[string]*nonceUse{}}
	if algos == nil {
		algos = []string{"SHA-256", "MD5"}
	}
	if len(algos) == 0 {
		return nil, errors.New("digest algorithms: empty list")
	}
	for _, n := range algos {
		al, ok := lookupAlgo(n)
		if !ok {
			return nil, fmt.Errorf("digest algorithm %q: want MD5, SHA-256, MD5-sess or SHA-256-sess", n)
		}
		a.algos = append(a.algos, al)
	}
	if _, err := rand.Read(a.key[:]); err != nil {
		return nil, fmt.Errorf("digest key: %w", err)
	}
	var op [16]byte
	if _, err := rand.Read(op[:]); err != nil {
		return nil, fmt.Errorf("digest opaque: %w", err)
	}
	a.opaque = hex.EncodeToString(op[:])
	return a, nil
}

// newNonce returns hex(issue time || HMAC(key, issue time)[:16]).
func (a *digestAuth) newNonce() string {
	var b [24]byte
	binary.BigEndian.PutUint64(b[:8], uint64(a.now().UnixNano()))
	m := hmac.New(sha256.New, a.key[:])
	m.Write(b[:8])
	copy(b[8:], m.Sum(nil))
	return hex.EncodeToString(b[:])
}

// checkNonce reports whether the device issued n, and when.
func (a *digestAuth) checkNonce(n string) (time.Time, bool) {
	if len(n) != 48 {
		return time.Time{}, false
	}
	b, err := hex.DecodeString(n)
	if err != nil {
		return time.Time{}, false
	}
	m := hmac.New(sha256.New, a.key[:])
	m.Write(b[:8])
	if !hmac.Equal(m.Sum(nil)[:16], b[8:]) {
		return time.Time{}, false
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(b[:8]))), true
}

// httpChallenges returns one WWW-Authenticate value per offered algorithm,
// most preferred first (RFC 7616 section 3.7), all with one fresh nonce.
func (a *digestAuth) httpChallenges(stale bool) []string {
	nonce := a.newNonce()
	st := "FALSE"
	if stale {
		st = "TRUE"
	}
	var out []string
	for _, al := range a.algos {
		out = append(out, fmt.Sprintf(`Digest qop="auth", realm=%s, nonce=%s, stale="%s", opaque=%s, algorithm=%s`,
			quote(a.realm), quote(nonce), st, quote(a.opaque), al.name))
	}
	return out
}

// rtspChallenge is the challenge a Hikvision RTSP server sends: MD5, no
// qop, stale quoted in capitals.
func (a *digestAuth) rtspChallenge(stale bool) string {
	st := "FALSE"
	if stale {
		st = "TRUE"
	}
	return fmt.Sprintf(`Digest realm=%s, nonce=%s, stale="%s"`, quote(a.realm), quote(a.newNonce()), st)
}

func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// verdict is the outcome of checking an Authorization header.
type verdict int

const (
	// verdictBad: wrong user or password (a failed login).
	verdictBad verdict = iota
	// verdictOK: authenticated.
	verdictOK
	// verdictStale: right credentials on an expired or replayed nonce;
	// the client should retry with the fresh nonce (stale=true).
	verdictStale
	// verdictUnknownNonce: a nonce this device never issued (say, from
	// before a restart); the credentials were not checked.
	verdictUnknownNonce
	// verdictMalformed: not a usable digest response (400 Bad Request).
	verdictMalformed
)

func (v verdict) String() string {
	switch v {
	case verdictOK:
		return "ok"
	case verdictStale:
		return "stale nonce"
	case verdictUnknownNonce:
		return "unknown nonce"
	case verdictMalformed:
		return "malformed"
	}
	return "wrong credentials"
}

// digestRequest is what verify needs to know about the request.
type digestRequest struct {
	method string
	// uriOK checks the uri parameter against the request target; nil
	// accepts any (RTSP clients disagree on its form).
	uriOK func(string) bool
	// algos are the acceptable algorithms; nil means those offered.
	algos []digestAlgo
}

// verify checks a parsed Digest Authorization header against user/pass.
func (a *digestAuth) verify(req digestRequest, p map[string]string, user, pass string) verdict {
	for _, k := range []string{"username", "realm", "nonce", "uri", "response"} {
		if p[k] == "" {
			return verdictMalformed
		}
	}
	if req.uriOK != nil && !req.uriOK(p["uri"]) {
		return verdictMalformed
	}
	qop := p["qop"]
	switch qop {
	case "":
	case "auth":
		if len(p["nc"]) != 8 || p["cnonce"] == "" {
			return verdictMalformed
		}
		if _, err := strconv.ParseUint(p["nc"], 16, 32); err != nil {
			return verdictMalformed
		}
	default:
		return verdictMalformed // auth-int is not offered
	}
	issued, ok := a.checkNonce(p["nonce"])
	if !ok {
		return verdictUnknownNonce
	}
	name := p["algorithm"]
	if name == "" {
		name = "MD5"
	}
	algos := req.algos
	if algos == nil {
		algos = a.algos
	}
	var al digestAlgo
	found := false
	for _, x := range algos {
		if strings.EqualFold(x.name, name) {
			al, found = x, true
			break
		}
	}
	if !found || p["realm"] != a.realm {
		return verdictBad
	}
	if op, has := p["opaque"]; has && op != a.opaque {
		return verdictBad
	}
	wantUser := user
	if strings.EqualFold(p["userhash"], "true") {
		wantUser = al.h(user, a.realm)
	}
	ha1 := al.h(user, a.realm, pass)
	if al.sess {
		ha1 = al.h(ha1, p["nonce"], p["cnonce"])
	}
	ha2 := al.h(req.method, p["uri"])
	var want string
	if qop == "" {
		want = al.h(ha1, p["nonce"], ha2)
	} else {
		want = al.h(ha1, p["nonce"], p["nc"], p["cnonce"], qop, ha2)
	}
	userOK := subtle.ConstantTimeCompare([]byte(p["username"]), []byte(wantUser)) == 1
	respOK := subtle.ConstantTimeCompare([]byte(strings.ToLower(p["response"])), []byte(want)) == 1
	if !userOK || !respOK {
		return verdictBad
	}
	now := a.now()
	if now.Sub(issued) > a.lifetime || issued.After(now.Add(time.Minute)) {
		return verdictStale
	}
	if qop != "" && !a.recordCount(p["nonce"], p["nc"], issued.Add(a.lifetime), now) {
		return verdictStale
	}
	return verdictOK
}

// recordCount remembers nc for nonce and reports whether it was new.
func (a *digestAuth) recordCount(nonce, nc string, expires, now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	u := a.used[nonce]
	if u == nil {
		if len(a.used) >= maxTrackedNonces {
			for k, v := range a.used {
				if now.After(v.expires) {
					delete(a.used, k)
				}
			}
			if len(a.used) >= maxTrackedNonces {
				return false
			}
		}
		u = &nonceUse{expires: expires, counts: map[string]struct{}{}}
		a.used[nonce] = u
	}
	nc = strings.ToLower(nc)
	if _, seen := u.counts[nc]; seen || len(u.counts) >= maxCountsPerNonce {
		return false
	}
	u.counts[nc] = struct{}{}
	return true
}

// credentials is a parsed Authorization header.
type credentials struct {
	scheme  string            // lower case: "digest", "basic", ...
	token68 string            // for Basic
	params  map[string]string // for Digest; keys lower case
}

// parseAuthorization parses an Authorization header value (RFC 7235
// section 2.1: a scheme, then a token68 or a list of auth-params whose
// values are tokens or quoted strings).
func parseAuthorization(h string) (credentials, error) {
	var c credentials
	if len(h) > maxAuthHeaderBytes {
		return c, errors.New("authorization header too long")
	}
	h = strings.TrimLeft(h, " \t")
	i := 0
	for i < len(h) && isTChar(h[i]) {
		i++
	}
	if i == 0 {
		return c, errors.New("authorization: no scheme")
	}
	c.scheme = strings.ToLower(h[:i])
	rest := strings.TrimLeft(h[i:], " \t")
	if rest == "" {
		return c, nil
	}
	if i < len(h) && h[i] != ' ' && h[i] != '\t' {
		return c, errors.New("authorization: no space after scheme")
	}
	if c.scheme == "basic" {
		if !isToken68(rest) {
			return c, errors.New("authorization: bad token68")
		}
		c.token68 = rest
		return c, nil
	}
	params, err := parseAuthParams(rest)
	if err != nil {
		if isToken68(rest) {
			c.token68 = rest
			return c, nil
		}
		return c, err
	}
	c.params = params
	return c, nil
}

func parseAuthParams(s string) (map[string]string, error) {
	out := map[string]string{}
	i := 0
	skip := func() {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
	}
	for {
		// Empty list elements are allowed (RFC 7230 section 7).
		for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == ',') {
			i++
		}
		if i >= len(s) {
			return out, nil
		}
		start := i
		for i < len(s) && isTChar(s[i]) {
			i++
		}
		if i == start {
			return nil, fmt.Errorf("authorization: unexpected %q at %d", s[i], i)
		}
		key := strings.ToLower(s[start:i])
		skip()
		if i >= len(s) || s[i] != '=' {
			return nil, fmt.Errorf("authorization: parameter %q has no value", key)
		}
		i++
		skip()
		var val string
		if i < len(s) && s[i] == '"' {
			i++
			var b strings.Builder
			closed := false
			for i < len(s) {
				ch := s[i]
				if ch == '\\' && i+1 < len(s) {
					b.WriteByte(s[i+1])
					i += 2
					continue
				}
				if ch == '"' {
					closed = true
					i++
					break
				}
				b.WriteByte(ch)
				i++
			}
			if !closed {
				return nil, fmt.Errorf("authorization: parameter %q: unterminated quoted string", key)
			}
			val = b.String()
		} else {
			start := i
			for i < len(s) && isTChar(s[i]) {
				i++
			}
			val = s[start:i]
		}
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("authorization: parameter %q repeated", key)
		}
		if len(out) >= maxAuthParams {
			return nil, errors.New("authorization: too many parameters")
		}
		out[key] = val
		skip()
		if i < len(s) && s[i] != ',' {
			return nil, fmt.Errorf("authorization: unexpected %q after parameter %q", s[i], key)
		}
	}
}

// isTChar reports whether c may appear in an RFC 7230 token.
func isTChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func isToken68(s string) bool {
	if s == "" {
		return false
	}
	i := 0
	for i < len(s) && (isAlnum(s[i]) || strings.IndexByte("-._~+/", s[i]) >= 0) {
		i++
	}
	if i == 0 {
		return false
	}
	for i < len(s) && s[i] == '=' {
		i++
	}
	return i == len(s)
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
