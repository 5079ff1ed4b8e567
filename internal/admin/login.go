package admin

import (
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net/http"
	"time"
)

// withHashSlot runs fn while holding one of the password-hashing slots, or
// returns 503 if none frees up soon: a flood of logins must not queue
// unbounded argon2 work.
func (s *Server) withHashSlot(r *http.Request, fn func()) error {
	t := time.NewTimer(2 * time.Second)
	defer t.Stop()
	select {
	case s.hashing <- struct{}{}:
		defer func() { <-s.hashing }()
		fn()
		return nil
	case <-t.C:
		return errorf(http.StatusServiceUnavailable, "too many logins at once; try again in a moment")
	case <-r.Context().Done():
		return r.Context().Err()
	}
}

// throttled takes an attempt slot for the source before the body is
// read, or refuses a locked-out or busy source with 429 and Retry-After.
// Call the returned function when the attempt is settled.
func (s *Server) throttled(w http.ResponseWriter, r *http.Request) (func(), error) {
	wait, release := s.lockout.begin(clientIP(r), s.now())
	if release == nil {
		secs := int(wait.Seconds() + 0.999)
		w.Header().Set("Retry-After", fmt.Sprint(secs))
		return nil, errorf(http.StatusTooManyRequests, "too many failed attempts from %s, or one still being checked; try again in %d s", clientIP(r), secs)
	}
	return release, nil
}

// failed records a failed attempt and words the refusal.
func (s *Server) failed(w http.ResponseWriter, r *http.Request, msg string) error {
	s.metrics.loginFailures.Inc()
	if d := s.lockout.fail(clientIP(r), s.now()); d > 0 {
		secs := int(d.Seconds() + 0.999)
		w.Header().Set("Retry-After", fmt.Sprint(secs))
		s.log.Warn("admin login locked out", "from", clientIP(r), "for", d)
		return errorf(http.StatusUnauthorized, "%s; further attempts from %s are blocked for %d s", msg, clientIP(r), secs)
	}
	return errorf(http.StatusUnauthorized, "%s", msg)
}

// startSession logs user in: cookie plus the header secret in the body.
func (s *Server) startSession(w http.ResponseWriter, r *http.Request, user string) {
	now := s.now()
	ac := s.adminConfig()
	cookie, secret, sess := s.sessions.create(user, clientIP(r).String(), now, ac.Session())
	setSessionCookie(w, r, cookie, sess.expires, now)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{"user": user, "session": secret, "expires": sess.expires})
}

func (s *Server) setupStatus(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]any{"needed": s.SetupToken() != "", "version": s.version})
	return nil
}

// setup creates the owner's account with the one-time token from the log.
func (s *Server) setup(w http.ResponseWriter, r *http.Request) error {
	release, err := s.throttled(w, r)
	if err != nil {
		return err
	}
	defer release()
	var req struct {
		Token    string `json:"token"`
		User     string `json:"user"`
		Password string `json:"password"`
	}
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	s.setupMu.Lock()
	defer s.setupMu.Unlock()
	if s.setupToken == "" {
		return errorf(http.StatusConflict, "the admin account exists already; log in, or reset the password with `camgate admin reset-password`")
	}
	if subtle.ConstantTimeCompare([]byte(req.Token), []byte(s.setupToken)) != 1 {
		s.record(r, "setup", "", false, "wrong setup token")
		return s.failed(w, r, "wrong or expired setup token; use the URL from camgate's log")
	}
	if req.User == "" {
		req.User = "admin"
	}
	if err := checkUserName(req.User); err != nil {
		return apiError{Status: http.StatusUnprocessableEntity, Message: err.Error(), Problems: problem("user", "%v", err)}
	}
	if st := CheckPassword(req.Password, req.User); !st.OK {
		return weak(st)
	}
	var hash string
	if err := s.withHashSlot(r, func() { hash = hashPassword(req.Password) }); err != nil {
		return err
	}
	now := s.now()
	if err := s.accounts.save(&account{User: req.User, Hash: hash, Created: now, PasswordChanged: now}); err != nil {
		return err
	}
	s.setupToken = ""
	s.lockout.succeed(clientIP(r))
	s.log.Info("admin account created", "user", req.User, "from", clientIP(r))
	r = withWho(r, req.User)
	s.record(r, "setup", req.User, true, "admin account created")
	s.startSession(w, r, req.User)
	return nil
}

func weak(st Strength) apiError {
	return apiError{Status: http.StatusUnprocessableEntity, Message: "password too weak", Problems: problem("password", "%s", joinSentences(st))}
}

