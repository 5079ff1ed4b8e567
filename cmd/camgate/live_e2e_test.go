package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
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
	bt := needBrowser(t)
	bin := bt.bin
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
	cmd, stdin, stdout, stderr := bt.run(ctx, t, "live-e2e.mjs", "CAMGATE_SETUP_URL="+su[1], "ARTIFACTS="+artifacts)
	plays := func(ch string) int {
		return len(regexp.MustCompile(`method=PLAY path="?/Streaming/Channels/`+ch+`\b[^\n]*status=200`).FindAllString(dvr.Output(), -1))
	}
	marked := 0
	token := ""
	adminAddr := regexp.MustCompile(`url=https://(127\.0\.0\.1:\d+)`).FindStringSubmatch(gw.Output())
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
		case strings.HasPrefix(line, "TOKEN "):
			token = strings.TrimPrefix(line, "TOKEN ")
		case line == "CHECK cli":
			if err := shareCLI(ctx, t, bin, dir, state, adminAddr[1], token); err != nil {
				t.Error(err)
				fmt.Fprintf(stdin, "fail %v\n", err)
				continue
			}
			fmt.Fprintln(stdin, "ok")
		case line == "DONE":
			done = true
		}
	}
	err := cmd.Wait()
	if err != nil || !done {
		t.Fatalf("web/live-e2e.mjs: %v\n%s\ncamgate:\n%s", err, stderr.String(), gw.Output())
	}
	t.Logf("browser log:\n%s", stderr.String())
}

// shareCLI runs camgate share add, list and rm against the running
// gateway with token, and checks the link's page answers, then says
// "this link was revoked".
func shareCLI(ctx context.Context, t *testing.T, bin, dir, state, admin, token string) error {
	cfg := writeConfig(t, t.TempDir(), fmt.Sprintf("version: 1\nstate_dir: %s\nrules: []\nadmin:\n  listen: \"https://%s\"\n", state, admin))
	run := func(action string, args ...string) (string, error) {
		c := exec.CommandContext(ctx, bin, append([]string{"share", action, "--config", cfg}, args...)...)
		c.Env = append(os.Environ(), "CAMGATE_TOKEN="+token)
		out, err := c.CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("camgate share %s %s: %v\n%s", action, strings.Join(args, " "), err, out)
		}
		return string(out), nil
	}
	out, err := run("add", "--device", "dvr", "--channel", "101", "--expires", "1h", "--label", "cli-link")
	if err != nil {
		return err
	}
	m := regexp.MustCompile(`share ([0-9a-f]+): dvr/101 until .*\n(https://\S+/s/[A-Za-z0-9_-]{43})\n`).FindStringSubmatch(out)
	if m == nil {
		return fmt.Errorf("camgate share add printed %q, want the id and the link", out)
	}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	info := func() (int, string) {
		res, err := hc.Get(m[2] + "/info")
		if err != nil {
			return 0, err.Error()
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, body := info(); code != 200 {
		return fmt.Errorf("the CLI's link: got %d %s, want 200", code, body)
	}
	if out, err = run("list"); err != nil {
		return err
	}
	if !regexp.MustCompile(m[1] + `\s+cli-link\s+dvr/101\s+.*active`).MatchString(out) {
		return fmt.Errorf("camgate share list: %q does not list %s as active", out, m[1])
	}
	if _, err = run("rm", m[1]); err != nil {
		return err
	}
	if code, body := info(); code != 410 || !strings.Contains(body, "this link was revoked") {
		return fmt.Errorf("after share rm: got %d %s, want 410 this link was revoked", code, body)
	}
	return nil
}
