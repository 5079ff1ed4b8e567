package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/forward"
	"github.com/camgate/camgate/internal/gateway"
	"github.com/camgate/camgate/internal/guard"
	"github.com/camgate/camgate/internal/router"
	"github.com/camgate/camgate/internal/site"
	"github.com/camgate/camgate/internal/store"
)

const testPassword = "kiwi-lantern-47-grove"

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// testEnv is a gateway with a config file, its site, the admin server
// behind httptest's TLS server, and a backend "device" on loopback.
type testEnv struct {
	t       *testing.T
	dir     string
	cfgPath string
	gw      *gateway.Gateway
	site    *site.Site
	srv     *Server
	ts      *httptest.Server
	clock   *clock
	backend string // host:port of an echo server standing in for the DVR
}

// freePort returns a TCP port that was free a moment ago on loopback.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// echoServer accepts connections on loopback and echoes what it reads.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

type envOpts struct {
	yaml   string // extra top-level YAML, e.g. an admin: section
	policy gateway.Policy
	vpn    VPN          // the VPN page's server (vpn_test.go); nil: off
	router RouterStatus // Config.Router
	live   LiveView     // Config.Live
}

func newEnv(t *testing.T, o envOpts) *testEnv {
	t.Helper()
	e := &testEnv{t: t, dir: t.TempDir(), clock: &clock{t: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}}
	e.backend = echoServer(t)
	_, bport, _ := net.SplitHostPort(e.backend)
	e.cfgPath = filepath.Join(e.dir, "camgate.yaml")
	cfgText := fmt.Sprintf("version: 1\nlisten_address: 127.0.0.1\nrules:\n  - name: dvr-web\n    description: DVR web page\n    external_port: %d\n    internal_ip: 127.0.0.1\n    internal_port: %s\n%s",
		freePort(t), bport, o.yaml)
	if err := os.WriteFile(e.cfgPath, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := store.Load(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	e.gw = gateway.New(gateway.Config{Policy: o.policy})
	if _, err := e.gw.Apply(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		e.gw.Close(ctx)
	})
	e.site = site.New(site.Config{Path: e.cfgPath, Gateway: e.gw})
	ac := Config{Site: e.site, Now: e.clock.Now, Version: "test", Router: o.router, Live: o.live, VPN: o.vpn}
	// Wired as serve wires it (cmd/camgate/serve_admin.go).
	switch p := o.policy.(type) {
	case *guard.Policy:
		ac.Guard, ac.Bans = p, p
	case *fakeBanPolicy:
		ac.Bans = p
	}
	e.srv, err = New(ac)
	if err != nil {
		t.Fatal(err)
	}
	e.ts = httptest.NewTLSServer(e.srv)
	t.Cleanup(e.ts.Close)
	return e
}

// client is a browser-like API client: a cookie jar and the session
// header secret.
type client struct {
	e       *testEnv
	hc      *http.Client
	session string
	bearer  string
	header  http.Header // extra headers on every request
}

func (e *testEnv) client() *client {
	jar, _ := cookiejar.New(nil)
	hc := *e.ts.Client() // a copy: each client has its own cookie jar
	hc.Jar = jar
	return &client{e: e, hc: &hc, header: http.Header{}}
}

type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    []byte
}

func (r response) problems() map[string]string {
	out := map[string]string{}
	ps, _ := r.body["problems"].([]any)
	for _, p := range ps {
		m := p.(map[string]any)
		f, _ := m["field"].(string)
		out[f], _ = m["message"].(string)
	}
	return out
}

