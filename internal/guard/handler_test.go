package guard

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/config"
)

func httpRule(g config.Guard) config.Rule {
	g.Service = "http"
	return config.Rule{Name: "web", Guard: g}
}

func TestHTTPPassThroughPipelined(t *testing.T) {
	d := startDevice(t)
	p := newPolicy(t, nil, "")
	addr := startRule(t, p, httpRule(config.Guard{Auth: true}), d.addr)

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	// Five requests in one write: the guard must match the answers in
	// order, HEAD without a body, a chunked answer, a chunked request and
	// a large fixed-length answer.
	reqs := "GET /a HTTP/1.1\r\nHost: cam\r\n\r\n" +
		"HEAD /b HTTP/1.1\r\nHost: cam\r\n\r\n" +
		"GET /chunked?n=5 HTTP/1.1\r\nHost: cam\r\n\r\n" +
		"POST /echo HTTP/1.1\r\nHost: cam\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n" +
		"GET /big?n=1000000 HTTP/1.1\r\nHost: cam\r\n\r\n" +
		"GET /ISAPI/System/deviceInfo HTTP/1.1\r\nHost: cam\r\nAuthorization: " + goodAuth + "\r\n\r\n"
	if _, err := io.WriteString(c, reqs); err != nil {
		t.Fatal(err)
	}
	rs := readResponses(t, bufio.NewReader(c), "GET", "HEAD", "GET", "POST", "GET", "GET")
	want := []struct {
		status int
		body   string
		n      int
	}{
		{200, "page /a", -1},
		{200, "", -1},
		{200, "chunk 0;chunk 1;chunk 2;chunk 3;chunk 4;", -1},
		{200, "hello world", -1},
		{200, "", 1000000},
		{200, "<ok>/ISAPI/System/deviceInfo</ok>", -1},
	}
	for i, w := range want {
		b := body(rs[i])
		if rs[i].StatusCode != w.status || (w.n < 0 && b != w.body) || (w.n >= 0 && len(b) != w.n) {
			t.Errorf("response %d: got %d %q (len %d), want %d %q", i+1, rs[i].StatusCode, clip([]byte(b)), len(b), w.status, w.body)
		}
	}
	if got := rs[2].TransferEncoding; len(got) != 1 || got[0] != "chunked" {
		t.Errorf("chunked answer: got transfer-encoding %v, want it passed through", got)
	}
	if cs, _ := p.Counters("web"); cs.AuthSuccesses != 1 {
		t.Errorf("got %d successful logins counted, want 1", cs.AuthSuccesses)
	}
}

// TestHTTPLargeBodies: bodies large enough to be spliced, in each
// framing, arrive whole and counted.
func TestHTTPLargeBodies(t *testing.T) {
	d := startDevice(t)
	p := newPolicy(t, nil, "")
	addr := startRule(t, p, httpRule(config.Guard{Auth: true}), d.addr)
	for _, tt := range []struct {
		path string
		want int
	}{
		{"/big?n=3000000", 3000000},
		{"/bigchunk?n=200000", 600000},
		{"/close?n=2500000", 2500000},
		// The pipelined request behind it reaches the device only after
		// the answer: the device's abrupt close cannot cut it short.
		{"/close-abrupt?n=2500000", 2500000},
	} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: cam\r\n\r\nGET /after HTTP/1.1\r\nHost: cam\r\nConnection: close\r\n\r\n", tt.path)
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s: %v", tt.path, err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		if err != nil || n != int64(tt.want) {
			t.Fatalf("%s: got %d bytes, %v; want %d", tt.path, n, err, tt.want)
		}
		if !strings.HasPrefix(tt.path, "/close") {
			rs := readResponses(t, br, "GET")
			if body(rs[0]) != "page /after" {
				t.Fatalf("%s: the next answer is %q", tt.path, body(rs[0]))
			}
		}
		c.Close()
	}
}

func TestHTTPWebSocketUpgrade(t *testing.T) {
	d := startDevice(t)
	p := newPolicy(t, nil, "")
	addr := startRule(t, p, httpRule(config.Guard{Auth: true}), d.addr)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: cam\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("got %v %v, want 101", resp, err)
	}
	// Raw bytes now, including ones that look like HTTP.
	msg := "\x81\x05hello GET / HTTP/1.1\r\n\r\n"
	io.WriteString(c, msg)
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(br, got); err != nil || string(got) != msg {
		t.Fatalf("echo after upgrade: got %q %v, want %q", got, err, msg)
	}
}

func TestHTTPUpgradeRefused(t *testing.T) {
	d := startDevice(t)
	p := newPolicy(t, nil, "")
	addr := startRule(t, p, httpRule(config.Guard{}), d.addr)
	// The device answers 400 to an upgrade it does not do; the connection
	// stays HTTP.
	out := rawExchange(t, addr, "GET /ws HTTP/1.1\r\nHost: cam\r\nUpgrade: h2c\r\n\r\nGET /after HTTP/1.1\r\nHost: cam\r\nConnection: close\r\n\r\n")
	if !strings.Contains(out, "400 Bad Request") || !strings.Contains(out, "page /after") {
		t.Fatalf("got %q, want a 400 then the next answer", out)
	}
}

