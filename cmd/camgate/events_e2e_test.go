package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/netlab"
)

// webhook is the owner's notification endpoint: an HTTP server on
// loopback that keeps each message's Title header and body.
type webhook struct {
	mu   sync.Mutex // guards following
	msgs []string
}

func (h *webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	h.msgs = append(h.msgs, r.Header.Get("Title")+" | "+string(b))
	h.mu.Unlock()
}

func (h *webhook) count(substr string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, m := range h.msgs {
		if strings.Contains(m, substr) {
			n++
		}
	}
	return n
}

// guardedDVR is a simulated DVR behind `camgate serve` with the guard on
// its web rule and notifications to a webhook on loopback.
type guardedDVR struct {
	dvr, gw *netlab.Proc
	hook    *webhook
	cfgPath string
	// base is the web rule's URL through camgate.
	base string
}

// startGuardedDVR starts the simulator and camgate serve; guard is the
// web rule's guard settings in YAML flow style.
func startGuardedDVR(t *testing.T, ctx context.Context, bin, guard string) *guardedDVR {
	t.Helper()
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "dvr.password")
	os.WriteFile(pwFile, []byte("Lantern-Quartz-2024\n"), 0o600)
	g := &guardedDVR{hook: &webhook{}}
	g.dvr = netlab.StartCmd(exec.CommandContext(ctx, bin, "sim", "--listen", "127.0.0.1", "--free-ports",
		"--sadp-port", "-1", "--wsd-port", "-1", "--password-file", pwFile))
	t.Cleanup(g.dvr.Stop)
	if !g.dvr.WaitFor("ISAPI", 15*time.Second) {
		t.Fatalf("the simulator did not start:\n%s", g.dvr.Output())
	}
	m := regexp.MustCompile(`web page\s+http://127\.0\.0\.1:(\d+)/`).FindStringSubmatch(g.dvr.Output())
	if m == nil {
		t.Fatalf("no web port in the simulator's banner:\n%s", g.dvr.Output())
	}
	ts := httptest.NewServer(g.hook)
	t.Cleanup(ts.Close)
	port := freeTCPPort(t)
	g.cfgPath = writeConfig(t, dir, fmt.Sprintf(`version: 1
listen_address: 127.0.0.1
state_dir: %s
rules:
  - name: dvr-web
    external_port: %d
    internal_ip: 127.0.0.1
    internal_port: %s
    guard: %s
  - {name: dvr-sdk, external_port: %d, internal_ip: 127.0.0.1, internal_port: 8000}
notify:
  url: %s/camgate-alerts
  burst: 2
  every: 1h
admin:
  listen: "https://127.0.0.1:0"
`, filepath.Join(dir, "state"), port, m[1], guard, freeTCPPort(t), ts.URL))
	g.gw = netlab.StartCmd(exec.CommandContext(ctx, bin, "serve", "--config", g.cfgPath))
	t.Cleanup(g.gw.Stop)
	if !g.gw.WaitFor("setup_url=", 15*time.Second) {
		t.Fatalf("camgate did not start:\n%s", g.gw.Output())
	}
	g.base = fmt.Sprintf("http://127.0.0.1:%d", port)
	return g
}

// wrongLogins tries n wrong passwords through camgate with curl.
func (g *guardedDVR) wrongLogins(t *testing.T, ctx context.Context, curl string, n int) {
	bad := filepath.Join(t.TempDir(), "bad.curlrc")
	os.WriteFile(bad, []byte("user = \"admin:wrong-password\"\n"), 0o600)
	for range n {
		exec.CommandContext(ctx, curl, "-sS", "--max-time", "5", "--digest", "-K", bad, "-o", "/dev/null",
			g.base+"/ISAPI/Security/userCheck").Run()
	}
}

