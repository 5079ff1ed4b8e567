package check

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/portowner"
)

// proxy plays camgate's listener in this process: it forwards every
// connection on a fresh 127.0.0.1 port to target.
func proxy(t *testing.T, target string) uint16 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				d, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer d.Close()
				go io.Copy(d, c)
				io.Copy(c, d)
			}()
		}
	}()
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

func port(addr string) uint16 {
	ap := netip.MustParseAddrPort(addr)
	return ap.Port()
}

func loopbackConfig(t *testing.T, yaml string) *config.Config {
	t.Helper()
	cfg, err := config.Load([]byte(yaml))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, yaml)
	}
	return cfg
}

func find(t *testing.T, rep Report, rule string, layer Layer, proto string) Result {
	t.Helper()
	for _, rr := range rep.Rules {
		if rr.Rule != rule {
			continue
		}
		for _, r := range rr.Results {
			if r.Layer == layer && r.Protocol == proto {
				return r
			}
		}
	}
	t.Fatalf("no %s/%s result for rule %s in %+v", layer, proto, rule, rep)
	return Result{}
}

func TestRunLoopback(t *testing.T) {
	device := serve(t, httpAnswer(hikRoot))
	gw := proxy(t, device)
	dead := closedPort(t, "tcp")
	deadExt := port(closedPort(t, "tcp"))
	cfg := loopbackConfig(t, fmt.Sprintf(`version: 1
listen_address: 127.0.0.1
public_ip: 100.64.1.2
rules:
  - {name: dvr-web, protocol: tcp, external_port: %d, internal_ip: 127.0.0.1, internal_port: %d}
  - {name: dvr-rtsp, protocol: tcp, external_port: %d, internal_ip: 127.0.0.1, internal_port: %d}
  - {name: off, protocol: tcp, external_port: 9, internal_ip: 127.0.0.1, enabled: false}
`, gw, port(device), deadExt, port(dead)))

	rep, err := Run(context.Background(), Config{Timeout: 2 * time.Second}, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rules) != 2 {
		t.Fatalf("got %d rules, want the 2 enabled ones", len(rep.Rules))
	}
	tests := []struct {
		rule   string
		layer  Layer
		status Status
		reason string
	}{
		{"dvr-web", LayerGateway, OK, "camgate (this process"},
		{"dvr-web", LayerInside, OK, "Hikvision web server"},
		{"dvr-web", LayerLogin, OK, "not locked"},
		{"dvr-web", LayerOutside, Fail, "carrier-grade NAT (CGNAT"},
		{"dvr-rtsp", LayerGateway, Fail, "connection refused"},
		{"dvr-rtsp", LayerInside, Fail, "refused the connection"},
		{"dvr-rtsp", LayerOutside, Fail, "carrier-grade NAT"},
	}
	for _, tt := range tests {
		got := find(t, rep, tt.rule, tt.layer, "tcp")
		if got.Status != tt.status || !strings.Contains(got.Reason, tt.reason) {
			t.Errorf("%s %s: got %s %q, want %s containing %q", tt.rule, tt.layer, got.Status, got.Reason, tt.status, tt.reason)
		}
		if got.Status == Fail && got.Fix == "" {
			t.Errorf("%s %s: ✗ without a fix", tt.rule, tt.layer)
		}
	}
	if !rep.HasFailures() || rep.OK != 3 || rep.Failed != 4 {
		t.Errorf("got %d ✓ %d ✗ %d ?, want 3 ✓ 4 ✗", rep.OK, rep.Failed, rep.Unknown)
	}
	if rep.Public.Source != "config" || rep.Public.Class != ClassCGNAT {
		t.Errorf("public address: got %+v, want CGNAT from the config", rep.Public)
	}

	var buf bytes.Buffer
	if err := rep.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	text := buf.String()
	for _, want := range []string{"dvr-web", "gateway", "✓ camgate", "✗ the device at 127.0.0.1 refused", "fix: ", "VPN", "3 ✓  4 ✗  0 ?"} {
		if !strings.Contains(text, want) {
			t.Errorf("text output lacks %q:\n%s", want, text)
		}
	}
	js, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js, &back); err != nil || back.Failed != 4 || back.Rules[0].Results[1].Details["http_status"] != "302" {
		t.Errorf("JSON round trip: got %+v, %v from %s", back, err, js)
	}

	// A disabled rule named explicitly is checked, and its gateway layer
	// says it is disabled.
	rep, err = Run(context.Background(), Config{Timeout: time.Second}, cfg, []string{"off"})
	if err != nil {
		t.Fatal(err)
	}
	if got := find(t, rep, "off", LayerGateway, "tcp"); got.Status != Fail || !strings.Contains(got.Fix, "camgate rule enable off") {
		t.Errorf("disabled rule: got %+v", got)
	}
	_, err = Run(context.Background(), Config{}, cfg, []string{"dvr-web", "nope"})
	if !errors.Is(err, ErrUnknownRule) || !strings.Contains(err.Error(), "nope") {
		t.Errorf("unknown rule: got %v, want ErrUnknownRule naming it", err)
	}
}

