package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/mail"
	"reflect"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Guard defaults, documented in docs/SECURITY.md; keep the two in step.
const (
	// DefaultMaxFailures is how many failed logins from one source (within
	// DefaultFailureWindow) reach the device before the source is banned.
	// Hikvision devices lock the source IP (camgate's, for every remote
	// user) after 7 failed admin logins and 5 for operator/user accounts;
	// 4 stays below both.
	DefaultMaxFailures = 4
	// DefaultDeviceMaxFailures is how many failed logins from all sources
	// together a device may see since its last successful one (the
	// device's count does not decay) before camgate holds back login
	// attempts; the last 2 are kept for sources that logged in before.
	// It stays two below the device's lock of 7, for camgate's own logins.
	DefaultDeviceMaxFailures = 5
	// DefaultFailureWindow is how long a failed login counts.
	DefaultFailureWindow = 10 * time.Minute
	// DefaultBanDuration is how long a source stays banned, the same as
	// the device's own lock.
	DefaultBanDuration = 30 * time.Minute
	// DefaultPerIPConnections caps concurrent TCP connections from one
	// source (an IPv4 address or an IPv6 /64) on one rule. A 16-channel
	// NVR viewed from one office uses 16 RTSP connections, main and sub
	// streams 32; 64 leaves room for two viewers and keeps one source
	// under 1% of the gateway-wide cap.
	DefaultPerIPConnections = 64
	// DefaultPerIPRate is the sustained rate of new TCP connections one
	// source may open on one rule, per second, and DefaultPerIPBurst the
	// bucket size (a browser opening the web UI needs a burst).
	DefaultPerIPRate  = 10.0
	DefaultPerIPBurst = 40
	// DefaultPerIPUDPSessions caps UDP sessions (client ip:port pairs) from
	// one source on one rule: RTP and RTCP for 16 channels.
	DefaultPerIPUDPSessions = 32
)

// Guard services: the protocol a guarded rule speaks.
const (
	ServiceHTTP = "http"
	ServiceRTSP = "rtsp"
)

// Guard holds a rule's protections beyond allow/deny: per-source limits,
// the brute-force guard and the Hikvision exploit filter
// (docs/SECURITY.md). The zero value means every default: per-source
// limits on, brute-force guard off, exploit filter on for HTTP rules.
//
// Besides the mapping, YAML accepts the short forms `guard: auth`,
// `guard: hikvision`, `guard: [auth, hikvision]` and `guard: off`.
type Guard struct {
	// Auth turns on the brute-force guard: camgate reads the HTTP or RTSP
	// exchange, counts the device's 401 answers to login attempts per
	// source and bans a source after MaxFailures. Default off.
	Auth bool `yaml:"auth,omitempty" json:"auth,omitempty"`
	// Hikvision turns the exploit filter on or off. Nil means on for rules
	// whose service is http (see Rule.GuardService), off otherwise.
	Hikvision *bool `yaml:"hikvision,omitempty" json:"hikvision,omitempty"`
	// Service is the protocol the rule carries: http or rtsp. Empty means
	// guessed from the internal port (Rule.GuardService).
	Service string `yaml:"service,omitempty" json:"service,omitempty"`
	// MaxFailures bans a source after this many failed logins within
	// FailureWindow. 0 means DefaultMaxFailures.
	MaxFailures int `yaml:"max_failures,omitempty" json:"max_failures,omitempty"`
	// DeviceMaxFailures is the budget of failed logins from all sources
	// that the device may count since its last successful login; past it
	// camgate holds login attempts back (503). 0 means
	// DefaultDeviceMaxFailures, -1 off.
	DeviceMaxFailures int `yaml:"device_max_failures,omitempty" json:"device_max_failures,omitempty"`
	// FailureWindow is how long a failed login counts. 0 means
	// DefaultFailureWindow.
	FailureWindow Duration `yaml:"failure_window,omitempty" json:"failure_window,omitempty"`
	// Ban is how long a source stays banned. 0 means DefaultBanDuration.
	Ban Duration `yaml:"ban,omitempty" json:"ban,omitempty"`
	// PerIPConnections caps concurrent TCP connections per source on this
	// rule. 0 means DefaultPerIPConnections, -1 no cap.
	PerIPConnections int `yaml:"per_ip_connections,omitempty" json:"per_ip_connections,omitempty"`
	// PerIPRate is new TCP connections per second per source (token
	// bucket). 0 means DefaultPerIPRate, -1 no limit.
	PerIPRate float64 `yaml:"per_ip_rate,omitempty" json:"per_ip_rate,omitempty"`
	// PerIPBurst is the token bucket's size. 0 means DefaultPerIPBurst
	// (and at least PerIPRate).
	PerIPBurst int `yaml:"per_ip_burst,omitempty" json:"per_ip_burst,omitempty"`
	// PerIPUDPSessions caps UDP sessions per source on this rule. 0 means
	// DefaultPerIPUDPSessions, -1 no cap.
	PerIPUDPSessions int `yaml:"per_ip_udp_sessions,omitempty" json:"per_ip_udp_sessions,omitempty"`
}

