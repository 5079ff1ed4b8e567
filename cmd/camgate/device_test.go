package main

import (
	"bytes"
	"context"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/sim"
	"github.com/camgate/camgate/internal/store"
)

// devSim runs a simulated DVR on a loopback address with the given ports
// (discovery and RTP off) until the test ends.
func devSim(t *testing.T, listen string, ports sim.Ports) *sim.Device {
	t.Helper()
	ports.SADP, ports.WSDiscovery, ports.RTP = -1, -1, -1
	d, err := sim.New(sim.Config{Listen: netip.MustParseAddr(listen), Ports: ports, Password: "Camgate-Test-1"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return d
}

// runCmd runs camgate in-process and returns exit code, stdout, stderr.
func runCmd(t *testing.T, environ map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	e := &env{stdout: &out, stderr: &errb, getenv: func(k string) string { return environ[k] }}
	code := run(context.Background(), e, args)
	return code, out.String(), errb.String()
}

func writeSecret(t *testing.T, dir, pw string) string {
	t.Helper()
	p := filepath.Join(dir, "dvr.pass")
	if err := os.WriteFile(p, []byte(pw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// ruleSummary renders rules as "name ext->ip:int" for comparison.
func ruleSummary(rules []config.Rule) string {
	var s []string
	for _, r := range rules {
		s = append(s, r.Name+" "+r.ExternalPort.String()+"->"+r.InternalIP+":"+r.Internal().String())
	}
	return strings.Join(s, ", ")
}

func simPort(d *sim.Device, s sim.Service) string { return strconv.Itoa(int(d.Addr(s).Port())) }

// TestDeviceAdd: two simulated DVRs with the same ports on two addresses.
// The first gets its own ports, the second the next free ones, and the
// file stays valid.
func TestDeviceAdd(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "camgate.yaml")
	pw := writeSecret(t, dir, "Camgate-Test-1")
	d1 := devSim(t, "127.0.0.1", sim.Ports{})
	same := sim.Ports{HTTP: int(d1.Addr(sim.ServiceHTTP).Port()), HTTPS: int(d1.Addr(sim.ServiceHTTPS).Port()),
		RTSP: int(d1.Addr(sim.ServiceRTSP).Port()), SDK: int(d1.Addr(sim.ServiceSDK).Port())}
	d2 := devSim(t, "127.0.0.2", same)

	code, out, errs := runCmd(t, nil, "device", "add", "--ip", "127.0.0.1", "--port", simPort(d1, sim.ServiceHTTP),
		"--password-file", pw, "--config", cfgPath, "--name", "dvr1", "--no-discover")
	if code != 0 {
		t.Fatalf("first device: exit %d\n%s%s", code, out, errs)
	}
	for _, want := range []string{"Created " + cfgPath, "dvr1-https", "dvr1-rtsp", "frequent attack target", "kill -HUP"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// The second device: password from the environment, default name.
	code, out, errs = runCmd(t, map[string]string{passwordEnv: "Camgate-Test-1"}, "device", "add", "--ip", "127.0.0.2",
		"--port", simPort(d2, sim.ServiceHTTP), "--config", cfgPath, "--no-discover")
	if code != 0 {
		t.Fatalf("second device: exit %d\n%s%s", code, out, errs)
	}
	cfg, err := store.Load(cfgPath)
	if err != nil {
		t.Fatalf("config written is invalid: %v", err)
	}
	// The web rule is HTTPS camgate serves on the device's HTTPS port
	// number, forwarding to its HTTP port.
	https, rtsp, web := d1.Addr(sim.ServiceHTTPS).Port(), d1.Addr(sim.ServiceRTSP).Port(), d1.Addr(sim.ServiceHTTP).Port()
	step := func(p uint16) string {
		if int(p)+1000 <= 65535 {
			return strconv.Itoa(int(p) + 1000)
		}
		return strconv.Itoa(int(p) + 1)
	}
	h, r, w := strconv.Itoa(int(https)), strconv.Itoa(int(rtsp)), strconv.Itoa(int(web))
	want := "dvr1-https " + h + "->127.0.0.1:" + w + ", dvr1-rtsp " + r + "->127.0.0.1:" + r +
		", dvr2-https " + step(https) + "->127.0.0.2:" + w + ", dvr2-rtsp " + step(rtsp) + "->127.0.0.2:" + r
	if got := ruleSummary(cfg.Rules); got != want {
		t.Errorf("rules:\n got  %s\n want %s", got, want)
	}
	for _, rule := range cfg.Rules {
		if rule.Description == "" || rule.Proto() != config.TCP {
			t.Errorf("rule %s: description %q protocol %s", rule.Name, rule.Description, rule.Proto())
		}
	}
	if d1.TotalFailedLogins()+d2.TotalFailedLogins() != 0 {
		t.Errorf("device add cost failed logins")
	}
}

func TestDeviceAddWithSDKAndDryRun(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "camgate.yaml")
	d := devSim(t, "127.0.0.1", sim.Ports{})
	code, out, errs := runCmd(t, map[string]string{passwordEnv: "Camgate-Test-1"}, "device", "add", "--ip", "127.0.0.1",
		"--port", simPort(d, sim.ServiceHTTP), "--config", cfgPath, "--with-sdk-port", "--dry-run", "--no-discover")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	var doc struct {
		Rules []config.Rule `yaml:"rules"`
	}
	if c, err := config.Parse([]byte("version: 1\n" + out)); err != nil {
		t.Fatalf("stdout is not rules YAML: %v\n%s", err, out)
	} else {
		doc.Rules = c.Rules
	}
	if len(doc.Rules) != 3 || doc.Rules[2].Name != "dvr1-server" || doc.Rules[2].Internal().First != d.Addr(sim.ServiceSDK).Port() {
		t.Errorf("got %s, want https, rtsp and server rules", ruleSummary(doc.Rules))
	}
	if !strings.Contains(errs, "restrict it") || !strings.Contains(errs, "was not changed") {
		t.Errorf("stderr lacks the SDK warning or the dry-run note:\n%s", errs)
	}
	if _, err := os.Stat(cfgPath); !os.IsNotExist(err) {
		t.Errorf("dry run wrote %s", cfgPath)
	}
}

func TestDeviceAddHTTPSOff(t *testing.T) {
	dir := t.TempDir()
	off := false
	d, err := sim.New(sim.Config{Listen: netip.MustParseAddr("127.0.0.1"), HTTPSEnabled: &off, Password: "Camgate-Test-1",
		Ports: sim.Ports{SADP: -1, WSDiscovery: -1, RTP: -1}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() { cancel(); <-done }()
	code, out, errs := runCmd(t, map[string]string{passwordEnv: "Camgate-Test-1"}, "device", "add", "--ip", "127.0.0.1",
		"--port", simPort(d, sim.ServiceHTTP), "--config", filepath.Join(dir, "c.yaml"), "--dry-run", "--no-discover")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	// HTTPS off on the device changes nothing: camgate serves HTTPS
	// itself, and plain HTTP is never forwarded (issue 14).
	if strings.Contains(out, "dvr1-http\n") || !strings.Contains(out, "dvr1-https") || !strings.Contains(out, "mode: terminate") {
		t.Errorf("want only the terminated HTTPS rule, got\n%s\n%s", out, errs)
	}
}

func TestDeviceAddWrongPassword(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "camgate.yaml")
	d := devSim(t, "127.0.0.1", sim.Ports{})
	code, out, errs := runCmd(t, nil, "device", "add", "--ip", "127.0.0.1", "--port", simPort(d, sim.ServiceHTTP),
		"--password-file", writeSecret(t, dir, "wrong-one"), "--config", cfgPath, "--no-discover")
	if code != 1 || !strings.Contains(errs, "wrong user name or password") || !strings.Contains(errs, "6 attempts left") {
		t.Fatalf("exit %d, want 1 with a wrong-password message:\n%s%s", code, out, errs)
	}
	if strings.Contains(out+errs, "wrong-one") {
		t.Errorf("password printed:\n%s%s", out, errs)
	}
	if n := d.TotalFailedLogins(); n != 1 {
		t.Errorf("simulator counted %d failed logins, want exactly 1", n)
	}
	if _, err := os.Stat(cfgPath); !os.IsNotExist(err) {
		t.Errorf("config written despite the failure")
	}
}

func TestDeviceAddWithoutPassword(t *testing.T) {
	dir := t.TempDir()
	code, out, errs := runCmd(t, nil, "device", "add", "--ip", "192.0.2.64", "--config", filepath.Join(dir, "c.yaml"),
		"--dry-run", "--no-discover", "--rtsp-port", "10554")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	if !strings.Contains(errs, "did not log in") || !strings.Contains(errs, "factory ports") {
		t.Errorf("stderr does not say the ports were assumed:\n%s", errs)
	}
	c, err := config.Parse([]byte("version: 1\n" + out))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ruleSummary(c.Rules), "dvr1-https 443->192.0.2.64:80, dvr1-rtsp 10554->192.0.2.64:10554"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if !strings.Contains(c.Rules[0].Description, "assumed") {
		t.Errorf("description %q does not say the port is assumed", c.Rules[0].Description)
	}
}

func TestDeviceAddRefusesArgvPassword(t *testing.T) {
	for _, arg := range []string{"--password", "-password=x", "--password=hunter2"} {
		code, _, errs := runCmd(t, nil, "device", "add", "--ip", "192.0.2.1", arg)
		if code != 2 || !strings.Contains(errs, "never taken on the command line") || strings.Contains(errs, "hunter2") {
			t.Errorf("%s: exit %d, stderr %q", arg, code, errs)
		}
	}
	if code, _, _ := runCmd(t, nil, "device", "add"); code != 2 {
		t.Errorf("missing --ip: exit %d, want 2", code)
	}
	if code, _, _ := runCmd(t, nil, "device", "remove"); code != 2 {
		t.Errorf("unknown subcommand: exit %d, want 2", code)
	}
}

func TestDropStarterExamples(t *testing.T) {
	cfg, err := config.Parse([]byte(store.Starter))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Rules[1].InternalIP = "192.168.1.20" // edited by the user: kept
	removed := dropStarterExamples(cfg)
	if got := strings.Join(removed, ","); got != "dvr-https,dvr-web,dvr-server" {
		t.Errorf("removed %s", got)
	}
	if len(cfg.Rules) != 1 || cfg.Rules[0].Name != "dvr-rtsp" {
		t.Errorf("kept %s, want the edited dvr-rtsp", ruleSummary(cfg.Rules))
	}
}

// TestDeviceAddStopsBeforeTheLock: issue 14. With 2 failed logins left
// before the device locks this address, device add stops without logging
// in unless --force; a locked device is reported as such.
func TestDeviceAddStopsBeforeTheLock(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "camgate.yaml")
	d := devSim(t, "127.0.0.1", sim.Ports{})
	web := d.Addr(sim.ServiceHTTP).String()
	guess := func() {
		req, _ := http.NewRequest("GET", "http://"+web+"/ISAPI/System/deviceInfo", nil)
		req.SetBasicAuth("admin", "wrong")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}
	for i := 0; i < 5; i++ {
		guess()
	}
	args := []string{"device", "add", "--ip", "127.0.0.1", "--port", simPort(d, sim.ServiceHTTP),
		"--password-file", writeSecret(t, dir, "Camgate-Test-1"), "--config", cfgPath, "--no-discover"}
	code, out, errs := runCmd(t, nil, args...)
	if code == 0 || !strings.Contains(errs, "only 2 more failed login") || !strings.Contains(errs, "--force") {
		t.Fatalf("2 left: exit %d, want a stop naming --force:\n%s%s", code, out, errs)
	}
	if n := d.TotalFailedLogins(); n != 5 {
		t.Fatalf("device add cost %d failed logins, want none", n-5)
	}
	code, out, errs = runCmd(t, nil, append(args, "--force")...)
	if code != 0 || !strings.Contains(out, "logging in anyway (--force)") {
		t.Fatalf("--force: exit %d\n%s%s", code, out, errs)
	}
	for i := 0; i < 7; i++ {
		guess()
	}
	code, out, errs = runCmd(t, nil, append(args, "--name", "again")...)
	if code == 0 || !strings.Contains(errs, "locking this address out") {
		t.Fatalf("locked: exit %d, want the lock reported:\n%s%s", code, out, errs)
	}
}

// TestDeviceAddUsesTheRunningGateway: with a gateway running on the
// config, device add sends the rules through its API (applied live and
// saved by the gateway) instead of writing the file behind its back
// (issue #13, item 4).
func TestDeviceAddUsesTheRunningGateway(t *testing.T) {
	dir := t.TempDir()
	pw := writeSecret(t, dir, "Camgate-Test-1")
	d := devSim(t, "127.0.0.1", sim.Ports{})
	// The gateway listens on another loopback address than the device's.
	tg := startTestGateway(t, dir, "version: 1\nlisten_address: 127.0.0.3\nrules: []\n")
	args := []string{"device", "add", "--ip", "127.0.0.1", "--port", simPort(d, sim.ServiceHTTP),
		"--password-file", pw, "--config", tg.cfgPath, "--name", "dvr1", "--no-discover"}

	// Without a token it refuses rather than write the file.
	before, _ := os.ReadFile(tg.cfgPath)
	code, out, errs := runCmd(t, nil, args...)
	if code != 1 || !strings.Contains(errs, "a gateway is running") {
		t.Fatalf("no token: got exit %d\n%s%s", code, out, errs)
	}
	if after, _ := os.ReadFile(tg.cfgPath); string(after) != string(before) {
		t.Fatal("device add wrote the file while a gateway runs")
	}

	code, out, errs = runCmd(t, map[string]string{"CAMGATE_TOKEN": tg.token}, args...)
	if code != 0 || !strings.Contains(out, "Added to the running gateway") {
		t.Fatalf("with a token: got exit %d\n%s%s", code, out, errs)
	}
	for _, name := range []string{"dvr1-https", "dvr1-rtsp"} {
		if tg.g.Addrs(name) == nil {
			t.Errorf("the running gateway does not listen for %s", name)
		}
	}
	cfg, err := store.Load(tg.cfgPath)
	if err != nil || cfg.Rule("dvr1-rtsp") == nil {
		t.Fatalf("the gateway did not save the rules: %v", err)
	}
}
