package audit

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/discover"
	"github.com/camgate/camgate/internal/sim"
)

var lo = netip.MustParseAddr("127.0.0.1")

// startSim runs a simulated device on loopback until the test ends.
func startSim(t *testing.T, cfg sim.Config) *sim.Device {
	t.Helper()
	cfg.Listen = lo
	cfg.Ports.SADP, cfg.Ports.WSDiscovery = -1, -1
	d, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return d
}

// simRules exposes the device's web and SDK ports, from one allowed
// network, so that only device findings differ between tests.
func simRules(t *testing.T, d *sim.Device) string {
	return fmt.Sprintf(`rules:
  - {name: dvr-web, external_port: 18082, internal_ip: 127.0.0.1, internal_port: %d, allow: [203.0.113.0/24]}
`, d.Addr(sim.ServiceHTTP).Port())
}

// deviceIDs lists "id severity" of the device findings.
func deviceIDs(rep Report) []string {
	var out []string
	for _, f := range rep.Findings {
		if strings.HasPrefix(f.ID, "device-") || strings.HasPrefix(f.ID, "rule-plain-http-with") {
			out = append(out, f.ID+" "+string(f.Severity))
		}
	}
	slices.Sort(out)
	return out
}

func TestDeviceFindings(t *testing.T) {
	strong := "Correct-Horse-9"
	tests := []struct {
		name      string
		sim       sim.Config
		creds     *Credentials
		tryDef    bool
		discover  []discover.Device
		want      []string
		wantFails int    // the simulator's failed-login count after the run
		defPw     string // DeviceReport.DefaultPassword prefix
	}{
		{"vulnerable, default password tried", sim.Config{Profile: sim.ProfileVulnerable}, nil, true, nil,
			[]string{"device-cve-2021-36260-possible high", "device-default-password critical", "device-firmware-old low", "device-https-disabled medium"},
			0, "in use"},
		{"vulnerable, not asked to try", sim.Config{Profile: sim.ProfileVulnerable}, nil, false, nil,
			[]string{"device-not-inspected info"}, 0, "not tested: --try-default-password"},
		{"vulnerable, admin/12345 given", sim.Config{Profile: sim.ProfileVulnerable}, &Credentials{"admin", "12345"}, false, nil,
			[]string{"device-cve-2021-36260-possible high", "device-default-password critical", "device-firmware-old low", "device-https-disabled medium"},
			0, "in use"},
		{"password changed, default tried once", sim.Config{Profile: sim.ProfileVulnerable, Password: strong}, nil, true, nil,
			[]string{"device-not-inspected info"}, 1, "not in use"},
		{"right credentials settle the default without a try", sim.Config{Profile: sim.ProfileVulnerable, Password: strong}, &Credentials{"admin", strong}, true, nil,
			[]string{"device-cve-2021-36260-possible high", "device-firmware-old low", "device-https-disabled medium"}, 0, "not in use"},
		{"wrong credentials spend the budget", sim.Config{Profile: sim.ProfileVulnerable}, &Credentials{"admin", "wrong-one"}, true, nil,
			[]string{"device-credentials-rejected info", "device-default-password-untested info", "device-not-inspected info"}, 1, "not tested: a login already failed"},
		{"other user, then one default try", sim.Config{Profile: sim.ProfileVulnerable, User: "viewer", Password: strong}, &Credentials{"viewer", strong}, true, nil,
			[]string{"device-cve-2021-36260-possible high", "device-firmware-old low", "device-https-disabled medium"}, 1, "not in use"},
		{"patched camera", sim.Config{Profile: sim.ProfilePatched, Password: strong}, &Credentials{"admin", strong}, false, nil,
			[]string{"device-firmware-old low", "rule-plain-http-with-https medium"}, 0, "not in use"},
		{"not activated, firmware from SADP", sim.Config{Profile: sim.ProfileVulnerable}, nil, false,
			[]discover.Device{{IP: lo, Model: "DS-7204HQHI-K1", DeviceType: "DVR", Firmware: "V4.22.005build 200318", Activated: new(bool)}},
			[]string{"device-cve-2021-36260-possible high", "device-firmware-old low", "device-not-activated critical"}, 0, "not tested"},
	}
	now := time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := startSim(t, tt.sim)
			cfg := mustConfig(t, simRules(t, d))
			c := Config{Credentials: tt.creds, TryDefaultPassword: tt.tryDef, Now: func() time.Time { return now }, Timeout: 5 * time.Second}
			if tt.discover != nil {
				c.Discover = func(context.Context) ([]discover.Device, error) { return tt.discover, nil }
			}
			rep := Run(context.Background(), c, cfg)
			got := deviceIDs(rep)
			want := slices.Clone(tt.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
			}
			if n := d.TotalFailedLogins(); n != tt.wantFails {
				t.Errorf("the device saw %d failed logins, want %d", n, tt.wantFails)
			}
			if len(rep.Devices) != 1 {
				t.Fatalf("got %d device reports, want 1", len(rep.Devices))
			}
			dr := rep.Devices[0]
			if dr.FailedLogins != tt.wantFails || !strings.HasPrefix(dr.DefaultPassword, tt.defPw) {
				t.Errorf("device report: got %d failed, default password %q; want %d, %q", dr.FailedLogins, dr.DefaultPassword, tt.wantFails, tt.defPw)
			}
		})
	}
}

// TestDeviceLockedOut: when the device already locks this address, the
// audit tries no login at all.
func TestDeviceLockedOut(t *testing.T) {
	d := startSim(t, sim.Config{Profile: sim.ProfileVulnerable, Password: "Another-Pass-7", MaxFailedLogins: 1})
	// One failed login from 127.0.0.1 locks it.
	pre := Run(context.Background(), Config{TryDefaultPassword: true}, mustConfig(t, simRules(t, d)))
	if !d.Locked(lo) {
		t.Fatalf("the device is not locked after %d failed login(s): %+v", d.TotalFailedLogins(), pre.Devices)
	}
	before := d.TotalFailedLogins()
	rep := Run(context.Background(), Config{Credentials: &Credentials{"admin", "Another-Pass-7"}, TryDefaultPassword: true}, mustConfig(t, simRules(t, d)))
	if got := deviceIDs(rep); !slices.Contains(got, "device-locked-out medium") {
		t.Errorf("got %v, want device-locked-out", got)
	}
	if d.TotalFailedLogins() != before || rep.Devices[0].LoginAttempts != 0 {
		t.Errorf("the audit tried %d logins (%d new failures) on a locked device, want none", rep.Devices[0].LoginAttempts, d.TotalFailedLogins()-before)
	}
}

func TestDeviceUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cfg := mustConfig(t, fmt.Sprintf("rules:\n  - {name: dvr-web, external_port: 18082, internal_ip: 127.0.0.1, internal_port: %d, allow: [203.0.113.0/24]}\n", port))
	rep := Run(context.Background(), Config{TryDefaultPassword: true, Timeout: 2 * time.Second}, cfg)
	if got := deviceIDs(rep); !slices.Equal(got, []string{"device-unreachable info"}) {
		t.Errorf("got %v, want only device-unreachable", got)
	}
}
