package admin

import (
	"context"
	"embed"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
	"unicode"
)

// uiFiles is the web UI: plain HTML, CSS and JavaScript, no build step and
// nothing loaded from elsewhere, so it works with no internet at all.
//
//go:embed ui
var uiFiles embed.FS

//go:embed openapi.json
var openAPIDoc []byte

// routes registers every endpoint. Paths without s.auth are the UI's
// files, the OpenAPI document, setup, login, logout and the password
// strength check; /metrics checks for itself (metrics_public).
func (s *Server) routes() {
	mux := http.NewServeMux()
	h := func(pattern string, fn handler) {
		mux.Handle(pattern, s.wrap(fn))
		s.patterns = append(s.patterns, pattern)
	}

	static, _ := fs.Sub(uiFiles, "ui")
	files := http.FileServerFS(static)
	index := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeFileFS(w, r, static, "index.html")
	}
	mux.HandleFunc("GET /{$}", index)
	mux.HandleFunc("GET /setup", index)
	mux.HandleFunc("GET /login", index)
	mux.Handle("GET /ui/", http.StripPrefix("/ui/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})))

	h("GET /api/v1/openapi.json", func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Content-Type", "application/json")
		w.Write(openAPIDoc)
		return nil
	})
	h("GET /api/v1/setup", s.setupStatus)
	h("POST /api/v1/setup", s.setup)
	h("POST /api/v1/login", s.login)
	h("POST /api/v1/logout", s.logout)
	h("POST /api/v1/password/check", s.checkStrength)
	h("GET /api/v1/session", s.auth(s.whoami))
	h("POST /api/v1/password", s.auth(s.changePassword))

	h("GET /api/v1/rules", s.auth(s.listRules))
	h("POST /api/v1/rules", s.auth(s.createRule))
	h("POST /api/v1/rules:batch", s.auth(s.createRules))
	h("GET /api/v1/rules/{name}", s.auth(s.getRule))
	h("PUT /api/v1/rules/{name}", s.auth(s.updateRule))
	h("DELETE /api/v1/rules/{name}", s.auth(s.deleteRule))
	h("POST /api/v1/rules/{name}/enable", s.auth(s.enableRule(true)))
	h("POST /api/v1/rules/{name}/disable", s.auth(s.enableRule(false)))
	h("POST /api/v1/rules/{name}/check", s.auth(s.checkRule))

	h("GET /api/v1/status", s.auth(s.getStatus))
	h("GET /api/v1/connections", s.auth(s.listConnections))
	h("DELETE /api/v1/connections/{id}", s.auth(s.killConnection))
	h("GET /api/v1/tokens", s.auth(s.listTokens))
	h("POST /api/v1/tokens", s.auth(s.createToken))
	h("DELETE /api/v1/tokens/{id}", s.auth(s.revokeToken))
	h("GET /api/v1/audit", s.auth(s.listAudit))
	h("GET /api/v1/bans", s.auth(s.listBans))
	h("DELETE /api/v1/bans", s.auth(s.unban))
	h("GET /api/v1/router", s.auth(s.getRouter))
	s.vpnRoutes(h)
	h("POST /api/v1/config/reload", s.auth(s.reloadConfig))
	h("GET /metrics", s.serveMetrics)
	s.healthRoutes(mux)
	s.liveRoutes(mux, h)
	s.connectRoutes(h)
	s.eventRoutes(h)
	s.deviceRoutes(h)
	h("/api/", func(w http.ResponseWriter, r *http.Request) error {
		return errorf(http.StatusNotFound, "no endpoint %s %s; see /api/v1/openapi.json", r.Method, r.URL.Path)
	})
	s.mux = mux
}

// wrap adapts a handler to http.Handler, sending its error through
// writeError. API responses are never cached.
func (s *Server) wrap(fn handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/") && w.Header().Get("Cache-Control") == "" {
			w.Header().Set("Cache-Control", "no-store")
		}
		if err := fn(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

// withWho marks r as made by user, for the audit log of login and setup.
func withWho(r *http.Request, user string) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), principalKey{}, principal{User: user}))
}

