package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
	"sync"
	"time"
)

// A browser session is two secrets, and a request needs both:
//
//   - a cookie (HttpOnly, SameSite=Strict, Secure over HTTPS), which page
//     scripts cannot read, so an injected script cannot carry it away;
//   - the X-Camgate-Session header, whose value the UI keeps in
//     localStorage. Storage is per origin, port included, while cookies
//     are shared by every port of a host, so a forwarded camera's web UI
//     on the same address (a port camgate itself exposes) that receives
//     the cookie still cannot use it.
//
// The header also makes every API call a non-simple CORS request, which
// browsers will not send cross-origin without a preflight that is never
// granted.
const (
	// cookieSecure is the cookie name over HTTPS. The __Host- prefix
	// makes browsers insist on Secure, Path=/ and no Domain (RFC 6265bis
	// §4.1.3.2).
	cookieSecure = "__Host-camgate-session"
	// cookiePlain is used over plain HTTP on loopback, where a Secure
	// cookie would be dropped by the browser and __Host- is refused.
	cookiePlain = "camgate-session"
	// sessionHeader carries the second secret.
	sessionHeader = "X-Camgate-Session"
	// maxSessions bounds memory; the oldest session goes first.
	maxSessions = 64
)

// session is one login. Sessions live in memory: a restart logs everyone
// out, which is also what a stolen cookie should hope for least.
type session struct {
	user    string
	secret  string // the header half
	from    string
	created time.Time
	expires time.Time
}

type sessionStore struct {
	mu sync.Mutex // guards following
	m  map[[32]byte]*session
}

func newSessionStore() *sessionStore { return &sessionStore{m: map[[32]byte]*session{}} }

// create makes a session and returns the cookie value and header secret.
func (st *sessionStore) create(user, from string, now time.Time, ttl time.Duration) (cookie, secret string, s *session) {
	cookie, secret = randomToken(""), randomToken("")
	s = &session{user: user, secret: secret, from: from, created: now, expires: now.Add(ttl)}
	st.mu.Lock()
	defer st.mu.Unlock()
	st.sweepLocked(now)
	evictStalest(st.m, maxSessions, func(s *session) time.Time { return s.created })
	st.m[sha256.Sum256([]byte(cookie))] = s
	return cookie, secret, s
}

func (st *sessionStore) sweepLocked(now time.Time) {
	for k, v := range st.m {
		if !now.Before(v.expires) {
			delete(st.m, k)
		}
	}
}

// get returns the live session for a cookie value and header secret.
func (st *sessionStore) get(cookie, secret string, now time.Time) *session {
	if cookie == "" {
		return nil
	}
	key := sha256.Sum256([]byte(cookie))
	st.mu.Lock()
	defer st.mu.Unlock()
	s := st.m[key]
	if s == nil {
		return nil
	}
	if !now.Before(s.expires) {
		delete(st.m, key)
		return nil
	}
	if subtle.ConstantTimeCompare([]byte(s.secret), []byte(secret)) != 1 {
		return nil
	}
	cp := *s
	return &cp
}

func (st *sessionStore) remove(cookie string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	delete(st.m, sha256.Sum256([]byte(cookie)))
}

// removeBefore ends sessions created before t (a password change).
func (st *sessionStore) removeBefore(t time.Time) {
	st.mu.Lock()
	defer st.mu.Unlock()
	for k, v := range st.m {
		if v.created.Before(t) {
			delete(st.m, k)
		}
	}
}

func cookieName(r *http.Request) string {
	if r.TLS != nil {
		return cookieSecure
	}
	return cookiePlain
}

// setSessionCookie sets the cookie with an expiry. Secure is set over
// HTTPS only: on plain-HTTP loopback a browser drops Secure cookies.
func setSessionCookie(w http.ResponseWriter, r *http.Request, value string, expires time.Time, now time.Time) {
	http.SetCookie(w, &http.Cookie{
		Name: cookieName(r), Value: value, Path: "/",
		Expires: expires, MaxAge: int(expires.Sub(now).Seconds()),
		Secure: r.TLS != nil, HttpOnly: true, SameSite: http.SameSiteStrictMode,
	})
}

func clearSessionCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{
		Name: cookieName(r), Value: "", Path: "/", MaxAge: -1,
		Secure: r.TLS != nil, HttpOnly: true, SameSite: http.SameSiteStrictMode,
	})
}

// principal is who is making a request.
type principal struct {
	// User is the account name, or "token:<name>" for an API token.
	User string
	// Token is the API token's id, or "" for a session.
	Token string
	// ReadOnly tokens may only GET.
	ReadOnly bool
	// Expires is the session's end; zero for tokens.
	Expires time.Time
}

type principalKey struct{}

func who(r *http.Request) principal {
	p, _ := r.Context().Value(principalKey{}).(principal)
	return p
}

// authenticate finds the principal from a bearer token or the session
// cookie plus header, or returns a 401 apiError.
func (s *Server) authenticate(r *http.Request) (principal, error) {
	now := s.now()
	if authz := r.Header.Get("Authorization"); authz != "" {
		scheme, tok, _ := strings.Cut(authz, " ")
		if !strings.EqualFold(scheme, "Bearer") {
			return principal{}, errorf(http.StatusUnauthorized, "unsupported Authorization scheme; use \"Bearer <token>\"")
		}
		t := s.tokens.lookup(strings.TrimSpace(tok), now)
		if t == nil {
			return principal{}, errorf(http.StatusUnauthorized, "unknown or revoked API token")
		}
		return principal{User: "token:" + t.Name, Token: t.ID, ReadOnly: t.Scope == scopeRead}, nil
	}
	c, err := r.Cookie(cookieName(r))
	if err != nil {
		return principal{}, errorf(http.StatusUnauthorized, "log in first")
	}
	sess := s.sessions.get(c.Value, r.Header.Get(sessionHeader), now)
	if sess == nil {
		return principal{}, errorf(http.StatusUnauthorized, "session expired or unknown; log in again")
	}
	acct, err := s.accounts.load()
	if err != nil {
		return principal{}, err
	}
	if acct == nil || acct.User != sess.user || sess.created.Before(acct.PasswordChanged) {
		s.sessions.remove(c.Value)
		return principal{}, errorf(http.StatusUnauthorized, "the password was changed; log in again")
	}
	return principal{User: sess.user, Expires: sess.expires}, nil
}

// auth wraps a handler so that it runs only for an authenticated
// principal, and read-only tokens only on safe methods.
func (s *Server) auth(h handler) handler {
	return func(w http.ResponseWriter, r *http.Request) error {
		p, err := s.authenticate(r)
		if err != nil {
			return err
		}
		if p.ReadOnly && r.Method != http.MethodGet && r.Method != http.MethodHead {
			return errorf(http.StatusForbidden, "this API token is read-only")
		}
		return h(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	}
}
