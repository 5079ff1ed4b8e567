package hikvision

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/icholy/digest"
)

// fakeDevice is an in-process ISAPI server with Digest (MD5, qop=auth)
// and an illegal-login lock, counting every request by kind.
type fakeDevice struct {
	user, pass string
	realm      string
	docs       map[string][]byte
	// lockAfter is the number of failed logins that locks (0: never).
	lockAfter int
	// lockedStyle picks how a locked device answers: "usercheck" (401
	// with lockStatus), "status403" (403 with a ResponseStatus),
	// "text403" (403 with plain text and Retry-After).
	lockedStyle string
	// basicOnly offers Basic instead of Digest.
	basicOnly bool
	// userCheck401 adds the userCheck body (with retryLoginTime) to 401s.
	userCheck401 bool

	mu                 sync.Mutex // guards following
	unauth, credential int        // requests without / with Authorization
	failures           int
	nonce              int
}

func (d *fakeDevice) counts() (unauth, cred int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.unauth, d.credential
}

func md5hex(s string) string { h := md5.Sum([]byte(s)); return hex.EncodeToString(h[:]) }

func (d *fakeDevice) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	defer d.mu.Unlock()
	auth := r.Header.Get("Authorization")
	if auth == "" {
		d.unauth++
	} else {
		d.credential++
	}
	locked := d.lockAfter > 0 && d.failures >= d.lockAfter
	if locked {
		d.writeLocked(w)
		return
	}
	if auth != "" && d.verify(r, auth) {
		doc, ok := d.docs[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/xml")
		w.Write(doc)
		return
	}
	if auth != "" {
		d.failures++
		if d.lockAfter > 0 && d.failures >= d.lockAfter {
			d.writeLocked(w)
			return
		}
	}
	d.challenge(w)
	w.WriteHeader(http.StatusUnauthorized)
	if d.userCheck401 {
		left := -1
		if d.lockAfter > 0 {
			left = d.lockAfter - d.failures
		}
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><userCheck><statusValue>401</statusValue><statusString>Unauthorized</statusString>`+
			`<lockStatus>unlock</lockStatus><unlockTime>0</unlockTime><retryLoginTime>%d</retryLoginTime></userCheck>`, left)
	}
}

func (d *fakeDevice) challenge(w http.ResponseWriter) {
	d.nonce++
	if d.basicOnly {
		w.Header().Set("WWW-Authenticate", `Basic realm="`+d.realm+`"`)
		return
	}
	w.Header().Add("WWW-Authenticate", fmt.Sprintf(`Digest qop="auth", realm="%s", nonce="n%08d", stale="FALSE"`, d.realm, d.nonce))
}

func (d *fakeDevice) writeLocked(w http.ResponseWriter) {
	switch d.lockedStyle {
	case "status403":
		w.WriteHeader(http.StatusForbidden)
		w.Write(readFixtureNoT("responsestatus-userlocked.xml"))
	case "text403":
		w.Header().Set("Retry-After", "600")
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprint(w, "Forbidden: this IP address is locked")
	default:
		d.challenge(w)
		w.WriteHeader(http.StatusUnauthorized)
		w.Write(readFixtureNoT("usercheck-locked.xml"))
	}
}

func readFixtureNoT(name string) []byte {
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		panic(err)
	}
	return b
}

// verify checks an MD5 qop=auth digest response (RFC 7616 §3.4.1).
func (d *fakeDevice) verify(r *http.Request, auth string) bool {
	c, err := digest.ParseCredentials(auth)
	if err != nil || c.Username != d.user || c.Realm != d.realm {
		return false
	}
	ha1 := md5hex(d.user + ":" + d.realm + ":" + d.pass)
	ha2 := md5hex(r.Method + ":" + c.URI)
	want := md5hex(fmt.Sprintf("%s:%s:%08x:%s:%s:%s", ha1, c.Nonce, c.Nc, c.Cnonce, c.QOP, ha2))
	return c.Response == want && c.URI == r.URL.RequestURI()
}

func newFake(t *testing.T, d *fakeDevice) (*httptest.Server, *fakeDevice) {
	t.Helper()
	if d.realm == "" {
		d.realm = "IP Camera(12345)"
	}
	if d.docs == nil {
		d.docs = map[string][]byte{
			PathDeviceInfo:    readFixture(t, "deviceinfo-ds-7608ni.xml"),
			PathAdminAccesses: readFixture(t, "adminaccesses-ds-7716ni-i4.xml"),
			PathInterfaces:    readFixture(t, "interfaces-ds-7716ni-i4.xml"),
		}
	}
	srv := httptest.NewServer(d)
	t.Cleanup(srv.Close)
	return srv, d
}

func TestClientReadsDevice(t *testing.T) {
	srv, dev := newFake(t, &fakeDevice{user: "admin", pass: "s3cret-Pa55"})
	c, err := New(Config{BaseURL: srv.URL, Username: "admin", Password: "s3cret-Pa55"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	info, err := c.DeviceInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Model != "DS-7608NI-K2" {
		t.Errorf("model: got %q, want DS-7608NI-K2", info.Model)
	}
	ports, err := c.AdminAccesses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := ports.Enabled(ProtoRTSP); got != 554 {
		t.Errorf("RTSP: got %d, want 554", got)
	}
	ifs, err := c.NetworkInterfaces(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ifs) != 1 || ifs[0].IPAddress != "192.168.1.64" {
		t.Errorf("interfaces: got %+v", ifs)
	}
	// Each call: one challenge request, one credentialed request.
	if u, cr := dev.counts(); u != 3 || cr != 3 {
		t.Errorf("got %d unauthenticated and %d credentialed requests, want 3 and 3", u, cr)
	}
}

func TestClientOneAttemptOnWrongPassword(t *testing.T) {
	for _, uc := range []bool{false, true} {
		t.Run(fmt.Sprintf("userCheck=%v", uc), func(t *testing.T) {
			srv, dev := newFake(t, &fakeDevice{user: "admin", pass: "right", lockAfter: 7, userCheck401: uc})
			var logs bytes.Buffer
			c, err := New(Config{BaseURL: srv.URL, Username: "admin", Password: "wrong-Secret-42",
				Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.DeviceInfo(context.Background())
			if !errors.Is(err, ErrUnauthorized) {
				t.Fatalf("got %v, want ErrUnauthorized", err)
			}
			if errors.Is(err, ErrLocked) {
				t.Errorf("wrong password reported as locked: %v", err)
			}
			if u, cr := dev.counts(); cr != 1 || u != 1 {
				t.Errorf("got %d credentialed and %d unauthenticated requests, want exactly 1 and 1", cr, u)
			}
			var ae *AuthError
			if errors.As(err, &ae) {
				want := -1
				if uc {
					want = 6
				}
				if ae.RemainingAttempts != want {
					t.Errorf("remaining attempts: got %d, want %d", ae.RemainingAttempts, want)
				}
			}
			for _, s := range []string{err.Error(), logs.String()} {
				if strings.Contains(s, "wrong-Secret-42") {
					t.Errorf("password leaked: %s", s)
				}
			}
			if !strings.Contains(logs.String(), "isapi request") {
				t.Errorf("expected debug log lines, got %q", logs.String())
			}
		})
	}
}

func TestClientReportsLock(t *testing.T) {
	for _, style := range []string{"usercheck", "status403", "text403"} {
		t.Run(style, func(t *testing.T) {
			srv, dev := newFake(t, &fakeDevice{user: "admin", pass: "right", lockAfter: 7, lockedStyle: style})
			bad, err := New(Config{BaseURL: srv.URL, Username: "admin", Password: "bad"})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			for i := 1; i <= 6; i++ {
				if _, err := bad.DeviceInfo(ctx); !errors.Is(err, ErrUnauthorized) {
					t.Fatalf("attempt %d: got %v, want ErrUnauthorized", i, err)
				}
			}
			// The 7th failure locks: the device answers with its lock signal.
			_, err = bad.DeviceInfo(ctx)
			if !errors.Is(err, ErrLocked) || errors.Is(err, ErrUnauthorized) {
				t.Fatalf("7th attempt: got %v, want ErrLocked", err)
			}
			// Now even the right password is locked out, and the client
			// sees it: on the challenge for "usercheck" (no credentialed
			// request at all), on the credentialed one otherwise.
			_, before := dev.counts()
			good, _ := New(Config{BaseURL: srv.URL, Username: "admin", Password: "right"})
			_, err = good.DeviceInfo(ctx)
			if !errors.Is(err, ErrLocked) {
				t.Fatalf("after lock: got %v, want ErrLocked", err)
			}
			if !strings.Contains(err.Error(), "locked") {
				t.Errorf("message %q does not say locked", err)
			}
			var le *LockedError
			if !errors.As(err, &le) {
				t.Fatalf("got %T, want *LockedError", err)
			}
			wantRemaining := map[string]time.Duration{"usercheck": 1786 * time.Second, "status403": 1740 * time.Second, "text403": 600 * time.Second}[style]
			if le.Remaining != wantRemaining {
				t.Errorf("remaining: got %v, want %v", le.Remaining, wantRemaining)
			}
			if _, after := dev.counts(); after-before > 1 {
				t.Errorf("got %d credentialed requests after the lock, want at most 1", after-before)
			}
		})
	}
}

func TestClientNoCredentials(t *testing.T) {
	srv, dev := newFake(t, &fakeDevice{user: "admin", pass: "right"})
	c, _ := New(Config{BaseURL: srv.URL})
	_, err := c.DeviceInfo(context.Background())
	var ae *AuthError
	if !errors.As(err, &ae) || !ae.NoCredentials {
		t.Fatalf("got %v, want AuthError with NoCredentials", err)
	}
	if _, cr := dev.counts(); cr != 0 {
		t.Errorf("got %d credentialed requests, want 0", cr)
	}
}

func TestClientRefusesBasic(t *testing.T) {
	srv, dev := newFake(t, &fakeDevice{user: "admin", pass: "right", basicOnly: true})
	c, _ := New(Config{BaseURL: srv.URL, Username: "admin", Password: "right"})
	_, err := c.DeviceInfo(context.Background())
	if !errors.Is(err, ErrNoDigest) {
		t.Fatalf("got %v, want ErrNoDigest", err)
	}
	if _, cr := dev.counts(); cr != 0 {
		t.Errorf("got %d credentialed requests, want 0 (never send Basic)", cr)
	}
}

func TestClientStatusErrors(t *testing.T) {
	srv, _ := newFake(t, &fakeDevice{user: "admin", pass: "right", docs: map[string][]byte{
		PathDeviceInfo: readFixture(t, "responsestatus-notsupport.xml"),
	}})
	c, _ := New(Config{BaseURL: srv.URL, Username: "admin", Password: "right"})
	ctx := context.Background()
	_, err := c.DeviceInfo(ctx)
	var se *StatusError
	if !errors.As(err, &se) || se.Status.SubStatusCode != "notSupport" {
		t.Fatalf("got %v, want StatusError with notSupport", err)
	}
	_, err = c.AdminAccesses(ctx) // not in docs: 404
	if !errors.As(err, &se) || se.HTTPStatus != http.StatusNotFound || !strings.Contains(err.Error(), PathAdminAccesses) {
		t.Fatalf("got %v, want 404 StatusError naming the path", err)
	}
}

func TestClientRedirectNotFollowed(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://192.0.2.1/doc/page/login.asp", http.StatusFound)
	}))
	defer srv.Close()
	c, _ := New(Config{BaseURL: srv.URL, Username: "admin", Password: "x"})
	_, err := c.DeviceInfo(context.Background())
	var se *StatusError
	if !errors.As(err, &se) || se.Location == "" {
		t.Fatalf("got %v, want StatusError with Location", err)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{}, "no device address"},
		{Config{BaseURL: "http://admin:hunter2@192.0.2.1"}, "not the URL"},
		{Config{BaseURL: "ftp://192.0.2.1"}, "scheme"},
		{Config{BaseURL: "http://"}, "no host"},
	}
	for _, tt := range tests {
		_, err := New(tt.cfg)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%+v): got %v, want error containing %q", tt.cfg, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("password leaked in %q", err)
		}
	}
	c, err := New(Config{Host: "192.0.2.7:8082"})
	if err != nil || c.Device() != "192.0.2.7:8082" || c.base.Scheme != "http" {
		t.Errorf("Host form: got %v %v", c, err)
	}
}

func TestClientHTTPSSelfSigned(t *testing.T) {
	d := &fakeDevice{user: "admin", pass: "right", realm: "IP Camera(1)"}
	newFakeDocs(t, d)
	srv := httptest.NewUnstartedServer(d)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is the point
	srv.StartTLS()
	defer srv.Close()
	strict, _ := New(Config{BaseURL: srv.URL, Username: "admin", Password: "right"})
	if _, err := strict.DeviceInfo(context.Background()); err == nil {
		t.Fatal("self-signed certificate accepted without AcceptSelfSigned")
	}
	lax, _ := New(Config{BaseURL: srv.URL, Username: "admin", Password: "right", AcceptSelfSigned: true})
	if _, err := lax.DeviceInfo(context.Background()); err != nil {
		t.Fatalf("AcceptSelfSigned: %v", err)
	}
}

func newFakeDocs(t *testing.T, d *fakeDevice) {
	d.docs = map[string][]byte{PathDeviceInfo: readFixture(t, "deviceinfo-ds-7608ni.xml")}
}

func TestProbe(t *testing.T) {
	srv, dev := newFake(t, &fakeDevice{user: "admin", pass: "right"})
	c, _ := New(Config{BaseURL: srv.URL, Username: "admin", Password: "right"})
	res, err := c.Probe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !res.Hikvision || res.Realm != "IP Camera(12345)" || res.ISAPIStatus != 401 {
		t.Errorf("got %+v, want a Hikvision realm and 401", res)
	}
	if _, cr := dev.counts(); cr != 0 {
		t.Errorf("Probe sent %d credentialed requests, want 0", cr)
	}
}
