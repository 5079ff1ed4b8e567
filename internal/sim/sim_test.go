package sim

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"
)

const testPassword = "Sim-Pass-2024"

func loopback() netip.Addr { return netip.MustParseAddr("127.0.0.1") }

// start runs a Device for the test on loopback, with every service on a
// free port, and stops it (checking Run's result) at cleanup.
func start(t testing.TB, cfg Config) *Device {
	t.Helper()
	if !cfg.Listen.IsValid() {
		cfg.Listen = loopback()
	}
	if cfg.Password == "" && cfg.Profile != ProfileVulnerable {
		cfg.Password = testPassword
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	d, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("Run did not return 15s after cancel")
		}
	})
	return d
}

// clientFrom returns an HTTP client whose connections come from src (a
// loopback address), with keep-alives off so every request is a new
// connection.
func clientFrom(src string, rt func(http.RoundTripper) http.RoundTripper) *http.Client {
	tr := &http.Transport{
		DialContext: (&net.Dialer{
			LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)},
			Timeout:   5 * time.Second,
		}).DialContext,
		DisableKeepAlives: true,
	}
	var r http.RoundTripper = tr
	if rt != nil {
		r = rt(tr)
	}
	return &http.Client{Transport: r, Timeout: 10 * time.Second}
}

func TestNewRejects(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"profile", Config{Profile: "nope"}, `profile "nope"`},
		{"build", Config{Identity: Identity{FirmwareBuild: "2021"}}, "firmware build"},
		{"mac", Config{Identity: Identity{MAC: net.HardwareAddr{1, 2}}}, "mac"},
		{"algorithm", Config{DigestAlgorithms: []string{"SHA-512-256"}}, "digest algorithm"},
		{"rtp odd", Config{Ports: Ports{RTP: 50001}}, "must be even"},
		{"interface", Config{Listen: netip.IPv4Unspecified(), MulticastInterfaces: []string{"no-such0"}, Ports: Ports{HTTP: -1, HTTPS: -1, RTSP: -1, RTP: -1, SDK: -1, SDKOverTLS: -1, WebSocket: -1, WSDiscovery: -1}}, "no such interface"},
		{"user", Config{User: "a:b"}, "user"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			if !cfg.Listen.IsValid() {
				cfg.Listen = loopback()
			}
			d, err := New(cfg)
			if err == nil {
				d.Close()
				t.Fatalf("got no error, want one containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestNewBindsAndCloseReleases(t *testing.T) {
	d, err := New(Config{Listen: loopback(), Password: testPassword})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range Services() {
		if !d.Addr(s).IsValid() || d.Addr(s).Port() == 0 {
			t.Errorf("%s: got address %v, want a bound port", s, d.Addr(s))
		}
	}
	if p := d.Addr(ServiceRTP).Port(); p%2 != 0 {
		t.Errorf("rtp port %d is odd", p)
	}
	http := d.Addr(ServiceHTTP)
	d.Close()
	ln, err := net.Listen("tcp", http.String())
	if err != nil {
		t.Fatalf("port not released by Close: %v", err)
	}
	ln.Close()
	if err := d.Run(context.Background()); err != ErrAlreadyRun {
		t.Fatalf("Run after Close: got %v, want ErrAlreadyRun", err)
	}
}

func TestGeneratedPassword(t *testing.T) {
	d, err := New(Config{Listen: loopback(), Ports: allOff()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if p := d.Password(); len(p) != 16 || riskyPassword(p) {
		t.Fatalf("got generated password of %d chars (risky=%v), want a strong 16-char one", len(p), riskyPassword(p))
	}
	v, err := New(Config{Listen: loopback(), Profile: ProfileVulnerable, Ports: allOff()})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if got := v.Password(); got != "12345" {
		t.Fatalf("vulnerable profile password: got %q, want 12345", got)
	}
}

func allOff() Ports {
	return Ports{HTTP: -1, HTTPS: -1, RTSP: -1, RTP: -1, SDK: -1, SDKOverTLS: -1, WebSocket: -1, SADP: -1, WSDiscovery: -1}
}
