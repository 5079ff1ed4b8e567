package config

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestReleaseConfigs: a config written for an earlier release loads with
// today's code without a problem, keeps the meaning of every field it
// sets, and survives the rewrite the web UI does (upgrade safety, issue
// 18).
func TestReleaseConfigs(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "release-*.yaml"))
	if len(files) == 0 {
		t.Fatal("no testdata/release-*.yaml")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := Load(data)
			if err != nil {
				t.Fatalf("a config from an earlier release no longer loads:\n%v", err)
			}
			out, err := MarshalKeeping(data, cfg)
			if err != nil {
				t.Fatal(err)
			}
			again, err := Load(out)
			if err != nil {
				t.Fatalf("the rewritten config does not load:\n%v\n%s", err, out)
			}
			a, _ := Marshal(cfg)
			b, _ := Marshal(again)
			if string(a) != string(b) {
				t.Errorf("the rewrite changed the config's meaning:\n%s\nwant:\n%s", b, a)
			}
		})
	}
}

// TestRelease01Fields spot-checks that the 0.1 file's settings still mean
// what they meant: a field that a later release silently ignored would
// load without a problem and still break the gateway.
func TestRelease01Fields(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "release-0.1.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(data)
	if err != nil {
		t.Fatal(err)
	}
	https, rtsp, rtp := cfg.Rule("dvr-https"), cfg.Rule("dvr-rtsp"), cfg.Rule("rtp")
	if https == nil || rtsp == nil || rtp == nil || cfg.Rule("dvr-web") == nil {
		t.Fatalf("rules: got %d, want dvr-https, dvr-rtsp, dvr-web and rtp", len(cfg.Rules))
	}
	tests := []struct {
		name      string
		got, want any
	}{
		{"state_dir", cfg.StateDir, "/var/lib/camgate"},
		{"public_ip", cfg.PublicIP, "203.0.113.7"},
		{"limits.max_connections_per_ip", cfg.Limits.MaxConnectionsPerIP, 64},
		{"admin.listen", cfg.Admin.Listen, "0.0.0.0:8443"},
		{"admin.session_ttl", cfg.Admin.SessionTTL.D(), 12 * time.Hour},
		{"router.mode", cfg.Router.EffectiveMode(), RouterAuto},
		{"router.lease", cfg.Router.Lease.D(), 2 * time.Hour},
		{"dvr-https guard.auth", https.Guard.Auth, true},
		{"dvr-https guard.ban", https.Guard.Ban.D(), time.Hour},
		{"dvr-https tls", https.TLS.Terminate(), true},
		{"dvr-https router", https.Router, true},
		{"dvr-rtsp guard: [auth]", rtsp.Guard.Auth, true},
		{"dvr-rtsp deny", len(rtsp.Deny), 1},
		{"rtp protocol", rtp.Proto(), Both},
		{"rtp external_port", rtp.ExternalPort.String(), "10000-10009"},
		{"rtp enabled", rtp.IsEnabled(), false},
		{"rtp udp_max_sessions", rtp.UDPMaxSessions, 256},
		{"devices", len(cfg.Devices), 1},
		{"ddns.provider", cfg.DDNS.EffectiveProvider(), DDNSNoIP},
		{"ddns.password_file", cfg.DDNS.PasswordFile, "/etc/camgate/ddns-password"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, tt.got, tt.want)
		}
	}
}