func TestHTTPFilter(t *testing.T) {
	d := startDevice(t)
	p := newPolicy(t, nil, "")
	addr := startRule(t, p, config.Rule{Name: "web", ExternalPort: config.PortRange{First: 80, Last: 80}, Guard: config.Guard{Service: "http"}}, d.addr)
	const inject = `<?xml version="1.0" encoding="UTF-8"?><language>$(id>webLib/x)</language>`
	tests := []struct {
		name, req string
		want      string
	}{
		{"CVE-2021-36260", "PUT /SDK/webLanguage HTTP/1.1\r\nHost: cam\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: " + fmt.Sprint(len(inject)) + "\r\n\r\n" + inject, "403 Forbidden"},
		{"CVE-2021-36260 encoded", "PUT /%53DK/webLanguage HTTP/1.1\r\nHost: cam\r\nContent-Length: 0\r\n\r\n", "403 Forbidden"},
		{"CVE-2021-36260 dot segment", "PUT /./SDK//webLanguage HTTP/1.1\r\nHost: cam\r\nContent-Length: 0\r\n\r\n", "403 Forbidden"},
		{"CVE-2017-7921", "GET /system/deviceInfo?auth=YWRtaW46MTEK HTTP/1.1\r\nHost: cam\r\n\r\n", "403 Forbidden"},
		{"traversal", "GET /doc/..%2f..%2fetc/passwd HTTP/1.1\r\nHost: cam\r\n\r\n", "403 Forbidden"},
		{"smuggling", "POST / HTTP/1.1\r\nHost: cam\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "400 Bad Request"},
		{"long line", "GET /" + strings.Repeat("a", 9000) + " HTTP/1.1\r\nHost: cam\r\n\r\n", "414 Request URI Too Long"},
		{"huge head", "GET / HTTP/1.1\r\nHost: cam\r\n" + strings.Repeat("X-A: "+strings.Repeat("b", 1000)+"\r\n", 40) + "\r\n", "431 Request Header Fields Too Large"},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: cam\r\nX-A: 1\r\n 2\r\n\r\n", "400 Bad Request"},
		{"no host", "GET / HTTP/1.1\r\n\r\n", "400 Bad Request"},
		{"binary", "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03 HTTP/1.1\r\n\r\n", "400 Bad Request"},
		{"http2", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "505 HTTP Version Not Supported"},
		{"connect", "CONNECT 10.0.0.1:22 HTTP/1.1\r\nHost: 10.0.0.1:22\r\n\r\n", "405 Method Not Allowed"},
		{"isapi get", "GET /ISAPI/System/deviceInfo HTTP/1.1\r\nHost: cam\r\nAuthorization: " + goodAuth + "\r\nConnection: close\r\n\r\n", "<ok>/ISAPI/System/deviceInfo</ok>"},
		{"isapi put", "PUT /ISAPI/System/deviceInfo HTTP/1.1\r\nHost: cam\r\nAuthorization: " + goodAuth + "\r\nContent-Length: 5\r\nConnection: close\r\n\r\n<x/>\n", "200 OK"},
		{"sdk get", "GET /SDK/language HTTP/1.1\r\nHost: cam\r\nConnection: close\r\n\r\n", "page /SDK/language"},
		{"web ui", "GET /doc/page/login.asp?_1234 HTTP/1.1\r\nHost: cam\r\nConnection: close\r\n\r\n", "page /doc/page/login.asp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if out := rawExchange(t, addr, tt.req); !strings.Contains(out, tt.want) {
				t.Fatalf("got %q, want %q", clip([]byte(out)), tt.want)
			}
		})
	}
	for _, s := range d.seen() {
		if strings.Contains(strings.ToLower(s), "sdk/weblanguage") || strings.Contains(s, "auth=") || strings.Contains(s, "passwd") {
			t.Errorf("the device saw %q", s)
		}
	}
	cs, _ := p.Counters("web")
	if cs.Blocked < 6 || cs.Malformed < 6 {
		t.Errorf("got counters %+v, want blocked and malformed counted", cs)
	}

	// A blocked request after a good one: the good answer first, then 403.
	out := rawExchange(t, addr, "GET /first HTTP/1.1\r\nHost: cam\r\n\r\nPUT /SDK/webLanguage HTTP/1.1\r\nHost: cam\r\nContent-Length: 0\r\n\r\nGET /never HTTP/1.1\r\nHost: cam\r\n\r\n")
	i, j := strings.Index(out, "page /first"), strings.Index(out, "403 Forbidden")
	if i < 0 || j < i || strings.Contains(out, "page /never") {
		t.Fatalf("pipelined: got %q, want the first answer, then 403, then nothing", out)
	}
}