func (g Guard) clone() Guard {
	if g.Hikvision != nil {
		v := *g.Hikvision
		g.Hikvision = &v
	}
	return g
}

func (g Guard) equal(o Guard) bool {
	if (g.Hikvision == nil) != (o.Hikvision == nil) || (g.Hikvision != nil && *g.Hikvision != *o.Hikvision) {
		return false
	}
	g.Hikvision, o.Hikvision = nil, nil
	return g == o
}

// IsZero reports whether every field is unset, so YAML omits the section.
func (g Guard) IsZero() bool { return g.equal(Guard{}) }

// GuardOff is the `guard: off` short form: no exploit filter and no per-source
// limits.
func GuardOff() Guard {
	f := false
	return Guard{Hikvision: &f, PerIPConnections: -1, PerIPRate: -1, PerIPUDPSessions: -1}
}

// guardFields are the mapping keys, for strict decoding (a custom
// UnmarshalYAML loses the decoder's KnownFields setting).
var guardFields = yamlFields(reflect.TypeOf(Guard{}))

// UnmarshalYAML accepts a mapping, a word (auth, hikvision, off) or a list
// of words.
func (g *Guard) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		return g.words(n, []*yaml.Node{n})
	case yaml.SequenceNode:
		return g.words(n, n.Content)
	case yaml.MappingNode:
		type plain Guard // without UnmarshalYAML, so Decode does not recurse
		p, err := decodeMapping[plain](n, guardFields, "config.Guard")
		*g = Guard(p)
		return err
	}
	return fieldError(n, "must be auth, hikvision, off, a list of those, or a mapping (see docs/SECURITY.md)")
}

func (g *Guard) words(n *yaml.Node, items []*yaml.Node) error {
	var ws []string
	for _, it := range items {
		if it.Kind != yaml.ScalarNode {
			return fieldError(it, "must be auth, hikvision or off")
		}
		ws = append(ws, it.Value)
	}
	out, err := guardWords(ws)
	if err != nil {
		return fieldError(n, err.Error())
	}
	*g = out
	return nil
}

// guardWords builds a Guard from the short forms.
func guardWords(ws []string) (Guard, error) {
	var g Guard
	t := true
	for _, w := range ws {
		switch strings.ToLower(strings.TrimSpace(w)) {
		case "auth":
			g.Auth = true
		case "hikvision":
			g.Hikvision = &t
		case "off", "none", "false", "no":
			if len(ws) != 1 {
				return Guard{}, fmt.Errorf("%q cannot be combined with other guards", w)
			}
			return GuardOff(), nil
		case "on", "true", "yes", "all":
			g.Auth, g.Hikvision = true, &t
		case "":
			if len(ws) == 1 {
				return g, nil
			}
			return Guard{}, fmt.Errorf("empty guard name in the list")
		default:
			return Guard{}, fmt.Errorf("%q is not a guard; use auth, hikvision, off, or a mapping (see docs/SECURITY.md)", w)
		}
	}
	return g, nil
}

