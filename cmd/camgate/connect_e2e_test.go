package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/netlab"
)

// TestConnectCardInChromium opens the Connect page in real Chromium
// against `camgate serve` with a DVR's RTSP and web rules: the page shows
// the public address from public_ip and the advice to forward the rules'
// real external ports to camgate, and every QR code, as Chromium drew it
// on screen, decodes with zbarimg to the URL beside it, which carries the
// rule's external port. Screenshots land in artifacts/connect-e2e/.
func TestConnectCardInChromium(t *testing.T) {
	bt := needBrowser(t)
	zbar, err := exec.LookPath("zbarimg")
	if err != nil {
		t.Skip("needs zbarimg (apt-get install zbar-tools)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	rtspPort, webPort := freeTCPPort(t), freeTCPPort(t)
	cfgPath := writeConfig(t, dir, fmt.Sprintf(`version: 1
listen_address: 127.0.0.1
state_dir: %s
public_ip: 198.18.0.10
rules:
  - name: dvr-rtsp
    external_port: %d
    internal_ip: 127.0.0.1
    internal_port: 554
    device: dvr
  - name: dvr-web
    external_port: %d
    internal_ip: 127.0.0.1
    internal_port: 80
    device: dvr
devices:
  - name: dvr
    address: 127.0.0.1
    channels: [101, 102]
admin:
  listen: "https://127.0.0.1:0"
`, filepath.Join(dir, "state"), rtspPort, webPort))
	gw := netlab.StartCmd(exec.CommandContext(ctx, bt.bin, "serve", "--config", cfgPath))
	defer gw.Stop()
	if !gw.WaitFor("setup_url=", 15*time.Second) {
		t.Fatalf("camgate did not print a setup URL:\n%s", gw.Output())
	}
	su := regexp.MustCompile(`setup_url="?([^"\s]+)`).FindStringSubmatch(gw.Output())
	artifacts, _ := filepath.Abs(filepath.Join("..", "..", "artifacts", "connect-e2e"))
	os.RemoveAll(artifacts)
	cmd, stdin, stdout, stderr := bt.run(ctx, t, "connect-e2e.mjs", "CAMGATE_SETUP_URL="+su[1], "ARTIFACTS="+artifacts)

	want := map[string]bool{
		fmt.Sprintf("rtsp://198.18.0.10:%d/Streaming/Channels/101", rtspPort): false,
		fmt.Sprintf("rtsp://198.18.0.10:%d/Streaming/Channels/102", rtspPort): false,
		fmt.Sprintf("http://198.18.0.10:%d/", webPort):                        false,
	}
	done := false
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		t.Logf("connect-e2e: %s", line)
		switch {
		case strings.HasPrefix(line, "PUBLIC "):
			if got := strings.TrimPrefix(line, "PUBLIC "); got != "198.18.0.10" {
				t.Errorf("public address: got %q, want 198.18.0.10 (public_ip)", got)
			}
		case strings.HasPrefix(line, "ADVICE "):
			for _, p := range []int{rtspPort, webPort} {
				if !strings.Contains(line, strconv.Itoa(p)+"/tcp") || !strings.Contains(line, "to 127.0.0.1") {
					t.Errorf("advice %q: want %d/tcp forwarded to 127.0.0.1", line, p)
				}
			}
		case strings.HasPrefix(line, "CHECK qr "):
			file, url, _ := strings.Cut(strings.TrimPrefix(line, "CHECK qr "), " ")
			out, err := exec.Command(zbar, "--raw", "-q", file).Output()
			got := strings.TrimSpace(string(out))
			if _, known := want[url]; !known || err != nil || got != url {
				t.Errorf("QR beside %q: zbarimg read %q (err %v); want that URL, one of %v", url, got, err, want)
				fmt.Fprintf(stdin, "fail %q\n", got)
				continue
			}
			want[url] = true
			fmt.Fprintln(stdin, "ok")
		case line == "DONE":
			done = true
		}
	}
	if err := cmd.Wait(); err != nil || !done {
		t.Fatalf("web/connect-e2e.mjs: %v\n%s\ncamgate:\n%s", err, stderr.String(), gw.Output())
	}
	for u, seen := range want {
		if !seen {
			t.Errorf("the Connect page showed no QR code for %s", u)
		}
	}
}
