package admin

import (
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
)

// contentSecurityPolicy allows only the UI's own files: no inline script,
// no third-party origin, no framing (the UI works offline, with no CDN).
// Live view plays a MediaSource, which a video element reaches by a blob:
// URL.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; media-src 'self' blob:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// ServeHTTP applies the checks every request passes, in caddy's order
// (admin.go serveHTTP): no WebSocket upgrades, Host header allowed, then
// cross-origin protection, then the routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")

	// Browsers do not apply CORS to WebSocket handshakes, and nothing here
	// speaks WebSocket: refuse rather than reason about it (as caddy does).
	if strings.Contains(strings.ToLower(r.Header.Get("Upgrade")), "websocket") {
		s.writeError(w, r, errorf(http.StatusBadRequest, "websocket connections are not allowed"))
		return
	}
	if isOutsider(r) && !sharePath(r.URL.Path) {
		// A source outside the LAN and admin.allow, let in for a share
		// link, asked for something else: it does not exist for them.
		w.Header().Set("Connection", "close")
		s.writeError(w, r, errorf(http.StatusNotFound, "not found"))
		return
	}
	// Share links carry their secret in the path and no cookie, so DNS
	// rebinding gains an attacker nothing there; the neighbour may well
	// use the site's DDNS name.
	if err := s.checkHost(r); err != nil && !sharePath(r.URL.Path) {
		s.writeError(w, r, err)
		return
	}
	// API and metrics responses are for the UI's own pages and for
	// scripts, never for another site's page, not even another port on
	// this host ("same-site"), which may be a forwarded camera's web UI.
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" && isAPIPath(r.URL.Path) {
		s.writeError(w, r, errorf(http.StatusForbidden, "cross-origin request refused (Sec-Fetch-Site: %s)", site))
		return
	}
	// Go's CrossOriginProtection refuses unsafe methods from another
	// origin (Sec-Fetch-Site, else Origin against Host), including
	// Origin: null; it calls the deny handler set in New.
	s.cop.Handler(s.mux).ServeHTTP(w, r)
}

func isAPIPath(p string) bool { return strings.HasPrefix(p, "/api/") || p == "/metrics" }

// checkHost refuses Host headers that a DNS rebinding attack could
// produce. Such an attack needs a name the attacker controls that
// resolves to this host, so IP literals, "localhost", this machine's own
// name and the names in admin.allowed_hosts are safe; anything else is
// refused, before any handler runs.
func (s *Server) checkHost(r *http.Request) error {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	if host == "" {
		return errorf(http.StatusBadRequest, "missing Host header")
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	if hostAllowed(host, s.adminConfig().AllowedHosts) {
		return nil
	}
	return errorf(http.StatusForbidden, "host name %q is not allowed; reach the UI by IP address or add the name to admin.allowed_hosts "+
		"(this check defeats DNS rebinding)", host)
}

func hostAllowed(host string, allowed []string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	if me, err := os.Hostname(); err == nil && me != "" {
		if strings.EqualFold(host, me) || strings.EqualFold(host, me+".local") {
			return true
		}
	}
	for _, a := range allowed {
		if strings.EqualFold(host, strings.TrimSuffix(a, ".")) {
			return true
		}
	}
	return false
}

// clientIP is the request's source address. camgate is reached directly,
// so X-Forwarded-For is not trusted.
func clientIP(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