func TestPublicAddressOrder(t *testing.T) {
	router := func(ip string, err error) func(context.Context) (netip.Addr, error) {
		return func(context.Context) (netip.Addr, error) {
			if err != nil {
				return netip.Addr{}, err
			}
			return netip.MustParseAddr(ip), nil
		}
	}
	tests := []struct {
		name       string
		flag       string
		router     func(context.Context) (netip.Addr, error)
		config     string
		wantIP     string
		wantSource string
		wantNote   string
		wantRouter string
	}{
		{"flag wins", "8.8.4.4", router("9.9.9.9", nil), "1.1.1.1", "8.8.4.4", "flag", "router reports 9.9.9.9", ""},
		{"router next", "", router("9.9.9.9", nil), "1.1.1.1", "9.9.9.9", "router", "", ""},
		{"config last", "", router("", errors.New("no router answered")), "1.1.1.1", "1.1.1.1", "config", "", "no router answered"},
		{"nothing", "", nil, "", "invalid IP", "", "--public-ip", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Config{RouterWAN: tt.router}
			if tt.flag != "" {
				c.PublicIP = netip.MustParseAddr(tt.flag)
			}
			r := &runner{c: c, cfg: &config.Config{PublicIP: tt.config}}
			pa := r.publicAddress(context.Background())
			if pa.IP.String() != tt.wantIP || pa.Source != tt.wantSource || !strings.Contains(pa.Note, tt.wantNote) || pa.RouterError != tt.wantRouter {
				t.Errorf("got %+v, want %s from %q (note %q, router error %q)", pa, tt.wantIP, tt.wantSource, tt.wantNote, tt.wantRouter)
			}
		})
	}
}

// TestOutsideLayer drives layer 3 against loopback standing in for a
// public address.
func TestOutsideLayer(t *testing.T) {
	device := serve(t, httpAnswer(hikRoot))
	other := serve(t, httpAnswer("HTTP/1.1 200 OK\r\nServer: RouterOS\r\nContent-Length: 0\r\n\r\n"))
	lo := netip.MustParseAddr("127.0.0.1")
	rule := func(ext uint16) *config.Rule {
		return &config.Rule{Name: "dvr-web", ExternalPort: config.PortRange{First: ext, Last: ext}, InternalIP: "127.0.0.1",
			InternalPort: config.PortRange{First: port(device), Last: port(device)}}
	}
	insideOK := func(r *runner, rl *config.Rule) Result {
		return r.insideLayer(context.Background(), rl, "tcp", KindHTTP, "test")
	}
	tests := []struct {
		name   string
		ext    uint16
		from   From
		inside func(*runner, *config.Rule) Result
		status Status
		reason string
	}{
		{"hairpin works", proxy(t, device), From{}, insideOK, OK, "through the router (hairpin): answered HTTP 302"},
		{"hairpin refused", port(closedPort(t, "tcp")), From{}, insideOK, Unknown, "do not support hairpin NAT"},
		{"outside vantage refused", port(closedPort(t, "tcp")), From{Netns: "/proc/self/ns/net"}, insideOK, Fail, "not reachable from network namespace"},
		{"bound source", proxy(t, device), From{Addr: lo}, insideOK, OK, "from source address 127.0.0.1"},
		{"someone else answers", port(other), From{}, insideOK, Unknown, "not like the device does from inside"},
		{"device down", port(closedPort(t, "tcp")), From{}, func(*runner, *config.Rule) Result { return Result{Status: Fail} }, Unknown, "as expected while the device itself does not answer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &runner{c: Config{Timeout: 2 * time.Second}, from: tt.from, log: (&Config{}).logger(),
				public: PublicAddress{IP: lo, Class: ClassPublic}}
			rl := rule(tt.ext)
			in := tt.inside(r, rl)
			got := r.outsideLayer(context.Background(), rl, "tcp", KindHTTP, in)
			if got.Status != tt.status || !strings.Contains(got.Reason, tt.reason) {
				t.Errorf("got %s %q, want %s containing %q", got.Status, got.Reason, tt.status, tt.reason)
			}
		})
	}
}