// UnmarshalJSON accepts the same forms as YAML: an object (unknown keys
// rejected), a string or a list of strings.
func (g *Guard) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		out, err := guardWords([]string{s})
		*g = out
		return err
	case len(b) > 0 && b[0] == '[':
		var ws []string
		if err := json.Unmarshal(b, &ws); err != nil {
			return err
		}
		out, err := guardWords(ws)
		*g = out
		return err
	case bytes.Equal(b, []byte("null")):
		return nil
	}
	type plain Guard
	var p plain
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return err
	}
	*g = Guard(p)
	return nil
}

// TLS modes.
const (
	TLSOff       = "off"
	TLSTerminate = "terminate"
)

// TLS configures HTTPS termination for a rule: remote clients speak TLS
// to camgate, camgate speaks plain HTTP (or RTSP) to the device. The zero
// value is off. YAML also accepts `tls: terminate` and `tls: off`.
//
// Certificates come from CertFile/KeyFile, from ACME (ACMEDomain), or, when
// neither is set, from a self-signed certificate that camgate generates
// once and keeps in the state directory.
type TLS struct {
	// Mode is off or terminate. Empty means off.
	Mode string `yaml:"mode,omitempty" json:"mode,omitempty"`
	// CertFile and KeyFile are a PEM certificate chain and its key. Both
	// or neither. Empty means ACME or self-signed.
	CertFile string `yaml:"cert_file,omitempty" json:"cert_file,omitempty"`
	KeyFile  string `yaml:"key_file,omitempty" json:"key_file,omitempty"`
	// Names are the host names and addresses the self-signed certificate
	// is made for. Empty means this host's addresses, its host name and
	// the top-level public_ip.
	Names HostList `yaml:"names,omitempty" json:"names,omitempty"`
	// ACMEDomain is the public DNS name to get a certificate for from an
	// ACME CA (Let's Encrypt) with the TLS-ALPN-01 challenge, which needs
	// this rule reachable on port 443 from the internet. Empty means no
	// ACME.
	ACMEDomain string `yaml:"acme_domain,omitempty" json:"acme_domain,omitempty"`
	// ACMEEmail is the contact address given to the CA. Optional.
	ACMEEmail string `yaml:"acme_email,omitempty" json:"acme_email,omitempty"`
	// ACMEDirectory is the CA's directory URL. Empty means Let's
	// Encrypt's production directory.
	ACMEDirectory string `yaml:"acme_directory,omitempty" json:"acme_directory,omitempty"`
}

// Terminate reports whether camgate terminates TLS for the rule.
func (t *TLS) Terminate() bool { return strings.EqualFold(t.Mode, TLSTerminate) }

// IsZero reports whether TLS is unset, so YAML omits it.
func (t TLS) IsZero() bool { return t == TLS{} }

// HostList is a list of host names or addresses kept as one
// comma-separated string, so that TLS stays comparable with ==. YAML and
// JSON read and write it as a list (a single string is accepted too).
type HostList string

