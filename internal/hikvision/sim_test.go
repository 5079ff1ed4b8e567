package hikvision_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/hikvision"
	"github.com/camgate/camgate/internal/sim"
)

// startSim runs a simulated DVR on loopback with every service on a free
// port and discovery off, until the test ends.
func startSim(t *testing.T, cfg sim.Config) *sim.Device {
	t.Helper()
	cfg.Listen = netip.MustParseAddr("127.0.0.1")
	cfg.Ports.SADP, cfg.Ports.WSDiscovery = -1, -1
	d, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("sim: %v", err)
		}
	})
	return d
}

func TestSimulatorRead(t *testing.T) {
	d := startSim(t, sim.Config{Password: "Camgate-Test-1"})
	ctx := context.Background()
	for _, tt := range []struct {
		scheme string
		svc    sim.Service
	}{{"http", sim.ServiceHTTP}, {"https", sim.ServiceHTTPS}} {
		t.Run(tt.scheme, func(t *testing.T) {
			c, err := hikvision.New(hikvision.Config{Scheme: tt.scheme, Host: d.Addr(tt.svc).String(),
				Username: d.User(), Password: d.Password(), AcceptSelfSigned: true})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			info, err := c.DeviceInfo(ctx)
			if err != nil {
				t.Fatal(err)
			}
			id := d.Identity()
			if info.Model != id.Model || info.SerialNumber != id.SerialNumber || info.MACAddress != id.MAC.String() ||
				info.FirmwareReleasedDate != id.FirmwareReleasedDate() || info.BuildDate.Format("060102") != id.FirmwareBuild {
				t.Errorf("got %+v, want the simulator's identity %+v", info, id)
			}
			ports, err := c.AdminAccesses(ctx)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]sim.Service{
				hikvision.ProtoHTTP: sim.ServiceHTTP, hikvision.ProtoHTTPS: sim.ServiceHTTPS, hikvision.ProtoRTSP: sim.ServiceRTSP,
				hikvision.ProtoDevManage: sim.ServiceSDK, hikvision.ProtoWebSocket: sim.ServiceWebSocket, hikvision.ProtoSDKOverTLS: sim.ServiceSDKOverTLS,
			}
			for proto, svc := range want {
				if got := ports.Enabled(proto); got != d.Addr(svc).Port() {
					t.Errorf("%s: got port %d, want %d (all: %+v)", proto, got, d.Addr(svc).Port(), ports)
				}
			}
			ifs, err := c.NetworkInterfaces(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(ifs) == 0 || ifs[0].MACAddress != id.MAC.String() {
				t.Errorf("interfaces: got %+v", ifs)
			}
		})
	}
	if n := d.TotalFailedLogins(); n != 0 {
		t.Errorf("reading with the right password cost %d failed logins, want 0", n)
	}
}

// TestSimulatorLockout: seven wrong passwords lock the simulator, one
// credentialed attempt each; after that the client says "locked", also
// for the right password, and never "wrong password".
func TestSimulatorLockout(t *testing.T) {
	d := startSim(t, sim.Config{Password: "Camgate-Test-1"})
	lo := netip.MustParseAddr("127.0.0.1")
	ctx := context.Background()
	bad, err := hikvision.New(hikvision.Config{Host: d.Addr(sim.ServiceHTTP).String(), Username: "admin", Password: "not-the-password"})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 6; i++ {
		_, err := bad.DeviceInfo(ctx)
		var ae *hikvision.AuthError
		if !errors.As(err, &ae) || errors.Is(err, hikvision.ErrLocked) {
			t.Fatalf("attempt %d: got %v, want a wrong-password error", i, err)
		}
		if ae.RemainingAttempts != 7-i {
			t.Errorf("attempt %d: got %d attempts left, want %d", i, ae.RemainingAttempts, 7-i)
		}
		if got := d.FailedLogins(lo); got != i {
			t.Fatalf("after %d calls the simulator counted %d failed logins; the client must make one attempt per call", i, got)
		}
	}
	_, err = bad.DeviceInfo(ctx)
	if !errors.Is(err, hikvision.ErrLocked) {
		t.Fatalf("7th attempt: got %v, want ErrLocked", err)
	}
	if !d.Locked(lo) {
		t.Fatal("simulator not locked after 7 failures")
	}

	good, _ := hikvision.New(hikvision.Config{Host: d.Addr(sim.ServiceHTTP).String(), Username: "admin", Password: d.Password()})
	for _, call := range []func() error{
		func() error { _, err := good.DeviceInfo(ctx); return err },
		func() error { _, err := good.AdminAccesses(ctx); return err },
	} {
		err := call()
		if !errors.Is(err, hikvision.ErrLocked) || errors.Is(err, hikvision.ErrUnauthorized) {
			t.Fatalf("right password while locked: got %v, want ErrLocked and not ErrUnauthorized", err)
		}
		if !strings.Contains(err.Error(), "locked") || strings.Contains(err.Error(), "wrong user name or password") {
			t.Errorf("message %q should say locked, not wrong password", err)
		}
		var le *hikvision.LockedError
		if !errors.As(err, &le) || le.Remaining < 29*time.Minute || le.Remaining > 30*time.Minute {
			t.Errorf("got %+v, want about 30 minutes remaining", le)
		}
	}
	if n := d.TotalFailedLogins(); n != 7 {
		t.Errorf("simulator counted %d failed logins in all, want exactly 7", n)
	}
}
