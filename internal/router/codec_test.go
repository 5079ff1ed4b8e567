package router

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/config"
)

type tWriter struct{ t testing.TB }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPCPMapRequestLayout(t *testing.T) {
	req := pcpMapRequest{Lifetime: 600, Client: netip.MustParseAddr("198.19.0.64"),
		Nonce: pcpNonce{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, Proto: ipProtoTCP, InternalPort: 18080, SuggestedPort: 18080}
	got := hex.EncodeToString(req.marshal())
	// RFC 6887 §7.1 and §11.1: version 2, opcode MAP, lifetime 600, client
	// ::ffff:198.19.0.64, nonce, TCP, ports 18080, suggested ::ffff:0.0.0.0.
	want := "0201000000000258" + "00000000000000000000ffffc6130040" +
		"0102030405060708090a0b0c" + "06000000" + "46a0" + "46a0" + "00000000000000000000ffff00000000"
	if got != want {
		t.Fatalf("MAP request:\ngot  %s\nwant %s", got, want)
	}
	if got, want := hex.EncodeToString(pcpAnnounce(netip.MustParseAddr("198.19.0.64"))), "020000000000000000000000000000000000ffffc6130040"; got != want {
		t.Fatalf("ANNOUNCE request: got %s, want %s", got, want)
	}
}

// TestParsePCPResponse decodes miniupnpd 2.3.1's answers (captured in
// testdata, see README) and rejects malformed packets with a reason.
func TestParsePCPResponse(t *testing.T) {
	nonce := pcpNonce{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	tests := []struct {
		file      string
		hex       string
		opcode    uint8
		result    pcpResult
		lifetime  uint32
		nonce     pcpNonce
		extPort   uint16
		extIP     string
		wantErr   string
		isVersion bool
	}{
		{file: "miniupnpd-2.3.1-pcp-announce.bin", opcode: pcpOpAnnounce},
		{file: "miniupnpd-2.3.1-pcp-map-success.bin", opcode: pcpOpMap, lifetime: 600, nonce: nonce, extPort: 18080, extIP: "198.18.0.1"},
		{file: "miniupnpd-2.3.1-pcp-delete.bin", opcode: pcpOpMap, nonce: nonce, extPort: 18080, extIP: "198.18.0.1"},
		{file: "miniupnpd-2.3.1-pcp-delete-wrong-nonce.bin", opcode: pcpOpMap, result: pcpNotAuthorized, nonce: pcpNonce{9}, extPort: 18080, extIP: "198.18.0.1"},
		{file: "miniupnpd-2.3.1-pcp-address-mismatch.bin", opcode: pcpOpMap, result: pcpAddressMismatch, nonce: nonce, extPort: 18080, extIP: "0.0.0.0"},
		{hex: "0281", wantErr: "shorter than"},
		{hex: "00810001", wantErr: "NAT-PMP", isVersion: true},
		{hex: "01810001", wantErr: "version 1", isVersion: true},
		{hex: strings.Repeat("00", 24), wantErr: "NAT-PMP", isVersion: true},
		{hex: "02010000" + strings.Repeat("00", 20), wantErr: "is a request"},
		{hex: "0281000000" + strings.Repeat("00", 20), wantErr: "multiple of 4"},
		{hex: "02810000" + strings.Repeat("00", 20), wantErr: "too short for the MAP"},
		{hex: "02810002" + strings.Repeat("00", 20), opcode: pcpOpMap, result: pcpNotAuthorized}, // truncated error answer
		{hex: "02800000" + strings.Repeat("00", 20) + "01000008" + "00000000", wantErr: "claims 8 bytes"},
		{hex: "02800000" + strings.Repeat("00", 20) + "01000004" + "00000000", opcode: pcpOpAnnounce},
		{hex: "02800000" + strings.Repeat("00", 1100), wantErr: "longer than"},
	}
	for _, tc := range tests {
		name := tc.file
		var b []byte
		if name != "" {
			b = readTestdata(t, name)
		} else {
			name = tc.hex[:min(len(tc.hex), 16)]
			var err error
			if b, err = hex.DecodeString(tc.hex); err != nil {
				t.Fatal(err)
			}
		}
		t.Run(name, func(t *testing.T) {
			r, err := parsePCPResponse(b)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tc.wantErr)
				}
				if errors.Is(err, errPCPVersion) != tc.isVersion {
					t.Fatalf("errors.Is(err, errPCPVersion) = %v, want %v", !tc.isVersion, tc.isVersion)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Opcode != tc.opcode || r.Result != tc.result || r.Lifetime != tc.lifetime {
				t.Fatalf("got opcode %d result %s lifetime %d, want %d %s %d", r.Opcode, r.Result, r.Lifetime, tc.opcode, tc.result, tc.lifetime)
			}
			if tc.extIP != "" {
				if r.Nonce != tc.nonce || r.ExternalPort != tc.extPort || r.ExternalIP.String() != tc.extIP {
					t.Fatalf("got nonce %s port %d ip %s, want %s %d %s", r.Nonce, r.ExternalPort, r.ExternalIP, tc.nonce, tc.extPort, tc.extIP)
				}
			}
		})
	}
}

func TestPCPResultStates(t *testing.T) {
	tests := []struct {
		r    pcpResult
		want State
	}{
		{pcpNotAuthorized, StateRefused},
		{pcpCannotProvideExternal, StateConflict},
		{pcpUnsuppOpcode, StateUnsupported},
		{pcpNetworkFailure, StateError},
		{pcpAddressMismatch, StateError},
		{pcpResult(99), StateError},
	}
	for _, tc := range tests {
		if got := tc.r.state(); got != tc.want {
			t.Errorf("%s: got %s, want %s", tc.r, got, tc.want)
		}
		if tc.r.explain() == "" {
			t.Errorf("%s: no explanation", tc.r)
		}
	}
}

func TestEpochLost(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	tests := []struct {
		name      string
		prev, cur uint32
		elapsed   time.Duration
		want      bool
	}{
		{"steady", 1000, 1060, time.Minute, false},
		{"small jitter", 1000, 1062, time.Minute, false},
		{"went back (reboot)", 5000, 10, time.Minute, true},
		{"stood still (reboot an hour ago, same uptime)", 1000, 1000, time.Hour, true},
		{"jumped ahead", 1000, 9000, time.Minute, true},
		{"same second", 1000, 1000, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := epochLost(tc.prev, t0, tc.cur, t0.Add(tc.elapsed)); got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestParseProcNetRoute(t *testing.T) {
	const header = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
	tests := []struct {
		name, table, want string
	}{
		{"one default", header + "eth0\t00000000\t010013C6\t0003\t0\t0\t0\t00000000\t0\t0\t0\n" +
			"eth0\t000013C6\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n", "198.19.0.1"},
		{"lowest metric wins", header + "wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n" +
			"eth0\t00000000\t0100A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n", "192.168.0.1"},
		{"down route ignored", header + "eth0\t00000000\t0100A8C0\t0002\t0\t0\t0\t00000000\t0\t0\t0\n", ""},
		{"no default", header + "eth0\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n", ""},
		{"garbage", header + "x y z\n\t\t\n", ""},
		{"empty", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseProcNetRoute([]byte(tc.table))
			if tc.want == "" {
				if !errors.Is(err, errNoDefaultRoute) {
					t.Fatalf("got %v, %v; want errNoDefaultRoute", got, err)
				}
				return
			}
			if err != nil || got.String() != tc.want {
				t.Fatalf("got %v, %v; want %s", got, err, tc.want)
			}
		})
	}
}

func TestClassifyWAN(t *testing.T) {
	tests := []struct {
		ip     string
		want   WANClass
		advice string
	}{
		{"", WANUnknown, "did not report"},
		{"0.0.0.0", WANUnknown, "did not report"},
		{"100.64.0.1", WANCGNAT, "carrier-grade NAT"},
		{"100.127.255.254", WANCGNAT, "public IPv4"},
		{"100.128.0.1", WANPublic, ""},
		{"10.1.2.3", WANPrivate, "RFC 1918"},
		{"172.16.5.4", WANPrivate, "double NAT"},
		{"192.168.1.1", WANPrivate, "bridge mode"},
		{"198.18.0.1", WANPrivate, "benchmarking"},
		{"192.0.0.2", WANPrivate, "DS-Lite"},
		{"169.254.3.3", WANPrivate, "link-local"},
		{"203.0.113.7", WANPrivate, "documentation"},
		{"81.2.69.142", WANPublic, ""},
		{"2001:db8::1", WANPrivate, "not a public IPv6"}, // documentation range: never routed
		{"fd00::1", WANPrivate, "not a public IPv6"},
		{"::ffff:100.64.1.1", WANCGNAT, "VPN"},
	}
	for _, tc := range tests {
		t.Run(tc.ip, func(t *testing.T) {
			var a netip.Addr
			if tc.ip != "" {
				a = netip.MustParseAddr(tc.ip)
			}
			got, advice := ClassifyWAN(a)
			if got != tc.want || !strings.Contains(advice, tc.advice) || (tc.advice == "") != (advice == "") {
				t.Fatalf("got %s %q, want %s with %q", got, advice, tc.want, tc.advice)
			}
		})
	}
}

func TestParseSSDPReply(t *testing.T) {
	r, err := parseSSDPReply(readTestdata(t, "miniupnpd-2.3.1-ssdp-igd2.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Location != "http://198.19.0.1:5000/rootDesc.xml" || !r.igd2() || !strings.Contains(r.Server, "MiniUPnPd/2.3.1") {
		t.Fatalf("got %+v", r)
	}
	for _, bad := range []string{
		"",
		"NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n\r\n",
		"HTTP/1.1 404 Not Found\r\nLOCATION: http://x/\r\n\r\n",
		"HTTP/1.1 200 OK\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n\r\n",
	} {
		if _, err := parseSSDPReply([]byte(bad)); err == nil {
			t.Errorf("%q: got no error", bad)
		}
	}
}

func TestParseRootDesc(t *testing.T) {
	loc, _ := url.Parse("http://198.19.0.1:5000/rootDesc.xml")
	for _, tc := range []struct {
		file, deviceType, control string
	}{
		{"miniupnpd-2.3.1-rootdesc-igd2.http", "urn:schemas-upnp-org:device:InternetGatewayDevice:2", "http://198.19.0.1:5000/ctl/IPConn"},
		{"miniupnpd-2.3.1-rootdesc-igd1.http", "urn:schemas-upnp-org:device:InternetGatewayDevice:1", "http://198.19.0.1:5000/ctl/IPConn"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			_, body := readCapture(t, tc.file)
			root, err := parseRootDesc(body, loc)
			if err != nil {
				t.Fatal(err)
			}
			if root.Device.DeviceType != tc.deviceType {
				t.Fatalf("device type: got %q, want %q", root.Device.DeviceType, tc.deviceType)
			}
			var controls []string
			for _, s := range root.Device.FindService("urn:schemas-upnp-org:service:WANIPConnection:2") {
				controls = append(controls, s.ControlURL.URL.String())
			}
			for _, s := range root.Device.FindService("urn:schemas-upnp-org:service:WANIPConnection:1") {
				controls = append(controls, s.ControlURL.URL.String())
			}
			if len(controls) != 1 || controls[0] != tc.control {
				t.Fatalf("control URLs: got %q, want [%s]", controls, tc.control)
			}
		})
	}
	// ISO-8859-1 descriptions occur on older routers.
	latin1 := []byte("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><root xmlns=\"urn:schemas-upnp-org:device-1-0\"><device><friendlyName>Box Caf\xe9</friendlyName></device></root>")
	root, err := parseRootDesc(latin1, loc)
	if err != nil || root.Device.FriendlyName != "Box Café" {
		t.Fatalf("latin1: got %v, %v", root, err)
	}
	for _, bad := range []string{"", "<html><body>Login</body></html>", "<root", "<?xml version=\"1.0\" encoding=\"EBCDIC\"?><root/>"} {
		if _, err := parseRootDesc([]byte(bad), loc); err == nil {
			t.Errorf("%q: got no error", bad)
		}
	}
}

func TestRepointURL(t *testing.T) {
	gw := netip.MustParseAddr("192.168.1.1")
	tests := []struct{ in, want, err string }{
		{"http://192.168.1.1:5000/ctl", "http://192.168.1.1:5000/ctl", ""},
		{"http://192.168.1.66:49000/ctl", "http://192.168.1.1:49000/ctl", ""}, // tailscale #5502: repoint
		{"http://evil.example:8080/x", "http://192.168.1.1:8080/x", ""},
		{"http://user:pw@192.168.1.1/x", "http://192.168.1.1:80/x", ""},
		{"https://192.168.1.1/x", "", "only plain http"},
		{"http://192.168.1.1:0/x", "", "bad port"},
		{"file:///etc/passwd", "", "only plain http"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			u, err := repoint(slog.New(slog.DiscardHandler), tc.in, gw)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v, %v; want error %q", u, err, tc.err)
				}
				return
			}
			if err != nil || u.String() != tc.want {
				t.Fatalf("got %v, %v; want %s", u, err, tc.want)
			}
		})
	}
}

