package config

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Admin defaults and bounds, documented in docs/ADMIN.md.
const (
	// DefaultAdminListen serves the web UI and API over HTTPS on every
	// interface, with a self-signed certificate unless cert_file is set.
	DefaultAdminListen = "0.0.0.0:8443"
	// DefaultSessionTTL is how long a login lasts.
	DefaultSessionTTL = 12 * time.Hour
	// MinSessionTTL and MaxSessionTTL bound session_ttl: shorter is
	// unusable, longer leaves stolen cookies valid for too long.
	MinSessionTTL = 5 * time.Minute
	MaxSessionTTL = 30 * 24 * time.Hour
)

// Admin configures the web UI and REST API served by `camgate serve`.
// The zero value serves HTTPS on DefaultAdminListen.
type Admin struct {
	// Enabled switches the admin UI and API on or off. Nil means on.
	Enabled *bool `yaml:"enabled,omitempty" json:"enabled,omitempty"`
	// Listen is where the UI and API are served: "host:port" or
	// "https://host:port" for HTTPS, "http://host:port" for plain HTTP,
	// or "off" (the same as enabled: false). The host is an IP address or
	// "localhost"; port 0 picks a free port, which is logged. Empty means
	// DefaultAdminListen.
	Listen string `yaml:"listen,omitempty" json:"listen,omitempty"`
	// CertFile and KeyFile are a PEM certificate chain and key for HTTPS.
	// Both empty means a self-signed certificate generated in the state
	// directory at first start and reused afterwards.
	CertFile string `yaml:"cert_file,omitempty" json:"cert_file,omitempty"`
	KeyFile  string `yaml:"key_file,omitempty" json:"key_file,omitempty"`
	// InsecureHTTP permits plain HTTP on a non-loopback address, where the
	// password and session cookie cross the network in clear. A warning is
	// logged at every start. Plain HTTP on loopback needs no permission.
	InsecureHTTP bool `yaml:"insecure_http,omitempty" json:"insecure_http,omitempty"`
	// MetricsPublic serves /metrics without a token. False means a
	// session or API token is required.
	MetricsPublic bool `yaml:"metrics_public,omitempty" json:"metrics_public,omitempty"`
	// AllowedHosts are extra host names the UI may be reached by (the
	// Host header), such as "camgate.example.net". IP addresses,
	// "localhost" and this machine's host name are always allowed; any
	// other name is refused to defeat DNS rebinding.
	AllowedHosts []string `yaml:"allowed_hosts,omitempty" json:"allowed_hosts,omitempty"`
	// SessionTTL is how long a login lasts. 0 means DefaultSessionTTL.
	SessionTTL Duration `yaml:"session_ttl,omitempty" json:"session_ttl,omitempty"`
	// Allow lists further source CIDRs (or addresses) that may reach the
	// admin UI. Loopback, private (RFC 1918), ULA (fc00::/7) and
	// link-local sources always may; any other source is refused at
	// connect, so the admin UI never answers the internet unless this
	// widens it (issue 14). camgate logs and the audit reports every entry.
	Allow []string `yaml:"allow,omitempty" json:"allow,omitempty"`
}

// AllowPrefixes parses Allow (entries that do not parse are left out;
// validation reports them).
func (a *Admin) AllowPrefixes() []netip.Prefix { return parsePrefixes(a.Allow) }

// AdminSourceAllowed reports whether src may reach the admin UI: a
// loopback, private, ULA or link-local address, or one in extra.
func AdminSourceAllowed(src netip.Addr, extra []netip.Prefix) bool {
	src = src.Unmap()
	if src.IsLoopback() || src.IsPrivate() || src.IsLinkLocalUnicast() {
		return true
	}
	for _, p := range extra {
		if p.Contains(src) {
			return true
		}
	}
	return false
}

// IsEnabled reports whether the admin UI and API should be served.
func (a *Admin) IsEnabled() bool {
	if a.Enabled != nil && !*a.Enabled {
		return false
	}
	return !strings.EqualFold(strings.TrimSpace(a.Listen), "off")
}

// Session returns the effective session lifetime.
func (a *Admin) Session() time.Duration {
	if a.SessionTTL <= 0 {
		return DefaultSessionTTL
	}
	return a.SessionTTL.D()
}

// AdminEndpoint is a parsed admin.listen value.
type AdminEndpoint struct {
	// HTTPS is false for "http://" addresses.
	HTTPS bool
	// Addr is the address to bind.
	Addr netip.AddrPort
}

// URL returns the endpoint's base URL, with host standing in for an
// unspecified address (0.0.0.0 or ::).
func (e AdminEndpoint) URL(host netip.Addr) string {
	a := e.Addr.Addr()
	if a.IsUnspecified() && host.IsValid() {
		a = host
	}
	scheme := "https"
	if !e.HTTPS {
		scheme = "http"
	}
	return scheme + "://" + netip.AddrPortFrom(a, e.Addr.Port()).String()
}

