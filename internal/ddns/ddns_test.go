package ddns

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/config"
)

const (
	testPassword = "s3cret-Pass-77"
	testToken    = "a7c4d2e0-1b3f-4c55-9e1a-0d9f3b2c8e71"
)

// provider is a small dyndns2 / DuckDNS / URL-template server on
// loopback: it records each request and answers what the test says.
type provider struct {
	t  *testing.T
	ts *httptest.Server

	mu     sync.Mutex // guards following
	reqs   []*http.Request
	answer string
	code   int
}

func newProvider(t *testing.T, answer string) *provider {
	p := &provider{t: t, answer: answer, code: http.StatusOK}
	p.ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.reqs = append(p.reqs, r)
		code, answer := p.code, p.answer
		p.mu.Unlock()
		// A dyndns2 server checks basic auth and the agent.
		if r.URL.Path == "/nic/update" {
			user, pass, ok := r.BasicAuth()
			if !ok || user != "owner@example.net" || pass != testPassword {
				answer = "badauth"
			}
			if r.UserAgent() == "" {
				answer = "badagent"
			}
			answer = strings.ReplaceAll(answer, "$ip", r.URL.Query().Get("myip"))
		}
		w.WriteHeader(code)
		w.Write([]byte(answer))
	}))
	t.Cleanup(p.ts.Close)
	return p
}

func (p *provider) set(code int, answer string) {
	p.mu.Lock()
	p.code, p.answer = code, answer
	p.mu.Unlock()
}

func (p *provider) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.reqs)
}

func (p *provider) last() *http.Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.reqs[len(p.reqs)-1]
}

// fixture is an Updater against a provider, with a settable public
// address, a settable clock and its log in a buffer.
type fixture struct {
	u    *Updater
	ip   netip.Addr
	now  time.Time
	mu   sync.Mutex
	logs *bytes.Buffer
	dir  string
}

func newFixture(t *testing.T, state bool) *fixture {
	f := &fixture{ip: netip.MustParseAddr("203.0.113.7"), now: time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC), logs: &bytes.Buffer{}, dir: t.TempDir()}
	os.WriteFile(filepath.Join(f.dir, "ddns-password"), []byte(testPassword+"\n"), 0o600)
	os.WriteFile(filepath.Join(f.dir, "duckdns-token"), []byte(testToken+"\n"), 0o600)
	c := Config{
		Source: AddrFunc(func(context.Context) (netip.Addr, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			return f.ip, nil
		}),
		BaseDir:   f.dir,
		Logger:    slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:       func() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.now },
		RetryBase: time.Minute,
		UserAgent: "camgate-test/1.0",
	}
	if state {
		c.StateDir = f.dir
	}
	f.u = New(c)
	return f
}

func (f *fixture) setIP(s string) { f.mu.Lock(); f.ip = netip.MustParseAddr(s); f.mu.Unlock() }
func (f *fixture) advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

func dyndns2Settings(p *provider) config.DDNS {
	return config.DDNS{Provider: config.DDNSDyndns2, Hostname: "mycams.ddns.net", Server: p.ts.URL + "/nic/update",
		Username: "owner@example.net", PasswordFile: "ddns-password"}
}

func duckSettings(p *provider) config.DDNS {
	return config.DDNS{Provider: config.DDNSDuckDNS, Hostname: "mycams.duckdns.org", Server: p.ts.URL + "/update", TokenFile: "duckdns-token"}
}

// TestDyndns2OnlyOnChange: one update per address change, none while the
// address stays the same.
func TestDyndns2OnlyOnChange(t *testing.T) {
	p := newProvider(t, "good $ip")
	f := newFixture(t, false)
	f.u.SetSettings(dyndns2Settings(p))
	ctx := context.Background()
	for range 3 {
		f.u.Check(ctx)
	}
	if p.count() != 1 {
		t.Fatalf("got %d updates for one address, want 1", p.count())
	}
	q := p.last().URL.Query()
	if q.Get("hostname") != "mycams.ddns.net" || q.Get("myip") != "203.0.113.7" {
		t.Errorf("got hostname=%q myip=%q, want mycams.ddns.net and 203.0.113.7", q.Get("hostname"), q.Get("myip"))
	}
	f.setIP("198.51.100.20")
	for range 3 {
		f.u.Check(ctx)
	}
	if p.count() != 2 {
		t.Fatalf("got %d updates after one change, want 2 in all", p.count())
	}
	if got := p.last().URL.Query().Get("myip"); got != "198.51.100.20" {
		t.Errorf("second update: got myip=%q, want 198.51.100.20", got)
	}
	st := f.u.Status()
	if st.State != StateUpToDate || st.Address != netip.MustParseAddr("198.51.100.20") || st.Result != "good" || st.Updates != 2 {
		t.Errorf("got status %+v, want up to date at 198.51.100.20 after 2 updates", st)
	}
}