// TestGatewayHeldByOther starts a helper process (this test binary) that
// holds a port, and expects the gateway layer to name it.
func TestGatewayHeldByOther(t *testing.T) {
	if os.Getenv("CAMGATE_CHECK_HOLD_PORT") == "1" {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			os.Exit(1)
		}
		fmt.Println(ln.Addr().(*net.TCPAddr).Port)
		time.Sleep(30 * time.Second)
		os.Exit(0)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestGatewayHeldByOther$")
	cmd.Env = append(os.Environ(), "CAMGATE_CHECK_HOLD_PORT=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	var p int
	if _, err := fmt.Fscan(bufio.NewReader(out), &p); err != nil {
		t.Fatal(err)
	}
	cfg := loopbackConfig(t, fmt.Sprintf("version: 1\nrules:\n  - {name: web, external_port: %d, internal_ip: 127.0.0.1, listen_address: 127.0.0.1}\n", p))
	r := &runner{c: Config{Timeout: time.Second}, cfg: cfg, owners: portowner.NewIndex("/proc"), log: (&Config{}).logger()}
	got := r.gatewayLayer(context.Background(), &cfg.Rules[0], "tcp")
	if os.Geteuid() != 0 && got.Status == OK {
		t.Skipf("cannot see other processes' sockets without root: %s", got.Reason)
	}
	want := fmt.Sprintf("held by another program: check.test (pid %d)", cmd.Process.Pid)
	if got.Status != Fail || !strings.Contains(got.Reason, want) {
		t.Errorf("got %s %q, want ✗ containing %q", got.Status, got.Reason, want)
	}
}

func TestGatewayUDP(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	bound := port(pc.LocalAddr().String())
	free := port(closedPort(t, "udp"))
	for _, tt := range []struct {
		port   uint16
		status Status
		reason string
	}{{bound, OK, "this process"}, {free, Fail, "no UDP socket is bound"}} {
		cfg := loopbackConfig(t, fmt.Sprintf("version: 1\nrules:\n  - {name: rtp, protocol: udp, external_port: %d, internal_ip: 127.0.0.1, listen_address: 127.0.0.1}\n", tt.port))
		r := &runner{c: Config{}, cfg: cfg, owners: portowner.NewIndex("/proc"), log: (&Config{}).logger()}
		got := r.gatewayLayer(context.Background(), &cfg.Rules[0], "udp")
		if got.Status != tt.status || !strings.Contains(got.Reason, tt.reason) {
			t.Errorf("port %d: got %s %q, want %s containing %q", tt.port, got.Status, got.Reason, tt.status, tt.reason)
		}
	}
	// Without a readable socket table, UDP is inconclusive.
	cfg := loopbackConfig(t, fmt.Sprintf("version: 1\nrules:\n  - {name: rtp, protocol: udp, external_port: %d, internal_ip: 127.0.0.1}\n", free))
	r := &runner{c: Config{}, cfg: cfg, owners: portowner.NewIndex(t.TempDir()), log: (&Config{}).logger()}
	if got := r.gatewayLayer(context.Background(), &cfg.Rules[0], "udp"); got.Status != Unknown {
		t.Errorf("no /proc: got %s %q, want ?", got.Status, got.Reason)
	}
}
