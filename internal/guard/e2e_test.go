package guard_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/credstore"
	"github.com/camgate/camgate/internal/netlab"
	"github.com/camgate/camgate/internal/sim"
)

// The end-to-end test: the simulated DVR in lan (in-process, so the test
// can read its failed-login counter and request log), camgate serve as a
// real process in gw, and curl, ffprobe and raw sockets in wan from
// several source addresses.

const guardConfig = `version: 1
listen_address: %[1]s
state_dir: %[2]s
devices:
  - name: dvr
    address: %[3]s
    http_port: 8082
rules:
  - name: dvr-web
    description: the DVR's web page and ISAPI, guarded
    external_port: 8082
    internal_ip: %[3]s
    allow: [198.18.0.10/31, 198.18.0.12/31]   # .10-.13; .14 is not allowed
    guard: {auth: true, per_ip_connections: 10}
  - name: dvr-https
    description: the same over HTTPS, terminated by camgate
    external_port: 443
    internal_ip: %[3]s
    internal_port: 8082
    tls: terminate
    guard: auth
  - name: dvr-rtsp
    external_port: 554
    internal_ip: %[3]s
    guard: auth
`

type lab struct {
	*netlab.Lab
	dev      *sim.Device
	gw       *netlab.Proc
	bin, cfg string
	state    string
	dir      string
	good     string // curl config file with the right password
	bad      string // and with a wrong one
}

func camgateBin(t *testing.T) string { return netlab.Camgate(t) }

func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
}

func startLab(t *testing.T) *lab { return startLabWith(t, guardConfig) }

