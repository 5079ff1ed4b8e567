package guard

import (
	"bytes"
	"strings"
	"unicode/utf8"
)

// Signature is one known attack request, an entry in the exploit filter's
// table. A request matches when its method, its normalised path and its
// query all match. Keep every entry tied to a public source in Ref.
type Signature struct {
	// ID names the signature in logs and docs, e.g. "CVE-2021-36260".
	ID string
	// Ref is where the attack is described: an advisory or write-up URL.
	Ref string
	// Note says what the request does, for people.
	Note string
	// Methods are the methods matched (upper-case). Empty means any;
	// ExceptMethods are never matched.
	Methods, ExceptMethods []string
	// Paths are lower-case prefixes of the normalised path (decoded,
	// dot-segments and repeated slashes removed, ";params" dropped).
	Paths []string
	// Query, if set, is a query parameter name (lower-case) that must be
	// present.
	Query string
}

// HikvisionSignatures is the Hikvision exploit table. Paths are matched
// case-insensitively because the devices' web server does (the public
// CVE-2017-7921 requests use /system/ where the firmware has /System/).
//
// To add an attack: append an entry with its source, and a case to
// TestFilterTable (filter_test.go) showing a request it blocks and a
// normal request it lets through.
func HikvisionSignatures() []Signature {
	return []Signature{
		{
			ID:      "CVE-2021-36260",
			Ref:     "https://www.hikvision.com/en/support/cybersecurity/security-advisory/security-notification-command-injection-vulnerability-in-some-hikvision-products/ (HSRC-202109-01); https://watchfulip.github.io/2021/09/18/Hikvision-IP-Camera-Unauthenticated-RCE.html",
			Note:    "unauthenticated command injection as root through <language> in PUT /SDK/webLanguage; in CISA KEV, used by the Moobot botnet",
			Methods: []string{"PUT", "POST"},
			Paths:   []string{"/sdk/weblanguage"},
		},
		{
			ID:            "hikvision-sdk-command",
			Ref:           "https://watchfulip.github.io/2021/09/18/Hikvision-IP-Camera-Unauthenticated-RCE.html",
			Note:          "writes to the firmware's internal /SDK/ command handlers, the code path of CVE-2021-36260; the web UI and ISAPI clients do not need them from outside",
			ExceptMethods: []string{"GET", "HEAD"},
			Paths:         []string{"/sdk/"},
		},
		{
			ID:    "CVE-2017-7921",
			Ref:   "https://www.cisa.gov/news-events/ics-advisories/icsa-17-124-01; https://github.com/projectdiscovery/nuclei-templates/blob/main/http/cves/2017/CVE-2017-7921.yaml",
			Note:  "authentication bypass: a fixed auth= query value (base64 of admin:11) is accepted on the pre-ISAPI paths, exposing users, snapshots and the configuration file (CVE-2017-7923)",
			Paths: []string{"/system/", "/security/", "/onvif-http/snapshot"},
			Query: "auth",
		},
		{
			ID:      "http-trace",
			Ref:     "https://owasp.org/www-community/attacks/Cross_Site_Tracing",
			Note:    "TRACE echoes the request, cookies and Authorization included (cross-site tracing); no camera client needs it",
			Methods: []string{"TRACE", "TRACK"},
			Paths:   []string{"/"},
		},
	}
}

// Filter checks requests against a signature table plus the structural
// checks that need no table: path traversal (CWE-22), NUL and control
// bytes and invalid encodings in the path, CONNECT.
type Filter struct {
	sigs []Signature
}

// NewFilter returns a filter for the table.
func NewFilter(sigs []Signature) *Filter { return &Filter{sigs: sigs} }

// Verdict is why a request was blocked.
type Verdict struct {
	// ID is the signature's ID, or "path-traversal", "bad-path" or
	// "connect" for the structural checks.
	ID string
	// Status is the HTTP status to answer with.
	Status int
	// Ref is the signature's source.
	Ref string
}

// Check returns nil if the request may pass.
func (f *Filter) Check(method, target string) *Verdict {
	if method == "CONNECT" {
		return &Verdict{ID: "connect", Status: 405, Ref: "RFC 9110 §9.3.6: camgate is not a proxy"}
	}
	path, query, ok := normalizeTarget(target)
	if !ok {
		return &Verdict{ID: "bad-path", Status: 400, Ref: "RFC 3986 §3.3, CWE-22"}
	}
	if path == "" {
		return &Verdict{ID: "path-traversal", Status: 403, Ref: "CWE-22"}
	}
	for i := range f.sigs {
		s := &f.sigs[i]
		if s.matches(method, path, query) {
			return &Verdict{ID: s.ID, Status: 403, Ref: s.Ref}
		}
	}
	return nil
}