// List returns the entries.
func (h HostList) List() []string {
	var out []string
	for _, s := range strings.Split(string(h), ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// UnmarshalYAML accepts a list or a comma-separated string.
func (h *HostList) UnmarshalYAML(n *yaml.Node) error {
	var ss []string
	switch n.Kind {
	case yaml.ScalarNode:
		ss = []string{n.Value}
	case yaml.SequenceNode:
		if err := n.Decode(&ss); err != nil {
			return err
		}
	default:
		return fieldError(n, "must be a list of host names or addresses")
	}
	*h = HostList(strings.Join(ss, ","))
	return nil
}

// MarshalYAML writes a list.
func (h HostList) MarshalYAML() (any, error) { return h.List(), nil }

// MarshalJSON writes a list.
func (h HostList) MarshalJSON() ([]byte, error) {
	l := h.List()
	if l == nil {
		l = []string{}
	}
	return json.Marshal(l)
}

// UnmarshalJSON accepts a list or a comma-separated string.
func (h *HostList) UnmarshalJSON(b []byte) error {
	var ss []string
	if err := json.Unmarshal(b, &ss); err != nil {
		var s string
		if err2 := json.Unmarshal(b, &s); err2 != nil {
			return err
		}
		ss = []string{s}
	}
	*h = HostList(strings.Join(ss, ","))
	return nil
}

var tlsFields = yamlFields(reflect.TypeOf(TLS{}))

// UnmarshalYAML accepts a mapping or the words terminate and off.
func (t *TLS) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*t = TLS{Mode: strings.ToLower(strings.TrimSpace(n.Value))}
		if t.Mode == "false" || t.Mode == "none" {
			t.Mode = TLSOff
		}
		return nil
	case yaml.MappingNode:
		type plain TLS // without UnmarshalYAML, so Decode does not recurse
		p, err := decodeMapping[plain](n, tlsFields, "config.TLS")
		*t = TLS(p)
		return err
	}
	return fieldError(n, "must be terminate, off, or a mapping with mode, cert_file, key_file (see docs/SECURITY.md)")
}

// UnmarshalJSON accepts an object (unknown keys rejected) or a string.
func (t *TLS) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*t = TLS{Mode: strings.ToLower(strings.TrimSpace(s))}
		return nil
	}
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	type plain TLS
	var p plain
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return err
	}
	*t = TLS(p)
	return nil
}

// yamlFields lists the yaml keys of a struct type.
func yamlFields(t reflect.Type) map[string]bool {
	out := map[string]bool{}
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			out[name] = true
		}
	}
	return out
}

// checkKeys reports unknown keys of a mapping in the decoder's words, so
// Parse turns them into "unknown key" problems with their lines.
// decodeMapping decodes a mapping node into a T after rejecting keys that
// are not in known, so a section with a custom UnmarshalYAML stays strict.
func decodeMapping[T any](n *yaml.Node, known map[string]bool, typ string) (T, error) {
	var v T
	if err := checkKeys(n, known, typ); err != nil {
		return v, err
	}
	err := n.Decode(&v)
	return v, err
}

func checkKeys(n *yaml.Node, known map[string]bool, typ string) error {
	var errs []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if !known[k.Value] {
			errs = append(errs, fmt.Sprintf("line %d: field %s not found in type %s", k.Line, k.Value, typ))
		}
	}
	if errs != nil {
		return &yaml.TypeError{Errors: errs}
	}
	return nil
}

// httpPorts and rtspPorts are the internal ports whose service is guessed
// when guard.service is not set: Hikvision's web port 80 (8082 in the seed
// guide's DVR, 8080 common too) and RTSP's 554 (8554 on many NVRs).
var (
	httpPorts = []uint16{80, 8080, 8082}
	rtspPorts = []uint16{554, 8554}
)

// GuardService returns the protocol the rule's guard reads: the explicit
// guard.service; http for rules terminating TLS; otherwise guessed from a
// single internal port (80, 8080, 8082: http; 554, 8554: rtsp). Empty
// means unknown: only the connection-level guards apply.
func (r *Rule) GuardService() string {
	if s := strings.ToLower(r.Guard.Service); s != "" {
		return s
	}
	if !r.Proto().HasTCP() {
		return ""
	}
	in := r.Internal()
	if in.Len() == 1 {
		for _, p := range rtspPorts {
			if in.First == p {
				return ServiceRTSP
			}
		}
		if r.TLS.Terminate() {
			return ServiceHTTP
		}
		for _, p := range httpPorts {
			if in.First == p {
				return ServiceHTTP
			}
		}
	}
	if r.TLS.Terminate() {
		return ServiceHTTP
	}
	return ""
}

