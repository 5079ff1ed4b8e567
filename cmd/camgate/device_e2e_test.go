package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/netlab"
	"github.com/camgate/camgate/internal/sim"
	"github.com/camgate/camgate/internal/store"
)

// deviceBin builds camgate for the device end-to-end tests.
func deviceBin(t *testing.T) string { return netlab.Camgate(t) }

// labSim runs a simulated DVR inside namespace ns.
func labSim(t *testing.T, l *netlab.Lab, ns string, cfg sim.Config) *sim.Device {
	t.Helper()
	var d *sim.Device
	if err := l.Do(ns, func() (err error) { d, err = sim.New(cfg); return }); err != nil {
		t.Fatalf("sim in %s: %v", ns, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return d
}

// camgateIn runs the camgate binary in ns with extra environment and
// returns its exit code and combined output.
func camgateIn(t *testing.T, l *netlab.Lab, ns, bin string, environ []string, args ...string) (int, string) {
	t.Helper()
	cmd := l.Command(ns, bin, args...)
	cmd.Env = append(os.Environ(), environ...)
	out, err := cmd.CombinedOutput()
	code := 0
	if err != nil {
		code = -1
		if ee, ok := err.(interface{ ExitCode() int }); ok {
			code = ee.ExitCode()
		}
	}
	return code, string(out)
}

// TestDeviceAddTwoSimulatorsEndToEnd: camgate in gw reads two simulated
// devices in lan over ISAPI. The second has other ports, one of which
// (HTTPS 443) the first already uses externally: it gets the next free
// external port, and the file stays valid.
func TestDeviceAddTwoSimulatorsEndToEnd(t *testing.T) {
	bin := deviceBin(t)
	l := netlab.New(t, netlab.Options{})
	ports1 := sim.ProfileDefault.Ports()
	ports1.SADP, ports1.WSDiscovery, ports1.RTP = -1, -1, -1
	labSim(t, l, l.LAN, sim.Config{Listen: netlab.LANAddr, Ports: ports1, Password: "Camgate-Test-1"})
	ports2 := sim.Ports{HTTP: 80, HTTPS: 443, RTSP: 10554, SDK: 8001, SDKOverTLS: 8444, WebSocket: 7682, SADP: -1, WSDiscovery: -1, RTP: -1}
	d2 := labSim(t, l, l.LAN, sim.Config{Listen: netlab.LANHost(1), Ports: ports2, Password: "Camgate-Test-2", Profile: sim.ProfilePatched})

	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "camgate.yaml")
	pw := filepath.Join(dir, "dvr1.pass")
	os.WriteFile(pw, []byte("Camgate-Test-1\n"), 0o600)

	code, out := camgateIn(t, l, l.GW, bin, nil, "device", "add", "--ip", netlab.LANAddr.String(), "--port", "8082",
		"--user", "admin", "--password-file", pw, "--name", "dvr1", "--config", cfgPath, "--no-discover")
	if code != 0 {
		t.Fatalf("first device: exit %d\n%s", code, out)
	}
	code, out = camgateIn(t, l, l.GW, bin, []string{passwordEnv + "=Camgate-Test-2"}, "device", "add",
		"--ip", netlab.LANHost(1).String(), "--port", "80", "--config", cfgPath, "--no-discover")
	if code != 0 {
		t.Fatalf("second device: exit %d\n%s", code, out)
	}
	if !strings.Contains(out, d2.Identity().Model) {
		t.Errorf("output does not name the second device's model:\n%s", out)
	}
	cfg, err := store.Load(cfgPath)
	if err != nil {
		t.Fatalf("written config is invalid: %v", err)
	}
	want := "dvr1-https 443->198.19.0.64:8082, dvr1-rtsp 554->198.19.0.64:554, " +
		"dvr2-https 1443->198.19.0.65:80, dvr2-rtsp 10554->198.19.0.65:10554"
	if got := ruleSummary(cfg.Rules); got != want {
		t.Errorf("rules:\n got  %s\n want %s", got, want)
	}
	seen := map[config.PortRange]string{}
	for _, r := range cfg.Rules {
		if other, dup := seen[r.ExternalPort]; dup {
			t.Errorf("external port %s used by %s and %s", r.ExternalPort, other, r.Name)
		}
		seen[r.ExternalPort] = r.Name
	}
}

// TestDeviceAddFindsPortsBySADPEndToEnd: without --port, device add learns
// the HTTP port (8082) from SADP; without a password it falls back to the
// ports SADP reported and says so.
func TestDeviceAddFindsPortsBySADPEndToEnd(t *testing.T) {
	bin := deviceBin(t)
	l := netlab.New(t, netlab.Options{Multicast: true})
	ports := sim.ProfileDefault.Ports()
	ports.RTP = -1
	labSim(t, l, l.LAN, sim.Config{Ports: ports, MulticastInterfaces: []string{"eth0"}, Password: "Camgate-Test-1"})
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "camgate.yaml")

	code, out := camgateIn(t, l, l.GW, bin, nil, "device", "add", "--ip", netlab.LANAddr.String(), "--config", cfgPath, "--dry-run")
	if code != 0 {
		t.Fatalf("no password: exit %d\n%s", code, out)
	}
	for _, want := range []string{"ports SADP reported (HTTP 8082, server 8000)", "external_port: 443", "external_port: 554"} {
		if !strings.Contains(out, want) {
			t.Errorf("no-password output lacks %q:\n%s", want, out)
		}
	}

	code, out = camgateIn(t, l, l.GW, bin, []string{passwordEnv + "=Camgate-Test-1"}, "device", "add",
		"--ip", netlab.LANAddr.String(), "--config", cfgPath)
	if code != 0 {
		t.Fatalf("with password: exit %d\n%s", code, out)
	}
	if !strings.Contains(out, "reading http://198.19.0.64:8082") {
		t.Errorf("did not read ISAPI on the port SADP reported:\n%s", out)
	}
	cfg, err := store.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ruleSummary(cfg.Rules), "dvr1-https 443->198.19.0.64:8082, dvr1-rtsp 554->198.19.0.64:554"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

// TestDiscoverCommandEndToEnd: `camgate discover` in gw finds a simulated
// old DVR in lan by both protocols, prints the table with the loud
// not-activated warning, and the same as JSON.
func TestDiscoverCommandEndToEnd(t *testing.T) {
	bin := deviceBin(t)
	l := netlab.New(t, netlab.Options{Multicast: true})
	ports := sim.Ports{SADP: 37020, WSDiscovery: 3702, RTP: -1}
	d := labSim(t, l, l.LAN, sim.Config{Profile: sim.ProfileVulnerable, Ports: ports, MulticastInterfaces: []string{"eth0"}})
	id := d.Identity()

	code, out := camgateIn(t, l, l.GW, bin, nil, "discover", "--interface", "lan0", "--timeout", "1500ms")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	for _, want := range []string{"probing lan0 (198.19.0.1)...", "lan0 (198.19.0.1): 2 replies", "IP ", "MODEL", "ONVIF",
		id.Model, id.SerialNumber, id.SoftwareVersion(), "NO (!)", "sadp+wsd",
		"is NOT ACTIVATED: has no password; activate it with SADP/the local GUI before exposing it; never forward its ports"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	cmd := l.Command(l.GW, bin, "discover", "--interface", "lan0", "--timeout", "1500ms", "--json")
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("--json: %v", err)
	}
	var devs []struct {
		IP        string   `json:"ip"`
		Model     string   `json:"model"`
		Activated *bool    `json:"activated"`
		HTTPPort  int      `json:"http_port"`
		Sources   []string `json:"sources"`
	}
	if err := json.Unmarshal(stdout, &devs); err != nil {
		t.Fatalf("--json output: %v\n%s", err, stdout)
	}
	if len(devs) != 1 || devs[0].Model != id.Model || devs[0].Activated == nil || *devs[0].Activated || len(devs[0].Sources) != 2 {
		t.Errorf("got %+v", devs)
	}
}
