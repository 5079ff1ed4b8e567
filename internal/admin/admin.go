// Package admin serves camgate's web UI and REST API: the owner's account,
// sessions and API tokens, the rule table (the router menu's "Port
// Forwarding" page) with a per-rule connection test (package check) and
// what protects each rule (package guard's settings with their defaults
// applied), live status and connections with the guard's per-rule
// counters, the ban list, the audit log (the UI's Activity page) and
// Prometheus metrics; and the Cameras page with live view (through a
// LiveView, package live) and share links (package share), whose public
// pages under /s/ reach one channel and nothing else.
//
//	srv, err := admin.New(admin.Config{Site: s, Logger: log})
//	if err != nil { ... }
//	run, err := admin.Listen(ctx, srv, cfg.Admin) // HTTPS with a self-signed certificate by default
//	defer run.Shutdown(ctx)
//
// Every rule change goes through site.UpdateIf, so it is validated by the
// same code as the config file, applied live through the gateway's
// diff-apply (untouched rules keep their connections) and only then
// written atomically to camgate.yaml; a stale If-Match gets 412.
//
// Hardening follows caddy's admin endpoint: every request's Host header is
// checked (DNS rebinding), state-changing requests go through
// http.CrossOriginProtection and must carry JSON, bodies are size-capped,
// WebSocket upgrades are refused, and errors are JSON from one writer.
// There is no default password: the first start logs a one-time setup URL.
//
// The package does not change the running gateway except through package
// site, and keeps no state outside the state directory (account, token
// hashes, audit log, generated certificate) and memory (sessions, login
// failures).
package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/share"
	"github.com/camgate/camgate/internal/site"
)

// Config configures a Server.
type Config struct {
	// Site is the running gateway and its config file. Required.
	Site *site.Site
	// StateDir holds the account, the API token hashes, the audit log and
	// the generated certificate. Empty means Site.StateDir().
	StateDir string
	// Logger receives request errors, logins and the setup URL. Nil
	// discards.
	Logger *slog.Logger
	// Version is shown in the UI and the status. Empty means "dev".
	Version string
	// Now returns the current time. Nil means time.Now; tests move the
	// clock to expire sessions and lockouts.
	Now func() time.Time
	// VPN is the WireGuard server behind the VPN page (see vpn.go). Nil
	// means the VPN endpoints answer that the VPN is off.
	VPN VPN
	// Live plays camera channels for the Cameras page and share links
	// (cameras.go, share.go). Nil turns live view and share links off.
	Live LiveView
	// Guard is the running guard's counters. Nil means the gateway runs
	// without the guard: rules show no guard counters or guard settings.
	Guard GuardCounters
	// Bans is the guard's ban list. Nil means there is none: /api/v1/bans
	// answers "supported": false.
	Bans BanList
	// Router is the upstream router automation. Nil means none runs:
	// /api/v1/router answers "enabled": false and rule checks do not ask
	// it for the WAN address.
	Router RouterStatus
	// RTSP is the RTSP relay's counters and RTP port range (rtsp.go). Nil
	// means none runs: status and metrics show no RTP.
	RTSP RTSPRelay
	// DDNS is the dynamic DNS updater, shown in the status. Nil hides it.
	DDNS DDNSReporter
	// Events is the security events feed (events.go). Nil: the banner
	// shows only what the status says.
	Events EventFeed
	// DiscoverAt sends the Add device page's SADP probe to this address
	// instead of the standard multicast group (a test's simulator on
	// loopback). The zero value means the LAN.
	DiscoverAt netip.AddrPort
}

// maxBody caps request bodies: a rule is a few hundred bytes, a batch of
// the Hikvision preset a few kilobytes.
const maxBody = 64 << 10

// Server is the admin UI and API. It is an http.Handler.
type Server struct {
	site     *site.Site
	log      *slog.Logger
	dir      string
	version  string
	now      func() time.Time
	ddns     DDNSReporter
	accounts *accountStore
	tokens   *tokenStore
	sessions *sessionStore
	lockout  *lockout
	audit    *auditLog
	metrics  *metrics
	cop      *http.CrossOriginProtection
	mux      *http.ServeMux
	// patterns lists every pattern registered through routes' h, so a
	// test can check that each is documented in openapi.json.
	patterns []string
	// hashing bounds concurrent password hashes: each costs
	// argon2Memory of RAM and tens of milliseconds of CPU.
	hashing chan struct{}
	// checks and checking limit rule checks per source and at once: each
	// makes outbound probes (see rulecheck.go).
	checks   *checkLimiter
	checking chan struct{}
	// live, shares, shareViewers and shareFails serve the Cameras page
	// and share links; live and shares are nil when live view is off.
	live         LiveView
	shares       *share.Store
	shareViewers shareViewers
	shareFails   *lockout

	guardc GuardCounters
	bans   BanList
	router RouterStatus
	rtsp   RTSPRelay

	vpn    VPN
	qrs    *qrLinks
	events EventFeed
	// enrolling allows one discovery or device add at a time
	// (devices.go); discoverAt is Config.DiscoverAt.
	enrolling  chan struct{}
	discoverAt netip.AddrPort

	setupMu    sync.Mutex // guards following
	setupToken string
}

