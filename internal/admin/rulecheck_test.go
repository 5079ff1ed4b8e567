package admin

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/check"
	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/router"
)

// routerStandIn stands in for serve's *router.Client (Config.Router): a
// status the test sets.
type routerStandIn struct {
	mu sync.Mutex // guards following
	st router.Status
}

func (r *routerStandIn) Status() router.Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.st
}

func (r *routerStandIn) set(st router.Status) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.st = st
}

// webDevice is a plain-HTTP "device" on loopback.
func webDevice(t *testing.T) *httptest.Server {
	t.Helper()
	dev := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Server", "test-dvr")
		io.WriteString(w, "<html><title>test DVR</title></html>")
	}))
	t.Cleanup(dev.Close)
	return dev
}

// checkReport decodes a check answer.
func checkReport(t *testing.T, r response) check.Report {
	t.Helper()
	var rep check.Report
	if err := json.Unmarshal(r.raw, &rep); err != nil {
		t.Fatalf("check answer %s: %v", r.raw, err)
	}
	return rep
}

// layer finds one layer's result in a report for a single rule.
func layer(t *testing.T, rep check.Report, l check.Layer, proto string) check.Result {
	t.Helper()
	if len(rep.Rules) != 1 {
		t.Fatalf("got %d rules in the report, want 1: %+v", len(rep.Rules), rep)
	}
	for _, res := range rep.Rules[0].Results {
		if res.Layer == l && res.Protocol == proto {
			return res
		}
	}
	t.Fatalf("no %s/%s result in %+v", l, proto, rep.Rules[0])
	return check.Result{}
}

