package sim

import (
	"encoding/xml"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/icholy/digest"
)

type userCheckDoc struct {
	StatusValue    int    `xml:"statusValue"`
	LockStatus     string `xml:"lockStatus"`
	UnlockTime     int    `xml:"unlockTime"`
	RetryLoginTime int    `xml:"retryLoginTime"`
}

// login makes one ISAPI request from src with the given password and
// returns the status and the userCheck body of a 401.
func login(t *testing.T, d *Device, src, password string) (int, userCheckDoc) {
	t.Helper()
	c := clientFrom(src, func(rt http.RoundTripper) http.RoundTripper {
		return &digest.Transport{Username: d.User(), Password: password, Transport: rt, NoReuse: true}
	})
	res, err := c.Get("http://" + d.DialAddr(ServiceHTTP).String() + "/ISAPI/System/deviceInfo")
	if err != nil {
		t.Fatalf("from %s: %v", src, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var u userCheckDoc
	if res.StatusCode == 401 {
		if err := xml.Unmarshal(b, &u); err != nil {
			t.Fatalf("401 body is not a userCheck: %v\n%s", err, b)
		}
		if len(res.Header.Values("WWW-Authenticate")) != 2 {
			t.Errorf("401 without the two digest challenges: %v", res.Header.Values("WWW-Authenticate"))
		}
	}
	return res.StatusCode, u
}

func TestIllegalLoginLock(t *testing.T) {
	d := start(t, Config{})
	a, b := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")

	// A success resets the count.
	for i := 0; i < 3; i++ {
		login(t, d, "127.0.0.1", "wrong")
	}
	if got := d.FailedLogins(a); got != 3 {
		t.Fatalf("after 3 failures: got %d, want 3", got)
	}
	if code, _ := login(t, d, "127.0.0.1", testPassword); code != 200 {
		t.Fatalf("right password: got %d, want 200", code)
	}
	if got := d.FailedLogins(a); got != 0 {
		t.Fatalf("after a success: got %d failures, want 0", got)
	}

	// Seven failures lock 127.0.0.1; each 401 says how many tries are left.
	for i := 1; i <= 7; i++ {
		code, u := login(t, d, "127.0.0.1", "wrong")
		wantLock, wantRetry := "unlock", 7-i
		if i == 7 {
			wantLock, wantRetry = "lock", 0
		}
		if code != 401 || u.LockStatus != wantLock || u.RetryLoginTime != wantRetry {
			t.Fatalf("failure %d: got %d lockStatus=%s retryLoginTime=%d, want 401 %s %d", i, code, u.LockStatus, u.RetryLoginTime, wantLock, wantRetry)
		}
	}
	if !d.Locked(a) {
		t.Fatal("127.0.0.1 not locked after 7 failures")
	}
	// Locked: the right password is refused too, with the lock signal.
	code, u := login(t, d, "127.0.0.1", testPassword)
	if code != 401 || u.LockStatus != "lock" || u.UnlockTime < 1790 || u.UnlockTime > 1800 {
		t.Fatalf("locked source with the right password: got %d %+v, want 401 lock with ~1800s left", code, u)
	}
	// The other source is not affected.
	if d.Locked(b) || d.FailedLogins(b) != 0 {
		t.Fatalf("127.0.0.2: locked=%v failures=%d, want unlocked with 0", d.Locked(b), d.FailedLogins(b))
	}
	if code, _ := login(t, d, "127.0.0.2", testPassword); code != 200 {
		t.Fatalf("127.0.0.2 with the right password: got %d, want 200", code)
	}
	if got := d.TotalFailedLogins(); got != 10 {
		t.Errorf("total failed logins: got %d, want 10", got)
	}
	// An unauthenticated request (no Authorization) is not a failure.
	res, err := http.Get("http://" + d.DialAddr(ServiceHTTP).String() + "/ISAPI/System/deviceInfo")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if got := d.TotalFailedLogins(); got != 10 {
		t.Errorf("after an anonymous request: got %d failed logins, want 10", got)
	}
	d.Unlock(a)
	if code, _ := login(t, d, "127.0.0.1", testPassword); code != 200 {
		t.Fatalf("after Unlock: got %d, want 200", code)
	}
}

func TestLockExpires(t *testing.T) {
	d := start(t, Config{MaxFailedLogins: 2, LockDuration: 300 * time.Millisecond})
	login(t, d, "127.0.0.1", "wrong")
	login(t, d, "127.0.0.1", "wrong")
	if !d.Locked(loopback()) {
		t.Fatal("not locked")
	}
	time.Sleep(400 * time.Millisecond)
	if d.Locked(loopback()) || d.FailedLogins(loopback()) != 0 {
		t.Fatalf("after the lock duration: locked=%v failures=%d, want unlocked, 0", d.Locked(loopback()), d.FailedLogins(loopback()))
	}
	if code, _ := login(t, d, "127.0.0.1", testPassword); code != 200 {
		t.Fatalf("got %d, want 200", code)
	}
}

func TestBasicRefused(t *testing.T) {
	d := start(t, Config{})
	req, _ := http.NewRequest("GET", "http://"+d.DialAddr(ServiceHTTP).String()+"/ISAPI/System/deviceInfo", nil)
	req.SetBasicAuth(d.User(), d.Password())
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 401 || d.FailedLogins(loopback()) != 1 {
		t.Fatalf("Basic: got %d with %d failures, want 401 counted as 1 failure", res.StatusCode, d.FailedLogins(loopback()))
	}
	var user string
	for _, r := range d.Requests() {
		if r.Path == "/ISAPI/System/deviceInfo" {
			user = r.User
		}
	}
	if user != "admin" {
		t.Errorf("request log user: got %q, want admin", user)
	}
	for _, r := range d.Requests() {
		if strings.Contains(r.User, d.Password()) {
			t.Fatal("request log holds the password")
		}
	}
}

func TestLockoutTable(t *testing.T) {
	l := newLockout(3, time.Minute)
	now := time.Unix(1000, 0)
	l.now = func() time.Time { return now }
	a := netip.MustParseAddr("::ffff:10.0.0.1")
	steps := []struct {
		op         string
		wantLocked bool
		wantFails  int
	}{
		{"fail", false, 1},
		{"fail", false, 2},
		{"ok", false, 0},
		{"fail", false, 1},
		{"fail", false, 2},
		{"fail", true, 3},
		{"fail", true, 3}, // no more counting while locked
		{"wait", false, 0},
	}
	for i, s := range steps {
		switch s.op {
		case "fail":
			l.fail(a)
		case "ok":
			l.succeed(a)
		case "wait":
			now = now.Add(time.Minute)
		}
		locked, _ := l.locked(netip.MustParseAddr("10.0.0.1"))
		if locked != s.wantLocked || l.failures(a) != s.wantFails {
			t.Fatalf("step %d (%s): got locked=%v fails=%d, want %v %d", i, s.op, locked, l.failures(a), s.wantLocked, s.wantFails)
		}
	}
	if got := l.totalFailures(); got != 6 {
		t.Fatalf("total: got %d, want 6", got)
	}
}
