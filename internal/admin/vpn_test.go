package admin

import (
	"encoding/base64"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/vpn"
)

// vpnAdapter is what cmd/camgate's vpnService does: a *vpn.Server as the
// API's VPN.
type vpnAdapter struct{ *vpn.Server }

func (a vpnAdapter) Status() (vpn.Status, error) { return a.Server.Status(), nil }

func (a vpnAdapter) Prober() (VPNProber, error) { return a.Server, nil }

// TestVPNPeersAPI: add a person (config, QR PNG, one-time link), list,
// refuse bad input per field, revoke; the QR link works once.
func TestVPNPeersAPI(t *testing.T) {
	srv, err := vpn.New(vpn.Config{StateDir: t.TempDir(), AnyPort: true}, &config.Config{
		Version: 1, Devices: []config.Device{{Name: "dvr1", Address: "192.0.2.64"}},
		VPN: config.VPN{Enabled: true, Endpoint: "cams.example.org"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	e := newEnv(t, envOpts{vpn: vpnAdapter{srv}, yaml: "devices:\n  - {name: dvr1, address: 192.0.2.64}\n"})
	c := e.owner()

	r := c.must(http.StatusOK, "GET", "/api/v1/vpn", nil)
	if r.body["enabled"] != true || len(r.body["devices"].([]any)) != 1 {
		t.Fatalf("GET /api/v1/vpn: %s", r.raw)
	}
	r = c.must(http.StatusCreated, "POST", "/api/v1/vpn/peers", map[string]any{"name": "alice", "allow": []string{"dvr1"}})
	conf, _ := r.body["config"].(string)
	if !strings.Contains(conf, "AllowedIPs = 192.0.2.64/32") || !strings.Contains(conf, "Endpoint = cams.example.org:51820") {
		t.Fatalf("config: %q", conf)
	}
	png, err := base64.StdEncoding.DecodeString(r.body["qr_png"].(string))
	if err != nil || !strings.HasPrefix(string(png), "\x89PNG") {
		t.Fatalf("qr_png is not a PNG: %v", err)
	}
	link := r.body["qr_url"].(string)
	anon := e.client() // the link needs no login: its token is the secret
	for i, want := range []int{http.StatusOK, http.StatusNotFound} {
		resp, err := anon.hc.Get(e.ts.URL + link)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want || want == 200 && string(b) != string(png) {
			t.Fatalf("QR link, fetch %d: got %d, want %d", i+1, resp.StatusCode, want)
		}
	}

	for _, tc := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"name": "Bad Name", "allow": []string{"dvr1"}}, "name"},
		{map[string]any{"name": "bob", "allow": []string{"nvr9"}}, "allow"},
		{map[string]any{"name": "bob", "allow": []string{"dvr1"}, "expires": "soon"}, "expires"},
		{map[string]any{"name": "bob", "allow": []string{"dvr1"}, "endpoint": "x\n[Peer]"}, "endpoint"},
	} {
		r := c.must(http.StatusUnprocessableEntity, "POST", "/api/v1/vpn/peers", tc.body)
		if !strings.Contains(string(r.raw), `"field": "`+tc.field+`"`) {
			t.Errorf("%v: want a problem on %s, got %s", tc.body, tc.field, r.raw)
		}
	}
	c.must(http.StatusConflict, "POST", "/api/v1/vpn/peers", map[string]any{"name": "alice", "allow": []string{"dvr1"}})

	r = c.must(http.StatusOK, "GET", "/api/v1/vpn", nil)
	if !strings.Contains(string(r.raw), `"name": "alice"`) {
		t.Fatalf("list: %s", r.raw)
	}
	c.must(http.StatusNoContent, "DELETE", "/api/v1/vpn/peers/alice", nil)
	c.must(http.StatusNotFound, "DELETE", "/api/v1/vpn/peers/alice", nil)
}

// TestVPNOff: without a VPN the page says so and writes are refused.
func TestVPNOff(t *testing.T) {
	e := newEnv(t, envOpts{})
	c := e.owner()
	if r := c.must(http.StatusOK, "GET", "/api/v1/vpn", nil); r.body["enabled"] != false {
		t.Fatalf("got %s", r.raw)
	}
	c.must(http.StatusConflict, "POST", "/api/v1/vpn/peers", map[string]any{"name": "a", "allow": []string{"x"}})
	c.must(http.StatusConflict, "POST", "/api/v1/vpn/probe", map[string]any{})
}

// TestVPNProbeAPI: a probe identity is handed out to an authenticated
// client only, is not a peer, and ends on DELETE; bad TTLs are refused.
func TestVPNProbeAPI(t *testing.T) {
	srv, err := vpn.New(vpn.Config{StateDir: t.TempDir(), AnyPort: true}, &config.Config{
		Version: 1, Devices: []config.Device{{Name: "dvr1", Address: "192.0.2.64"}},
		VPN: config.VPN{Enabled: true, Endpoint: "cams.example.org"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	e := newEnv(t, envOpts{vpn: vpnAdapter{srv}, yaml: "devices:\n  - {name: dvr1, address: 192.0.2.64}\n"})
	if r := e.client().do("POST", "/api/v1/vpn/probe", map[string]any{}); r.status != http.StatusUnauthorized {
		t.Fatalf("anonymous probe: got %d, want 401", r.status)
	}
	c := e.owner()
	r := c.must(http.StatusCreated, "POST", "/api/v1/vpn/probe", map[string]any{"ttl_seconds": 30})
	id, _ := r.body["id"].(string)
	if id == "" || r.body["server_public_key"] != srv.PublicKey().String() || r.body["private_key"] == "" || r.body["listen_port"] == float64(0) {
		t.Fatalf("probe: %s", r.raw)
	}
	if _, err := vpn.ParseKey(r.body["private_key"].(string)); err != nil {
		t.Fatalf("private_key: %v", err)
	}
	st := c.must(http.StatusOK, "GET", "/api/v1/vpn", nil)
	if strings.Contains(string(st.raw), `"name"`) || !strings.Contains(string(st.raw), `"probes": 1`) {
		t.Fatalf("a probe must be counted, never listed as a peer: %s", st.raw)
	}
	c.must(http.StatusNoContent, "DELETE", "/api/v1/vpn/probe/"+id, nil)
	c.must(http.StatusNotFound, "DELETE", "/api/v1/vpn/probe/"+id, nil)
	if srv.Status().Probes != 0 {
		t.Fatal("the probe outlived its DELETE")
	}
	for _, ttl := range []int{-1, 61} {
		r := c.must(http.StatusUnprocessableEntity, "POST", "/api/v1/vpn/probe", map[string]any{"ttl_seconds": ttl})
		if !strings.Contains(string(r.raw), "ttl_seconds") {
			t.Errorf("ttl %d: %s", ttl, r.raw)
		}
	}
}