// TestRuleCheck runs real checks through the API. The probes stay on
// loopback: the device and camgate's listener are on 127.0.0.1, and the
// public addresses used (CGNAT, private) are never probed.
func TestRuleCheck(t *testing.T) {
	// The router client runs but has not found a router yet.
	rs := &routerStandIn{st: router.Status{Mode: "natpmp", Error: "no router answered yet"}}
	e := newEnv(t, envOpts{yaml: "router:\n  mode: natpmp\n", router: rs})
	c := e.owner()
	dev := webDevice(t)
	devAddr := netip.MustParseAddrPort(dev.Listener.Addr().String())
	c.must(201, "POST", "/api/v1/rules", map[string]any{
		"name": "cam-web", "description": "DVR web page", "external_port": freePort(t),
		"internal_ip": "127.0.0.1", "internal_port": devAddr.Port(),
	})
	const path = "/api/v1/rules/cam-web/check"

	t.Run("refused", func(t *testing.T) {
		ro := e.client()
		ro.bearer = c.must(201, "POST", "/api/v1/tokens", map[string]string{"name": "grafana", "scope": "read"}).body["secret"].(string)
		cookieOnly := *c
		cookieOnly.session = ""
		tests := []struct {
			name   string
			cl     *client
			body   any
			hdr    []string
			status int
			msg    string
		}{
			{"anonymous", e.client(), nil, nil, 401, "log in"},
			{"cookie without the session header", &cookieOnly, nil, nil, 401, "session"},
			{"read-only token", ro, nil, nil, 403, "read-only"},
			{"foreign origin", c, nil, []string{"Origin", "https://evil.example"}, 403, "cross-origin"},
			{"same-site page (a camera's web UI on another port)", c, nil, []string{"Sec-Fetch-Site", "same-site"}, 403, "cross-origin"},
			{"null origin", c, nil, []string{"Origin", "null"}, 403, "cross-origin"},
			{"form body", c, "public_ip=1.2.3.4", []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, "application/json"},
			{"bad public_ip", c, map[string]string{"public_ip": "my-router"}, nil, 422, "not an IP address"},
			{"unknown field", c, map[string]string{"from": "netns:wan"}, nil, 400, "unknown field"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := tt.cl.do("POST", path, tt.body, tt.hdr...)
				if r.status != tt.status {
					t.Fatalf("got %d %s, want %d", r.status, r.raw, tt.status)
				}
				if msg, _ := r.body["error"].(string); !strings.Contains(msg, tt.msg) {
					t.Fatalf("got error %q, want it to contain %q", msg, tt.msg)
				}
			})
		}
		if r := c.do("POST", path, map[string]string{"public_ip": "my-router"}); !strings.Contains(r.problems()["public_ip"], "my-router") {
			t.Fatalf("got problems %v, want one for public_ip", r.problems())
		}
	})

	t.Run("unknown rule", func(t *testing.T) {
		r := c.must(404, "POST", "/api/v1/rules/no-such-rule/check", nil)
		if msg, _ := r.body["error"].(string); !strings.Contains(msg, `"no-such-rule"`) {
			t.Fatalf("got %q, want the rule named", msg)
		}
	})

	t.Run("device up", func(t *testing.T) {
		// No body at all: the UI's button and `curl -X POST` send none.
		r := c.must(200, "POST", path, nil, "Origin", e.ts.URL, "Sec-Fetch-Site", "same-origin")
		rep := checkReport(t, r)
		if rep.Rules[0].Rule != "cam-web" || !rep.Rules[0].Enabled {
			t.Fatalf("got rule %q enabled %v, want cam-web enabled", rep.Rules[0].Rule, rep.Rules[0].Enabled)
		}
		gw := layer(t, rep, check.LayerGateway, "tcp")
		if gw.Status != check.OK || !strings.Contains(gw.Reason, "camgate") {
			t.Errorf("gateway: got %s %q, want ok naming camgate", gw.Status, gw.Reason)
		}
		in := layer(t, rep, check.LayerInside, "tcp")
		if in.Status != check.OK || in.Probe != check.KindHTTP || in.Target != devAddr.String() {
			t.Errorf("inside: got %s %s %s %q, want ok http %s", in.Status, in.Probe, in.Target, in.Reason, devAddr)
		}
		out := layer(t, rep, check.LayerOutside, "tcp")
		if out.Status != check.Unknown || out.Fix == "" || rep.Public.Class != check.ClassUnknown {
			t.Errorf("outside without a public address: got %s %q fix %q (public %+v), want unknown with a fix", out.Status, out.Reason, out.Fix, rep.Public)
		}
		if rep.OK != 2 || rep.Failed != 0 || rep.Unknown != 1 {
			t.Errorf("got counts %d/%d/%d, want 2 ok, 0 failed, 1 unknown", rep.OK, rep.Failed, rep.Unknown)
		}
	})

	t.Run("public_ip in the body", func(t *testing.T) {
		// CGNAT: the outside layer fails without sending anything.
		rep := checkReport(t, c.must(200, "POST", path, map[string]string{"public_ip": "100.64.7.9"}))
		out := layer(t, rep, check.LayerOutside, "tcp")
		if rep.Public.Source != "flag" || rep.Public.Class != check.ClassCGNAT || out.Status != check.Fail || !strings.Contains(out.Fix, "VPN") {
			t.Fatalf("got public %+v, outside %s %q fix %q; want the given CGNAT address, ✗ and VPN advice", rep.Public, out.Status, out.Reason, out.Fix)
		}
	})

	t.Run("router WAN address", func(t *testing.T) {
		rs.set(router.Status{Mode: "natpmp", ExternalIP: netip.MustParseAddr("10.20.0.2")})
		defer rs.set(router.Status{Mode: "natpmp", Error: "no router answered yet"})
		rep := checkReport(t, c.must(200, "POST", path, nil))
		out := layer(t, rep, check.LayerOutside, "tcp")
		if rep.Public.Source != "router" || rep.Public.IP != netip.MustParseAddr("10.20.0.2") || rep.Public.Class != check.ClassPrivate || out.Status != check.Fail {
			t.Fatalf("got public %+v, outside %s %q; want the router's private WAN address and ✗ (double NAT)", rep.Public, out.Status, out.Reason)
		}
		// The body wins, and the report mentions what the router said.
		rep = checkReport(t, c.must(200, "POST", path, map[string]string{"public_ip": "100.64.7.9"}))
		if rep.Public.Source != "flag" || !strings.Contains(rep.Public.Note, "10.20.0.2") {
			t.Fatalf("got public %+v, want the given address with a note naming the router's", rep.Public)
		}
		// A router that has not answered: the reason is passed on.
		rs.set(router.Status{Mode: "natpmp", Error: "no router answered"})
		rep = checkReport(t, c.must(200, "POST", path, nil))
		if rep.Public.Class != check.ClassUnknown || !strings.Contains(rep.Public.RouterError, "no router answered") {
			t.Fatalf("got public %+v, want unknown with the router's error", rep.Public)
		}
		// serve registers the client with router.mode off too; then it is
		// not asked.
		rs.set(router.Status{Mode: "natpmp", ExternalIP: netip.MustParseAddr("10.20.0.2")})
		if _, err := e.site.Update(context.Background(), func(cfg *config.Config) error {
			cfg.Router.Mode = config.RouterOff
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		rep = checkReport(t, c.must(200, "POST", path, nil))
		if rep.Public.Class != check.ClassUnknown || rep.Public.RouterError != "" {
			t.Fatalf("router mode off: got public %+v, want unknown without asking the router", rep.Public)
		}
	})

	// The limiter allows checkBurst in a row; the subtests so far used 6.
	e.clock.Add(checkBurst * checkRefill)

	t.Run("device down", func(t *testing.T) {
		dev.Close()
		rep := checkReport(t, c.must(200, "POST", path, nil))
		if gw := layer(t, rep, check.LayerGateway, "tcp"); gw.Status != check.OK {
			t.Errorf("gateway: got %s %q, want ok: camgate still listens", gw.Status, gw.Reason)
		}
		in := layer(t, rep, check.LayerInside, "tcp")
		if in.Status != check.Fail || !strings.Contains(in.Reason, "refused") || in.Fix == "" {
			t.Errorf("inside: got %s %q fix %q, want ✗ refused with a fix", in.Status, in.Reason, in.Fix)
		}
		if rep.Failed == 0 {
			t.Errorf("got %d failed, want at least 1", rep.Failed)
		}
	})

	t.Run("disabled rule", func(t *testing.T) {
		c.must(200, "POST", "/api/v1/rules/cam-web/disable", nil)
		rep := checkReport(t, c.must(200, "POST", path, nil))
		gw := layer(t, rep, check.LayerGateway, "tcp")
		if gw.Status != check.Fail || !strings.Contains(gw.Reason, "disabled") || !strings.Contains(gw.Fix, "enable") {
			t.Errorf("gateway: got %s %q fix %q, want ✗ disabled, fix enable", gw.Status, gw.Reason, gw.Fix)
		}
	})

	t.Run("audit log", func(t *testing.T) {
		b, err := os.ReadFile(filepath.Join(e.srv.dir, AuditFile))
		if err != nil {
			t.Fatal(err)
		}
		var checks []AuditEntry
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var a AuditEntry
			if err := json.Unmarshal([]byte(l), &a); err != nil {
				t.Fatalf("audit line %q: %v", l, err)
			}
			if a.Action == "rule.check" {
				checks = append(checks, a)
			}
		}
		// Eight checks ran; refusals (401, 403, 404, 415, 422) are not
		// actions.
		if len(checks) != 8 {
			t.Fatalf("got %d rule.check entries, want 8: %+v", len(checks), checks)
		}
		first, down := checks[0], checks[6]
		if first.Who != "owner" || first.Target != "cam-web" || !first.OK || first.From != "127.0.0.1" || first.Detail != "2 ok, 0 failed, 1 unknown" {
			t.Errorf("got %+v, want owner checking cam-web from 127.0.0.1: 2 ok, 0 failed, 1 unknown", first)
		}
		if !strings.Contains(checks[1].Detail, "public_ip 100.64.7.9") || !strings.Contains(down.Detail, "1 failed") {
			t.Errorf("got details %q and %q, want the given public_ip and the failure counted", checks[1].Detail, down.Detail)
		}
	})
}

