package admin

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
)

// TestOutsidersOnlyWhileSharing: a source outside the LAN and admin.allow
// is closed at accept unless a share link is active, and then it is an
// outsider under its own cap.
func TestOutsidersOnlyWhileSharing(t *testing.T) {
	sharing := false
	l := newSourceListener(nil, nil, func() bool { return sharing }, nil)
	wan := netip.MustParseAddr("203.0.113.5")
	if out, why := l.admit(wan); why == "" || out {
		t.Fatalf("no share link: got outsider=%v why=%q, want refused", out, why)
	}
	if out, why := l.admit(netip.MustParseAddr("192.168.1.20")); why != "" || out {
		t.Fatalf("LAN source: got outsider=%v why=%q, want admitted as an insider", out, why)
	}
	sharing = true
	admitted := 0
	for i := 0; i < maxOutsiderConns+10; i++ {
		src := netip.AddrFrom4([4]byte{203, 0, 113, byte(i)})
		out, why := l.admit(src)
		if why == "" {
			if !out {
				t.Fatalf("source %s: admitted as an insider, want an outsider", src)
			}
			admitted++
		}
	}
	if admitted != maxOutsiderConns {
		t.Fatalf("outsiders admitted: got %d, want the cap %d", admitted, maxOutsiderConns)
	}
	l.release(sourceKey(wan), true)
	if _, why := l.admit(netip.MustParseAddr("198.51.100.7")); why != "" {
		t.Fatalf("after one outsider left: got %q, want a free slot", why)
	}
}

// TestOutsidersReachShareLinksOnly: an outsider's requests reach a share
// link's page, info and stream files, and nothing else.
func TestOutsidersReachShareLinksOnly(t *testing.T) {
	e, _ := liveEnv(t)
	owner := e.owner()
	r := owner.must(201, "POST", "/api/v1/shares", map[string]any{"device": "dvr", "channel": 101})
	path := r.body["path"].(string)
	if !e.srv.sharingActive() {
		t.Fatal("sharingActive: got false with a link just made")
	}
	get := func(p string, outsider bool) int {
		req := httptest.NewRequest("GET", "https://neighbour.example.net"+p, nil)
		if outsider {
			c := &sourceConn{outsider: true}
			req = req.WithContext(markOutsider(context.Background(), c))
		}
		rec := httptest.NewRecorder()
		e.srv.ServeHTTP(rec, req)
		return rec.Code
	}
	for _, tc := range []struct {
		path string
		want int
	}{
		{path, 200},
		{path + "/info", 200},
		{"/ui/share.js", 200},
		{"/ui/live.js", 200},
		{"/", 404},
		{"/login", 404},
		{"/ui/app.js", 404},
		{"/api/v1/status", 404},
		{"/api/v1/setup", 404},
		{"/metrics", 404},
	} {
		if got := get(tc.path, true); got != tc.want {
			t.Errorf("outsider GET %s: got %d, want %d", tc.path, got, tc.want)
		}
	}
	// The same requests from an insider are not cut short.
	if got := get("/ui/app.js", false); got == 404 {
		t.Errorf("insider GET /ui/app.js: got 404")
	}
	owner.must(204, "DELETE", "/api/v1/shares/"+r.body["share"].(map[string]any)["id"].(string), nil)
	if e.srv.sharingActive() {
		t.Fatal("sharingActive: got true after the only link was revoked")
	}
}

var _ net.Conn = (*sourceConn)(nil)
var _ http.Handler = (*Server)(nil)
