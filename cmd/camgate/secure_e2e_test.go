package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/audit"
	"github.com/camgate/camgate/internal/credstore"
	"github.com/camgate/camgate/internal/netlab"
	"github.com/camgate/camgate/internal/sim"
	"github.com/camgate/camgate/internal/store"
)

// TestFreshSetupPassesAuditEndToEnd is issue 14's "done means": a newcomer
// runs `camgate device add` and `camgate serve` with defaults against the
// simulated DVR, and camgate's own audit finds nothing high or medium.
// Then the red team's PUT /SDK/webLanguage over the web rule must not
// reach the device, and a wrong password must not reach its counter.
func TestFreshSetupPassesAuditEndToEnd(t *testing.T) {
	bin := deviceBin(t)
	for _, tool := range []string{"curl"} {
		if _, err := os.Stat("/usr/bin/" + tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
	l := netlab.New(t, netlab.Options{})
	ports := sim.ProfilePatched.Ports()
	ports.SADP, ports.WSDiscovery, ports.RTP = -1, -1, -1
	dev := labSim(t, l, l.LAN, sim.Config{Listen: netlab.LANAddr, Ports: ports, Password: "Camgate-Test-1", Profile: sim.ProfilePatched})

	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "camgate.yaml")
	pw := filepath.Join(dir, "dvr.pass")
	os.WriteFile(pw, []byte("Camgate-Test-1\n"), 0o600)
	code, out := camgateIn(t, l, l.GW, bin, nil, "device", "add", "--ip", netlab.LANAddr.String(),
		"--port", fmt.Sprint(ports.HTTP), "--password-file", pw, "--config", cfgPath, "--no-discover")
	if code != 0 {
		t.Fatalf("device add: exit %d\n%s", code, out)
	}
	cfg, err := store.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if d := cfg.Device("dvr1"); d == nil || d.Address != netlab.LANAddr.String() || d.Model == "" || d.Firmware == "" {
		t.Fatalf("devices section: got %+v, want dvr1 at %s with model and firmware", cfg.Devices, netlab.LANAddr)
	}
	if got, err := credstore.New(store.StateDir(cfgPath, cfg)).Get("dvr1"); err != nil || got != "Camgate-Test-1" {
		t.Fatalf("stored password: %v", err)
	}
	for _, r := range cfg.Rules {
		if r.Device != "dvr1" || !r.AuthGuard() {
			t.Errorf("rule %s: device %q, guard auth %v", r.Name, r.Device, r.AuthGuard())
		}
	}

	gw := l.Start(l.GW, bin, "serve", "--config", cfgPath)
	if !gw.WaitFor("camgate is running", 15*time.Second) {
		t.Fatalf("serve did not start:\n%s", gw.Output())
	}
	defer func() {
		if t.Failed() {
			t.Logf("camgate's log:\n%s", gw.Output())
		}
	}()

	code, out = camgateIn(t, l, l.GW, bin, []string{"CAMGATE_DEVICE_PASSWORD=Camgate-Test-1"},
		"audit", "--config", cfgPath, "--json", "--discover-timeout", "0")
	var rep audit.Report
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &rep); err != nil {
		t.Fatalf("audit --json (exit %d): %v\n%s", code, err, out)
	}
	for _, f := range rep.Findings {
		if f.Severity.Rank() >= audit.Medium.Rank() {
			t.Errorf("audit finding %s %s: %s %s", f.Severity, f.ID, f.Subject, f.Title)
		}
	}
	if code != 0 {
		t.Errorf("audit exit %d, want 0", code)
	}

	// The web rule is HTTPS camgate serves, and it reads what passes.
	https := cfg.Rule("dvr1-https")
	if https == nil {
		t.Fatalf("no dvr1-https rule: %+v", cfg.Rules)
	}
	url := fmt.Sprintf("https://%s:%d", netlab.GWWANAddr, https.ExternalPort.First)
	curl := func(from string, args ...string) string {
		a := append([]string{"-sk", "--max-time", "5", "--interface", from, "-o", "/dev/null", "-w", "%{http_code}"}, args...)
		b, _ := l.Command(l.WAN, "curl", a...).Output()
		return string(b)
	}
	if st := curl(netlab.WANClient(1).String(), "-X", "PUT", "--data-binary", "<language>$(id)</language>", url+"/SDK/webLanguage"); st != "403" {
		t.Errorf("PUT /SDK/webLanguage: got %s, want 403", st)
	}
	bad := filepath.Join(dir, "bad.curl")
	os.WriteFile(bad, []byte("user = \"admin:wrong-guess\"\n"), 0o600)
	for i := 1; i <= 8; i++ {
		curl(netlab.WANClient(i).String(), "--digest", "-K", bad, url+"/ISAPI/System/deviceInfo")
	}
	for _, r := range dev.Requests() {
		if strings.Contains(strings.ToLower(r.Path), "/sdk/") {
			t.Errorf("the device saw %s %s", r.Method, r.Path)
		}
	}
	if n := dev.FailedLogins(netlab.GWLANAddr); n != 0 {
		t.Errorf("the device counted %d failed logins, want 0", n)
	}
}