// HikvisionFilter reports whether the Hikvision exploit filter is on for
// the rule: guard.hikvision if set, else on for every http rule.
func (r *Rule) HikvisionFilter() bool {
	if r.Guard.Hikvision != nil {
		return *r.Guard.Hikvision && r.GuardService() == ServiceHTTP
	}
	return r.GuardService() == ServiceHTTP
}

// AuthGuard reports whether the brute-force guard is on.
func (r *Rule) AuthGuard() bool { return r.Guard.Auth && r.GuardService() != "" }

// Effective guard values, with defaults applied. A negative limit means
// "no limit" and is returned as 0.

// EffectiveMaxFailures returns the effective per-source failure limit.
func (g *Guard) EffectiveMaxFailures() int { return orDefault(g.MaxFailures, DefaultMaxFailures) }

// EffectiveDeviceMaxFailures returns the device-wide budget, 0 for off.
func (g *Guard) EffectiveDeviceMaxFailures() int {
	return orDefault(g.DeviceMaxFailures, DefaultDeviceMaxFailures)
}

// EffectiveFailureWindow returns the failure window.
func (g *Guard) EffectiveFailureWindow() time.Duration {
	if g.FailureWindow <= 0 {
		return DefaultFailureWindow
	}
	return g.FailureWindow.D()
}

// EffectiveBan returns the ban duration.
func (g *Guard) EffectiveBan() time.Duration {
	if g.Ban <= 0 {
		return DefaultBanDuration
	}
	return g.Ban.D()
}

// EffectivePerIPConnections returns the per-source connection cap, 0 for none.
func (g *Guard) EffectivePerIPConnections() int {
	return orDefault(g.PerIPConnections, DefaultPerIPConnections)
}

// EffectivePerIPUDPSessions returns the per-source UDP session cap, 0 for none.
func (g *Guard) EffectivePerIPUDPSessions() int {
	return orDefault(g.PerIPUDPSessions, DefaultPerIPUDPSessions)
}

// EffectivePerIPRate returns the per-source connection rate and burst;
// a zero rate means no limit.
func (g *Guard) EffectivePerIPRate() (perSec float64, burst int) {
	switch {
	case g.PerIPRate < 0:
		return 0, 0
	case g.PerIPRate == 0:
		perSec = DefaultPerIPRate
	default:
		perSec = g.PerIPRate
	}
	burst = g.PerIPBurst
	if burst <= 0 {
		burst = DefaultPerIPBurst
	}
	return perSec, max(burst, int(perSec+0.999))
}

func orDefault(v, def int) int {
	switch {
	case v < 0:
		return 0
	case v == 0:
		return def
	}
	return v
}

// Upper bounds that catch typos (a ban of 30 days is not a typo; of 3
// years it is).
const (
	maxGuardCount = 1 << 20
	maxBan        = 365 * 24 * time.Hour
)

