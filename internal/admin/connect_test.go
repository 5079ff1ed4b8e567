package admin

import (
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/camgate/camgate/internal/router"
)

// decodeQR reads a QR code PNG with zbarimg, a real decoder.
func decodeQR(t *testing.T, png []byte) string {
	t.Helper()
	bin, err := exec.LookPath("zbarimg")
	if err != nil {
		t.Skip("zbarimg is not installed (apt-get install zbar-tools)")
	}
	f := filepath.Join(t.TempDir(), "qr.png")
	if err := os.WriteFile(f, png, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "--raw", "-q", f).Output()
	if err != nil {
		t.Fatalf("zbarimg: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// TestConnectCard checks the Connect card's addresses, advice and QR
// codes: the router's WAN address and camgate's LAN address come from
// the router client, the URLs carry the rules' real external ports, the
// mapped rule needs nothing while the others are to be forwarded by hand
// or opened with one click, and each QR code decodes (zbarimg) to its URL.
func TestConnectCard(t *testing.T) {
	rs := &routerStandIn{st: router.Status{Mode: "natpmp", Protocol: "natpmp",
		ExternalIP: netip.MustParseAddr("198.18.0.10"), LocalAddress: netip.MustParseAddr("192.168.1.20")}}
	e := newEnv(t, envOpts{router: rs, yaml: `router:
  mode: natpmp
devices:
  - name: dvr
    address: 127.0.0.2
    channels: [101, 102, 201]
`})
	c := e.owner()
	rtspPort, webPort := freePort(t), freePort(t)
	c.must(201, "POST", "/api/v1/rules", map[string]any{"name": "dvr-rtsp", "external_port": rtspPort,
		"internal_ip": "127.0.0.2", "internal_port": 554, "device": "dvr"})
	c.must(201, "POST", "/api/v1/rules", map[string]any{"name": "dvr-http", "external_port": webPort,
		"internal_ip": "127.0.0.2", "internal_port": 80, "device": "dvr", "router": true})
	rs.mu.Lock()
	rs.st.Mappings = []router.Mapping{{Rule: "dvr-http", Protocol: "tcp", ExternalPort: uint16(webPort), State: router.StateMapped}}
	rs.mu.Unlock()

	var v connectView
	if err := json.Unmarshal(c.must(200, "GET", "/api/v1/connect", nil).raw, &v); err != nil {
		t.Fatal(err)
	}
	if v.Public.Host != "198.18.0.10" || v.Public.Source != "router" {
		t.Fatalf("public: got %+v, want 198.18.0.10 from the router", v.Public)
	}
	if v.LANAddress != "192.168.1.20" || v.RouterProtocol != "natpmp" {
		t.Fatalf("got lan %q router %q, want 192.168.1.20 natpmp", v.LANAddress, v.RouterProtocol)
	}
	rules := map[string]connectRule{}
	for _, r := range v.Rules {
		rules[r.Name] = r
	}
	rp := strconv.Itoa(rtspPort)
	rtsp := rules["dvr-rtsp"]
	wantURLs := []string{"rtsp://198.18.0.10:" + rp + "/Streaming/Channels/101",
		"rtsp://198.18.0.10:" + rp + "/Streaming/Channels/102", "rtsp://198.18.0.10:" + rp + "/Streaming/Channels/201"}
	if len(rtsp.URLs) != len(wantURLs) {
		t.Fatalf("dvr-rtsp urls: got %+v, want %v", rtsp.URLs, wantURLs)
	}
	for i, u := range rtsp.URLs {
		if u.URL != wantURLs[i] {
			t.Errorf("dvr-rtsp url %d: got %s, want %s", i, u.URL, wantURLs[i])
		}
	}
	if want := "forward " + rp + "/tcp on your router to 192.168.1.20"; !strings.HasPrefix(rtsp.Advice, want) || !rtsp.CanOpenRouter || rtsp.Mapped {
		t.Errorf("dvr-rtsp: got advice %q can_open %v mapped %v, want %q, true, false", rtsp.Advice, rtsp.CanOpenRouter, rtsp.Mapped, want)
	}
	web := rules["dvr-http"]
	if len(web.URLs) != 1 || web.URLs[0].URL != "http://198.18.0.10:"+strconv.Itoa(webPort)+"/" {
		t.Errorf("dvr-http urls: got %+v", web.URLs)
	}
	if !web.Mapped || web.CanOpenRouter || !strings.Contains(web.Advice, "nothing to do") {
		t.Errorf("dvr-http: got mapped %v can_open %v advice %q, want the router to hold it", web.Mapped, web.CanOpenRouter, web.Advice)
	}
	if !strings.Contains(v.Advice, rp+"/tcp") || strings.Contains(v.Advice, strconv.Itoa(webPort)+"/tcp") {
		t.Errorf("card advice: got %q, want %s/tcp and not the mapped port", v.Advice, rp)
	}
	var cam *connectCamera
	for i := range v.Cameras {
		if v.Cameras[i].Name == "dvr" {
			cam = &v.Cameras[i]
		}
	}
	if cam == nil || len(cam.URLs) != 4 {
		t.Fatalf("camera dvr: got %+v, want its 3 RTSP URLs and its web page", cam)
	}

	for _, u := range append(rtsp.URLs, web.URLs...) {
		r := c.must(200, "GET", u.QR, nil)
		if ct := r.header.Get("Content-Type"); ct != "image/png" {
			t.Fatalf("%s: got %s, want image/png", u.QR, ct)
		}
		if got := decodeQR(t, r.raw); got != u.URL {
			t.Errorf("QR %s decodes to %q, want %q", u.QR, got, u.URL)
		}
	}
	// "Let camgate open the router", as connect.js does it: the rule as
	// GET shows it, less its view-only fields, with router: true, under
	// its ETag.
	g := c.must(200, "GET", "/api/v1/rules/dvr-rtsp", nil)
	body := g.body
	delete(body, "etag")
	delete(body, "effective")
	body["router"] = true
	c.must(200, "PUT", "/api/v1/rules/dvr-rtsp", body, "If-Match", g.header.Get("ETag"))
	c.must(412, "PUT", "/api/v1/rules/dvr-rtsp", body, "If-Match", g.header.Get("ETag"))
	if r := e.site.Config().Rule("dvr-rtsp"); !r.Router || r.ExternalPort.First != uint16(rtspPort) {
		t.Fatalf("after the click: got router %v port %v, want router: true and the port unchanged", r.Router, r.ExternalPort)
	}
	json.Unmarshal(c.must(200, "GET", "/api/v1/connect", nil).raw, &v)
	for _, r := range v.Rules {
		if r.Name == "dvr-rtsp" && (!r.Router || r.CanOpenRouter) {
			t.Errorf("after the click: got router %v can_open %v, want true, false", r.Router, r.CanOpenRouter)
		}
	}

	c.must(404, "GET", "/api/v1/connect/qr?rule=nope", nil)
	c.must(404, "GET", "/api/v1/connect/qr?rule=dvr-rtsp&channel=999", nil)
	e.client().must(401, "GET", "/api/v1/connect", nil)
}

// TestConnectPublicHost checks where the public address comes from: the
// DDNS name wins, then the router's WAN address, then public_ip.
func TestConnectPublicHost(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, host, source string
		router                   bool
	}{
		{"config", "public_ip: 198.18.0.20\n", "198.18.0.20", "config", false},
		{"router over config", "public_ip: 198.18.0.20\nrouter:\n  mode: upnp\n", "198.18.0.10", "router", true},
		{"ddns over router", "public_ip: 198.18.0.20\nrouter:\n  mode: upnp\nddns:\n  provider: duckdns\n  hostname: mycams.duckdns.org\n  token_file: /dev/null\n", "mycams.duckdns.org", "ddns", true},
		{"unknown", "", "", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := envOpts{yaml: tc.yaml}
			if tc.router {
				o.router = &routerStandIn{st: router.Status{Mode: "upnp", Protocol: "upnp", ExternalIP: netip.MustParseAddr("198.18.0.10")}}
			}
			e := newEnv(t, o)
			var v connectView
			json.Unmarshal(e.owner().must(200, "GET", "/api/v1/connect", nil).raw, &v)
			if v.Public.Host != tc.host || v.Public.Source != tc.source {
				t.Fatalf("got %+v, want host %q from %q", v.Public, tc.host, tc.source)
			}
			if tc.host == "" && !strings.Contains(v.Rules[0].Advice, "does not know the public address") {
				t.Errorf("advice: got %q, want a word on the unknown public address", v.Rules[0].Advice)
			}
		})
	}
}