// TestDyndns2Answers: each answer is handled as the protocol says.
func TestDyndns2Answers(t *testing.T) {
	tests := []struct {
		name      string
		code      int
		answer    string
		state     State
		fix       string        // in Status.Fix
		minWait   time.Duration // before the next try
		retryNext bool          // a second check after minWait sends again
	}{
		{"good", 200, "good 203.0.113.7", StateUpToDate, "", 0, false},
		{"nochg", 200, "nochg 203.0.113.7", StateUpToDate, "", 0, false},
		{"badauth", 200, "badauth", StateStopped, "password", 0, false},
		{"badauth as 401", 401, "badauth", StateStopped, "password", 0, false},
		{"nohost", 200, "nohost", StateStopped, "create the host name", 0, false},
		{"notfqdn", 200, "notfqdn", StateStopped, "full name", 0, false},
		{"abuse", 200, "abuse", StateStopped, "unblock", 0, false},
		{"911", 200, "911", StateBackoff, "30 minutes", 30 * time.Minute, true},
		{"dnserr", 200, "dnserr", StateBackoff, "30 minutes", 30 * time.Minute, true},
		{"HTTP 503", 503, "busy", StateBackoff, "retries", time.Minute, true},
		{"two hosts, one bad", 200, "good 203.0.113.7\nnohost", StateStopped, "create the host name", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newProvider(t, tt.answer)
			p.set(tt.code, tt.answer)
			f := newFixture(t, false)
			f.u.SetSettings(dyndns2Settings(p))
			wait := f.u.Check(context.Background())
			st := f.u.Status()
			if st.State != tt.state {
				t.Fatalf("got state %q (%s), want %q", st.State, st.Error, tt.state)
			}
			if !strings.Contains(st.Fix, tt.fix) {
				t.Errorf("got fix %q, want it to mention %q", st.Fix, tt.fix)
			}
			if tt.minWait > 0 && (wait < tt.minWait || st.NextTry.Sub(f.now) < tt.minWait) {
				t.Errorf("got a wait of %v (next try %v), want at least %v", wait, st.NextTry.Sub(f.now), tt.minWait)
			}
			// Checking again at once sends nothing: not while stopped,
			// not before the backoff ends, not for an unchanged address.
			f.u.Check(context.Background())
			if p.count() != 1 {
				t.Fatalf("got %d requests after a second check at once, want 1", p.count())
			}
			f.advance(tt.minWait + time.Second)
			p.set(200, "good $ip")
			f.u.Check(context.Background())
			want := 1
			if tt.retryNext {
				want = 2
			}
			if p.count() != want {
				t.Errorf("after the wait: got %d requests, want %d", p.count(), want)
			}
		})
	}
}

// TestBackoffDoubles: failures in a row wait longer each time, up to the
// cap.
func TestBackoffDoubles(t *testing.T) {
	p := newProvider(t, "")
	p.set(503, "down")
	f := newFixture(t, false)
	f.u.c.MaxRetry = 5 * time.Minute
	f.u.SetSettings(dyndns2Settings(p))
	var got []time.Duration
	for range 5 {
		w := f.u.Check(context.Background())
		got = append(got, w)
		f.advance(w)
	}
	want := []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 5 * time.Minute, 5 * time.Minute}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got waits %v, want %v", got, want)
		}
	}
}