// validateGuard checks a rule's guard and tls sections.
func validateGuard(r *Rule, add func(field, format string, args ...any)) {
	g := &r.Guard
	switch strings.ToLower(g.Service) {
	case "", ServiceHTTP, ServiceRTSP:
	default:
		add("guard.service", "%q is not http or rtsp", g.Service)
	}
	if (g.Auth || g.Service != "") && !r.Proto().HasTCP() {
		add("guard", "the brute-force guard reads HTTP or RTSP over TCP, but the rule's protocol is %s", r.Proto())
	}
	if g.Auth && r.GuardService() == "" && r.Proto().HasTCP() {
		add("guard.service", "guard auth needs to know the protocol: set service: http or service: rtsp (internal port %s is not a known web or RTSP port)", r.Internal())
	}
	if g.Hikvision != nil && *g.Hikvision && r.GuardService() != ServiceHTTP {
		add("guard.hikvision", "the exploit filter reads HTTP; set service: http, or turn it off for this %s rule", orWord(r.GuardService(), "non-HTTP"))
	}
	ints := []struct {
		field string
		v     int
		min   int
	}{
		{"guard.max_failures", g.MaxFailures, 0},
		{"guard.device_max_failures", g.DeviceMaxFailures, -1},
		{"guard.per_ip_connections", g.PerIPConnections, -1},
		{"guard.per_ip_burst", g.PerIPBurst, 0},
		{"guard.per_ip_udp_sessions", g.PerIPUDPSessions, -1},
	}
	for _, f := range ints {
		switch {
		case f.v < f.min && f.min == 0:
			add(f.field, "must not be negative")
		case f.v < f.min:
			add(f.field, "must be -1 (no limit), 0 (the default) or positive")
		case f.v > maxGuardCount:
			add(f.field, "%d is too large (at most %d)", f.v, maxGuardCount)
		}
	}
	if g.PerIPRate < 0 && g.PerIPRate != -1 {
		add("guard.per_ip_rate", "must be -1 (no limit), 0 (the default) or positive")
	}
	if g.PerIPRate > maxGuardCount {
		add("guard.per_ip_rate", "%g is too large", g.PerIPRate)
	}
	for field, d := range map[string]Duration{"guard.failure_window": g.FailureWindow, "guard.ban": g.Ban} {
		if d < 0 {
			add(field, "must not be negative")
		} else if d.D() > maxBan {
			add(field, "%s is longer than a year", d.D())
		}
	}
	if g.PerIPUDPSessions > 0 && !r.Proto().HasUDP() {
		add("guard.per_ip_udp_sessions", "is set but the rule's protocol is %s; it only applies to udp or both", r.Proto())
	}
	validateTLS(r, add)
}

func orWord(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func validateTLS(r *Rule, add func(field, format string, args ...any)) {
	t := &r.TLS
	switch strings.ToLower(t.Mode) {
	case "", TLSOff:
		if t.CertFile != "" || t.KeyFile != "" || t.ACMEDomain != "" || t.Names != "" {
			add("tls.mode", "certificate settings are given but mode is %q; set mode: terminate", orWord(t.Mode, "off"))
		}
		return
	case TLSTerminate:
	default:
		add("tls.mode", "%q is not terminate or off", t.Mode)
		return
	}
	if !r.Proto().HasTCP() {
		add("tls.mode", "TLS termination needs tcp, but the rule's protocol is %s", r.Proto())
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		add("tls.cert_file", "cert_file and key_file go together; give both, or neither for a self-signed certificate")
	}
	if t.ACMEDomain != "" {
		if t.CertFile != "" {
			add("tls.acme_domain", "is set together with cert_file; use one source of certificates")
		}
		if err := checkHost(t.ACMEDomain); err != nil || looksLikeIP(t.ACMEDomain) || !strings.Contains(t.ACMEDomain, ".") {
			add("tls.acme_domain", "%q must be a public DNS name such as cam.example.org (ACME certificates are not issued for IP addresses)", t.ACMEDomain)
		}
		if t.ACMEDirectory != "" && !strings.HasPrefix(t.ACMEDirectory, "https://") {
			add("tls.acme_directory", "%q must be an https:// URL", t.ACMEDirectory)
		}
	} else if t.ACMEEmail != "" || t.ACMEDirectory != "" {
		add("tls.acme_domain", "acme_email and acme_directory need acme_domain")
	}
	if t.ACMEEmail != "" {
		if a, err := mail.ParseAddress(t.ACMEEmail); err != nil || a.Address != t.ACMEEmail {
			add("tls.acme_email", "%q is not an e-mail address", t.ACMEEmail)
		}
	}
	for _, n := range t.Names.List() {
		if err := checkHost(n); err != nil {
			add("tls.names", "%v", err)
		}
	}
	if t.ACMEDomain != "" || t.CertFile != "" {
		if t.Names != "" {
			add("tls.names", "only applies to the self-signed certificate; remove it or the other certificate source")
		}
	}
	// Whether the files exist is checked when the rule starts (package
	// guard): this package does no I/O.
}