// TestRouterConfig checks the router section's defaults and validation
// (the section lives in package config; its tests live here with the
// feature).
func TestRouterConfig(t *testing.T) {
	tests := []struct {
		name, yaml string
		problems   []string // substrings, one per expected problem
	}{
		{"absent is off", "", nil},
		{"auto", "router: {mode: auto}\n", nil},
		{"upper case mode", "router: {mode: PCP, lease: 2h, description_prefix: cctv, gateway: 192.168.1.1, local_address: 192.168.1.20}\n", nil},
		{"bad mode", "router: {mode: upnp2}\n", []string{`router.mode: "upnp2" is not off, auto, upnp, natpmp or pcp`}},
		{"short lease", "router: {mode: auto, lease: 30s}\n", []string{"router.lease: 30s is too short"}},
		{"long lease", "router: {mode: auto, lease: 200h}\n", []string{"router.lease: 200h0m0s is too long"}},
		{"bad prefix", "router: {description_prefix: \"a<b\"}\n", []string{"router.description_prefix"}},
		{"long prefix", "router: {description_prefix: abcdefghijklmnopqrstuvwxyz}\n", []string{"at most 24"}},
		{"bad addresses", "router: {gateway: router.lan, local_address: \"fe80::1\"}\n", []string{
			`router.gateway: "router.lan" is not an IP address`, `router.local_address: "fe80::1" is not an IPv4 address`}},
		{"unknown key", "router: {mode: auto, port: 5000}\n", []string{`unknown key "port"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.Load([]byte("version: 1\n" + tc.yaml + "rules: []\n"))
			probs := config.ProblemsOf(err)
			if len(probs) != len(tc.problems) {
				t.Fatalf("got %d problems %v, want %d %q", len(probs), err, len(tc.problems), tc.problems)
			}
			for i, want := range tc.problems {
				if !strings.Contains(probs[i].Error(), want) {
					t.Errorf("problem %d: got %q, want it to contain %q", i, probs[i].Error(), want)
				}
			}
			if tc.name == "absent is off" {
				r := cfg.Router
				if r.Enabled() || r.LeaseDuration() != time.Hour || r.Prefix() != "camgate" || r.GatewayAddr().IsValid() {
					t.Errorf("defaults: got enabled=%v lease=%v prefix=%q gateway=%v", r.Enabled(), r.LeaseDuration(), r.Prefix(), r.GatewayAddr())
				}
			}
			if tc.name == "upper case mode" && (cfg.Router.EffectiveMode() != config.RouterPCP || cfg.Router.LeaseDuration() != 2*time.Hour) {
				t.Errorf("got mode %q lease %v, want pcp 2h", cfg.Router.EffectiveMode(), cfg.Router.LeaseDuration())
			}
		})
	}
}

func TestStatusJSON(t *testing.T) {
	st := Status{Mode: "auto", Protocol: ProtoPCP, Gateway: netip.MustParseAddr("192.168.1.1"), WAN: WANCGNAT,
		Mappings: []Mapping{{Rule: "dvr-web", Protocol: "tcp", ExternalPort: 8082, InternalPort: 8082, State: StateConflict, SuggestedPort: 8083}}}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"gateway":"192.168.1.1"`, `"state":"conflict"`, `"suggested_port":8083`, `"wan":"cgnat"`} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("JSON %s lacks %s", b, want)
		}
	}
	for _, absent := range []string{"external_ip", "expires", "local_address"} {
		if bytes.Contains(b, []byte(absent)) {
			t.Errorf("JSON %s has zero field %s", b, absent)
		}
	}
	var back Status
	if err := json.Unmarshal(b, &back); err != nil || back.Gateway != st.Gateway || back.Mappings[0].SuggestedPort != 8083 {
		t.Fatalf("round trip: got %+v, %v", back, err)
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