// record appends to the audit log and mirrors the entry to the log.
func (s *Server) record(r *http.Request, action, target string, ok bool, detail string) {
	w := who(r).User
	if w == "" {
		w = "-"
	}
	e := AuditEntry{Time: s.now(), Who: w, Action: action, Target: clipAudit(target, maxAuditTarget),
		From: clientIP(r).String(), OK: ok, Detail: clipAudit(detail, maxAuditDetail)}
	target, detail = e.Target, e.Detail
	if err := s.audit.append(e); err != nil {
		s.log.Error("cannot write the audit log", "err", err)
	}
	s.log.Info("admin action", "who", e.Who, "action", action, "target", target, "from", e.From, "ok", ok, "detail", detail)
}

func (s *Server) listAudit(w http.ResponseWriter, r *http.Request) error {
	n := 200
	if v := r.URL.Query().Get("limit"); v != "" {
		x, err := strconv.Atoi(v)
		if err != nil || x < 1 || x > 5000 {
			return errorf(http.StatusBadRequest, "limit must be a number from 1 to 5000")
		}
		n = x
	}
	entries, err := s.audit.tail(n)
	if err != nil {
		return err
	}
	if entries == nil {
		entries = []AuditEntry{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"entries": entries})
	return nil
}

type tokenView struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Scope     string `json:"scope"`
	Created   string `json:"created"`
	CreatedBy string `json:"created_by"`
	LastUsed  string `json:"last_used,omitempty"`
}

func tokenViewOf(t apiToken) tokenView {
	v := tokenView{ID: t.ID, Name: t.Name, Scope: t.Scope, Created: t.Created.UTC().Format("2006-01-02T15:04:05Z"), CreatedBy: t.CreatedBy}
	if !t.LastUsed.IsZero() {
		v.LastUsed = t.LastUsed.UTC().Format("2006-01-02T15:04:05Z")
	}
	return v
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) error {
	out := []tokenView{}
	for _, t := range s.tokens.all() {
		out = append(out, tokenViewOf(t))
	}
	writeJSON(w, http.StatusOK, map[string]any{"tokens": out})
	return nil
}

// createToken makes an API token and shows its secret this once.
func (s *Server) createToken(w http.ResponseWriter, r *http.Request) error {
	// Only the logged-in owner mints tokens: a token that could mint
	// tokens would outlive its own revocation (issue 14).
	if who(r).Token != "" {
		s.record(r, "token.create", "", false, "refused: API tokens cannot create tokens")
		return errorf(http.StatusForbidden, "API tokens cannot create tokens; log in to the UI as the owner")
	}
	var req struct {
		Name  string `json:"name"`
		Scope string `json:"scope"`
	}
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	req.Name = strings.TrimSpace(req.Name)
	if req.Scope == "" {
		req.Scope = scopeFull
	}
	if req.Name == "" || len(req.Name) > 64 || strings.IndexFunc(req.Name, func(c rune) bool { return !unicode.IsPrint(c) }) >= 0 {
		return apiError{Status: http.StatusUnprocessableEntity, Message: "invalid token", Problems: problem("name", "give the token a name of 1 to 64 printable characters, such as \"backup-script\"")}
	}
	if req.Scope != scopeFull && req.Scope != scopeRead {
		return apiError{Status: http.StatusUnprocessableEntity, Message: "invalid token", Problems: problem("scope", "%q is not \"full\" or \"read\"", req.Scope)}
	}
	t, secret, err := s.tokens.create(req.Name, req.Scope, who(r).User, s.now())
	if err != nil {
		return err
	}
	s.record(r, "token.create", req.Name, true, "scope "+req.Scope)
	writeJSON(w, http.StatusCreated, map[string]any{"token": tokenViewOf(*t), "secret": secret})
	return nil
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) error {
	t, err := s.tokens.revoke(r.PathValue("id"))
	if err != nil {
		return err
	}
	if t == nil {
		return errorf(http.StatusNotFound, "no API token %q", r.PathValue("id"))
	}
	s.record(r, "token.revoke", t.Name, true, "")
	w.WriteHeader(http.StatusNoContent)
	return nil
}
