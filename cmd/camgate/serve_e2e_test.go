package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/netlab"
)

// camgateBin builds the binary once per test run.
func camgateBin(t *testing.T) string { return netlab.Camgate(t) }

func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (the test command installs it: see .ci/run)", tool)
		}
	}
}

func writeConfig(t *testing.T, dir, body string) string {
	t.Helper()
	p := filepath.Join(dir, "camgate.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestServeEndToEnd runs camgate in gw, a web server, an iperf3 server and
// a UDP echo in lan, and real clients in wan.
func TestServeEndToEnd(t *testing.T) {
	bin := camgateBin(t)
	need(t, "curl", "iperf3", "socat")
	l := netlab.New(t, netlab.Options{})
	lan := netlab.LANAddr.String()

	// A web page in lan.
	ln, err := l.Listen(l.LAN, "tcp", lan+":8082")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "DVR page for %s", r.RemoteAddr)
	}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	l.Start(l.LAN, "iperf3", "-s", "-B", lan, "-p", "5201")
	l.Start(l.LAN, "socat", "UDP4-RECVFROM:9000,bind="+lan+",fork", "EXEC:cat")

	dir := t.TempDir()
	cfgPath := writeConfig(t, dir, fmt.Sprintf(`version: 1
listen_address: %s
rules:
  - {name: dvr-web, description: DVR web page, protocol: tcp, external_port: 8082, internal_ip: %s}
  - {name: bench, protocol: tcp, external_port: 15201, internal_ip: %s, internal_port: 5201}
  - {name: echo, protocol: udp, external_port: 19000, internal_ip: %s, internal_port: 9000}
`, netlab.GWWANAddr, lan, lan, lan))
	gw := l.Start(l.GW, bin, "serve", "--config", cfgPath, "--log-level", "debug")
	if !gw.WaitFor("camgate is running", 10*time.Second) {
		t.Fatalf("camgate did not start:\n%s", gw.Output())
	}
	gwAddr := netlab.GWWANAddr.String()

	t.Run("curl", func(t *testing.T) {
		out := l.Exec(l.WAN, "curl", "-sS", "--fail", "--max-time", "5", "http://"+gwAddr+":8082/")
		// The device sees camgate's LAN address, as through any proxy.
		if !strings.Contains(out, "DVR page for "+netlab.GWLANAddr.String()) {
			t.Fatalf("got %q, want the DVR page", out)
		}
	})

	t.Run("iperf3", func(t *testing.T) {
		for _, dir := range [][]string{nil, {"-R"}} {
			args := append([]string{"-c", gwAddr, "-p", "15201", "-t", "2", "-J"}, dir...)
			out := l.Exec(l.WAN, "iperf3", args...)
			var res iperfReport
			if err := json.Unmarshal([]byte(out), &res); err != nil {
				t.Fatalf("iperf3 output: %v\n%s", err, out)
			}
			if res.Error != "" || res.End.SumReceived.Bytes < 1<<20 {
				t.Fatalf("iperf3 %v: got %+v (%s), want megabytes through camgate", dir, res.End.SumReceived, res.Error)
			}
			t.Logf("iperf3 %v through camgate: %.2f Gbit/s", dir, res.End.SumReceived.BPS/1e9)
		}
	})

	t.Run("udp echo", func(t *testing.T) {
		c, err := l.Dial(l.WAN, "udp", "", gwAddr+":19000", time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		buf := make([]byte, 65536)
		for _, size := range []int{1, 1400, 8000} {
			msg := []byte(strings.Repeat("v", size))
			got := false
			for try := 0; try < 5 && !got; try++ { // UDP: allow for a lost first datagram
				c.Write(msg)
				c.SetReadDeadline(time.Now().Add(time.Second))
				n, err := c.Read(buf)
				got = err == nil && n == size
			}
			if !got {
				t.Fatalf("no %d-byte echo through camgate", size)
			}
		}
	})

	t.Run("reload", func(t *testing.T) {
		// A long-lived connection on dvr-web survives a reload that adds a
		// rule and removes another.
		keep, err := l.Dial(l.WAN, "tcp", "", gwAddr+":8082", time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer keep.Close()
		writeConfig(t, dir, fmt.Sprintf(`version: 1
listen_address: %s
rules:
  - {name: dvr-web, description: DVR web page, protocol: tcp, external_port: 8082, internal_ip: %s}
  - {name: dvr-web2, protocol: tcp, external_port: 18082, internal_ip: %s, internal_port: 8082}
`, netlab.GWWANAddr, lan, lan))
		gw.Signal(syscall.SIGHUP)
		if !gw.WaitFor("config reloaded", 5*time.Second) {
			t.Fatalf("no reload:\n%s", gw.Output())
		}
		io.WriteString(keep, "GET / HTTP/1.0\r\n\r\n")
		keep.SetReadDeadline(time.Now().Add(3 * time.Second))
		b, _ := io.ReadAll(keep)
		if !strings.Contains(string(b), "DVR page") {
			t.Fatalf("connection opened before the reload got %q", b)
		}
		l.Exec(l.WAN, "curl", "-sS", "--fail", "--max-time", "5", "http://"+gwAddr+":18082/")
		if c, err := l.Dial(l.WAN, "tcp", "", gwAddr+":15201", time.Second); err == nil {
			c.Close()
			t.Fatal("removed rule still listening")
		}

		// An invalid file is refused and the gateway keeps serving.
		writeConfig(t, dir, "version: 1\nrules:\n  - {name: broken, external_port: 99999, internal_ip: nope..}\n")
		gw.Signal(syscall.SIGHUP)
		if !gw.WaitFor("config refused; still serving the last good config", 5*time.Second) {
			t.Fatalf("invalid config not refused:\n%s", gw.Output())
		}
		if !strings.Contains(gw.Output(), `rule \"broken\": external_port: port 99999 is outside 1-65535`) {
			t.Fatalf("log does not name the rule and field:\n%s", gw.Output())
		}
		l.Exec(l.WAN, "curl", "-sS", "--fail", "--max-time", "5", "http://"+gwAddr+":18082/")
	})

	t.Run("shutdown", func(t *testing.T) {
		gw.Signal(syscall.SIGTERM)
		select {
		case <-gw.Exited():
		case <-time.After(10 * time.Second):
			t.Fatal("camgate did not stop on SIGTERM")
		}
		if !strings.Contains(gw.Output(), "msg=stopped") {
			t.Fatalf("no clean stop:\n%s", gw.Output())
		}
	})
}

// TestServeWatchAndStarter covers first start without a file and --watch.
func TestServeWatchAndStarter(t *testing.T) {
	bin := camgateBin(t)
	l := netlab.New(t, netlab.Options{})
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "camgate.yaml")
	gw := l.Start(l.GW, bin, "serve", "--config", cfgPath, "--watch", "--log-format", "json")
	if !gw.WaitFor("starter config was written", 10*time.Second) {
		t.Fatalf("no starter config message:\n%s", gw.Output())
	}
	b, err := os.ReadFile(cfgPath)
	if err != nil || !strings.Contains(string(b), "internal_ip: 192.168.1.64") {
		t.Fatalf("starter file: %v\n%s", err, b)
	}
	// Every log line is JSON.
	for _, line := range strings.Split(strings.TrimSpace(gw.Output()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not a JSON log line: %q", line)
		}
	}
	ln, err := l.Listen(l.LAN, "tcp", netlab.LANAddr.String()+":7000")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, "watched\n")
			c.Close()
		}
	}()
	writeConfig(t, dir, fmt.Sprintf("version: 1\nrules:\n  - {name: w, external_port: 17000, internal_ip: %s, internal_port: 7000}\n", netlab.LANAddr))
	if !gw.WaitFor(`"msg":"config reloaded","trigger":"file changed"`, 10*time.Second) {
		t.Fatalf("--watch did not reload:\n%s", gw.Output())
	}
	out := l.Exec(l.WAN, "socat", "-", "TCP:"+netlab.GWWANAddr.String()+":17000")
	if out != "watched\n" {
		t.Fatalf("got %q through the watched rule", out)
	}
}