func TestAuthBan(t *testing.T) {
	d := startDevice(t)
	clock := newClock()
	p := newPolicy(t, clock, t.TempDir())
	// The device budget (TestLockdown, TestOwnerNeverLockedOut) is off:
	// this is about the per-source count.
	addr := startRule(t, p, httpRule(config.Guard{Auth: true, MaxFailures: 3, DeviceMaxFailures: -1}), d.addr)
	get := func(from, auth string) string {
		c, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}).Dial("tcp", addr)
		if err != nil {
			return "dial: " + err.Error()
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "GET /ISAPI/System/deviceInfo HTTP/1.1\r\nHost: cam\r\nAuthorization: %s\r\nConnection: close\r\n\r\n", auth)
		b, err := io.ReadAll(c)
		if len(b) == 0 && err != nil {
			return "read: " + err.Error()
		}
		return string(b)
	}
	// Failures, a success resetting them, failures again.
	for i, want := range []string{"401", "401", "200", "401", "401"} {
		auth := "Basic bad"
		if want == "200" {
			auth = goodAuth
		}
		if got := get("127.0.0.1", auth); !strings.Contains(got, want) {
			t.Fatalf("attempt %d: got %q, want %s", i+1, clip([]byte(got)), want)
		}
	}
	if len(p.Bans()) != 0 {
		t.Fatalf("got bans %v after 2 failures, want none", p.Bans())
	}
	if got := get("127.0.0.1", "Basic bad"); !strings.Contains(got, "401") {
		t.Fatalf("third failure: got %q", got)
	}
	bans := p.Bans()
	if len(bans) != 1 || bans[0].Source.String() != "127.0.0.1/32" || bans[0].Rule != "web" {
		t.Fatalf("got bans %+v, want 127.0.0.1 banned on web", bans)
	}
	// Banned at admission, even with the right password.
	if got := get("127.0.0.1", goodAuth); strings.Contains(got, "200") {
		t.Fatalf("banned source: got %q, want refused", got)
	}
	// Another source is fine.
	if got := get("127.0.0.2", goodAuth); !strings.Contains(got, "200 OK") {
		t.Fatalf("other source: got %q, want 200", got)
	}
	if got := d.failures.Load(); got != 5 {
		t.Fatalf("device saw %d failed logins, want 5", got)
	}
	cs, _ := p.Counters("web")
	if cs.Bans != 1 || cs.Banned == 0 || cs.AuthFailures != 5 {
		t.Fatalf("got counters %+v", cs)
	}
	// The ban expires.
	clock.Add(31 * time.Minute)
	if got := get("127.0.0.1", goodAuth); !strings.Contains(got, "200 OK") {
		t.Fatalf("after the ban: got %q, want 200", got)
	}
}

// TestAuthPipelinedBruteForce: pipelining many guesses on one connection
// must not let more than max_failures reach the device.
func TestAuthPipelinedBruteForce(t *testing.T) {
	d := startDevice(t)
	p := newPolicy(t, nil, "")
	addr := startRule(t, p, httpRule(config.Guard{Auth: true, MaxFailures: 4, DeviceMaxFailures: -1}), d.addr)
	var reqs strings.Builder
	for i := 0; i < 20; i++ {
		fmt.Fprintf(&reqs, "GET /ISAPI/Security/userCheck HTTP/1.1\r\nHost: cam\r\nAuthorization: Basic guess%d\r\n\r\n", i)
	}
	// Several connections at once, too.
	done := make(chan string, 3)
	for i := 0; i < 3; i++ {
		go func() { done <- rawExchange(t, addr, reqs.String()) }()
	}
	for i := 0; i < 3; i++ {
		<-done
	}
	if got := d.failures.Load(); got != 4 {
		t.Fatalf("device saw %d failed logins, want exactly max_failures (4)", got)
	}
	if len(p.Bans()) != 1 {
		t.Fatalf("got bans %v, want one", p.Bans())
	}
}

func TestAuthStaleNonceNotCounted(t *testing.T) {
	d := startDevice(t)
	p := newPolicy(t, nil, "")
	addr := startRule(t, p, httpRule(config.Guard{Auth: true, MaxFailures: 2}), d.addr)
	for i := 0; i < 5; i++ {
		out := rawExchange(t, addr, "GET /stale HTTP/1.1\r\nHost: cam\r\nAuthorization: Digest x\r\nConnection: close\r\n\r\n")
		if !strings.Contains(out, "401") {
			t.Fatalf("got %q", out)
		}
	}
	if cs, _ := p.Counters("web"); cs.AuthFailures != 0 || len(p.Bans()) != 0 {
		t.Fatalf("stale nonces: got %+v and bans %v, want nothing counted", cs, p.Bans())
	}
}