func (s *Signature) matches(method, path string, query []string) bool {
	if len(s.Methods) > 0 && !containsFold(s.Methods, method) {
		return false
	}
	if containsFold(s.ExceptMethods, method) {
		return false
	}
	hit := false
	for _, p := range s.Paths {
		if strings.HasPrefix(path, p) || path+"/" == p {
			hit = true
			break
		}
	}
	if !hit {
		return false
	}
	if s.Query == "" {
		return true
	}
	for _, q := range query {
		if q == s.Query {
			return true
		}
	}
	return false
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// maxDecodeRounds bounds percent-decoding: "%252e" is "%2e" after one
// round and "." after two; a device that decodes twice must not see a
// traversal camgate missed.
const maxDecodeRounds = 3

// normalizeTarget returns the lower-case normalised path and the
// lower-case query parameter names of a request target. The path is ""
// when it climbs above the root or contains a ".." segment in any
// decoding; ok is false when it cannot be decoded or holds control bytes.
func normalizeTarget(target string) (path string, query []string, ok bool) {
	if target == "*" {
		return "/", nil, true
	}
	if i := strings.Index(target, "://"); i > 0 && !strings.HasPrefix(target, "/") {
		// absolute-form (RFC 9112 §3.2.2): drop scheme and authority.
		rest := target[i+3:]
		j := strings.IndexAny(rest, "/?")
		if j < 0 {
			return "/", nil, true
		}
		target = rest[j:]
		if !strings.HasPrefix(target, "/") {
			target = "/" + target
		}
	}
	if !strings.HasPrefix(target, "/") {
		return "", nil, false
	}
	rawPath, rawQuery, _ := strings.Cut(target, "?")
	rawPath, _, _ = strings.Cut(rawPath, "#")
	p := rawPath
	for round := 0; ; round++ {
		if hasDotDot(p) {
			return "", nil, true
		}
		if !strings.Contains(p, "%") || round == maxDecodeRounds {
			break
		}
		d, ok := unescape(p)
		if !ok {
			return "", nil, false
		}
		p = d
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c < ' ' || c == 0x7f {
			return "", nil, false
		}
	}
	if !utf8.ValidString(p) {
		// Overlong encodings such as %c0%ae ('.') are the classic way
		// around traversal checks.
		return "", nil, false
	}
	for _, kv := range strings.Split(rawQuery, "&") {
		name, value, _ := strings.Cut(kv, "=")
		if n, ok := unescape(name); ok {
			name = n
		}
		if name != "" {
			query = append(query, strings.ToLower(name))
		}
		v := value
		for round := 0; round <= maxDecodeRounds; round++ {
			if hasDotDot(v) && (strings.Contains(v, "/") || strings.Contains(v, "\\")) {
				return "", nil, true
			}
			d, ok := unescape(v)
			if !ok || d == v {
				break
			}
			v = d
		}
	}
	return cleanPath(strings.ToLower(p)), query, true
}

// hasDotDot reports whether a path has a ".." segment, with '/' or '\'
// as separators.
func hasDotDot(p string) bool {
	for _, seg := range strings.FieldsFunc(p, func(r rune) bool { return r == '/' || r == '\\' }) {
		seg, _, _ = strings.Cut(seg, ";")
		if strings.TrimRight(seg, " .") == "" && strings.Contains(seg, "..") {
			return true
		}
	}
	return false
}

// cleanPath collapses repeated slashes, drops "." segments and ";params",
// and turns '\' into '/'.
func cleanPath(p string) string {
	var b strings.Builder
	b.Grow(len(p))
	segs := strings.FieldsFunc(p, func(r rune) bool { return r == '/' || r == '\\' })
	for _, seg := range segs {
		seg, _, _ = strings.Cut(seg, ";")
		if seg == "." || seg == "" {
			continue
		}
		b.WriteByte('/')
		b.WriteString(seg)
	}
	if len(p) > 0 && (p[len(p)-1] == '/' || p[len(p)-1] == '\\') || b.Len() == 0 {
		b.WriteByte('/')
	}
	return b.String()
}

// unescape percent-decodes s; '+' is left alone.
func unescape(s string) (string, bool) {
	if !strings.Contains(s, "%") {
		return s, true
	}
	var b bytes.Buffer
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
			// Includes %uXXXX, which some embedded servers decode.
			return "", false
		}
		b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
		i += 2
	}
	return b.String(), true
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}