func TestRuleCheckLimits(t *testing.T) {
	e := newEnv(t, envOpts{})
	c := e.owner()
	const path = "/api/v1/rules/dvr-web/check"
	// A disabled rule checks fastest: no socket table to read.
	c.must(200, "POST", "/api/v1/rules/dvr-web/disable", nil)
	for range checkBurst {
		c.must(200, "POST", path, nil)
	}
	r := c.must(429, "POST", path, nil)
	if r.header.Get("Retry-After") != "5" || !strings.Contains(r.body["error"].(string), "too many rule checks") {
		t.Fatalf("got Retry-After %q %s, want 5 and a refusal", r.header.Get("Retry-After"), r.raw)
	}
	e.clock.Add(checkRefill)
	c.must(200, "POST", path, nil)
	c.must(429, "POST", path, nil)

	// At most checkParallel at once, gateway-wide.
	e.clock.Add(time.Hour)
	for range checkParallel {
		e.srv.checking <- struct{}{}
	}
	r = c.must(429, "POST", path, nil)
	if !strings.Contains(r.body["error"].(string), "running already") {
		t.Fatalf("got %s, want a refusal naming the running checks", r.raw)
	}
	for range checkParallel {
		<-e.srv.checking
	}
	c.must(200, "POST", path, nil)
}

func TestCheckLimiter(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	l := newCheckLimiter()
	a := netip.MustParseAddr("2001:db8:1:2::10")
	for i := range checkBurst {
		if w := l.take(a, now); w != 0 {
			t.Fatalf("check %d: got wait %s, want 0 within the burst", i+1, w)
		}
	}
	// Another address in the same /64 shares the bucket; another /64 and
	// another IPv4 address do not.
	if w := l.take(netip.MustParseAddr("2001:db8:1:2::99"), now); w != checkRefill {
		t.Fatalf("same /64: got wait %s, want %s", w, checkRefill)
	}
	if w := l.take(netip.MustParseAddr("2001:db8:1:3::10"), now); w != 0 {
		t.Fatalf("other /64: got wait %s, want 0", w)
	}
	if w := l.take(netip.MustParseAddr("192.0.2.1"), now); w != 0 {
		t.Fatalf("IPv4: got wait %s, want 0", w)
	}
	if w := l.take(a, now.Add(2*time.Second)); w != 3*time.Second {
		t.Fatalf("after 2 s: got wait %s, want 3s", w)
	}
	if w := l.take(a, now.Add(checkRefill)); w != 0 {
		t.Fatalf("after %s: got wait %s, want 0", checkRefill, w)
	}
	// Memory stays bounded under a spray of sources.
	for i := range maxCheckSources + 50 {
		l.take(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), now.Add(time.Duration(i)*time.Millisecond))
	}
	if n := len(l.m); n > maxCheckSources {
		t.Fatalf("got %d buckets, want at most %d", n, maxCheckSources)
	}
}