// TestStoppedResumesOnNewSettings: after badauth, a fixed password file
// and a reload (new settings) update again.
func TestStoppedResumesOnNewSettings(t *testing.T) {
	p := newProvider(t, "good $ip")
	f := newFixture(t, false)
	s := dyndns2Settings(p)
	s.Username = "wrong@example.net"
	f.u.SetSettings(s)
	f.u.Check(context.Background())
	if st := f.u.Status(); st.State != StateStopped || st.Result != "badauth" {
		t.Fatalf("got %+v, want stopped on badauth", st)
	}
	f.u.SetSettings(dyndns2Settings(p))
	f.u.Check(context.Background())
	if st := f.u.Status(); st.State != StateUpToDate || p.count() != 2 {
		t.Fatalf("got %+v after %d requests, want up to date after 2", st, p.count())
	}
}

// TestStoppedRetriesOnReload: a fixed password file and a reload with
// the same settings retry once; a reload while up to date sends nothing.
func TestStoppedRetriesOnReload(t *testing.T) {
	p := newProvider(t, "good $ip")
	f := newFixture(t, false)
	os.WriteFile(filepath.Join(f.dir, "ddns-password"), []byte("wrong\n"), 0o600)
	f.u.SetSettings(dyndns2Settings(p))
	f.u.Check(context.Background())
	f.u.Check(context.Background())
	if st := f.u.Status(); st.State != StateStopped || p.count() != 1 {
		t.Fatalf("got %+v after %d requests, want stopped after 1", st, p.count())
	}
	os.WriteFile(filepath.Join(f.dir, "ddns-password"), []byte(testPassword+"\n"), 0o600)
	f.u.SetSettings(dyndns2Settings(p)) // the reload
	f.u.Check(context.Background())
	if st := f.u.Status(); st.State != StateUpToDate || p.count() != 2 {
		t.Fatalf("got %+v after %d requests, want up to date after 2", st, p.count())
	}
	f.u.SetSettings(dyndns2Settings(p))
	f.u.Check(context.Background())
	if p.count() != 2 {
		t.Errorf("a reload while up to date sent an update (%d requests, want 2)", p.count())
	}
}

func TestDuckDNS(t *testing.T) {
	tests := []struct {
		name, ip, answer string
		state            State
		param            string // the query parameter carrying the address
	}{
		{"ok", "203.0.113.7", "OK", StateUpToDate, "ip"},
		{"ipv6", "2001:db8::7", "OK", StateUpToDate, "ipv6"},
		{"KO", "203.0.113.7", "KO", StateStopped, "ip"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newProvider(t, tt.answer)
			f := newFixture(t, false)
			f.setIP(tt.ip)
			f.u.SetSettings(duckSettings(p))
			f.u.Check(context.Background())
			f.u.Check(context.Background())
			if p.count() != 1 {
				t.Fatalf("got %d requests, want 1", p.count())
			}
			q := p.last().URL.Query()
			if q.Get("domains") != "mycams" || q.Get("token") != testToken || q.Get(tt.param) != tt.ip {
				t.Errorf("got %v, want domains=mycams, the token and %s=%s", p.last().URL.Path, tt.param, tt.ip)
			}
			if st := f.u.Status(); st.State != tt.state {
				t.Errorf("got state %q, want %q", st.State, tt.state)
			}
		})
	}
}

func TestURLTemplate(t *testing.T) {
	tests := []struct {
		name  string
		code  int
		state State
	}{
		{"200", 200, StateUpToDate},
		{"204", 204, StateUpToDate},
		{"404", 404, StateStopped},
		{"403", 403, StateStopped},
		{"429", 429, StateBackoff},
		{"502", 502, StateBackoff},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newProvider(t, "")
			p.set(tt.code, "")
			f := newFixture(t, false)
			f.u.SetSettings(config.DDNS{Provider: config.DDNSURL, Hostname: "cams.example.net",
				URL: p.ts.URL + "/set?host={hostname}&addr={ip}&key={token}", TokenFile: "duckdns-token"})
			f.u.Check(context.Background())
			q := p.last().URL.Query()
			if q.Get("host") != "cams.example.net" || q.Get("addr") != "203.0.113.7" || q.Get("key") != testToken {
				t.Errorf("got query %v, want the template filled in", q)
			}
			if st := f.u.Status(); st.State != tt.state {
				t.Errorf("got state %q, want %q", st.State, tt.state)
			}
		})
	}
}

