package admin

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/guard"
)

// loginDevice is a plain-HTTP "device" on loopback that answers 401 to
// wrong credentials and logs every request it gets, so a test can tell
// what the guard let through.
type loginDevice struct {
	*httptest.Server
	mu   sync.Mutex
	seen []string // "METHOD /path"
}

func newLoginDevice(t *testing.T) *loginDevice {
	t.Helper()
	d := &loginDevice{}
	d.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		d.seen = append(d.seen, r.Method+" "+r.URL.Path)
		d.mu.Unlock()
		if a := r.Header.Get("Authorization"); a != "" && a != "Basic b3duZXI6cmlnaHQ=" {
			w.Header().Set("WWW-Authenticate", `Basic realm="test-dvr"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		io.WriteString(w, "<html><title>test DVR</title></html>")
	}))
	t.Cleanup(d.Close)
	return d
}

func (d *loginDevice) requests() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.seen)
}

func newGuardPolicy(t *testing.T) *guard.Policy {
	t.Helper()
	p, err := guard.NewPolicy(guard.Config{StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// ruleOf finds a rule in a status answer.
func ruleOf(t *testing.T, st response, name string) map[string]any {
	t.Helper()
	for _, r := range st.body["rules"].([]any) {
		if m := r.(map[string]any); m["name"] == name {
			return m
		}
	}
	t.Fatalf("no rule %q in the status %s", name, st.raw)
	return nil
}

// dig follows keys through decoded JSON objects.
func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// TestGuardInStatusAndMetrics sends a CVE-2021-36260 request, a failed
// login and a normal page through a rule with the guard (a real gateway
// with guard.NewPolicy, a web device on loopback) and reads the guard's
// counters back from the status and /metrics.
func TestGuardInStatusAndMetrics(t *testing.T) {
	e := newEnv(t, envOpts{policy: newGuardPolicy(t)})
	c := e.owner()
	dev := newLoginDevice(t)
	_, devPort, _ := net.SplitHostPort(strings.TrimPrefix(dev.URL, "http://"))

	r := c.must(201, "POST", "/api/v1/rules", map[string]any{
		"name": "cam-web", "external_port": freePort(t), "internal_ip": "127.0.0.1", "internal_port": devPort,
		"allow": []string{"127.0.0.0/8"}, "guard": map[string]any{"auth": true, "service": "http"},
	})
	for path, want := range map[string]any{
		"effective.allow": true, "effective.deny": false, "effective.guard.service": "http",
		"effective.guard.auth": true, "effective.guard.hikvision": true, "effective.guard.limits": true,
		"effective.guard.max_failures": 4.0, "effective.guard.ban": "30m0s", "effective.guard.per_ip_connections": 64.0,
		"effective.tls.mode": "off", "guard.auth": true, "guard.service": "http",
	} {
		if got := dig(r.body, strings.Split(path, ".")...); got != want {
			t.Errorf("created rule's %s: got %v, want %v (%s)", path, got, want, r.raw)
		}
	}
	url := "http://" + e.gw.Addrs("cam-web")[0].String()
	hc := &http.Client{Timeout: 5 * time.Second}
	send := func(method, path, auth string) int {
		t.Helper()
		req, _ := http.NewRequest(method, url+path, strings.NewReader(""))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %s through camgate: %v", method, path, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := send("PUT", "/SDK/webLanguage", ""); got != 403 {
		t.Fatalf("CVE-2021-36260 request through the guard: got %d, want 403", got)
	}
	if got := send("GET", "/ISAPI/System/deviceInfo", "Basic b3duZXI6d3Jvbmc="); got != 401 {
		t.Fatalf("wrong password: got %d, want the device's 401", got)
	}
	if got := send("GET", "/", ""); got != 200 {
		t.Fatalf("normal page through the guard: got %d, want 200", got)
	}
	if got, want := dev.requests(), []string{"GET /ISAPI/System/deviceInfo", "GET /"}; !slices.Equal(got, want) {
		t.Fatalf("the device saw %q, want %q (the exploit must not reach it)", got, want)
	}

	st := c.must(200, "GET", "/api/v1/status", nil)
	if st.body["guard"] != true {
		t.Fatalf("status: got guard %v, want true", st.body["guard"])
	}
	cam := ruleOf(t, st, "cam-web")
	for k, want := range map[string]float64{"blocked": 1, "auth_failures": 1, "denied": 0, "banned": 0, "bans": 0, "tls_errors": 0} {
		if got := dig(cam, "guard", k); got != want {
			t.Errorf("status of cam-web: guard.%s is %v, want %v (%v)", k, got, want, cam["guard"])
		}
	}
	if dig(cam, "effective", "guard", "auth") != true || dig(cam, "stats", "total") == 0.0 {
		t.Errorf("status of cam-web: got %v", cam)
	}
	// A rule without traffic has its counters too, all zero.
	if g, ok := ruleOf(t, st, "dvr-web")["guard"].(map[string]any); !ok || g["blocked"] != 0.0 {
		t.Errorf("status of dvr-web: got guard %v, want zero counters", g)
	}

	m := string(c.must(200, "GET", "/metrics", nil).raw)
	for _, want := range []string{
		`camgate_guard_events_total{event="blocked",rule="cam-web"} 1`,
		`camgate_guard_events_total{event="auth_failures",rule="cam-web"} 1`,
		`camgate_guard_events_total{event="denied",rule="dvr-web"} 0`,
		`camgate_guard_protection{protection="auth",rule="cam-web"} 1`,
		`camgate_guard_protection{protection="hikvision",rule="cam-web"} 1`,
		`camgate_guard_protection{protection="allowlist",rule="cam-web"} 1`,
		`camgate_guard_protection{protection="tls",rule="cam-web"} 0`,
		`camgate_guard_protection{protection="auth",rule="dvr-web"} 0`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	// Without the guard, the status and metrics have no guard counters,
	// and only the access lists count as protection.
	t.Run("without the guard", func(t *testing.T) {
		e := newEnv(t, envOpts{})
		c := e.owner()
		st := c.must(200, "GET", "/api/v1/status", nil)
		r := ruleOf(t, st, "dvr-web")
		if st.body["guard"] != false || r["guard"] != nil || dig(r, "effective", "guard") != nil || dig(r, "effective", "allow") != false {
			t.Fatalf("status without the guard: got %s", st.raw)
		}
		m := string(c.must(200, "GET", "/metrics", nil).raw)
		if strings.Contains(m, "camgate_guard_events_total{") || !strings.Contains(m, `camgate_guard_protection{protection="hikvision",rule="dvr-web"} 0`) {
			t.Fatalf("metrics without the guard:\n%s", m)
		}
	})
}

// TestRuleGuardFields creates and edits rules with guard and tls through
// the API: short forms and objects are accepted, the answers show the
// effective settings, the file keeps what was sent, a rule view sent back
// unchanged changes nothing, and problems name the guard or tls field.
func TestRuleGuardFields(t *testing.T) {
	e := newEnv(t, envOpts{policy: newGuardPolicy(t)})
	c := e.owner()
	_, bport, _ := net.SplitHostPort(e.backend)

	// The short form, on an RTSP port: the brute-force guard reads RTSP,
	// and the exploit filter (HTTP only) is off.
	r := c.must(201, "POST", "/api/v1/rules", map[string]any{
		"name": "cam-rtsp", "external_port": freePort(t), "internal_ip": "127.0.0.1", "internal_port": 554, "guard": "auth",
	})
	if dig(r.body, "guard", "auth") != true || dig(r.body, "effective", "guard", "service") != "rtsp" ||
		dig(r.body, "effective", "guard", "hikvision") != false || dig(r.body, "effective", "guard", "auth") != true {
		t.Fatalf("create with guard: auth: got %s", r.raw)
	}
	if f := e.loadFile().Rule("cam-rtsp"); !f.Guard.Auth || !f.AuthGuard() {
		t.Fatalf("file has guard %+v", f.Guard)
	}

	// Edit dvr-web: TLS termination, the exploit filter off, no
	// per-source connection cap.
	g := c.must(200, "GET", "/api/v1/rules/dvr-web", nil)
	if dig(g.body, "effective", "tls", "mode") != "off" || dig(g.body, "effective", "guard", "service") != "" {
		t.Fatalf("dvr-web before: got %s", g.raw)
	}
	port := e.site.Config().Rule("dvr-web").ExternalPort.First
	r = c.must(200, "PUT", "/api/v1/rules/dvr-web", map[string]any{
		"name": "dvr-web", "external_port": port, "internal_ip": "127.0.0.1", "internal_port": bport,
		"tls": "terminate", "guard": map[string]any{"hikvision": false, "per_ip_connections": -1, "max_failures": 3},
	}, "If-Match", g.header.Get("ETag"))
	for path, want := range map[string]any{
		"tls.mode": "terminate", "guard.hikvision": false, "guard.per_ip_connections": -1.0,
		"effective.tls.mode": "terminate", "effective.tls.certificate": "self-signed",
		"effective.guard.service": "http", "effective.guard.hikvision": false, "effective.guard.auth": false,
		"effective.guard.per_ip_connections": -1.0, "effective.guard.per_ip_rate": 10.0,
		"effective.guard.limits": true, "effective.guard.max_failures": 3.0,
	} {
		if got := dig(r.body, strings.Split(path, ".")...); got != want {
			t.Errorf("updated rule's %s: got %v, want %v", path, got, want)
		}
	}
	if f := e.loadFile().Rule("dvr-web"); !f.TLS.Terminate() || f.HikvisionFilter() || f.Guard.PerIPConnections != -1 {
		t.Fatalf("file has guard %+v tls %+v", f.Guard, f.TLS)
	}
	// camgate now speaks TLS on the rule's port, with a self-signed
	// certificate.
	tc, err := tls.DialWithDialer(&net.Dialer{Timeout: 3 * time.Second}, "tcp", e.gw.Addrs("dvr-web")[0].String(),
		&tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("TLS handshake with the rule: %v", err)
	}
	if cs := tc.ConnectionState(); cs.Version < tls.VersionTLS12 || len(cs.PeerCertificates) == 0 {
		t.Fatalf("got TLS state %+v", cs)
	}
	tc.Close()

	// The view sent back as it came (effective and etag included) is
	// accepted and keeps the guard as it was.
	cur := c.must(200, "GET", "/api/v1/rules/dvr-web", nil)
	back := c.must(200, "PUT", "/api/v1/rules/dvr-web", string(cur.raw), "If-Match", cur.header.Get("ETag"))
	for _, k := range []string{"guard", "tls", "effective"} {
		a, _ := json.Marshal(cur.body[k])
		b, _ := json.Marshal(back.body[k])
		if string(a) != string(b) {
			t.Errorf("sending the view back changed %s: got %s, want %s", k, b, a)
		}
	}

	// Problems name the guard or tls field.
	base := func(extra string) string {
		return fmt.Sprintf(`{"name":"x","external_port":%d,"internal_ip":"127.0.0.1","internal_port":8000%s}`, freePort(t), extra)
	}
	tests := []struct {
		name   string
		body   string
		fields map[string]string // field -> message substring
	}{
		{"filter on a non-HTTP port", base(`,"guard":{"hikvision":true}`), map[string]string{"guard.hikvision": "reads HTTP"}},
		{"auth without a protocol", base(`,"guard":{"auth":true}`), map[string]string{"guard.service": "needs to know the protocol"}},
		{"unknown service", base(`,"guard":{"service":"ftp"}`), map[string]string{"guard.service": `"ftp" is not http or rtsp`}},
		{"every bad guard key at once", base(`,"guard":{"max_failures":"many","colour":1,"ban":"forever","hikvision":"yes"}`),
			map[string]string{"guard.max_failures": "must be a number", "guard.colour": "unknown field", "guard.ban": "not a duration", "guard.hikvision": "true or false"}},
		{"negative limit", base(`,"guard":{"per_ip_connections":-5,"max_failures":-1}`),
			map[string]string{"guard.per_ip_connections": "must be -1", "guard.max_failures": "must not be negative"}},
		{"bad short form", base(`,"guard":"nope"`), map[string]string{"guard": `"nope" is not a guard`}},
		{"wrong type", base(`,"guard":7,"tls":true`), map[string]string{"guard": "must be an object", "tls": "must be an object"}},
		{"bad tls mode", base(`,"tls":{"mode":"https"}`), map[string]string{"tls.mode": `"https" is not terminate or off`}},
		{"cert without key", base(`,"tls":{"mode":"terminate","cert_file":"a.pem"}`), map[string]string{"tls.cert_file": "go together"}},
		{"tls on udp", base(`,"protocol":"udp","tls":"terminate"`), map[string]string{"tls.mode": "needs tcp"}},
		{"unknown tls key", base(`,"tls":{"mode":"terminate","port":1}`), map[string]string{"tls.port": "unknown field"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := c.do("POST", "/api/v1/rules", tt.body)
			if r.status != 422 {
				t.Fatalf("got %d %s, want 422", r.status, r.raw)
			}
			got := r.problems()
			for f, want := range tt.fields {
				if !strings.Contains(got[f], want) {
					t.Errorf("field %q: got %q, want it to contain %q (all: %v)", f, got[f], want, got)
				}
			}
		})
	}
	if e.site.Config().Rule("x") != nil {
		t.Fatal("an invalid rule was added")
	}

	// An invalid edit changes nothing either.
	before := e.loadFile().Rule("cam-rtsp").Guard
	r = c.do("PUT", "/api/v1/rules/cam-rtsp", map[string]any{
		"external_port": e.site.Config().Rule("cam-rtsp").ExternalPort.First, "internal_ip": "127.0.0.1", "internal_port": 554,
		"guard": map[string]any{"auth": true, "hikvision": true},
	})
	if r.status != 422 || !strings.Contains(r.problems()["guard.hikvision"], "reads HTTP") {
		t.Fatalf("update with the filter on an RTSP rule: got %d %s, want 422 naming guard.hikvision", r.status, r.raw)
	}
	if after := e.loadFile().Rule("cam-rtsp").Guard; after.Hikvision != nil || after.Auth != before.Auth {
		t.Fatalf("a refused update reached the file: %+v", after)
	}
}

// TestGuardEventsCoverCounters keeps the metric's event labels in step
// with guard.Counters' JSON names.
func TestGuardEventsCoverCounters(t *testing.T) {
	b, _ := json.Marshal(guard.Counters{})
	var m map[string]any
	json.Unmarshal(b, &m)
	var want, got []string
	for k := range m {
		want = append(want, k)
	}
	for _, ev := range guardEvents(guard.Counters{}) {
		got = append(got, ev.name)
	}
	sort.Strings(want)
	sort.Strings(got)
	if !slices.Equal(got, want) {
		t.Fatalf("got events %q, want guard.Counters' fields %q", got, want)
	}
}