// startLabWith starts the lab with a config template taking the listen
// address, the state directory and the device's address.
func startLabWith(t *testing.T, conf string) *lab {
	bin := camgateBin(t)
	need(t, "curl", "ffprobe")
	l := &lab{Lab: netlab.New(t, netlab.Options{}), bin: bin, dir: t.TempDir()}

	// The DVR, its sockets created inside lan.
	err := l.Do(l.LAN, func() error {
		var err error
		l.dev, err = sim.New(sim.Config{
			Listen:   netlab.LANAddr,
			Password: "Sim-Pass-1234",
			Ports:    sim.Ports{HTTP: 8082, HTTPS: -1, RTSP: 554, RTP: -1, SDK: -1, SDKOverTLS: -1, WebSocket: -1, SADP: -1, WSDiscovery: -1},
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.dev.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	// curl reads credentials from a config file, not argv.
	l.good = l.file("good.curl", "user = \"admin:Sim-Pass-1234\"\n")
	l.bad = l.file("bad.curl", "user = \"admin:wrong-guess\"\n")

	l.state = filepath.Join(l.dir, "state")
	// As `camgate device add` leaves it: the password in the state
	// directory, so the guard judges answers itself.
	if err := credstore.New(l.state).Put("dvr", "Sim-Pass-1234"); err != nil {
		t.Fatal(err)
	}
	l.cfg = l.file("camgate.yaml", fmt.Sprintf(conf, netlab.GWWANAddr, l.state, netlab.LANAddr))
	l.gw = l.Start(l.GW, bin, "serve", "--config", l.cfg, "--log-level", "debug")
	if !l.gw.WaitFor("camgate is running", 15*time.Second) {
		t.Fatalf("camgate did not start:\n%s", l.gw.Output())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("camgate's log:\n%s", l.gw.Output())
		}
	})
	return l
}

func (l *lab) file(name, body string) string {
	p := filepath.Join(l.dir, name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		panic(err)
	}
	return p
}

// curl runs curl in wan from address from and returns the HTTP status
// ("000" when there was no answer) and the body.
func (l *lab) curl(from string, args ...string) (status, body string) {
	out := filepath.Join(l.dir, "body")
	os.Remove(out)
	a := append([]string{"-sS", "--max-time", "5", "--interface", from, "-o", out, "-w", "%{http_code}"}, args...)
	code, _ := l.Command(l.WAN, "curl", a...).Output()
	b, _ := os.ReadFile(out)
	return strings.TrimSpace(string(code)), string(b)
}

// camgate runs the camgate command here (it works on files only).
func (l *lab) camgate(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(l.bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("camgate %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func gwURL(port int, path string) string {
	return fmt.Sprintf("http://%s:%d%s", netlab.GWWANAddr, port, path)
}

func TestGuardEndToEnd(t *testing.T) {
	l := startLab(t)
	camgateLAN := netlab.GWLANAddr // the device sees every remote client as camgate

	t.Run("allowlist", func(t *testing.T) {
		if st, body := l.curl("198.18.0.11", gwURL(8082, "/")); st != "200" || !strings.Contains(body, "DS-7208HQHI-K1") {
			t.Fatalf("allowed source: got %s %q, want the login page", st, body)
		}
		if st, _ := l.curl("198.18.0.14", gwURL(8082, "/")); st != "000" {
			t.Fatalf("source outside the allow list: got HTTP %s, want no answer", st)
		}
	})

	t.Run("per-ip cap", func(t *testing.T) {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for i := 0; i < 10; i++ {
			c, err := l.Dial(l.WAN, "tcp", "198.18.0.12:0", gwURL(8082, "")[7:], 2*time.Second)
			if err != nil {
				t.Fatalf("connection %d: %v", i+1, err)
			}
			held = append(held, c)
		}
		// Every held connection is admitted: each gets an answer.
		for i, c := range held[:2] {
			fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: dvr\r\n\r\n")
			c.SetReadDeadline(time.Now().Add(3 * time.Second))
			b := make([]byte, 12)
			if _, err := c.Read(b); err != nil || string(b) != "HTTP/1.1 200" {
				t.Fatalf("held connection %d: got %q %v", i+1, b, err)
			}
		}
		// The 11th from the same address is cut at once.
		c, err := l.Dial(l.WAN, "tcp", "198.18.0.12:0", gwURL(8082, "")[7:], 2*time.Second)
		if err == nil {
			fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: dvr\r\n\r\n")
			c.SetReadDeadline(time.Now().Add(3 * time.Second))
			b := make([]byte, 64)
			n, rerr := c.Read(b)
			c.Close()
			if rerr == nil {
				t.Fatalf("11th connection: got %q, want it refused", b[:n])
			}
		}
		// Another address still gets in.
		if st, _ := l.curl("198.18.0.13", gwURL(8082, "/")); st != "200" {
			t.Fatalf("another source while .12 is at its cap: got %s", st)
		}
	})

	t.Run("auth guard", func(t *testing.T) {
		l.dev.Unlock(camgateLAN)
		for i := 1; i <= 4; i++ {
			st, _ := l.curl("198.18.0.11", "--digest", "-K", l.bad, gwURL(8082, "/ISAPI/System/deviceInfo"))
			if st != "401" {
				t.Fatalf("wrong password %d: got %s, want 401", i, st)
			}
		}
		// max_failures (4) reached: camgate refuses the source, even with
		// the right password.
		if st, _ := l.curl("198.18.0.11", "--digest", "-K", l.good, gwURL(8082, "/ISAPI/System/deviceInfo")); st != "000" {
			t.Fatalf("banned source: got %s, want refused", st)
		}
		// camgate knows the password: not one wrong guess reached the
		// device's counter.
		if n := l.dev.FailedLogins(camgateLAN); n != 0 || l.dev.Locked(camgateLAN) {
			t.Fatalf("device: got %d failed logins (locked %v), want 0", n, l.dev.Locked(camgateLAN))
		}
		// The ban covers the device's other rules.
		if st, _ := l.curl("198.18.0.11", "--digest", "-K", l.good, "--cacert", filepath.Join(l.state, "tls", "dvr-https.crt"),
			fmt.Sprintf("https://%s:443/ISAPI/System/deviceInfo", netlab.GWWANAddr)); st != "000" {
			t.Fatalf("banned source on the HTTPS rule: got %s, want refused", st)
		}
		// Another source logs in fine.
		st, body := l.curl("198.18.0.13", "--digest", "-K", l.good, gwURL(8082, "/ISAPI/System/deviceInfo"))
		if st != "200" || !strings.Contains(body, "<model>DS-7208HQHI-K1</model>") {
			t.Fatalf("other source: got %s %q", st, body)
		}
		// The ban is listed, survives in the state dir, and can be cleared.
		out := l.camgate(t, "ban", "list", "--config", l.cfg)
		if !strings.Contains(out, "198.18.0.11") || !strings.Contains(out, "dvr-web") {
			t.Fatalf("camgate ban list: got %q", out)
		}
		out = l.camgate(t, "ban", "clear", "--config", l.cfg, "--source", "198.18.0.11")
		if !strings.Contains(out, "cleared 1 ban(s)") {
			t.Fatalf("camgate ban clear: got %q", out)
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			st, _ := l.curl("198.18.0.11", "--digest", "-K", l.good, gwURL(8082, "/ISAPI/System/deviceInfo"))
			if st == "200" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after camgate ban clear: got %s, want 200", st)
			}
			time.Sleep(200 * time.Millisecond)
		}
		if !l.gw.WaitFor("bans lifted by camgate ban clear", 5*time.Second) {
			t.Fatal("the gateway did not log the clear")
		}
	})

	t.Run("tls termination", func(t *testing.T) {
		cacert := filepath.Join(l.state, "tls", "dvr-https.crt")
		url := fmt.Sprintf("https://%s:443/ISAPI/System/deviceInfo", netlab.GWWANAddr)
		st, body := l.curl("198.18.0.10", "--cacert", cacert, "--digest", "-K", l.good, url)
		if st != "200" || !strings.Contains(body, "<deviceType>DVR</deviceType>") {
			t.Fatalf("digest over HTTPS: got %s %q", st, body)
		}
		// ISAPI PUT through TLS, with digest.
		st, _ = l.curl("198.18.0.10", "--cacert", cacert, "--digest", "-K", l.good, "-X", "PUT",
			"-H", "Content-Type: application/xml", "--data", "<DeviceInfo><deviceName>Shop DVR</deviceName></DeviceInfo>", url)
		if st != "200" || l.dev.Identity().DeviceName != "Shop DVR" {
			t.Fatalf("ISAPI PUT over HTTPS: got %s, device name %q", st, l.dev.Identity().DeviceName)
		}
		// Without the certificate, curl refuses it: it is camgate's own.
		if st, _ := l.curl("198.18.0.10", url); st != "000" {
			t.Fatalf("untrusted certificate: got %s, want a TLS failure", st)
		}
		if st, _ := l.curl("198.18.0.10", "--cacert", cacert, "--tls-max", "1.1", url); st != "000" {
			t.Fatalf("TLS 1.1: got %s, want refused", st)
		}
	})

	t.Run("exploit filter", func(t *testing.T) {
		inject := `<?xml version="1.0" encoding="UTF-8"?><language>$(id>webLib/c)</language>`
		for _, url := range []string{gwURL(8082, "/SDK/webLanguage"), gwURL(8082, "/SDK//%77ebLanguage")} {
			st, _ := l.curl("198.18.0.10", "-X", "PUT", "-H", "Content-Type: application/x-www-form-urlencoded; charset=UTF-8",
				"--data-binary", inject, "--path-as-is", url)
			if st != "403" {
				t.Fatalf("CVE-2021-36260 %s: got %s, want 403", url, st)
			}
		}
		if st, _ := l.curl("198.18.0.10", "--path-as-is", gwURL(8082, "/System/configurationFile?auth=YWRtaW46MTEK")); st != "403" {
			t.Fatalf("CVE-2017-7921: got %s, want 403", st)
		}
		if st, _ := l.curl("198.18.0.10", "--path-as-is", gwURL(8082, "/doc/../../etc/passwd")); st != "403" {
			t.Fatalf("traversal: got %s, want 403", st)
		}
		// Normal ISAPI calls pass.
		if st, _ := l.curl("198.18.0.10", "--digest", "-K", l.good, gwURL(8082, "/ISAPI/Security/adminAccesses")); st != "200" {
			t.Fatalf("ISAPI GET: got %s", st)
		}
		reqs := l.dev.Requests()
		if !slices.ContainsFunc(reqs, func(r sim.Request) bool { return r.Path == "/ISAPI/Security/adminAccesses" && r.Status == 200 }) {
			t.Fatalf("the request log lacks the ISAPI call that passed: %+v", reqs)
		}
		for _, r := range reqs {
			p := strings.ToLower(r.Path)
			if strings.Contains(p, "sdk") || strings.Contains(p, "auth=") || strings.Contains(p, "passwd") {
				t.Fatalf("the device saw %s %s from %s", r.Method, r.Path, r.Source)
			}
		}
	})

	t.Run("rtsp through the guard", func(t *testing.T) {
		url := fmt.Sprintf("rtsp://admin:Sim-Pass-1234@%s:554/Streaming/Channels/101", netlab.GWWANAddr)
		out := l.Exec(l.WAN, "ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-show_streams", "-of", "json", url)
		var res struct {
			Streams []struct {
				Codec string `json:"codec_name"`
				Width int    `json:"width"`
			} `json:"streams"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Streams) == 0 {
			t.Fatalf("ffprobe: %v\n%s", err, out)
		}
		if s := res.Streams[0]; s.Codec != "h264" || s.Width != 640 {
			t.Fatalf("got %+v, want h264 640 wide", s)
		}
		if !strings.Contains(l.camgate(t, "ban", "list", "--config", l.cfg), "no bans in force") {
			t.Fatal("a successful RTSP login led to a ban")
		}
	})

	t.Run("ban survives a restart", func(t *testing.T) {
		for i := 0; i < 4; i++ {
			l.curl("198.18.0.13", "--digest", "-K", l.bad, gwURL(8082, "/ISAPI/System/deviceInfo"))
		}
		l.gw.Stop()
		l.gw = l.Start(l.GW, l.bin, "serve", "--config", l.cfg)
		if !l.gw.WaitFor("camgate is running", 15*time.Second) {
			t.Fatalf("camgate did not restart:\n%s", l.gw.Output())
		}
		if st, _ := l.curl("198.18.0.13", "--digest", "-K", l.good, gwURL(8082, "/ISAPI/System/deviceInfo")); st != "000" {
			t.Fatalf("banned source after a restart: got %s, want refused", st)
		}
		if st, _ := l.curl("198.18.0.10", "--digest", "-K", l.good, gwURL(8082, "/ISAPI/System/deviceInfo")); st != "200" {
			t.Fatalf("other source after a restart: got %s", st)
		}
	})
}