func (c *client) do(method, path string, body any, hdr ...string) response {
	c.e.t.Helper()
	var rd io.Reader
	if body != nil {
		switch b := body.(type) {
		case string:
			rd = strings.NewReader(b)
		default:
			j, _ := json.Marshal(b)
			rd = bytes.NewReader(j)
		}
	}
	req, err := http.NewRequest(method, c.e.ts.URL+path, rd)
	if err != nil {
		c.e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.session != "" {
		req.Header.Set(sessionHeader, c.session)
	}
	if c.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	}
	for k, v := range c.header {
		req.Header[k] = v
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if strings.EqualFold(hdr[i], "Host") {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := response{status: resp.StatusCode, header: resp.Header, raw: raw}
	json.Unmarshal(raw, &out.body)
	return out
}

func (c *client) must(status int, method, path string, body any, hdr ...string) response {
	c.e.t.Helper()
	r := c.do(method, path, body, hdr...)
	if r.status != status {
		c.e.t.Fatalf("%s %s: got %d %s, want %d", method, path, r.status, r.raw, status)
	}
	return r
}

// owner runs first-run setup and returns a logged-in client.
func (e *testEnv) owner() *client {
	e.t.Helper()
	c := e.client()
	r := c.must(200, "POST", "/api/v1/setup", map[string]string{"token": e.srv.SetupToken(), "user": "owner", "password": testPassword})
	c.session = r.body["session"].(string)
	return c
}

func (e *testEnv) loadFile() *config.Config {
	e.t.Helper()
	cfg, err := store.Load(e.cfgPath)
	if err != nil {
		e.t.Fatalf("config file after the change: %v", err)
	}
	return cfg
}

// dialThrough opens a connection to a rule's listener and checks that it
// echoes.
func dialThrough(t *testing.T, gw *gateway.Gateway, rule string) net.Conn {
	t.Helper()
	addrs := gw.Addrs(rule)
	if len(addrs) == 0 {
		t.Fatalf("rule %q is not listening", rule)
	}
	c, err := net.DialTimeout("tcp", addrs[0].String(), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	echo(t, c, "hello")
	return c
}

func echo(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatalf("write through camgate: %v", err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
		t.Fatalf("echo through camgate: got %q, %v, want %q", buf, err, msg)
	}
}

func TestAuthRequiredEverywhere(t *testing.T) {
	e := newEnv(t, envOpts{})
	owner := e.owner()
	endpoints := []struct{ method, path string }{
		{"GET", "/api/v1/session"},
		{"POST", "/api/v1/password"},
		{"GET", "/api/v1/rules"},
		{"POST", "/api/v1/rules"},
		{"POST", "/api/v1/rules:batch"},
		{"GET", "/api/v1/rules/dvr-web"},
		{"PUT", "/api/v1/rules/dvr-web"},
		{"DELETE", "/api/v1/rules/dvr-web"},
		{"POST", "/api/v1/rules/dvr-web/enable"},
		{"POST", "/api/v1/rules/dvr-web/disable"},
		{"POST", "/api/v1/rules/dvr-web/check"},
		{"GET", "/api/v1/status"},
		{"GET", "/api/v1/connections"},
		{"DELETE", "/api/v1/connections/1"},
		{"GET", "/api/v1/tokens"},
		{"POST", "/api/v1/tokens"},
		{"DELETE", "/api/v1/tokens/x"},
		{"GET", "/api/v1/audit"},
		{"GET", "/api/v1/bans"},
		{"DELETE", "/api/v1/bans"},
		{"GET", "/api/v1/router"},
		{"GET", "/api/v1/cameras"},
		{"GET", "/api/v1/live/dvr/101"},
		{"GET", "/api/v1/shares"},
		{"POST", "/api/v1/shares"},
		{"DELETE", "/api/v1/shares/x"},
		{"POST", "/api/v1/vpn/probe"},
		{"DELETE", "/api/v1/vpn/probe/x"},
		{"GET", "/metrics"},
	}
	// The session cookie alone is not enough: the header half is needed.
	cookieOnly := *owner
	cookieOnly.session = ""
	wrongHeader := *owner
	wrongHeader.session = "not-the-secret"
	anon := e.client()
	bogus := e.client()
	bogus.bearer = "cgt_" + strings.Repeat("A", 43)
	for _, ep := range endpoints {
		for name, c := range map[string]*client{"anonymous": anon, "cookie only": &cookieOnly, "wrong header": &wrongHeader, "unknown token": bogus} {
			t.Run(ep.method+" "+ep.path+" "+name, func(t *testing.T) {
				var body any
				if ep.method == "POST" || ep.method == "PUT" {
					body = map[string]any{}
				}
				r := c.do(ep.method, ep.path, body)
				if r.status != http.StatusUnauthorized {
					t.Fatalf("got %d %s, want 401", r.status, r.raw)
				}
				if _, ok := r.body["error"].(string); !ok {
					t.Fatalf("got body %s, want a JSON error", r.raw)
				}
			})
		}
	}
	// The rule is untouched by all of that.
	if e.site.Config().Rule("dvr-web") == nil {
		t.Fatal("rule removed by unauthenticated requests")
	}
	// Public endpoints answer without login.
	for _, p := range []string{"/", "/ui/app.js", "/api/v1/openapi.json", "/api/v1/setup"} {
		if r := anon.do("GET", p, nil); r.status != 200 {
			t.Errorf("GET %s: got %d, want 200 without login", p, r.status)
		}
	}
}

func TestCrossOriginRefused(t *testing.T) {
	e := newEnv(t, envOpts{})
	owner := e.owner()
	rule := map[string]any{"name": "x", "external_port": freePort(t), "internal_ip": "127.0.0.1"}
	tests := []struct {
		name   string
		method string
		path   string
		body   any
		hdr    []string
	}{
		{"foreign origin", "POST", "/api/v1/rules", rule, []string{"Origin", "https://evil.example"}},
		{"null origin", "POST", "/api/v1/rules", rule, []string{"Origin", "null"}},
		{"cross-site fetch", "POST", "/api/v1/rules", rule, []string{"Sec-Fetch-Site", "cross-site"}},
		// Another port on the same host is same-site: a forwarded
		// camera's web UI must not drive the admin API.
		{"same-site fetch", "DELETE", "/api/v1/rules/dvr-web", nil, []string{"Sec-Fetch-Site", "same-site"}},
		{"other port origin", "DELETE", "/api/v1/rules/dvr-web", nil, []string{"Origin", "https://127.0.0.1:1"}},
		{"cross-site rule check", "POST", "/api/v1/rules/dvr-web/check", nil, []string{"Sec-Fetch-Site", "cross-site"}},
		{"cross-site read", "GET", "/api/v1/status", nil, []string{"Sec-Fetch-Site", "cross-site"}},
		{"cross-site login", "POST", "/api/v1/login", map[string]string{"user": "owner", "password": testPassword}, []string{"Sec-Fetch-Site", "cross-site"}},
		{"cross-site metrics", "GET", "/metrics", nil, []string{"Sec-Fetch-Site", "same-site"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := owner.do(tt.method, tt.path, tt.body, tt.hdr...)
			if r.status != http.StatusForbidden {
				t.Fatalf("got %d %s, want 403", r.status, r.raw)
			}
			if msg, _ := r.body["error"].(string); !strings.Contains(msg, "cross-origin") {
				t.Fatalf("got %q, want a cross-origin refusal", msg)
			}
		})
	}
	if e.site.Config().Rule("x") != nil || e.site.Config().Rule("dvr-web") == nil {
		t.Fatal("a refused cross-origin request changed the rules")
	}
	// The UI's own requests pass.
	owner.must(201, "POST", "/api/v1/rules", rule, "Origin", e.ts.URL, "Sec-Fetch-Site", "same-origin")
	// Writes must be JSON, which a cross-site form cannot send.
	r := owner.do("POST", "/api/v1/rules", "name=y", "Content-Type", "application/x-www-form-urlencoded")
	if r.status != http.StatusUnsupportedMediaType {
		t.Fatalf("form body: got %d, want 415", r.status)
	}
	// WebSocket upgrades are refused outright.
	if r := owner.do("GET", "/api/v1/status", nil, "Upgrade", "websocket", "Connection", "Upgrade"); r.status != http.StatusBadRequest {
		t.Fatalf("websocket: got %d, want 400", r.status)
	}
}

func TestHostHeaderRebinding(t *testing.T) {
	e := newEnv(t, envOpts{yaml: "admin:\n  allowed_hosts: [camgate.example.net]\n"})
	c := e.client()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(e.ts.URL, "https://"))
	tests := []struct {
		host string
		want int
	}{
		{"127.0.0.1:" + port, 200},
		{"[::1]:" + port, 200},
		{"192.0.2.7:8443", 200},
		{"localhost:" + port, 200},
		{"camgate.example.net:8443", 200},
		{"CAMGATE.example.net.", 200},
		{"attacker.example:" + port, 403},
		{"rebind.attacker.example", 403},
		{"example.net", 403},
	}
	for _, tt := range tests {
		for _, path := range []string{"/", "/api/v1/setup", "/api/v1/openapi.json"} {
			t.Run(tt.host+path, func(t *testing.T) {
				r := c.do("GET", path, nil, "Host", tt.host)
				if r.status != tt.want {
					t.Fatalf("got %d %s, want %d", r.status, r.raw, tt.want)
				}
			})
		}
	}
}

func TestSetupAndCookies(t *testing.T) {
	e := newEnv(t, envOpts{})
	c := e.client()
	if r := c.must(200, "GET", "/api/v1/setup", nil); r.body["needed"] != true {
		t.Fatalf("got %s, want setup needed", r.raw)
	}
	r := c.do("POST", "/api/v1/setup", map[string]string{"token": "wrong", "password": testPassword})
	if r.status != 401 {
		t.Fatalf("wrong token: got %d %s, want 401", r.status, r.raw)
	}
	for _, pw := range []string{"password", "admin12345", "hikvision12345", "qwertyuiop", "short"} {
		r := c.do("POST", "/api/v1/setup", map[string]string{"token": e.srv.SetupToken(), "password": pw})
		if r.status != 422 || r.problems()["password"] == "" {
			t.Fatalf("weak password %q: got %d %s, want 422 with a password problem", pw, r.status, r.raw)
		}
	}
	e.srv.lockout.succeed(netip.MustParseAddr("127.0.0.1"))
	tok := e.srv.SetupToken()
	r = c.must(200, "POST", "/api/v1/setup", map[string]string{"token": tok, "user": "owner", "password": testPassword})
	if r.body["session"] == "" {
		t.Fatalf("got %s, want a session secret", r.raw)
	}
	// The cookie: __Host- prefix over HTTPS, Secure, HttpOnly,
	// SameSite=Strict, with an expiry.
	sc := r.header.Get("Set-Cookie")
	for _, want := range []string{cookieSecure + "=", "Path=/", "Expires=", "Max-Age=43200", "HttpOnly", "Secure", "SameSite=Strict"} {
		if !strings.Contains(sc, want) {
			t.Errorf("Set-Cookie %q lacks %q", sc, want)
		}
	}
	if e.srv.SetupToken() != "" {
		t.Fatal("setup token still valid after setup")
	}
	if r := e.client().do("POST", "/api/v1/setup", map[string]string{"token": tok, "password": testPassword}); r.status != 409 {
		t.Fatalf("second setup: got %d, want 409", r.status)
	}
	b, err := os.ReadFile(filepath.Join(e.srv.dir, AccountFile))
	if err != nil || !strings.Contains(string(b), "$argon2id$") || strings.Contains(string(b), testPassword) {
		t.Fatalf("account file: %v\n%s", err, b)
	}
	if fi, _ := os.Stat(filepath.Join(e.srv.dir, AccountFile)); fi.Mode().Perm() != 0o600 {
		t.Fatalf("account file mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestPlainHTTPCookieNotSecure(t *testing.T) {
	e := newEnv(t, envOpts{})
	ts := httptest.NewServer(e.srv)
	defer ts.Close()
	body, _ := json.Marshal(map[string]string{"token": e.srv.SetupToken(), "password": testPassword})
	resp, err := http.Post(ts.URL+"/api/v1/setup", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	sc := resp.Header.Get("Set-Cookie")
	if resp.StatusCode != 200 || !strings.HasPrefix(sc, cookiePlain+"=") || strings.Contains(sc, "Secure") || !strings.Contains(sc, "SameSite=Strict") {
		t.Fatalf("got %d %q, want a non-Secure SameSite=Strict %s cookie over plain HTTP", resp.StatusCode, sc, cookiePlain)
	}
}

func TestLoginLockout(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.owner()
	c := e.client()
	login := func(pw string) response {
		return c.do("POST", "/api/v1/login", map[string]string{"user": "owner", "password": pw})
	}
	for i := 1; i <= freeAttempts; i++ {
		if r := login("wrong-password-1"); r.status != 401 || r.header.Get("Retry-After") != "" {
			t.Fatalf("failure %d: got %d Retry-After %q, want 401 without lockout", i, r.status, r.header.Get("Retry-After"))
		}
	}
	// Each further failure doubles the lockout: 1 s, 2 s, 4 s...
	for i, want := range []string{"1", "2", "4", "8"} {
		r := login("wrong-password-1")
		if r.status != 401 || r.header.Get("Retry-After") != want {
			t.Fatalf("lockout %d: got %d Retry-After %q, want 401 and %s", i, r.status, r.header.Get("Retry-After"), want)
		}
		// While locked, even the right password is refused.
		if r := login(testPassword); r.status != 429 {
			t.Fatalf("lockout %d: got %d for the right password, want 429", i, r.status)
		}
		e.clock.Add(time.Duration(1<<i) * time.Second)
	}
	if r := login(testPassword); r.status != 200 {
		t.Fatalf("after the lockout: got %d %s, want 200", r.status, r.raw)
	}
	// Success clears the record.
	if r := login("wrong-password-1"); r.status != 401 || r.header.Get("Retry-After") != "" {
		t.Fatalf("after success: got %d Retry-After %q, want a fresh count", r.status, r.header.Get("Retry-After"))
	}
	// The cap.
	l := newLockout()
	src := netip.MustParseAddr("2001:db8::1")
	var d time.Duration
	for range 40 {
		d = l.fail(src, e.clock.Now())
	}
	if d != lockoutMax {
		t.Fatalf("got lockout %s after 40 failures, want the cap %s", d, lockoutMax)
	}
	if l.check(netip.MustParseAddr("2001:db8::ffff"), e.clock.Now()) == 0 {
		t.Fatal("another address in the same /64 is not locked out")
	}
}

func TestSessionExpiryAndLogout(t *testing.T) {
	e := newEnv(t, envOpts{yaml: "admin:\n  session_ttl: 1h\n"})
	c := e.owner()
	c.must(200, "GET", "/api/v1/session", nil)
	e.clock.Add(59 * time.Minute)
	c.must(200, "GET", "/api/v1/session", nil)
	e.clock.Add(2 * time.Minute)
	c.must(401, "GET", "/api/v1/session", nil)

	r := c.must(200, "POST", "/api/v1/login", map[string]string{"user": "owner", "password": testPassword})
	c.session = r.body["session"].(string)
	c.must(200, "GET", "/api/v1/session", nil)
	c.must(204, "POST", "/api/v1/logout", nil)
	c.must(401, "GET", "/api/v1/session", nil)
}

func TestResetPasswordEndsSessions(t *testing.T) {
	e := newEnv(t, envOpts{})
	c := e.owner()
	if err := ResetPassword(e.srv.dir, "", "password1", e.clock.Now()); err == nil {
		t.Fatal("weak password accepted")
	}
	e.clock.Add(time.Second)
	if err := ResetPassword(e.srv.dir, "", "new-"+testPassword, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	// The file changed under the running server; make sure its mtime
	// differs even on coarse-grained filesystems.
	later := time.Now().Add(2 * time.Second)
	os.Chtimes(filepath.Join(e.srv.dir, AccountFile), later, later)
	c.must(401, "GET", "/api/v1/session", nil)
	c.must(401, "POST", "/api/v1/login", map[string]string{"user": "owner", "password": testPassword})
	c.must(200, "POST", "/api/v1/login", map[string]string{"user": "owner", "password": "new-" + testPassword})
}

func TestChangePassword(t *testing.T) {
	e := newEnv(t, envOpts{})
	c := e.owner()
	other := e.client()
	r := other.must(200, "POST", "/api/v1/login", map[string]string{"user": "owner", "password": testPassword})
	other.session = r.body["session"].(string)
	if r := c.do("POST", "/api/v1/password", map[string]string{"current": "nope", "new": "x"}); r.status != 401 || r.problems()["current"] == "" {
		t.Fatalf("wrong current: got %d %s", r.status, r.raw)
	}
	if r := c.do("POST", "/api/v1/password", map[string]string{"current": testPassword, "new": "password"}); r.status != 422 || r.problems()["new"] == "" {
		t.Fatalf("weak new: got %d %s", r.status, r.raw)
	}
	e.clock.Add(time.Second)
	r = c.must(200, "POST", "/api/v1/password", map[string]string{"current": testPassword, "new": "another-" + testPassword})
	c.session = r.body["session"].(string)
	c.must(200, "GET", "/api/v1/session", nil)
	other.must(401, "GET", "/api/v1/session", nil)
}

func TestRulesLifecycle(t *testing.T) {
	e := newEnv(t, envOpts{})
	c := e.owner()
	_, bport, _ := net.SplitHostPort(e.backend)

	// A live connection on the existing rule must survive every change
	// that does not touch that rule.
	kept := dialThrough(t, e.gw, "dvr-web")
	defer kept.Close()

	list := c.must(200, "GET", "/api/v1/rules", nil)
	rules := list.body["rules"].([]any)
	if len(rules) != 1 || rules[0].(map[string]any)["enabled"] != true || list.header.Get("ETag") == "" {
		t.Fatalf("list: got %s", list.raw)
	}

	before, _ := os.Stat(e.cfgPath)
	port := freePort(t)
	r := c.must(201, "POST", "/api/v1/rules", map[string]any{
		"name": "dvr-rtsp", "description": "live video", "protocol": "tcp",
		"external_port": port, "internal_ip": "127.0.0.1", "internal_port": bport,
	}, "If-Match", list.header.Get("ETag"))
	if r.header.Get("Location") != "/api/v1/rules/dvr-rtsp" || r.header.Get("ETag") == "" {
		t.Fatalf("create: got headers %v", r.header)
	}
	etag := r.header.Get("ETag")

	// Persisted atomically (a new file renamed over the old), and the
	// file and the running gateway agree.
	after, _ := os.Stat(e.cfgPath)
	if os.SameFile(before, after) {
		t.Fatal("config file rewritten in place, want a rename over it")
	}
	if fr := e.loadFile().Rule("dvr-rtsp"); fr == nil || fr.Description != "live video" || fr.ExternalPort.First != uint16(port) {
		t.Fatalf("file has %+v", fr)
	}
	if lr := e.gw.Config().Rule("dvr-rtsp"); lr == nil {
		t.Fatal("gateway is not running the new rule")
	}
	dialThrough(t, e.gw, "dvr-rtsp").Close()
	echo(t, kept, "still here")
	if m, _ := filepath.Glob(filepath.Join(e.dir, ".camgate.yaml.tmp-*")); len(m) > 0 {
		t.Fatalf("temporary files left behind: %v", m)
	}

	// A stale ETag gets 412 and changes nothing.
	stale := c.do("PUT", "/api/v1/rules/dvr-rtsp", map[string]any{"name": "dvr-rtsp", "external_port": port, "internal_ip": "127.0.0.1", "internal_port": bport, "description": "edited"},
		"If-Match", `"0000000000000000"`)
	if stale.status != 412 {
		t.Fatalf("stale If-Match: got %d %s, want 412", stale.status, stale.raw)
	}
	if e.loadFile().Rule("dvr-rtsp").Description != "live video" {
		t.Fatal("a stale write reached the file")
	}

	// The right ETag: a description change keeps the listener.
	r = c.must(200, "PUT", "/api/v1/rules/dvr-rtsp", map[string]any{"name": "dvr-rtsp", "external_port": port, "internal_ip": "127.0.0.1", "internal_port": bport, "description": "edited"},
		"If-Match", etag)
	if r.body["description"] != "edited" || r.header.Get("ETag") == etag {
		t.Fatalf("update: got %s", r.raw)
	}
	if e.loadFile().Rule("dvr-rtsp").Description != "edited" {
		t.Fatal("update not persisted")
	}
	// The old ETag is now stale too.
	if r := c.do("POST", "/api/v1/rules/dvr-rtsp/disable", nil, "If-Match", etag); r.status != 412 {
		t.Fatalf("disable with the old ETag: got %d, want 412", r.status)
	}

	// Disable, enable: the gateway follows, and so does the file.
	r = c.must(200, "POST", "/api/v1/rules/dvr-rtsp/disable", nil)
	if r.body["enabled"] != false || e.gw.Addrs("dvr-rtsp") != nil || e.loadFile().Rule("dvr-rtsp").IsEnabled() {
		t.Fatalf("disable: got %s, listening %v", r.raw, e.gw.Addrs("dvr-rtsp"))
	}
	c.must(200, "POST", "/api/v1/rules/dvr-rtsp/enable", nil)
	dialThrough(t, e.gw, "dvr-rtsp").Close()

	// Rename through PUT, then delete.
	r = c.must(200, "PUT", "/api/v1/rules/dvr-rtsp", map[string]any{"name": "cam-rtsp", "external_port": port, "internal_ip": "127.0.0.1", "internal_port": bport})
	if r.body["name"] != "cam-rtsp" || e.loadFile().Rule("cam-rtsp") == nil || e.loadFile().Rule("dvr-rtsp") != nil {
		t.Fatalf("rename: got %s", r.raw)
	}
	c.must(404, "GET", "/api/v1/rules/dvr-rtsp", nil)
	c.must(204, "DELETE", "/api/v1/rules/cam-rtsp", nil)
	if e.loadFile().Rule("cam-rtsp") != nil || e.gw.Addrs("cam-rtsp") != nil {
		t.Fatal("delete: rule still in the file or running")
	}
	c.must(404, "DELETE", "/api/v1/rules/cam-rtsp", nil)
	echo(t, kept, "and still here")

	// The batch (the Hikvision preset) is all or nothing.
	p1, p2 := freePort(t), freePort(t)
	bad := c.do("POST", "/api/v1/rules:batch", map[string]any{"rules": []any{
		map[string]any{"name": "dvr1-http", "external_port": p1, "internal_ip": "127.0.0.1"},
		map[string]any{"name": "dvr1-rtsp", "external_port": p1, "internal_ip": "127.0.0.1"},
	}})
	if bad.status != 422 || e.site.Config().Rule("dvr1-http") != nil {
		t.Fatalf("conflicting batch: got %d %s, want 422 and nothing added", bad.status, bad.raw)
	}
	c.must(201, "POST", "/api/v1/rules:batch", map[string]any{"rules": []any{
		map[string]any{"name": "dvr1-http", "external_port": p1, "internal_ip": "127.0.0.1"},
		map[string]any{"name": "dvr1-server", "external_port": p2, "internal_ip": "127.0.0.1", "enabled": false},
	}})
	if cfg := e.loadFile(); cfg.Rule("dvr1-http") == nil || cfg.Rule("dvr1-server").IsEnabled() {
		t.Fatal("batch not persisted as sent")
	}
}

func TestRuleValidationPerField(t *testing.T) {
	e := newEnv(t, envOpts{})
	c := e.owner()
	existing := e.site.Config().Rule("dvr-web").ExternalPort.First
	tests := []struct {
		name   string
		body   string
		status int
		fields map[string]string // field -> message substring
	}{
		{"every bad field at once", `{"name":"Bad Name","external_port":70000,"internal_ip":"192.168.1.300","protocol":"sctp"}`, 422,
			map[string]string{"name": "lower-case", "external_port": "outside 1-65535", "internal_ip": "not a valid IP address", "protocol": "not tcp, udp or both"}},
		{"missing fields", `{}`, 422, map[string]string{"name": "missing", "external_port": "missing", "internal_ip": "missing"}},
		{"unknown field", `{"name":"a","external_port":1,"internal_ip":"10.0.0.1","colour":"red"}`, 422, map[string]string{"colour": "unknown field"}},
		{"case matters", `{"Name":"a","external_port":1,"internal_ip":"10.0.0.1"}`, 422, map[string]string{"Name": "unknown field"}},
		{"wrong type", `{"name":"a","external_port":1,"internal_ip":"10.0.0.1","max_connections":"many","enabled":"yes"}`, 422,
			map[string]string{"max_connections": "must be a number", "enabled": "must be true or false"}},
		{"range lengths", `{"name":"a","external_port":"10000-10009","internal_port":"20000-20004","internal_ip":"10.0.0.1"}`, 422,
			map[string]string{"internal_port": "same length"}},
		{"bad cidr", `{"name":"a","external_port":1,"internal_ip":"10.0.0.1","allow":["1.2.3.0/33"]}`, 422, map[string]string{"allow": "not a CIDR"}},
		{"port taken by another rule", fmt.Sprintf(`{"name":"other","external_port":%d,"internal_ip":"10.0.0.1"}`, existing), 422,
			map[string]string{"external_port": `already used by rule "dvr-web"`}},
		{"duplicate name", `{"name":"dvr-web","external_port":1,"internal_ip":"10.0.0.1"}`, 422, map[string]string{"name": "exists already"}},
		{"not an object", `[1,2]`, 422, map[string]string{"": "malformed JSON"}},
		{"not JSON", `{"name":`, 422, map[string]string{"": "malformed JSON"}},
		{"two values", `{} {}`, 422, map[string]string{"": "more than one value"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := c.do("POST", "/api/v1/rules", tt.body)
			if r.status != tt.status {
				t.Fatalf("got %d %s, want %d", r.status, r.raw, tt.status)
			}
			got := r.problems()
			for f, want := range tt.fields {
				if !strings.Contains(got[f], want) {
					t.Errorf("field %q: got %q, want it to contain %q (all: %v)", f, got[f], want, got)
				}
			}
		})
	}
	if len(e.site.Config().Rules) != 1 || len(e.loadFile().Rules) != 1 {
		t.Fatal("an invalid rule was added")
	}
	if r := c.do("POST", "/api/v1/rules", strings.Repeat(" ", maxBody+1)); r.status != 413 {
		t.Fatalf("huge body: got %d, want 413", r.status)
	}
}

func TestApplyFailureChangesNothing(t *testing.T) {
	e := newEnv(t, envOpts{})
	c := e.owner()
	// Another program holds the port.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy := ln.Addr().(*net.TCPAddr).Port
	before, _ := os.ReadFile(e.cfgPath)
	r := c.do("POST", "/api/v1/rules", map[string]any{"name": "busy", "external_port": busy, "internal_ip": "127.0.0.1"})
	if r.status != 409 || !strings.Contains(r.body["error"].(string), "nothing changed") || !strings.Contains(r.problems()["external_port"], "in use") {
		t.Fatalf("got %d %s, want 409 naming the busy port", r.status, r.raw)
	}
	after, _ := os.ReadFile(e.cfgPath)
	if !bytes.Equal(before, after) || e.site.Config().Rule("busy") != nil {
		t.Fatal("a rule that could not be applied was persisted or kept")
	}
}

func TestTokens(t *testing.T) {
	e := newEnv(t, envOpts{})
	c := e.owner()
	r := c.must(201, "POST", "/api/v1/tokens", map[string]string{"name": "backup-script"})
	secret := r.body["secret"].(string)
	id := r.body["token"].(map[string]any)["id"].(string)
	if !strings.HasPrefix(secret, tokenPrefix) {
		t.Fatalf("got secret %q", secret)
	}
	ro := c.must(201, "POST", "/api/v1/tokens", map[string]string{"name": "grafana", "scope": "read"}).body["secret"].(string)
	c.must(422, "POST", "/api/v1/tokens", map[string]string{"name": "grafana"})

	// Shown once: neither the listing nor the file has it.
	list := c.must(200, "GET", "/api/v1/tokens", nil)
	if strings.Contains(string(list.raw), secret) {
		t.Fatal("the token listing shows the secret")
	}
	file, _ := os.ReadFile(filepath.Join(e.srv.dir, TokensFile))
	if strings.Contains(string(file), secret) || !strings.Contains(string(file), hashToken(secret)) {
		t.Fatalf("tokens file should hold the hash only:\n%s", file)
	}

	script := e.client()
	script.bearer = secret
	script.must(200, "GET", "/api/v1/rules", nil)
	script.must(201, "POST", "/api/v1/rules", map[string]any{"name": "from-script", "external_port": freePort(t), "internal_ip": "127.0.0.1"})
	script.must(403, "POST", "/api/v1/password", map[string]string{"current": testPassword, "new": "x"})
	// Issue 14: a full token cannot mint another, which would outlive
	// its own revocation.
	script.must(403, "POST", "/api/v1/tokens", map[string]string{"name": "survivor"})
	// Nor can anyone forward a discovery port (reflection).
	if r := c.must(422, "POST", "/api/v1/rules", map[string]any{"name": "sadp", "protocol": "udp", "external_port": 37020, "internal_ip": "127.0.0.1"}); !strings.Contains(string(r.raw), "amplified") {
		t.Fatalf("SADP rule: got %s, want a refusal that says why", r.raw)
	}

	mon := e.client()
	mon.bearer = ro
	mon.must(200, "GET", "/api/v1/status", nil)
	mon.must(200, "GET", "/metrics", nil)
	mon.must(403, "DELETE", "/api/v1/rules/from-script", nil)

	c.must(204, "DELETE", "/api/v1/tokens/"+id, nil)
	script.must(401, "GET", "/api/v1/rules", nil)

	// The audit log names the token.
	audit := c.must(200, "GET", "/api/v1/audit", nil)
	if !strings.Contains(string(audit.raw), `"who": "token:backup-script"`) {
		t.Fatalf("audit log lacks the token's action:\n%s", audit.raw)
	}
}

func TestStatusConnectionsAndMetrics(t *testing.T) {
	e := newEnv(t, envOpts{})
	c := e.owner()
	conn := dialThrough(t, e.gw, "dvr-web")
	defer conn.Close()

	st := c.must(200, "GET", "/api/v1/status", nil)
	rules := st.body["rules"].([]any)
	r0 := rules[0].(map[string]any)
	stats := r0["stats"].(map[string]any)
	if r0["state"] != "listening" || stats["active"] != 1.0 || stats["bytes_in"] != 5.0 || stats["bytes_out"] != 5.0 {
		t.Fatalf("status: got %s", st.raw)
	}

	conns := c.must(200, "GET", "/api/v1/connections", nil)
	list := conns.body["connections"].([]any)
	if len(list) != 1 {
		t.Fatalf("connections: got %s", conns.raw)
	}
	cv := list[0].(map[string]any)
	if cv["rule"] != "dvr-web" || !strings.HasPrefix(cv["client"].(string), "127.0.0.1:") {
		t.Fatalf("connection: got %v", cv)
	}
	id := fmt.Sprint(int64(cv["id"].(float64)))
	c.must(204, "DELETE", "/api/v1/connections/"+id, nil)
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Fatal("the connection survived DELETE")
	}
	c.must(404, "DELETE", "/api/v1/connections/999999", nil)
	c.must(400, "DELETE", "/api/v1/connections/abc", nil)

	// /metrics: Prometheus text with per-rule series, behind login.
	e.client().must(401, "GET", "/metrics", nil)
	m := c.must(200, "GET", "/metrics", nil)
	for _, want := range []string{
		`camgate_rule_bytes_total{direction="in",rule="dvr-web"} 5`,
		`camgate_rule_connections_total{rule="dvr-web"} 1`,
		`camgate_rule_listening{rule="dvr-web"} 1`,
		`camgate_up{version="test"} 1`,
		`go_goroutines`,
	} {
		if !strings.Contains(string(m.raw), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestMetricsPublic(t *testing.T) {
	e := newEnv(t, envOpts{yaml: "admin:\n  metrics_public: true\n"})
	e.client().must(200, "GET", "/metrics", nil)
	e.client().must(401, "GET", "/api/v1/status", nil)
}

// banPolicy stands in for guard.Policy: the default hooks plus a ban list.
type fakeBanPolicy struct {
	gateway.DefaultPolicy
	mu   sync.Mutex
	bans []fakeBan
}

type fakeBan struct {
	Src  netip.Addr
	Rule string
}

func (p *fakeBanPolicy) Bans() []guard.Ban {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []guard.Ban
	for _, b := range p.bans {
		out = append(out, guard.Ban{Source: netip.PrefixFrom(b.Src, b.Src.BitLen()), Rule: b.Rule})
	}
	return out
}

func (p *fakeBanPolicy) Unban(src netip.Addr, rule string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	var keep []fakeBan
	for _, b := range p.bans {
		if (!src.IsValid() || b.Src == src) && (rule == "" || b.Rule == rule) {
			n++
			continue
		}
		keep = append(keep, b)
	}
	p.bans = keep
	return n
}

var _ interface {
	Hooks(*config.Rule) (func(netip.AddrPort, string) (func(), error), forward.Handler, error)
} = (*fakeBanPolicy)(nil)

func TestBansAndRouter(t *testing.T) {
	t.Run("absent", func(t *testing.T) {
		e := newEnv(t, envOpts{})
		c := e.owner()
		if r := c.must(200, "GET", "/api/v1/bans", nil); r.body["supported"] != false {
			t.Fatalf("got %s", r.raw)
		}
		c.must(404, "DELETE", "/api/v1/bans", nil)
		if r := c.must(200, "GET", "/api/v1/router", nil); r.body["enabled"] != false {
			t.Fatalf("got %s", r.raw)
		}
	})
	t.Run("present", func(t *testing.T) {
		p := &fakeBanPolicy{bans: []fakeBan{
			{netip.MustParseAddr("203.0.113.9"), "dvr-web"},
			{netip.MustParseAddr("203.0.113.9"), "dvr-rtsp"},
			{netip.MustParseAddr("198.51.100.4"), "dvr-web"},
		}}
		rs := &routerStandIn{st: router.Status{Mode: "natpmp", ExternalIP: netip.MustParseAddr("198.18.0.1")}}
		e := newEnv(t, envOpts{policy: p, router: rs})
		c := e.owner()
		r := c.must(200, "GET", "/api/v1/bans", nil)
		if r.body["supported"] != true || len(r.body["bans"].([]any)) != 3 {
			t.Fatalf("got %s", r.raw)
		}
		c.must(400, "DELETE", "/api/v1/bans?src=nope", nil)
		if r := c.must(200, "DELETE", "/api/v1/bans?src=203.0.113.9/32&rule=dvr-web", nil); r.body["removed"] != 1.0 {
			t.Fatalf("got %s", r.raw)
		}
		if r := c.must(200, "DELETE", "/api/v1/bans", nil); r.body["removed"] != 2.0 {
			t.Fatalf("got %s", r.raw)
		}
		r = c.must(200, "GET", "/api/v1/router", nil)
		if !strings.Contains(string(r.raw), `"external_ip": "198.18.0.1"`) {
			t.Fatalf("router: got %s", r.raw)
		}
		if st := c.must(200, "GET", "/api/v1/status", nil); st.body["router"] != true || st.body["bans"] != true {
			t.Fatalf("status: got %s", st.raw)
		}
	})
}

func TestAuditLogFile(t *testing.T) {
	e := newEnv(t, envOpts{})
	c := e.owner()
	c.do("POST", "/api/v1/login", map[string]string{"user": "owner", "password": "wrong-password"})
	c.must(200, "POST", "/api/v1/rules/dvr-web/disable", nil)
	// The failed login went to the anonymous log, not the owner's.
	b, err := os.ReadFile(filepath.Join(e.srv.dir, AuditFile))
	if err != nil {
		t.Fatal(err)
	}
	anon, err := os.ReadFile(filepath.Join(e.srv.dir, AnonAuditFile))
	if err != nil || !strings.Contains(string(anon), `"action":"login"`) {
		t.Fatalf("anonymous log: %v %q", err, anon)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	var got []string
	for _, l := range lines {
		var a AuditEntry
		if err := json.Unmarshal([]byte(l), &a); err != nil {
			t.Fatalf("audit line %q: %v", l, err)
		}
		if a.From != "127.0.0.1" || a.Time.IsZero() {
			t.Fatalf("audit entry lacks where or when: %+v", a)
		}
		got = append(got, fmt.Sprintf("%s %s %s %v", a.Who, a.Action, a.Target, a.OK))
	}
	want := []string{"owner setup owner true", "owner rule.disable dvr-web true"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q, want %q", got, want)
	}
	r := c.must(200, "GET", "/api/v1/audit?limit=1", nil)
	if es := r.body["entries"].([]any); len(es) != 1 || es[0].(map[string]any)["action"] != "rule.disable" {
		t.Fatalf("audit API: got %s, want the newest entry first", r.raw)
	}
}

// TestAuditLogSurvivesAnonymousFlood: issue 14 item 7. Failed logins
// with huge user names are clipped, and however many there are, they
// never rotate away the owner's history.
func TestAuditLogSurvivesAnonymousFlood(t *testing.T) {
	dir := t.TempDir()
	a := newAuditLog(dir)
	a.maxSize = 64 << 10
	if err := a.append(AuditEntry{Who: "owner", Action: "setup", OK: true}); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("u", 64<<10)
	e := AuditEntry{Who: "-", Action: "login", Target: clipAudit(big, maxAuditTarget), Detail: "wrong user name or password"}
	for i := 0; i < 2000 && e.Target != big; i++ {
		if err := a.append(e); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			if fi, _ := os.Stat(a.anon); fi.Size() > 300 {
				t.Fatalf("one failed login took %d bytes", fi.Size())
			}
		}
	}
	if _, err := os.Stat(a.anon + ".1"); err != nil {
		t.Fatalf("the anonymous log did not rotate: %v", err)
	}
	got, err := tailFiles(10, a.path, auditKeep)
	if err != nil || len(got) != 1 || got[0].Action != "setup" {
		t.Fatalf("owner history after the flood: %+v %v", got, err)
	}
}

func TestOpenAPIDocument(t *testing.T) {
	var doc struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("got openapi %q, want 3.x", doc.OpenAPI)
	}
	// Every API route is documented, and every documented route exists.
	e := newEnv(t, envOpts{})
	for path, ops := range doc.Paths {
		for method := range ops {
			if method == "parameters" || method == "servers" {
				continue
			}
			p := strings.NewReplacer("{name}", "dvr-web", "{id}", "1").Replace(path)
			if path == "/metrics" || path == "/healthz" {
				continue
			}
			r := e.client().do(strings.ToUpper(method), "/api/v1"+p, nil)
			if r.status == 404 && strings.Contains(string(r.raw), "no endpoint") {
				t.Errorf("%s %s is documented but not routed", method, path)
			}
		}
	}
	// And the other way: every routed API pattern is documented.
	routed := 0
	for _, pat := range e.srv.patterns {
		method, path, ok := strings.Cut(pat, " ")
		if !ok {
			continue // the catch-all
		}
		switch {
		case path == "/metrics":
		case strings.HasPrefix(path, "/api/v1/"):
			path = strings.TrimPrefix(path, "/api/v1")
		default:
			continue
		}
		routed++
		if _, ok := doc.Paths[path][strings.ToLower(method)]; !ok {
			t.Errorf("%s is routed but not documented in openapi.json", pat)
		}
	}
	if routed < 20 {
		t.Fatalf("found %d routed API patterns, want every route (is Server.patterns filled?)", routed)
	}
}