// TestSecurityEventsReachOwner attacks a simulated DVR through a real
// `camgate serve`: ten CVE-2021-36260 probes, which the exploit filter
// blocks, then wrong passwords until the guard bans the source. A webhook
// on loopback (the notify section, ntfy format) gets the ban and the
// blocks, with the blocks rate-limited to the burst of 2, and a broken
// config reloaded with SIGHUP; real Chromium
// then shows the owner the banner with both, the Findings page lists the
// forwarded SDK port's audit finding, and Dismiss hides the banner.
func TestSecurityEventsReachOwner(t *testing.T) {
	bt := needBrowser(t)
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("needs curl")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	g := startGuardedDVR(t, ctx, bt.bin, "{service: http, auth: true, max_failures: 3}")
	gw, hook, cfgPath, base := g.gw, g.hook, g.cfgPath, g.base

	// The exploit probes: the filter answers 403 and the DVR never sees
	// them.
	for range 10 {
		out, _ := exec.CommandContext(ctx, curl, "-sS", "--max-time", "5", "-o", "/dev/null", "-w", "%{http_code}",
			"-X", "PUT", "--data", "<language>$(id)</language>", base+"/SDK/webLanguage").Output()
		if string(out) != "403" {
			t.Fatalf("exploit probe: got HTTP %q, want 403 from the filter", out)
		}
	}
	// Wrong passwords until the guard bans the source.
	g.wrongLogins(t, ctx, curl, 5)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && (hook.count("banned") < 1 || hook.count("blocked") < 2) {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // anything over the limit would arrive now
	if n := hook.count("banned"); n != 1 {
		t.Errorf("webhook: got %d ban messages, want 1\n%v\ncamgate:\n%s", n, hook.msgs, gw.Output())
	}
	if n := hook.count("blocked an exploit"); n != 2 {
		t.Errorf("webhook: got %d block messages for 10 probes, want 2 (burst 2, then rate-limited)\n%v", n, hook.msgs)
	}
	if n := hook.count("CVE-2021-36260"); n != 2 {
		t.Errorf("webhook: got %d messages naming CVE-2021-36260, want 2\n%v", n, hook.msgs)
	}

	// A broken hand edit, reloaded with SIGHUP: the old config keeps
	// running and the owner hears of it.
	good, _ := os.ReadFile(cfgPath)
	os.WriteFile(cfgPath, append(good, []byte("rules_typo: [\n")...), 0o600)
	gw.Signal(syscall.SIGHUP)
	deadline = time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && hook.count("refused its config file") < 1 {
		time.Sleep(100 * time.Millisecond)
	}
	if n := hook.count("refused its config file"); n != 1 {
		t.Errorf("webhook: got %d config-refused messages after a broken reload, want 1\n%v", n, hook.msgs)
	}

	su := regexp.MustCompile(`setup_url="?([^"\s]+)`).FindStringSubmatch(gw.Output())
	artifacts, _ := filepath.Abs(filepath.Join("..", "..", "artifacts", "events-e2e"))
	os.RemoveAll(artifacts)
	cmd, _, stdout, stderr := bt.run(ctx, t, "events-e2e.mjs", "CAMGATE_SETUP_URL="+su[1], "ARTIFACTS="+artifacts)
	var banner string
	var findings []string
	done, dismissed := false, ""
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		t.Logf("events-e2e: %s", line)
		switch {
		case strings.HasPrefix(line, "BANNER "):
			banner = line
		case strings.HasPrefix(line, "FINDING "):
			findings = append(findings, strings.TrimPrefix(line, "FINDING "))
		case strings.HasPrefix(line, "AFTER_DISMISS "):
			dismissed = strings.TrimPrefix(line, "AFTER_DISMISS ")
		case line == "DONE":
			done = true
		}
	}
	if err := cmd.Wait(); err != nil || !done {
		t.Fatalf("web/events-e2e.mjs: %v\n%s\ncamgate:\n%s", err, stderr.String(), gw.Output())
	}
	if !strings.Contains(banner, "1 ban") || !strings.Contains(banner, "10 blocked exploit attempts") || !strings.Contains(banner, "1 refused config file") {
		t.Errorf("banner: got %q, want 1 ban, 10 blocked exploit attempts and 1 refused config file (the UI lists every event, the webhook is what is rate-limited)", banner)
	}
	if !slices.Contains(findings, "rule-sdk-port-exposed") {
		t.Errorf("the Findings page listed %v, want rule-sdk-port-exposed for the forwarded SDK port", findings)
	}
	if dismissed != "hidden" {
		t.Errorf("after Dismiss the banner is %q, want hidden", dismissed)
	}
}

// TestDeviceLockoutReachesOwner spends a simulated DVR's login budget
// through camgate (device_max_failures: 3; the guard keeps the last
// attempt in reserve and holds logins back): the webhook gets one
// device-lockout warning, however many attempts follow.
func TestDeviceLockoutReachesOwner(t *testing.T) {
	if testing.Short() {
		t.Skip("builds camgate")
	}
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("needs curl")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	g := startGuardedDVR(t, ctx, netlab.Camgate(t), "{service: http, auth: true, max_failures: 10, device_max_failures: 3}")
	g.wrongLogins(t, ctx, curl, 6)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && g.hook.count("locking camgate out") < 1 {
		time.Sleep(100 * time.Millisecond)
	}
	g.wrongLogins(t, ctx, curl, 2)
	time.Sleep(2 * time.Second) // the watcher looks every second
	if n := g.hook.count("close to locking camgate out"); n != 1 {
		t.Errorf("webhook: got %d device-lockout messages, want 1\n%v\ncamgate:\n%s", n, g.hook.msgs, g.gw.Output())
	}
	if n := strings.Count(g.dvr.Output(), `msg="failed login"`); n > 2 {
		t.Errorf("the DVR counted %d failed logins, want at most 2 (the guard holds the rest back)", n)
	}
}