// TestServeOneGatewayPerConfig runs real camgate processes on loopback:
// a second serve of the same config is refused naming the first one's
// pid (the state directory lock), and a serve of another config that
// wants the same port is refused naming the process that holds it,
// instead of sharing it through SO_REUSEPORT and splitting the viewers
// (issue #13, item 6). The first one also removed the temporary file a
// crash left next to its config (item 5).
func TestServeOneGatewayPerConfig(t *testing.T) {
	bin := camgateBin(t)
	port := freeLoopbackPort(t)
	body := fmt.Sprintf("version: 1\nlisten_address: 127.0.0.1\nrules:\n  - {name: cam, external_port: %d, internal_ip: 127.0.0.1, internal_port: 9}\nadmin:\n  enabled: false\n", port)
	dirA, dirB := t.TempDir(), t.TempDir()
	cfgA, cfgB := writeConfig(t, dirA, body), writeConfig(t, dirB, body)
	stale := filepath.Join(dirA, ".camgate.yaml.tmp-123456")
	os.WriteFile(stale, []byte("half a config"), 0o600)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	first := netlab.StartCmd(exec.CommandContext(ctx, bin, "serve", "--config", cfgA))
	defer first.Stop()
	if !first.WaitFor("camgate is running", 10*time.Second) {
		t.Fatalf("first gateway did not start:\n%s", first.Output())
	}
	m := regexp.MustCompile(`pid=(\d+)`).FindStringSubmatch(first.Output())
	if m == nil {
		t.Fatalf("no pid in:\n%s", first.Output())
	}
	if _, err := os.Stat(stale); err == nil || !strings.Contains(first.Output(), "removed temporary files") {
		t.Fatalf("the stale temporary file is still there (or not logged):\n%s", first.Output())
	}

	for _, tc := range []struct{ name, cfg, want string }{
		{"same config", cfgA, "another camgate already serves this config"},
		{"same port", cfgB, "port already in use: held by camgate (pid " + m[1] + ")"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := exec.CommandContext(ctx, bin, "serve", "--config", tc.cfg).CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), tc.want) || !strings.Contains(string(out), m[1]) {
				t.Fatalf("got %v:\n%s\nwant exit 1 with %q naming pid %s", err, out, tc.want, m[1])
			}
		})
	}
}
