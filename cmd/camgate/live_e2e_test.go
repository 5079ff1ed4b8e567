package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/credstore"
	"github.com/camgate/camgate/internal/netlab"
)

// TestLiveViewInChromium drives live view and share links in real
// Chromium through web/live-e2e.mjs, against a simulated DVR running as
// its own process on loopback (`camgate sim`): the Cameras page is the
// first page after login and its tile plays (currentTime advances, a
// canvas grab is not blank, the simulator's frame counter increases);
// four viewers of one channel make exactly one RTSP PLAY in the
// simulator's request log; a share link made in the UI plays in a fresh
// browser context with no cookies and reaches nothing else (401/403/404);
// revoking it stops the video within 1 s and a reload says "this link was
// revoked"; the Activity page lists the share's view. Its METRIC lines
// (time to first frame, glass-to-glass latency) are logged for
// docs/BENCHMARKS.md. Screenshots land in artifacts/live-e2e/.
func TestLiveViewInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("browser end-to-end test skipped in -short mode")
	}
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("needs node (apt-get install nodejs) to run web/live-e2e.mjs")
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Skipf("needs Chromium at %s (apt-get install chromium; scripts/test.sh installs it)", chromium)
	}
	webDir, _ := filepath.Abs(filepath.Join("..", "..", "web"))
	if _, err := os.Stat(filepath.Join(webDir, "node_modules", "playwright-core")); err != nil {
		t.Skipf("needs playwright-core in web/node_modules: run `npm ci` in %s (scripts/test.sh does)", webDir)
	}
	bin := os.Getenv("CAMGATE_BIN")
	if bin == "" {
		bin = netlab.Camgate(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// The DVR: its own process, every service on a free loopback port,
	// debug logging so that its request log shows every RTSP request.
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "dvr.password")
	const dvrPassword = "Lantern-Quartz-2024"
	if err := os.WriteFile(pwFile, []byte(dvrPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dvr := netlab.StartCmd(exec.CommandContext(ctx, bin, "sim", "--listen", "127.0.0.1", "--free-ports",
		"--sadp-port", "-1", "--wsd-port", "-1", "--password-file", pwFile, "--log-level", "debug"))
	defer dvr.Stop()
	if !dvr.WaitFor("rtsp://", 15*time.Second) {
		t.Fatalf("the simulator did not start:\n%s", dvr.Output())
	}
	m := regexp.MustCompile(`rtsp://127\.0\.0\.1:(\d+)/`).FindStringSubmatch(dvr.Output())
	if m == nil {
		t.Fatalf("no RTSP port in the simulator's banner:\n%s", dvr.Output())
	}

	state := filepath.Join(dir, "state")
	if err := credstore.New(state).Put("dvr", dvrPassword); err != nil {
		t.Fatal(err)
	}
	cfgPath := writeConfig(t, dir, fmt.Sprintf(`version: 1
listen_address: 127.0.0.1
state_dir: %s
rules: []
devices:
  - name: dvr
    address: 127.0.0.1
    rtsp_port: %s
    model: DS-7208HQHI-K1
    firmware: V4.30.085
admin:
  listen: "https://127.0.0.1:0"
`, state, m[1]))
	gw := netlab.StartCmd(exec.CommandContext(ctx, bin, "serve", "--config", cfgPath))
	defer gw.Stop()
	if !gw.WaitFor("setup_url=", 15*time.Second) {
		t.Fatalf("camgate did not print a setup URL:\n%s", gw.Output())
	}
	su := regexp.MustCompile(`setup_url="?([^"\s]+)`).FindStringSubmatch(gw.Output())

	artifacts, _ := filepath.Abs(filepath.Join("..", "..", "artifacts", "live-e2e"))
	os.RemoveAll(artifacts)
	cmd := exec.CommandContext(ctx, node, filepath.Join(webDir, "live-e2e.mjs"))
	cmd.Dir = webDir
	cmd.Env = append(os.Environ(), "CAMGATE_SETUP_URL="+su[1], "ARTIFACTS="+artifacts, "CHROMIUM="+chromium)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	plays := func(ch string) int {
		return len(regexp.MustCompile(`method=PLAY path="?/Streaming/Channels/` + ch + `\b[^\n]*status=200`).FindAllString(dvr.Output(), -1))
	}
	marked := 0
	done := false
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		t.Logf("live-e2e: %s", line)
		switch {
		case strings.HasPrefix(line, "CHECK mark "):
			// No viewer is left: once camgate has stopped every pull,
			// count the PLAYs so far.
			deadline := time.Now().Add(5 * time.Second)
			for time.Now().Before(deadline) && strings.Count(gw.Output(), "live pull starts") != strings.Count(gw.Output(), "live pull stops") {
				time.Sleep(50 * time.Millisecond)
			}
			marked = plays(strings.TrimPrefix(line, "CHECK mark "))
			fmt.Fprintln(stdin, "ok")
		case strings.HasPrefix(line, "CHECK one-pull "):
			// The RTSP PLAYs the simulator answered for this channel
			// since the mark: four browser viewers, one pull.
			ch := strings.TrimPrefix(line, "CHECK one-pull ")
			if n := plays(ch) - marked; n != 1 {
				t.Errorf("four viewers of channel %s: the simulator answered %d PLAYs, want 1", ch, n)
				fmt.Fprintf(stdin, "fail %d PLAYs\n", n)
				continue
			}
			fmt.Fprintln(stdin, "ok")
		case line == "DONE":
			done = true
		}
	}
	err = cmd.Wait()
	if err != nil || !done {
		t.Fatalf("web/live-e2e.mjs: %v\n%s\ncamgate:\n%s", err, stderr.String(), gw.Output())
	}
	t.Logf("browser log:\n%s", stderr.String())
}