// Endpoint parses Listen. It must only be called when IsEnabled.
func (a *Admin) Endpoint() (AdminEndpoint, error) {
	return ParseAdminListen(a.Listen)
}

// ParseAdminListen parses an admin.listen value: "host:port",
// "https://host:port" or "http://host:port". Empty means
// DefaultAdminListen.
func ParseAdminListen(s string) (AdminEndpoint, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		s = DefaultAdminListen
	}
	ep := AdminEndpoint{HTTPS: true}
	switch {
	case strings.HasPrefix(s, "https://"):
		s = strings.TrimPrefix(s, "https://")
	case strings.HasPrefix(s, "http://"):
		s = strings.TrimPrefix(s, "http://")
		ep.HTTPS = false
	case strings.Contains(s, "://"):
		return ep, fmt.Errorf("%q: use http:// or https://", s)
	}
	s = strings.TrimSuffix(s, "/")
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return ep, fmt.Errorf("%q is not host:port, such as 0.0.0.0:8443 or 127.0.0.1:8080", s)
	}
	var addr netip.Addr
	switch strings.ToLower(host) {
	case "":
		addr = netip.IPv4Unspecified()
	case "localhost":
		addr = netip.MustParseAddr("127.0.0.1")
	default:
		addr, err = netip.ParseAddr(host)
		if err != nil {
			return ep, fmt.Errorf("%q is not an IP address (use 0.0.0.0, ::, 127.0.0.1 or one of this host's addresses)", host)
		}
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return ep, fmt.Errorf("port %q is not a number from 1 to 65535 (or 0 for any free port)", port)
	}
	ep.Addr = netip.AddrPortFrom(addr, uint16(n))
	return ep, nil
}

func (a Admin) clone() Admin {
	out := a
	if a.Enabled != nil {
		v := *a.Enabled
		out.Enabled = &v
	}
	out.AllowedHosts = slices.Clone(a.AllowedHosts)
	out.Allow = slices.Clone(a.Allow)
	return out
}

// validateAdmin checks the admin section.
func validateAdmin(a *Admin, add func(field, format string, args ...any)) {
	if a.SessionTTL < 0 {
		add("session_ttl", "must not be negative")
	} else if a.SessionTTL != 0 && (a.SessionTTL.D() < MinSessionTTL || a.SessionTTL.D() > MaxSessionTTL) {
		add("session_ttl", "%s is outside %s to %s", a.SessionTTL.D(), MinSessionTTL, MaxSessionTTL)
	}
	if (a.CertFile == "") != (a.KeyFile == "") {
		add("cert_file", "cert_file and key_file go together: set both, or neither for a self-signed certificate")
	}
	for _, h := range a.AllowedHosts {
		if err := checkHost(strings.TrimSuffix(h, ".")); err != nil || strings.Contains(h, ":") {
			add("allowed_hosts", "%q is not a host name such as camgate.example.net (no port, no scheme)", h)
		}
	}
	for _, c := range a.Allow {
		if _, err := ParsePrefix(c); err != nil {
			add("allow", "%q is not a CIDR such as 203.0.113.0/24 or an address", c)
		}
	}
	if !a.IsEnabled() {
		return
	}
	ep, err := a.Endpoint()
	if err != nil {
		add("listen", "%v", err)
		return
	}
	if ep.HTTPS {
		return
	}
	if a.CertFile != "" {
		add("listen", "is plain http:// but cert_file is set; use https:// to serve with that certificate")
	}
	if !ep.Addr.Addr().IsLoopback() && !a.InsecureHTTP {
		add("listen", "plain HTTP on %s would send the admin password across the network in clear; "+
			"use https:// (the default), a loopback address such as http://127.0.0.1:8080, or set insecure_http: true", ep.Addr.Addr())
	}
}

// The admin API speaks JSON; these give a port range the same shape as in
// YAML: a number for a single port, a string for a range.

// MarshalJSON writes a single port as a number and a range as a string.
func (r PortRange) MarshalJSON() ([]byte, error) {
	if r.IsZero() {
		return []byte("null"), nil
	}
	if r.First == r.Last {
		return []byte(strconv.Itoa(int(r.First))), nil
	}
	return json.Marshal(r.String())
}

// UnmarshalJSON accepts a number, "8082" or "10000-10009"; null and ""
// mean unset.
func (r *PortRange) UnmarshalJSON(b []byte) error {
	s := strings.TrimSpace(string(b))
	if s == "null" {
		*r = PortRange{}
		return nil
	}
	if strings.HasPrefix(s, `"`) {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		if strings.TrimSpace(s) == "" {
			*r = PortRange{}
			return nil
		}
	} else if strings.ContainsAny(s, ".eE") {
		return fmt.Errorf("%s is not a whole port number", s)
	}
	pr, err := ParsePortRange(s)
	if err != nil {
		return err
	}
	*r = pr
	return nil
}

// UnmarshalJSON accepts the spellings UnmarshalYAML does.
func (p *Protocol) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("must be \"tcp\", \"udp\" or \"both\"")
	}
	*p = ParseProtocol(s)
	return nil
}