// New returns a Server. It creates the state directory if needed, loads
// the account and token files, and, when there is no account yet, makes
// the one-time setup token (see SetupToken).
func New(c Config) (*Server, error) {
	if c.Site == nil {
		panic("admin: Config.Site is required")
	}
	s := &Server{
		site:       c.Site,
		log:        c.Logger,
		dir:        c.StateDir,
		version:    c.Version,
		now:        c.Now,
		vpn:        c.VPN,
		ddns:       c.DDNS,
		cop:        http.NewCrossOriginProtection(),
		hashing:    make(chan struct{}, 2),
		checks:     newCheckLimiter(),
		checking:   make(chan struct{}, checkParallel),
		guardc:     c.Guard,
		bans:       c.Bans,
		router:     c.Router,
		rtsp:       c.RTSP,
		events:     c.Events,
		discoverAt: c.DiscoverAt,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.dir == "" {
		s.dir = c.Site.StateDir()
	}
	if s.version == "" {
		s.version = "dev"
	}
	if s.now == nil {
		s.now = time.Now
	}
	if err := ensureStateDir(s.dir); err != nil {
		return nil, err
	}
	s.accounts = newAccountStore(s.dir)
	if _, err := s.accounts.load(); err != nil {
		return nil, err
	}
	var err error
	if s.tokens, err = loadTokens(s.dir); err != nil {
		return nil, err
	}
	s.sessions = newSessionStore()
	s.lockout = newLockout()
	s.audit = newAuditLog(s.dir)
	s.metrics = newMetrics(s)
	s.shareFails = newLockout()
	if c.Live != nil {
		s.live = c.Live
		if s.shares, err = share.Open(s.dir); err != nil {
			return nil, err
		}
	}
	if !s.accounts.exists() {
		s.setupToken = randomToken("")
	}
	s.cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, apiError{Status: http.StatusForbidden, Message: "cross-origin request refused: this action must come from the camgate UI itself"})
	}))
	s.routes()
	return s, nil
}

// SetupToken returns the one-time token that lets the owner create the
// admin account, or "" once the account exists.
func (s *Server) SetupToken() string {
	s.setupMu.Lock()
	defer s.setupMu.Unlock()
	return s.setupToken
}

// adminConfig returns the running admin section; it is read per request
// so that allowed_hosts, metrics_public and session_ttl follow reloads.
func (s *Server) adminConfig() config.Admin { return s.site.Config().Admin }

// handler is an API handler: it writes a response, or returns an error
// for writeError to turn into JSON.
type handler func(w http.ResponseWriter, r *http.Request) error

// apiError is an error with the HTTP status and the message to show.
// Problems, when set, are per-field validation messages.
type apiError struct {
	Status   int              `json:"-"`
	Message  string           `json:"error"`
	Problems []config.Problem `json:"problems,omitempty"`
	Err      error            `json:"-"`
}

func (e apiError) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func (e apiError) Unwrap() error { return e.Err }

func errorf(status int, format string, args ...any) apiError {
	return apiError{Status: status, Message: fmt.Sprintf(format, args...)}
}

// writeError is the one place errors become responses: {"error": ...}
// with the status from apiError, or 500 for anything else.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ae apiError
	if !errors.As(err, &ae) {
		ae = apiError{Status: http.StatusInternalServerError, Message: err.Error(), Err: err}
	}
	if ae.Status == 0 {
		ae.Status = http.StatusInternalServerError
	}
	lv := slog.LevelDebug
	if ae.Status >= 500 {
		lv = slog.LevelError
	}
	s.log.Log(r.Context(), lv, "request error", "method", r.Method, "path", logPath(r.URL.Path),
		"from", r.RemoteAddr, "status", ae.Status, "err", err)
	if ae.Status == http.StatusTooManyRequests || ae.Status == http.StatusServiceUnavailable {
		if w.Header().Get("Retry-After") == "" {
			w.Header().Set("Retry-After", "1")
		}
	}
	writeJSON(w, ae.Status, ae)
}

// writeJSON writes v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// readJSON decodes a request body strictly into v: the content type must
// be JSON, the body at most maxBody, unknown fields are refused.
func readJSON(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return apiError{Status: http.StatusBadRequest, Message: "malformed JSON body: " + jsonMessage(err)}
	}
	if dec.More() {
		return errorf(http.StatusBadRequest, "malformed JSON body: more than one value")
	}
	return nil
}

// readBody checks the content type and reads at most maxBody bytes.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	ct := r.Header.Get("Content-Type")
	if mt, _, _ := strings.Cut(ct, ";"); !strings.EqualFold(strings.TrimSpace(mt), "application/json") {
		return nil, errorf(http.StatusUnsupportedMediaType, "content type %q refused: send application/json", ct)
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errorf(http.StatusRequestEntityTooLarge, "body larger than %d bytes", maxBody)
		}
		return nil, errorf(http.StatusBadRequest, "read body: %v", err)
	}
	return body, nil
}

// jsonMessage words a decoding error for people: no Go type names.
func jsonMessage(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at byte %d: %s", se.Offset, strings.TrimPrefix(se.Error(), "json: "))
	case errors.As(err, &te):
		what := te.Type.Kind().String()
		switch {
		case strings.HasPrefix(what, "int"), strings.HasPrefix(what, "uint"), strings.HasPrefix(what, "float"):
			what = "a number"
		case what == "bool":
			what = "true or false"
		case what == "slice":
			what = "a list"
		case what == "string":
			what = "text"
		case what == "struct", what == "map":
			what = "an object"
		}
		if te.Field != "" {
			return fmt.Sprintf("%s must be %s, not %s", te.Field, what, te.Value)
		}
		return fmt.Sprintf("must be %s, not %s", what, te.Value)
	}
	msg := strings.TrimPrefix(err.Error(), "json: ")
	if msg == "EOF" {
		return "the body is empty"
	}
	return msg
}