// TestCredentialsNeverShown: neither the password nor the token appears
// in the log or the status, whatever the outcome, including a network
// error whose URL carries the token.
func TestCredentialsNeverShown(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	tests := []struct {
		name     string
		settings func(p *provider) config.DDNS
		code     int
		answer   string
	}{
		{"dyndns2 good", dyndns2Settings, 200, "good $ip"},
		{"dyndns2 badauth", func(p *provider) config.DDNS { s := dyndns2Settings(p); s.Username = "x"; return s }, 200, "good"},
		{"dyndns2 911", dyndns2Settings, 200, "911"},
		{"duckdns OK", duckSettings, 200, "OK"},
		{"duckdns KO", duckSettings, 200, "KO"},
		{"duckdns 500", duckSettings, 500, ""},
		{"duckdns unreachable", func(*provider) config.DDNS {
			return config.DDNS{Provider: config.DDNSDuckDNS, Hostname: "mycams", Server: deadURL + "/update", TokenFile: "duckdns-token"}
		}, 0, ""},
		{"url unreachable", func(*provider) config.DDNS {
			return config.DDNS{Provider: config.DDNSURL, URL: deadURL + "/?ip={ip}&key={token}", TokenFile: "duckdns-token"}
		}, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newProvider(t, tt.answer)
			if tt.code != 0 {
				p.set(tt.code, tt.answer)
			}
			f := newFixture(t, false)
			f.u.SetSettings(tt.settings(p))
			f.u.Check(context.Background())
			st, _ := json.Marshal(f.u.Status())
			for _, secret := range []string{testPassword, testToken, "a7c4d2e0"} {
				if strings.Contains(f.logs.String(), secret) {
					t.Errorf("the log shows a secret:\n%s", f.logs)
				}
				if strings.Contains(string(st), secret) {
					t.Errorf("the status shows a secret: %s", st)
				}
			}
			if f.logs.Len() == 0 {
				t.Error("nothing was logged; the test proves nothing")
			}
		})
	}
}

// TestRememberedAcrossRestart: the address set is kept in the state
// directory, so a restart with the same address sends no update.
func TestRememberedAcrossRestart(t *testing.T) {
	p := newProvider(t, "good $ip")
	f := newFixture(t, true)
	f.u.SetSettings(dyndns2Settings(p))
	f.u.Check(context.Background())
	again := New(Config{Source: f.u.c.Source, StateDir: f.dir, BaseDir: f.dir})
	again.SetSettings(dyndns2Settings(p))
	again.Check(context.Background())
	if p.count() != 1 {
		t.Fatalf("got %d updates across a restart with the same address, want 1", p.count())
	}
	if st := again.Status(); st.State != StateUpToDate || st.Address != netip.MustParseAddr("203.0.113.7") {
		t.Errorf("got %+v, want up to date at the remembered address", st)
	}
}

// TestWaitingWithoutAddress: no public address yet is shown with its fix,
// and nothing is sent.
func TestWaitingWithoutAddress(t *testing.T) {
	p := newProvider(t, "good $ip")
	f := newFixture(t, false)
	f.mu.Lock()
	f.ip = netip.Addr{}
	f.mu.Unlock()
	f.u.SetSettings(dyndns2Settings(p))
	f.u.Check(context.Background())
	st := f.u.Status()
	if st.State != StateWaiting || !strings.Contains(st.Fix, "public_ip") || p.count() != 0 {
		t.Errorf("got %+v and %d requests, want waiting, a fix naming public_ip, no request", st, p.count())
	}
}

// TestRun: the loop updates after SetSettings and stops with its context.
func TestRun(t *testing.T) {
	p := newProvider(t, "good $ip")
	f := newFixture(t, false)
	f.u.c.Now = nil
	f.u.now = time.Now
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.u.Run(ctx); close(done) }()
	f.u.SetSettings(dyndns2Settings(p))
	deadline := time.Now().Add(5 * time.Second)
	for p.count() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if p.count() != 1 {
		t.Errorf("got %d updates, want 1", p.count())
	}
}
