package sim

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestFileApply(t *testing.T) {
	f, err := ParseFile([]byte(`
version: 1
profile: vulnerable
listen: 127.0.0.1
advertise: 198.19.0.64
interfaces: [eth0]
user: installer
https: true
ports: {http: 80, https: -1, rtsp: 0, sdk: 8001}
device:
  name: Shop DVR
  mac: 44-19-b6-00-00-01
  build: "200101"
  activated: true
  analog_channels: 16
lockout: {max_failures: 3, duration: 10m}
`))
	if err != nil {
		t.Fatal(err)
	}
	if f.Profile != "vulnerable" {
		t.Fatalf("profile: got %q", f.Profile)
	}
	cfg := Config{Ports: ProfileDefault.Ports()}
	if err := f.Apply(&cfg); err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"listen", cfg.Listen, netip.MustParseAddr("127.0.0.1")},
		{"advertise", cfg.Advertise, netip.MustParseAddr("198.19.0.64")},
		{"interfaces", strings.Join(cfg.MulticastInterfaces, ","), "eth0"},
		{"user", cfg.User, "installer"},
		{"https", *cfg.HTTPSEnabled, true},
		{"http port", cfg.Ports.HTTP, 80},
		{"https port", cfg.Ports.HTTPS, -1},
		{"rtsp port", cfg.Ports.RTSP, 0},
		{"sdk port", cfg.Ports.SDK, 8001},
		{"sadp port (kept)", cfg.Ports.SADP, 37020},
		{"name", cfg.Identity.DeviceName, "Shop DVR"},
		{"mac", cfg.Identity.MAC.String(), "44:19:b6:00:00:01"},
		{"build", cfg.Identity.FirmwareBuild, "200101"},
		{"activated", *cfg.Identity.Activated, true},
		{"analog", cfg.Identity.AnalogChannels, 16},
		{"max failures", cfg.MaxFailedLogins, 3},
		{"lock duration", cfg.LockDuration, 10 * time.Minute},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestFileRejects(t *testing.T) {
	tests := []struct {
		name, yaml, want string
		apply            bool
	}{
		{"unknown key", "version: 1\nlisten: 0.0.0.0\npasword: x\n", "line 3: field pasword not found", false},
		{"unknown nested key", "ports:\n  htp: 80\n", "field htp not found", false},
		{"version", "version: 2\n", "version 2", false},
		{"profile", "profile: cheap\n", `profile "cheap"`, false},
		{"bad address", "listen: 1.2.3\n", "listen:", true},
		{"bad port", "ports: {rtsp: 70000}\n", "ports.rtsp: 70000", true},
		{"bad mac", "device: {mac: zz}\n", "device.mac", true},
		{"tls half", "tls: {cert: a.pem}\n", "set both cert and key", true},
		{"every problem", "listen: x\nadvertise: y\n", "advertise", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := ParseFile([]byte(tc.yaml))
			if !tc.apply {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("got %v, want an error containing %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var cfg Config
			if err := f.Apply(&cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestReadPasswordFile(t *testing.T) {
	dir := t.TempDir()
	tests := []struct{ content, want, err string }{
		{"s3cret-Pass\n", "s3cret-Pass", ""},
		{"with space \r\nsecond line", "with space ", ""},
		{"\n", "", "empty"},
	}
	for i, tc := range tests {
		p := filepath.Join(dir, string(rune('a'+i)))
		os.WriteFile(p, []byte(tc.content), 0o600)
		got, err := ReadPasswordFile(p)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: got %v, want error %q", tc.content, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: got %q, %v; want %q", tc.content, got, err, tc.want)
		}
	}
}
