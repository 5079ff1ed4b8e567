package main

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/credstore"
	"github.com/camgate/camgate/internal/netlab"
	"github.com/camgate/camgate/internal/store"
)

// TestAddDeviceInChromium adds a simulated DVR from the Cameras page in
// real Chromium, as an owner would: Discover finds it through its SADP
// responder (on loopback: serve's discovery probes it with
// CAMGATE_SADP_ADDR), a wrong password is refused with the simulator
// counting exactly one failed login, and the right one with two cameras
// adds the device with its guarded rules: camgate.yaml gets the devices
// entry with channels 101, 102, 201, 202, model and firmware from ISAPI,
// the password lands in the state directory's credstore (not in
// camgate.yaml), and the Cameras page shows the device with two tiles.
// The planned rules listen on a random 127.x.y.z address so their fixed
// ports (80, 554, ...) cannot collide with other tests.
func TestAddDeviceInChromium(t *testing.T) {
	bt := needBrowser(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	const dvrPassword = "Lantern-Quartz-2024"
	pwFile := filepath.Join(dir, "dvr.password")
	os.WriteFile(pwFile, []byte(dvrPassword+"\n"), 0o600)
	dvr := netlab.StartCmd(exec.CommandContext(ctx, bt.bin, "sim", "--listen", "127.0.0.1", "--free-ports",
		"--wsd-port", "-1", "--password-file", pwFile))
	defer dvr.Stop()
	if !dvr.WaitFor("RTSP", 15*time.Second) {
		t.Fatalf("the simulator did not start:\n%s", dvr.Output())
	}
	m := regexp.MustCompile(`SADP\s+udp (127\.0\.0\.1:\d+)`).FindStringSubmatch(dvr.Output())
	if m == nil {
		t.Fatalf("no SADP address in the simulator's banner:\n%s", dvr.Output())
	}
	listen := fmt.Sprintf("127.%d.%d.%d", 20+rand.IntN(200), rand.IntN(250), 2+rand.IntN(250))
	state := filepath.Join(dir, "state")
	cfgPath := writeConfig(t, dir, fmt.Sprintf("version: 1\nlisten_address: %s\nstate_dir: %s\nrules: []\nadmin:\n  listen: \"https://127.0.0.1:0\"\n", listen, state))
	serve := exec.CommandContext(ctx, bt.bin, "serve", "--config", cfgPath)
	serve.Env = append(os.Environ(), "CAMGATE_SADP_ADDR="+m[1])
	gw := netlab.StartCmd(serve)
	defer gw.Stop()
	if !gw.WaitFor("setup_url=", 15*time.Second) {
		t.Fatalf("camgate did not start:\n%s", gw.Output())
	}
	su := regexp.MustCompile(`setup_url="?([^"\s]+)`).FindStringSubmatch(gw.Output())
	artifacts, _ := filepath.Abs(filepath.Join("..", "..", "artifacts", "adddevice-e2e"))
	os.RemoveAll(artifacts)
	cmd, stdin, stdout, stderr := bt.run(ctx, t, "adddevice-e2e.mjs", "CAMGATE_SETUP_URL="+su[1], "ARTIFACTS="+artifacts, "DVR_PASSWORD="+dvrPassword)

	failures := func() int { return strings.Count(dvr.Output(), `msg="failed login"`) }
	done := false
	var device, tiles string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		t.Logf("adddevice-e2e: %s", line)
		switch {
		case line == "CHECK failures 1":
			if n := failures(); n != 1 {
				t.Errorf("the simulator counted %d failed logins, want exactly 1\n%s", n, dvr.Output())
				fmt.Fprintf(stdin, "fail %d failures\n", n)
				continue
			}
			fmt.Fprintln(stdin, "ok")
		case strings.HasPrefix(line, "DEVICE "):
			device = strings.TrimPrefix(line, "DEVICE ")
		case strings.HasPrefix(line, "TILES "):
			tiles = strings.TrimPrefix(line, "TILES ")
		case line == "DONE":
			done = true
		}
	}
	if err := cmd.Wait(); err != nil || !done {
		t.Fatalf("web/adddevice-e2e.mjs: %v\n%s\ncamgate:\n%s", err, stderr.String(), gw.Output())
	}
	if tiles != "2" {
		t.Errorf("the Cameras page shows %s tiles for %s, want 2", tiles, device)
	}
	cfg, err := store.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	d := cfg.Device(device)
	if d == nil || d.Address != "127.0.0.1" || fmt.Sprint(d.Channels) != "[101 102 201 202]" || d.Model == "" || d.Firmware == "" {
		t.Fatalf("camgate.yaml's devices entry: got %+v, want 127.0.0.1 with channels 101 102 201 202 and model and firmware", d)
	}
	guarded := 0
	for i := range cfg.Rules {
		if cfg.Rules[i].Device == device && cfg.Rules[i].Guard.Auth {
			guarded++
		}
	}
	if guarded == 0 {
		t.Errorf("no rule of %s has the brute-force guard on: %+v", device, cfg.Rules)
	}
	if pw, err := credstore.New(state).Get(device); err != nil || pw != dvrPassword {
		t.Errorf("credstore %s: got %q, %v; want the DVR's password", device, pw, err)
	}
	raw, _ := os.ReadFile(cfgPath)
	if strings.Contains(string(raw), dvrPassword) {
		t.Errorf("camgate.yaml holds the device password")
	}
}
