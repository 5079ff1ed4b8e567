package audit_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/camgate/camgate/internal/audit"
	"github.com/camgate/camgate/internal/netlab"
	"github.com/camgate/camgate/internal/sim"
)

// Topology: the simulated DVR and `camgate audit` both run in lan, as on
// a site where camgate's host sits on the LAN next to the DVR. The
// vulnerable DVR listens on the wildcard address so that it hears SADP
// multicast probes (the audit's discovery), and reports 198.19.0.64.

func camgateBin(t *testing.T) string { return netlab.Camgate(t) }

func runSimIn(t *testing.T, l *netlab.Lab, cfg sim.Config) *sim.Device {
	t.Helper()
	var d *sim.Device
	if err := l.Do(l.LAN, func() (err error) { d, err = sim.New(cfg); return }); err != nil {
		t.Fatalf("sim: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return d
}

func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// runAudit runs `camgate audit --json` in lan with extra environment.
func runAudit(t *testing.T, l *netlab.Lab, bin string, env []string, args ...string) (audit.Report, int, string) {
	t.Helper()
	cmd := l.Command(l.LAN, bin, append([]string{"audit", "--json"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	var rep audit.Report
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("camgate audit %v: exit %d, not JSON: %v\n%s\n%s", args, code, err, out, stderr.String())
	}
	return rep, code, string(out)
}

func findingIDs(rep audit.Report) []string {
	var out []string
	for _, f := range rep.Findings {
		out = append(out, f.ID+" "+string(f.Severity))
	}
	return out
}

// TestAuditVulnerableDVR: old build, default password, HTTPS off, not
// activated, and a rule forwarding the server port.
func TestAuditVulnerableDVR(t *testing.T) {
	bin := camgateBin(t)
	l := netlab.New(t, netlab.Options{Multicast: true})
	ports := sim.ProfileVulnerable.Ports()
	ports.RTP = -1
	d := runSimIn(t, l, sim.Config{Profile: sim.ProfileVulnerable, Ports: ports,
		MulticastInterfaces: []string{"eth0"}, Advertise: netlab.LANAddr})

	dir := t.TempDir()
	cfg := writeFile(t, dir, "camgate.yaml", fmt.Sprintf(`version: 1
admin: {listen: "off"}
rules:
  - {name: dvr-web, external_port: 8082, internal_ip: %[1]s, guard: auth}
  - {name: dvr-rtsp, external_port: 10554, internal_ip: %[1]s, internal_port: 554, guard: auth}
  - {name: dvr-server, external_port: 8000, internal_ip: %[1]s, allow: [203.0.113.0/24]}
`, netlab.LANAddr))
	rep, code, raw := runAudit(t, l, bin, nil, "--config", cfg, "--try-default-password")
	if code != 1 {
		t.Errorf("got exit %d, want 1 (high and critical findings)", code)
	}
	got := findingIDs(rep)
	for _, want := range []string{
		"device-cve-2021-36260-possible high",
		"device-default-password critical",
		"device-https-disabled medium",
		"rule-sdk-port-exposed high",
		"device-not-activated critical",
	} {
		if !slices.Contains(got, want) {
			t.Errorf("findings lack %q", want)
		}
	}
	for _, f := range rep.Findings {
		if f.ID == audit.IDCVE202136260 && !strings.Contains(f.Title, "possibly") {
			t.Errorf("CVE finding not worded as a heuristic: %q", f.Title)
		}
	}
	if rep.Findings[0].Severity != audit.Critical {
		t.Errorf("first finding is %s, want the worst first", rep.Findings[0].Severity)
	}
	if n := d.TotalFailedLogins(); n != 0 {
		t.Errorf("the DVR saw %d failed logins, want 0 (the default password works)", n)
	}
	if len(rep.Devices) != 1 || rep.Devices[0].DefaultPassword != "in use" || rep.Devices[0].Firmware.Source != "isapi" {
		t.Errorf("device report: got %+v", rep.Devices)
	}
	if t.Failed() {
		t.Logf("findings: %v\n%s", got, raw)
	}
	text, _ := l.Command(l.LAN, bin, "audit", "--config", cfg, "--try-default-password", "--discover-timeout", "0").CombinedOutput()
	t.Logf("camgate audit --try-default-password:\n%s", text)
	for _, s := range []string{"CRITICAL  device-default-password", "Means:", "Fix:", "possibly vulnerable to CVE-2021-36260"} {
		if !strings.Contains(string(text), s) {
			t.Errorf("text output lacks %q", s)
		}
	}
}

// TestAuditLockoutSafety: whatever the credentials, one audit run makes
// at most one failed login on a device, counted by the simulator.
func TestAuditLockoutSafety(t *testing.T) {
	bin := camgateBin(t)
	l := netlab.New(t, netlab.Options{})
	const real = "Changed-Pass-42"
	addr := netlab.LANHost(2) // 198.19.0.66
	ports := sim.Ports{HTTP: 8082, HTTPS: -1, RTSP: 554, RTP: -1, SDK: 8000, SDKOverTLS: -1, WebSocket: -1, SADP: -1, WSDiscovery: -1}
	d := runSimIn(t, l, sim.Config{Profile: sim.ProfileVulnerable, Password: real, Listen: addr, Ports: ports})

	dir := t.TempDir()
	cfg := writeFile(t, dir, "camgate.yaml", fmt.Sprintf(`version: 1
admin: {listen: "off"}
rules:
  - {name: dvr-web, external_port: 8082, internal_ip: %[1]s, guard: auth}
  - {name: dvr-rtsp, external_port: 10554, internal_ip: %[1]s, internal_port: 554, guard: auth}
`, addr))
	wrong := writeFile(t, dir, "wrong", "not-the-password\n")
	right := writeFile(t, dir, "right", real+"\n")
	tests := []struct {
		name      string
		env       []string
		args      []string
		wantFails int
		defPw     string
	}{
		{"default password tried once", nil, []string{"--try-default-password"}, 1, "not in use"},
		{"wrong password file and the default", nil, []string{"--password-file", wrong, "--try-default-password"}, 1, "not tested"},
		{"wrong password from the environment, another user, and the default", []string{"CAMGATE_DEVICE_PASSWORD=nope"}, []string{"--user", "viewer", "--try-default-password"}, 1, "not tested"},
		{"right password settles the default", nil, []string{"--password-file", right, "--try-default-password"}, 0, "not in use"},
		{"no credentials, no opt-in", nil, nil, 0, "not tested"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := d.TotalFailedLogins()
			rep, _, raw := runAudit(t, l, bin, tt.env, append([]string{"--config", cfg, "--discover-timeout", "0"}, tt.args...)...)
			fails := d.TotalFailedLogins() - before
			if fails != tt.wantFails {
				t.Errorf("the device saw %d failed logins in this run, want %d\n%s", fails, tt.wantFails, raw)
			}
			if fails > 1 {
				t.Errorf("more than one failed login per device per run")
			}
			if len(rep.Devices) != 1 || rep.Devices[0].FailedLogins != fails || !strings.HasPrefix(rep.Devices[0].DefaultPassword, tt.defPw) {
				t.Errorf("device report: got %+v, want %d failed and default password %q", rep.Devices, fails, tt.defPw)
			}
			if d.Locked(netip.MustParseAddr(addr.String())) {
				t.Fatal("the audit locked the device")
			}
		})
	}
}
