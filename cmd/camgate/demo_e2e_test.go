package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/netlab"
)

// TestDemo runs `camgate demo` exactly as the README says, inside a
// namespace so its fixed loopback ports cannot clash with anything, and
// watches the simulated DVR's stream through camgate with real ffprobe.
func TestDemo(t *testing.T) {
	bin := camgateBin(t)
	need(t, "ffprobe", "curl")
	l := netlab.New(t, netlab.Options{})
	demo := l.Start(l.GW, bin, "demo")
	if !demo.WaitFor("camgate is running", 15*time.Second) {
		t.Fatalf("demo did not start:\n%s", demo.Output())
	}
	out := demo.Output()
	m := regexp.MustCompile(`ffplay '([^']+)'`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("demo banner has no RTSP URL:\n%s", out)
	}
	// The player's default transport, RTP over UDP, through camgate.
	got := l.Exec(l.GW, "ffprobe", "-v", "warning", "-show_entries",
		"stream=codec_name,width,height", "-of", "compact", m[1])
	if strings.Contains(got, "retrying with TCP") {
		t.Fatalf("ffprobe fell back to TCP through the demo gateway:\n%s", got)
	}
	if !strings.Contains(got, "codec_name=h264|width=640|height=360") {
		t.Fatalf("ffprobe through the demo gateway: got %q, want h264 640x360", got)
	}
	cm := regexp.MustCompile(`curl --digest -u (\S+):'([^']+)' (\S+)`).FindStringSubmatch(out)
	if cm == nil {
		t.Fatalf("demo banner has no curl line:\n%s", out)
	}
	info := l.Exec(l.GW, "curl", "-sS", "--fail", "--digest", "-u", cm[1]+":"+cm[2], cm[3])
	if !strings.Contains(info, "<model>DS-7208HQHI-K1</model>") {
		t.Fatalf("deviceInfo through the demo gateway: %s", info)
	}
	if !strings.Contains(out, "/setup#token=") {
		t.Fatalf("demo log has no admin setup link:\n%s", out)
	}
}

// TestSimThroughGateway is the DVR-on-the-LAN case: the simulator in lan,
// camgate in gw, and the internet client in wan playing the stream, over
// IPv4 and over IPv6 to the same IPv4-only recorder.
func TestSimThroughGateway(t *testing.T) {
	bin := camgateBin(t)
	need(t, "ffprobe", "curl")
	l := netlab.New(t, netlab.Options{IPv6: true})
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "dvr-password")
	os.WriteFile(pwFile, []byte("Lan-Dvr-Pass-42\n"), 0o600)
	lan := netlab.LANAddr.String()
	dvr := l.Start(l.LAN, bin, "sim", "--listen", lan, "--password-file", pwFile, "--sadp-port", "-1", "--wsd-port", "-1")
	if !dvr.WaitFor("RTSP", 15*time.Second) {
		t.Fatalf("simulator did not start:\n%s", dvr.Output())
	}
	l.WaitTCP(l.GW, lan+":554", 10*time.Second)
	// listen_address "::" takes both families: viewers with IPv6 (often
	// the way round a carrier-grade NAT) reach the IPv4-only recorder.
	cfg := writeConfig(t, dir, fmt.Sprintf(`version: 1
listen_address: "::"
admin: {enabled: false}
rules:
  - {name: dvr-rtsp, description: live video, protocol: tcp, external_port: 554, internal_ip: %s}
  - {name: dvr-web, description: web and ISAPI, protocol: tcp, external_port: 8082, internal_ip: %s}
`, lan, lan))
	gw := l.Start(l.GW, bin, "serve", "--config", cfg)
	if !gw.WaitFor("camgate is running", 10*time.Second) {
		t.Fatalf("camgate did not start:\n%s", gw.Output())
	}
	for _, pub := range []string{netlab.GWWANAddr.String(), "[" + netlab.GWWANAddr6.String() + "]"} {
		for _, tc := range []struct{ ch, want string }{{"101", "width=640|height=360"}, {"102", "width=352|height=288"}} {
			url := fmt.Sprintf("rtsp://admin:Lan-Dvr-Pass-42@%s:554/Streaming/Channels/%s", pub, tc.ch)
			got := l.Exec(l.WAN, "ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-show_entries",
				"stream=codec_name,width,height", "-of", "compact", url)
			if !strings.Contains(got, "codec_name=h264|"+tc.want) {
				t.Fatalf("channel %s from wan via %s: got %q, want h264 %s", tc.ch, pub, got, tc.want)
			}
		}
		info := l.Exec(l.WAN, "curl", "-sS", "--fail", "-g", "--digest", "-u", "admin:Lan-Dvr-Pass-42",
			"http://"+pub+":8082/ISAPI/System/deviceInfo")
		if !strings.Contains(info, "<deviceType>DVR</deviceType>") {
			t.Fatalf("deviceInfo from wan via %s: %s", pub, info)
		}
	}
	if strings.Contains(gw.Output(), "Lan-Dvr-Pass-42") || strings.Contains(dvr.Output(), "Lan-Dvr-Pass-42") {
		t.Fatal("a password appeared in the logs")
	}
}
