package router

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/netlab"
)

// TestServeRTSPRangeThroughRouter is issue #12's "router: true on such a
// rule also opens that range on the upstream router", with real parts:
// miniupnpd is the home router in gw, `camgate serve` and `camgate sim`
// (the DVR) are on the LAN, and the viewer is ffprobe behind its own
// NAT (random source ports), so the ports it declares in SETUP are not
// those its packets come from. camgate learns the viewer's real ports
// only from the viewer's packets to the external RTP range, which reach
// camgate only through the router's mappings of that range: with them
// the viewer plays over UDP; with them deleted it gets no video. At
// shutdown camgate removes every mapping it made.
func TestServeRTSPRangeThroughRouter(t *testing.T) {
	if testing.Short() {
		t.Skip("builds camgate")
	}
	if _, err := exec.LookPath("ffprobe"); err != nil {
		t.Skip("needs ffprobe (apt-get install ffmpeg)")
	}
	m := newMiniLab(t, miniOpts{})
	m.startRouter(false)
	viewer := m.NATViewer()
	bin := netlab.Camgate(t)
	dir := t.TempDir()
	device := netlab.LANHost(1).String() // 198.19.0.65: the DVR

	const pass = "Router-Rtsp-1234"
	m.startDVR(bin, dir, device, pass, "--rtsp-port", "554")

	// A small RTP range: the router gets one UDP mapping per port.
	const first, last = 40000, 40007
	cfgPath := filepath.Join(dir, "camgate.yaml")
	cfg := fmt.Sprintf("version: 1\nstate_dir: state\nadmin: {enabled: false}\nrouter:\n  mode: auto\n  lease: 10m\n"+
		"rtsp:\n  rtp_ports: %d-%d\nrules:\n"+
		"  - {name: dvr-rtsp, protocol: tcp, external_port: 10554, internal_ip: %s, internal_port: 554, router: true}\n",
		first, last, device)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	serve := m.Start(m.LAN, bin, "serve", "--config", cfgPath, "--log-level", "debug")
	t.Cleanup(func() {
		serve.Stop()
		if t.Failed() {
			t.Logf("camgate serve log:\n%s", tail(serve.Output(), 80))
		}
	})
	want := []string{"TCP 10554->198.19.0.64:10554"}
	for p := first; p <= last; p++ {
		want = append(want, fmt.Sprintf("UDP %d->198.19.0.64:%d", p, p))
	}
	deadline := time.Now().Add(20 * time.Second)
	for len(m.upnpcEntries()) < len(want) && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	wantEntries(t, m, want...)

	url := fmt.Sprintf("rtsp://admin:%s@%s:10554/Streaming/Channels/101", pass, gwWAN)
	if err := probeUDP(m, viewer, url, 20*time.Second); err != nil {
		t.Fatalf("viewer behind NAT -> router %s -> camgate -> DVR over RTP/UDP: %v\n%s", gwWAN, err, m.dnatRules())
	}
	if !strings.Contains(serve.Output(), "rtp latched") {
		t.Errorf("camgate did not latch the NAT'd viewer's ports:\n%s", tail(serve.Output(), 40))
	}

	// The control: without the router forwarding the RTP range, the
	// viewer's packets never reach camgate, and no video reaches it.
	for p := first; p <= last; p++ {
		if out, err := m.Command(m.LAN, "upnpc", "-i", "-u", rootDescURL, "-d", fmt.Sprint(p), "UDP").CombinedOutput(); err != nil {
			t.Fatalf("upnpc -d %d UDP: %v\n%s", p, err, out)
		}
	}
	wantEntries(t, m, want[0])
	if err := probeUDP(m, viewer, url, 8*time.Second); err == nil {
		t.Fatal("the NAT'd viewer played over UDP with the RTP range unmapped: the test does not prove the mapping matters")
	}

	serve.Signal(syscall.SIGTERM)
	select {
	case <-serve.Exited():
	case <-time.After(15 * time.Second):
		t.Fatalf("camgate serve did not stop:\n%s", serve.Output())
	}
	wantEntries(t, m)
}

// probeUDP runs ffprobe over RTP/UDP only (no TCP fallback) in ns and
// returns nil when it read an h264 stream within limit.
func probeUDP(m *miniLab, ns, url string, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := m.CommandContext(ctx, ns, "ffprobe", "-v", "warning", "-rtsp_transport", "udp", "-show_streams", "-of", "json", url)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("ffprobe: %v\n%s", err, stderr.String())
	}
	var res struct {
		Streams []struct {
			Codec string `json:"codec_name"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(out, &res); err != nil || !slices.ContainsFunc(res.Streams, func(s struct {
		Codec string `json:"codec_name"`
	}) bool {
		return s.Codec == "h264"
	}) {
		return fmt.Errorf("ffprobe: got %s (%v), want an h264 stream\n%s", out, err, stderr.String())
	}
	return nil
}

// startDVR runs `camgate sim` on the LAN at device with password pass and
// only the services that ports turn on (such as "--rtsp-port", "554"),
// and waits until the first of them listens.
func (m *miniLab) startDVR(bin, dir, device, pass string, ports ...string) {
	m.t.Helper()
	pwFile := filepath.Join(dir, "sim.pass")
	if err := os.WriteFile(pwFile, []byte(pass+"\n"), 0o600); err != nil {
		m.t.Fatal(err)
	}
	args := []string{"sim", "--listen", device, "--password-file", pwFile}
	for _, off := range []string{"--http-port", "--https-port", "--rtsp-port", "--sdk-port", "--sdk-tls-port", "--websocket-port", "--sadp-port", "--wsd-port"} {
		if !slices.Contains(ports, off) {
			args = append(args, off, "-1")
		}
	}
	sim := m.Start(m.LAN, bin, append(args, ports...)...)
	m.t.Cleanup(func() {
		sim.Stop()
		if m.t.Failed() {
			m.t.Logf("sim log:\n%s", tail(sim.Output(), 40))
		}
	})
	m.WaitTCP(m.LAN, device+":"+ports[1], 10*time.Second)
}
