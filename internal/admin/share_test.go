package admin

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/credstore"
	"github.com/camgate/camgate/internal/live"
	"github.com/camgate/camgate/internal/sim"
)

// liveEnv is a testEnv whose devices section names a simulated DVR on
// loopback, with live view through a real live.Hub.
func liveEnv(t *testing.T) (*testEnv, *live.Hub) {
	t.Helper()
	d, err := sim.New(sim.Config{Listen: netip.MustParseAddr("127.0.0.1"), Password: "Sim-Pass-2024"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	var e *testEnv
	hub := live.New(live.Config{Locate: func(dev string, ch int) (*url.URL, error) {
		pw, err := credstore.New(e.site.StateDir()).Get(dev)
		if err != nil {
			return nil, err
		}
		return url.Parse(fmt.Sprintf("rtsp://admin:%s@%s/Streaming/Channels/%d", pw, d.DialAddr(sim.ServiceRTSP), ch))
	}})
	t.Cleanup(hub.Close)
	rtsp := d.DialAddr(sim.ServiceRTSP)
	e = newEnv(t, envOpts{live: hub, yaml: fmt.Sprintf("devices:\n  - name: dvr\n    address: 127.0.0.1\n    rtsp_port: %d\n    model: DS-2CD2142FWD-I\n    firmware: V5.5.800 build 200318\n", rtsp.Port())})
	if err := credstore.New(e.site.StateDir()).Put("dvr", d.Password()); err != nil {
		t.Fatal(err)
	}
	return e, hub
}

// stream opens a stream and reads it in the background; the returned
// channel is closed when the body ends.
func stream(t *testing.T, c *client, path string) (*http.Response, chan struct{}) {
	t.Helper()
	req, _ := http.NewRequest("GET", c.e.ts.URL+path, nil)
	if c.session != "" {
		req.Header.Set(sessionHeader, c.session)
	}
	res, err := c.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}()
	return res, ended
}

func TestCamerasAndShareLinks(t *testing.T) {
	e, hub := liveEnv(t)
	owner := e.owner()

	r := owner.must(200, "GET", "/api/v1/cameras", nil)
	cams := r.body["cameras"].([]any)
	dvr := cams[0].(map[string]any)
	if dvr["name"] != "dvr" || dvr["model"] != "DS-2CD2142FWD-I" || dvr["password"] != true || len(dvr["channels"].([]any)) != 2 {
		t.Fatalf("cameras: got %s, want dvr with its model, password and 2 channels", r.raw)
	}
	// The recorded firmware predates the CVE-2021-36260 fix.
	if fs := dvr["findings"].([]any); len(fs) == 0 || fs[0].(map[string]any)["severity"] != "critical" {
		t.Errorf("cameras: got findings %v, want a critical firmware finding first", dvr["findings"])
	}

	res, ended := stream(t, owner, "/api/v1/live/dvr/102")
	if ct := res.Header.Get("Content-Type"); res.StatusCode != 200 || !strings.HasPrefix(ct, "video/mp4") {
		t.Fatalf("owner's live view: got %d %q, want 200 video/mp4", res.StatusCode, ct)
	}
	res.Body.Close()
	<-ended

	owner.must(422, "POST", "/api/v1/shares", map[string]any{"device": "dvr", "channel": 105})
	r = owner.must(201, "POST", "/api/v1/shares", map[string]any{"device": "dvr", "channel": 101, "label": "neighbour", "max_viewers": 1})
	secret, path := r.body["secret"].(string), r.body["path"].(string)
	id := r.body["share"].(map[string]any)["id"].(string)
	if path != "/s/"+secret {
		t.Fatalf("path: got %q, want /s/<secret>", path)
	}

	anon := e.client()
	anon.must(200, "GET", path, nil)
	if r := anon.must(200, "GET", path+"/info", nil); r.body["channel"] != float64(101) {
		t.Fatalf("info: got %s, want channel 101", r.raw)
	}
	res, ended = stream(t, anon, path+"/stream")
	if res.StatusCode != 200 {
		t.Fatalf("share stream: got %d, want 200", res.StatusCode)
	}
	// Nothing else is reachable with the link.
	for _, p := range []string{"/api/v1/cameras", "/api/v1/live/dvr/102", "/api/v1/shares", path + "/stream/102", path + "/info/102", "/s/" + secret + "x/stream"} {
		if r := anon.do("GET", p, nil); r.status != 401 && r.status != 403 && r.status != 404 {
			t.Errorf("GET %s with only the link: got %d, want 401, 403 or 404", p, r.status)
		}
	}
	if r := e.client().do("GET", path+"/stream", nil); r.status != http.StatusTooManyRequests {
		t.Errorf("second viewer of a 1-viewer link: got %d, want 429", r.status)
	}

	start := time.Now()
	owner.must(204, "DELETE", "/api/v1/shares/"+id, nil)
	select {
	case <-ended:
		if d := time.Since(start); d > time.Second {
			t.Errorf("revoke stopped the viewer after %v, want within 1s", d)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the viewer still streams 2s after revoke")
	}
	if r := anon.do("GET", path+"/info", nil); r.status != 410 || r.body["error"] != "this link was revoked" {
		t.Errorf("info after revoke: got %d %s, want 410 this link was revoked", r.status, r.raw)
	}

	// Guessing is throttled like a failed login.
	var last int
	for i := 0; i < 6; i++ {
		last = e.client().do("GET", "/s/not-a-real-secret-"+fmt.Sprint(i)+"/info", nil).status
	}
	if last != http.StatusTooManyRequests {
		t.Errorf("after 6 unknown secrets: got %d, want 429", last)
	}

	r = owner.must(200, "GET", "/api/v1/audit", nil)
	var views, refused int
	for _, x := range r.body["entries"].([]any) {
		en := x.(map[string]any)
		if en["action"] == "share.view" && en["target"] == id {
			if en["ok"] == true {
				views++
			} else {
				refused++
			}
		}
	}
	if views != 1 || refused != 1 {
		t.Errorf("activity: got %d share.view and %d refused, want 1 and 1 (the over-limit viewer)", views, refused)
	}
	deadline := time.Now().Add(3 * time.Second)
	for hub.Stats().Pulls > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if st := hub.Stats(); st.Pulls != 0 {
		t.Errorf("after every viewer left: got %+v, want no pull", st)
	}
}

// TestShareLinkExpires moves the clock past a link's expiry: its page
// says so, and its stream is refused.
func TestShareLinkExpires(t *testing.T) {
	e, _ := liveEnv(t)
	owner := e.owner()
	r := owner.must(201, "POST", "/api/v1/shares", map[string]any{"device": "dvr", "channel": 102, "expires": "10m"})
	path := r.body["path"].(string)
	anon := e.client()
	anon.must(200, "GET", path+"/info", nil)
	e.clock.Add(11 * time.Minute)
	if r := anon.do("GET", path+"/info", nil); r.status != 410 || r.body["error"] != "this link has expired" {
		t.Errorf("info after expiry: got %d %s, want 410 this link has expired", r.status, r.raw)
	}
	if r := anon.do("GET", path+"/stream", nil); r.status != 410 {
		t.Errorf("stream after expiry: got %d, want 410", r.status)
	}
	if r := owner.must(200, "GET", "/api/v1/shares", nil); r.body["shares"].([]any)[0].(map[string]any)["state"] != "expired" {
		t.Errorf("list after expiry: got %s, want state expired", r.raw)
	}
	if strings.Contains(string(r.raw), "hash") {
		t.Errorf("the share list shows the secret's hash: %s", r.raw)
	}
}

func TestLogPathHidesShareSecrets(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/s/abc", "/s/*"},
		{"/s/abc/stream", "/s/*/stream"},
		{"/api/v1/rules", "/api/v1/rules"},
	} {
		if got := logPath(tc.in); got != tc.want {
			t.Errorf("logPath(%q): got %q, want %q", tc.in, got, tc.want)
		}
	}
}