func joinSentences(st Strength) string {
	out := ""
	for _, p := range st.Problems {
		out += p + " "
	}
	return out + st.Advice
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) error {
	release, err := s.throttled(w, r)
	if err != nil {
		return err
	}
	defer release()
	var req struct {
		User     string `json:"user"`
		Password string `json:"password"`
	}
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	acct, err := s.accounts.load()
	if err != nil {
		return err
	}
	if acct == nil {
		return errorf(http.StatusConflict, "no admin account yet: open the setup URL from camgate's log")
	}
	ok := false
	if err := s.withHashSlot(r, func() {
		// Hash even for a wrong user name, so timing does not tell
		// which part was wrong.
		ok = verifyPassword(acct.Hash, req.Password) && subtle.ConstantTimeCompare([]byte(req.User), []byte(acct.User)) == 1
	}); err != nil {
		return err
	}
	if !ok {
		s.record(withWho(r, "-"), "login", req.User, false, "wrong user name or password")
		return s.failed(w, r, "wrong user name or password")
	}
	s.lockout.succeed(clientIP(r))
	r = withWho(r, acct.User)
	s.record(r, "login", acct.User, true, "")
	s.log.Log(r.Context(), slog.LevelInfo, "admin login", "user", acct.User, "from", clientIP(r))
	s.startSession(w, r, acct.User)
	return nil
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) error {
	if c, err := r.Cookie(cookieName(r)); err == nil {
		if p, err := s.authenticate(r); err == nil {
			s.record(withWho(r, p.User), "logout", p.User, true, "")
		}
		s.sessions.remove(c.Value)
	}
	clearSessionCookie(w, r)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) whoami(w http.ResponseWriter, r *http.Request) error {
	p := who(r)
	out := map[string]any{"user": p.User, "version": s.version, "read_only": p.ReadOnly}
	if !p.Expires.IsZero() {
		out["expires"] = p.Expires
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// changePassword needs the current password as well as the session, so a
// hijacked session cannot lock the owner out.
func (s *Server) changePassword(w http.ResponseWriter, r *http.Request) error {
	p := who(r)
	if p.Token != "" {
		return errorf(http.StatusForbidden, "API tokens cannot change the password; log in to the UI")
	}
	release, err := s.throttled(w, r)
	if err != nil {
		return err
	}
	defer release()
	var req struct {
		Current string `json:"current"`
		New     string `json:"new"`
	}
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	acct, err := s.accounts.load()
	if err != nil || acct == nil {
		return fmt.Errorf("admin account: %v", err)
	}
	var ok bool
	if err := s.withHashSlot(r, func() { ok = verifyPassword(acct.Hash, req.Current) }); err != nil {
		return err
	}
	if !ok {
		s.record(r, "password.change", acct.User, false, "wrong current password")
		err := s.failed(w, r, "the current password is wrong")
		ae := err.(apiError)
		ae.Problems = problem("current", "%s", ae.Message)
		return ae
	}
	if st := CheckPassword(req.New, acct.User); !st.OK {
		ae := weak(st)
		ae.Problems[0].Field = "new"
		return ae
	}
	var hash string
	if err := s.withHashSlot(r, func() { hash = hashPassword(req.New) }); err != nil {
		return err
	}
	now := s.now()
	acct.Hash, acct.PasswordChanged = hash, now
	if err := s.accounts.save(acct); err != nil {
		return err
	}
	s.sessions.removeBefore(now)
	s.record(r, "password.change", acct.User, true, "every other session ended")
	s.startSession(w, r, acct.User)
	return nil
}

// maxCheckedPassword caps what the strength check scores: zxcvbn's cost
// grows with the length (a 256-byte input took 0.5 s of CPU), and no
// password needs more to be rated strong.
const maxCheckedPassword = 128

// checkStrength lets the setup and password forms show the verdict while
// the owner types. It needs the setup token (before the account exists)
// or a session, scores at most maxCheckedPassword bytes and runs one
// check at a time per password-hashing slot, so that it cannot be used
// to burn the CPU the forwarder needs (issue 14).
func (s *Server) checkStrength(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Password string `json:"password"`
		User     string `json:"user"`
		Token    string `json:"token"`
	}
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	if !s.validSetupToken(req.Token) {
		if p, err := s.authenticate(r); err != nil || p.Token != "" {
			return errorf(http.StatusUnauthorized, "log in first (or give the setup token)")
		}
	}
	if len(req.Password) > maxCheckedPassword {
		return apiError{Status: http.StatusUnprocessableEntity, Message: "password too long",
			Problems: problem("password", "at most %d bytes", maxCheckedPassword)}
	}
	var st Strength
	if err := s.withHashSlot(r, func() { st = CheckPassword(req.Password, req.User) }); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

// validSetupToken reports whether tok is the setup token in force.
func (s *Server) validSetupToken(tok string) bool {
	s.setupMu.Lock()
	defer s.setupMu.Unlock()
	return s.setupToken != "" && tok != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(s.setupToken)) == 1
}
