package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/check"
	"github.com/camgate/camgate/internal/netlab"
	"github.com/camgate/camgate/internal/sim"
)

// The kernel data plane's end-to-end tests (issue 17): camgate in gw as
// the LAN's router writes nftables DNAT, and real clients in wan reach the
// simulated DVR, iperf3 and a UDP echo in lan through it.

const kernelSimPass = "Kernel-Sim-Pass-7"

// kernelLab is netlab with forwarding on in gw, the simulated DVR (web
// 8082, RTSP 554) in lan in-process, an iperf3 server on 5201 and a UDP
// echo on 9000.
type kernelLab struct {
	*netlab.Lab
	dev *sim.Device
	bin string
	dir string
}

func newKernelLab(t *testing.T, devAddr netip.Addr, opts netlab.Options, setup func(*netlab.Lab)) *kernelLab {
	t.Helper()
	bin := camgateBin(t)
	need(t, "curl", "iperf3", "socat", "ffprobe", "nft")
	opts.Forwarding = true
	l := &kernelLab{Lab: netlab.New(t, opts), bin: bin, dir: t.TempDir()}
	devNS := l.LAN
	if setup != nil {
		setup(l.Lab)
		devNS = l.LAN + "-dev"
	}
	err := l.Do(devNS, func() (err error) {
		l.dev, err = sim.New(sim.Config{
			Listen: devAddr, Password: kernelSimPass,
			Ports: sim.Ports{HTTP: 8082, HTTPS: -1, RTSP: 554, RTP: -1, SDK: -1, SDKOverTLS: -1, WebSocket: -1, SADP: -1, WSDiscovery: -1},
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
	l.Start(devNS, "iperf3", "-s", "-B", devAddr.String(), "-p", "5201")
	l.Start(devNS, "socat", "UDP4-RECVFROM:9000,bind="+devAddr.String()+",fork", "EXEC:cat")
	return l
}

// serve starts camgate serve in ns with the given config body; prefix
// (like setpriv) runs before the binary.
func (l *kernelLab) serve(t *testing.T, ns, body string, prefix ...string) (*netlab.Proc, string) {
	t.Helper()
	path := writeConfig(t, l.dir, body)
	args := append(append(prefix, l.bin), "serve", "--config", path, "--log-level", "debug")
	p := l.Start(ns, args[0], args[1:]...)
	if !p.WaitFor("camgate is running", 15*time.Second) {
		t.Fatalf("camgate did not start:\n%s", p.Output())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("camgate's log:\n%s", p.Output())
		}
	})
	return p, path
}

// sources lists the addresses the device saw for requests of a service.
func (l *kernelLab) sources(svc sim.Service) map[netip.Addr]bool {
	out := map[netip.Addr]bool{}
	for _, r := range l.dev.Requests() {
		if r.Service == svc {
			out[r.Source.Addr()] = true
		}
	}
	return out
}

func (l *kernelLab) ruleset(t *testing.T, ns string) string {
	t.Helper()
	out, err := l.Command(ns, "nft", "list", "ruleset").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list ruleset: %v\n%s", err, out)
	}
	return string(out)
}

// iperfReport is the part of iperf3 -J's report the tests read.
type iperfReport struct {
	End struct {
		SumReceived struct {
			Bytes   float64 `json:"bytes"`
			BPS     float64 `json:"bits_per_second"`
			Seconds float64 `json:"seconds"`
		} `json:"sum_received"`
	} `json:"end"`
	Error string `json:"error"`
}

// iperf runs an iperf3 client in wan and returns the bytes received.
func (l *kernelLab) iperf(t *testing.T, addr string, port, secs int, extra ...string) float64 {
	t.Helper()
	args := append([]string{"-c", addr, "-p", strconv.Itoa(port), "-t", strconv.Itoa(secs), "-J"}, extra...)
	out, _ := l.Command(l.WAN, "iperf3", args...).Output()
	var res iperfReport
	if err := json.Unmarshal(out, &res); err != nil || res.Error != "" {
		t.Fatalf("iperf3 to %s:%d: %v %s\n%s", addr, port, err, res.Error, out)
	}
	t.Logf("iperf3 %v: %.2f Gbit/s", extra, res.End.SumReceived.BPS/1e9)
	return res.End.SumReceived.Bytes
}

func (l *kernelLab) udpEcho(t *testing.T, addr string) {
	t.Helper()
	c, err := l.Dial(l.WAN, "udp", "", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 2048)
	for try := 0; try < 5; try++ {
		c.Write([]byte("ping-kernel"))
		c.SetReadDeadline(time.Now().Add(time.Second))
		if n, err := c.Read(buf); err == nil && string(buf[:n]) == "ping-kernel" {
			return
		}
	}
	t.Fatalf("no UDP echo through %s", addr)
}

func (l *kernelLab) curl(t *testing.T, url string) string {
	t.Helper()
	out, err := l.Command(l.WAN, "curl", "-sS", "--max-time", "5", "-o", "/dev/null", "-w", "%{http_code}", url).CombinedOutput()
	if err != nil {
		t.Fatalf("curl %s: %v\n%s", url, err, out)
	}
	return string(out)
}

func (l *kernelLab) ffprobe(t *testing.T, url string) {
	t.Helper()
	out, err := l.Command(l.WAN, "ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-show_streams", "-of", "json", url).CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"codec_type": "video"`) {
		t.Fatalf("ffprobe over RTSP/TCP: %v\n%s", err, out)
	}
}

// metric reads one sample from camgate's public /metrics inside ns.
func (l *kernelLab) metric(t *testing.T, ns, admin, series string) float64 {
	t.Helper()
	out, err := l.Command(ns, "curl", "-sS", "--max-time", "5", "http://"+admin+"/metrics").Output()
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no %s in /metrics:\n%s", series, out)
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

func stop(t *testing.T, p *netlab.Proc) {
	t.Helper()
	p.Signal(syscall.SIGTERM)
	select {
	case <-p.Exited():
	case <-time.After(15 * time.Second):
		t.Fatalf("camgate did not stop on SIGTERM:\n%s", p.Output())
	}
}

const kernelConfig = `version: 1
listen_address: %[1]s
state_dir: %[3]s
admin: {listen: "http://127.0.0.1:9080", metrics_public: true}
rules:
  - {name: dvr-web, external_port: 8082, internal_ip: %[2]s, guard: {hikvision: false}}
  - {name: dvr-rtsp, external_port: 554, internal_ip: %[2]s, dataplane: kernel}
  - {name: bench, external_port: 15201, internal_ip: %[2]s, internal_port: 5201, guard: "off"}
  - {name: echo, protocol: udp, external_port: 19000, internal_ip: %[2]s, internal_port: 9000}
  - {name: dvr-guarded, external_port: 18082, internal_ip: %[2]s, internal_port: 8082, guard: {auth: true, max_failures: 3}}
`

// TestKernelGateway: camgate in gw as the LAN's router.
func TestKernelGateway(t *testing.T) {
	l := newKernelLab(t, netlab.LANAddr, netlab.Options{}, nil)
	gwAddr := netlab.GWWANAddr.String()
	gw, cfgPath := l.serve(t, l.GW, fmt.Sprintf(kernelConfig, gwAddr, netlab.LANAddr, filepath.Join(l.dir, "state")))

	for rule, plane := range map[string]string{"dvr-web": "kernel", "dvr-rtsp": "kernel", "bench": "kernel", "echo": "kernel", "dvr-guarded": "userspace"} {
		if !regexp.MustCompile(`rule added.*rule=` + rule + ` .*dataplane=` + plane).MatchString(gw.Output()) {
			t.Errorf("rule %s: the log does not say dataplane=%s", rule, plane)
		}
	}
	if !strings.Contains(gw.Output(), `why="the auth guard reads the logins"`) {
		t.Errorf("the userspace rule's reason is not logged")
	}
	if rs := l.ruleset(t, l.GW); !strings.Contains(rs, "table inet camgate") || !strings.Contains(rs, "dnat ip to "+netlab.LANAddr.String()) {
		t.Fatalf("no camgate DNAT in the ruleset:\n%s", rs)
	}

	t.Run("curl sees the viewer", func(t *testing.T) {
		if code := l.curl(t, "http://"+gwAddr+":8082/"); code != "200" {
			t.Fatalf("got %s from the DVR page", code)
		}
		if src := l.sources(sim.ServiceHTTP); !src[netlab.WANAddr] {
			t.Fatalf("the device saw %v, want the viewer %s", src, netlab.WANAddr)
		}
	})
	t.Run("userspace rule beside", func(t *testing.T) {
		if code := l.curl(t, "http://"+gwAddr+":18082/"); code != "200" {
			t.Fatalf("got %s through the guarded rule", code)
		}
		if src := l.sources(sim.ServiceHTTP); !src[netlab.GWLANAddr] {
			t.Fatalf("the device saw %v; the userspace relay connects from %s", src, netlab.GWLANAddr)
		}
	})
	t.Run("ffprobe rtsp over tcp", func(t *testing.T) {
		l.ffprobe(t, fmt.Sprintf("rtsp://admin:%s@%s:554/Streaming/Channels/101", kernelSimPass, gwAddr))
		if src := l.sources(sim.ServiceRTSP); !src[netlab.WANAddr] || src[netlab.GWLANAddr] {
			t.Fatalf("the device saw RTSP from %v, want only the viewer %s", src, netlab.WANAddr)
		}
	})
	t.Run("iperf3", func(t *testing.T) {
		for _, dir := range [][]string{nil, {"-R"}} {
			if b := l.iperf(t, gwAddr, 15201, 2, dir...); b < 1<<20 {
				t.Fatalf("iperf3 %v moved %.0f bytes", dir, b)
			}
		}
	})
	t.Run("udp echo", func(t *testing.T) { l.udpEcho(t, gwAddr+":19000") })
	t.Run("metrics from nft counters", func(t *testing.T) {
		if v := l.metric(t, l.GW, "127.0.0.1:9080", `camgate_rule_bytes_total{direction="out",rule="bench"}`); v < 1<<20 {
			t.Fatalf("bench bytes out %v, want the iperf3 traffic counted by nft", v)
		}
		if v := l.metric(t, l.GW, "127.0.0.1:9080", `camgate_rule_connections_total{rule="dvr-web"}`); v < 1 {
			t.Fatalf("dvr-web connections %v", v)
		}
		if v := l.metric(t, l.GW, "127.0.0.1:9080", `camgate_rule_udp_sessions_total{rule="echo"}`); v < 1 {
			t.Fatalf("echo sessions %v", v)
		}
		for rule, want := range map[string]float64{"dvr-web": 1, "echo": 1, "dvr-guarded": 0} {
			if v := l.metric(t, l.GW, "127.0.0.1:9080", `camgate_rule_kernel{rule="`+rule+`"}`); v != want {
				t.Errorf("camgate_rule_kernel{rule=%q} = %v, want %v", rule, v, want)
			}
		}
	})
	t.Run("a ban by the auth guard reaches the kernel rules", func(t *testing.T) {
		// Failed logins from .13 on the guarded (userspace) rule ban it
		// from the device, and so from its kernel rules too.
		guesser := netlab.WANClient(3).String()
		bad := filepath.Join(l.dir, "bad.curl")
		os.WriteFile(bad, []byte("user = \"admin:wrong-guess\"\n"), 0o600)
		for i := 0; i < 4; i++ {
			l.Command(l.WAN, "curl", "-sS", "--max-time", "5", "--interface", guesser, "--digest", "-K", bad, "-o", "/dev/null",
				"http://"+gwAddr+":18082/ISAPI/Security/adminAccesses").Run()
		}
		if !strings.Contains(gw.Output(), "banned") {
			t.Fatalf("no ban logged:\n%s", gw.Output())
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			err := l.Command(l.WAN, "curl", "-sS", "--max-time", "1", "--interface", guesser, "-o", "/dev/null", "http://"+gwAddr+":8082/").Run()
			if err != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the banned source still reaches the device through the kernel rule:\n%s", l.ruleset(t, l.GW))
			}
			time.Sleep(200 * time.Millisecond)
		}
		if code := l.curl(t, "http://"+gwAddr+":8082/"); code != "200" {
			t.Fatalf("another viewer: got %s through the kernel rule after the ban", code)
		}
		if v := l.metric(t, l.GW, "127.0.0.1:9080", `camgate_rule_refused_total{rule="dvr-web"}`); v < 1 {
			t.Errorf("the kernel rule's refusals are not counted: %v", v)
		}
	})
	t.Run("camgate check", func(t *testing.T) {
		// From gw itself, and from a LAN host through the public address
		// (reflection, hairpin).
		for _, from := range []string{"", "netns:" + l.LAN} {
			args := []string{"check", "--config", cfgPath, "--json", "--public-ip", gwAddr, "dvr-web", "echo"}
			if from != "" {
				args = append(args, "--from", from)
			}
			out, _ := l.Command(l.GW, l.bin, args...).Output()
			var rep check.Report
			if err := json.Unmarshal(out, &rep); err != nil {
				t.Fatalf("check --json: %v\n%s", err, out)
			}
			for _, rr := range rep.Rules {
				for _, res := range rr.Results {
					if res.Layer == check.LayerGateway && (res.Status != check.OK || !strings.Contains(res.Reason, "nftables forwards")) {
						t.Errorf("from %q: %s gateway layer: %s %s", from, rr.Rule, res.Status.Symbol(), res.Reason)
					}
					if rr.Rule == "dvr-web" && res.Layer == check.LayerOutside && res.Status != check.OK {
						t.Errorf("from %q: dvr-web through the public address: %s %s", from, res.Status.Symbol(), res.Reason)
					}
				}
			}
		}
	})
	t.Run("stop removes the table", func(t *testing.T) {
		stop(t, gw)
		if rs := l.ruleset(t, l.GW); strings.Contains(rs, "camgate") {
			t.Fatalf("a camgate table is left after stop:\n%s", rs)
		}
	})
}

// TestKernelCrashReclaim: kill -9 leaves the table; the next start takes
// it over in one transaction, so there is exactly one, with the new rules.
func TestKernelCrashReclaim(t *testing.T) {
	l := newKernelLab(t, netlab.LANAddr, netlab.Options{}, nil)
	gwAddr := netlab.GWWANAddr.String()
	body := func(name string, port int) string {
		return fmt.Sprintf("version: 1\nlisten_address: %s\nstate_dir: %s\nadmin: {enabled: false}\nrules:\n  - {name: %s, external_port: %d, internal_ip: %s, internal_port: 8082, guard: {hikvision: false}}\n",
			gwAddr, filepath.Join(l.dir, "state"), name, port, netlab.LANAddr)
	}
	first, _ := l.serve(t, l.GW, body("old-web", 28082))
	if code := l.curl(t, "http://"+gwAddr+":28082/"); code != "200" {
		t.Fatalf("got %s", code)
	}
	first.Signal(syscall.SIGKILL)
	<-first.Exited()
	if rs := l.ruleset(t, l.GW); !strings.Contains(rs, "old-web") {
		t.Fatalf("kill -9 should leave the table behind (that is the point of the test):\n%s", rs)
	}
	second, _ := l.serve(t, l.GW, body("new-web", 38082))
	if !strings.Contains(second.Output(), "reclaiming the nftables table of an earlier camgate") {
		t.Errorf("the reclaim is not logged")
	}
	rs := l.ruleset(t, l.GW)
	if n := strings.Count(rs, "table inet camgate"); n != 1 || strings.Contains(rs, "old-web") || !strings.Contains(rs, "new-web") {
		t.Fatalf("got %d camgate tables, want exactly one with only the new rule:\n%s", n, rs)
	}
	if code := l.curl(t, "http://"+gwAddr+":38082/"); code != "200" {
		t.Fatalf("new rule: got %s", code)
	}
	out, _ := l.Command(l.WAN, "curl", "-sS", "--max-time", "2", "http://"+gwAddr+":28082/").CombinedOutput()
	if strings.Contains(string(out), "html") {
		t.Fatalf("the crashed camgate's rule still forwards: %s", out)
	}
	stop(t, second)
	if rs := l.ruleset(t, l.GW); strings.Contains(rs, "camgate") {
		t.Fatalf("a camgate table is left after stop:\n%s", rs)
	}
}

// reloadTo writes body and sends SIGHUP, then waits for the n-th
// "config reloaded" line.
func (l *kernelLab) reloadTo(t *testing.T, p *netlab.Proc, path, body string, n int) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	p.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(p.Output(), `msg="config reloaded"`) < n {
		if time.Now().After(deadline) {
			t.Fatalf("reload %d did not happen:\n%s", n, p.Output())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestKernelReloadUnderLoad: an iperf3 stream on an untouched kernel rule
// survives 50 reloads that add and remove other rules, and a rule moved
// from the kernel to userspace and back keeps working.
func TestKernelReloadUnderLoad(t *testing.T) {
	l := newKernelLab(t, netlab.LANAddr, netlab.Options{}, nil)
	gwAddr := netlab.GWWANAddr.String()
	base := fmt.Sprintf("version: 1\nlisten_address: %s\nstate_dir: %s\nadmin: {enabled: false}\nrules:\n"+
		"  - {name: bench, external_port: 15201, internal_ip: %s, internal_port: 5201, guard: \"off\"}\n",
		gwAddr, filepath.Join(l.dir, "state"), netlab.LANAddr)
	flip := func(plane string) string {
		return fmt.Sprintf("  - {name: flip, external_port: 28082, internal_ip: %s, internal_port: 8082, guard: {hikvision: false}, dataplane: %s}\n", netlab.LANAddr, plane)
	}
	gw, path := l.serve(t, l.GW, base+flip("kernel"))

	iperf := l.Command(l.WAN, "iperf3", "-c", gwAddr, "-p", "15201", "-t", "12", "-J")
	out := &strings.Builder{}
	iperf.Stdout = out
	if err := iperf.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // the stream is under way
	for i := 1; i <= 50; i++ {
		body := base + flip("kernel")
		if i%2 == 1 {
			body += fmt.Sprintf("  - {name: extra-%d, protocol: both, external_port: %d-%d, internal_ip: %s, internal_port: %d-%d}\n",
				i, 30000+i*10, 30000+i*10+4, netlab.LANAddr, 40000+i*10, 40000+i*10+4)
		}
		l.reloadTo(t, gw, path, body, i)
	}
	t.Run("flip kernel, userspace, kernel", func(t *testing.T) {
		for i, plane := range []string{"userspace", "kernel"} {
			l.reloadTo(t, gw, path, base+flip(plane), 51+i)
			if code := l.curl(t, "http://"+gwAddr+":28082/"); code != "200" {
				t.Fatalf("dataplane %s: got %s", plane, code)
			}
			want := netlab.GWLANAddr
			if plane == "kernel" {
				want = netlab.WANAddr
			}
			reqs := l.dev.Requests()
			if got := reqs[len(reqs)-1].Source.Addr(); got != want {
				t.Fatalf("dataplane %s: the device saw %s, want %s", plane, got, want)
			}
		}
	})
	if err := iperf.Wait(); err != nil {
		t.Fatalf("the iperf3 stream across 50 reloads failed: %v\n%s", err, out)
	}
	var res iperfReport
	if err := json.Unmarshal([]byte(out.String()), &res); err != nil || res.Error != "" || res.End.SumReceived.Seconds < 11 {
		t.Fatalf("iperf3 across 50 reloads: %v %s (%+v)", err, res.Error, res.End.SumReceived)
	}
	t.Logf("iperf3 across 50 reloads: %.0f MB in %.1f s", res.End.SumReceived.Bytes/1e6, res.End.SumReceived.Seconds)
	if n := len(regexp.MustCompile(`msg="rule (added|replaced)" component=gateway rule=bench `).FindAllString(gw.Output(), -1)); n != 1 {
		t.Fatalf("the untouched bench rule was replaced by a reload:\n%s", gw.Output())
	}
	stop(t, gw)
}

// TestKernelNoCapability: without CAP_NET_ADMIN, auto falls back to
// userspace, says so, and everything still works.
func TestKernelNoCapability(t *testing.T) {
	need(t, "setpriv")
	l := newKernelLab(t, netlab.LANAddr, netlab.Options{}, nil)
	gwAddr := netlab.GWWANAddr.String()
	body := fmt.Sprintf("version: 1\nlisten_address: %s\nstate_dir: %s\nadmin: {enabled: false}\nrules:\n"+
		"  - {name: dvr-web, external_port: 8082, internal_ip: %s, guard: {hikvision: false}}\n"+
		"  - {name: echo, protocol: udp, external_port: 19000, internal_ip: %s, internal_port: 9000}\n",
		gwAddr, filepath.Join(l.dir, "state"), netlab.LANAddr, netlab.LANAddr)
	gw, _ := l.serve(t, l.GW, body, "setpriv", "--inh-caps=-all", "--bounding-set=-net_admin")
	if !strings.Contains(gw.Output(), `kernel data plane unavailable, so rules with dataplane auto run in userspace" why="camgate lacks CAP_NET_ADMIN"`) {
		t.Fatalf("no clear fallback line:\n%s", gw.Output())
	}
	if !strings.Contains(gw.Output(), `rule=dvr-web forward="tcp 198.18.0.1:8082 -> 198.19.0.64:8082" dataplane=userspace why="the kernel path is unavailable: camgate lacks CAP_NET_ADMIN"`) {
		t.Fatalf("the rule's reason is not logged:\n%s", gw.Output())
	}
	if code := l.curl(t, "http://"+gwAddr+":8082/"); code != "200" {
		t.Fatalf("got %s", code)
	}
	if src := l.sources(sim.ServiceHTTP); !src[netlab.GWLANAddr] {
		t.Fatalf("the device saw %v, want camgate's relay %s", src, netlab.GWLANAddr)
	}
	l.udpEcho(t, gwAddr+":19000")
	if rs := l.ruleset(t, l.GW); strings.Contains(rs, "camgate") {
		t.Fatalf("a camgate table without CAP_NET_ADMIN?\n%s", rs)
	}
	stop(t, gw)

	// Forcing the kernel path there is refused, with the reason.
	forced := writeConfig(t, t.TempDir(), strings.Replace(body, "guard: {hikvision: false}}", "guard: {hikvision: false}, dataplane: kernel}", 1))
	p := l.Start(l.GW, "setpriv", "--inh-caps=-all", "--bounding-set=-net_admin", l.bin, "serve", "--config", forced)
	select {
	case <-p.Exited():
	case <-time.After(15 * time.Second):
		t.Fatal("camgate started with a forced kernel rule and no CAP_NET_ADMIN")
	}
	if !strings.Contains(p.Output(), `rule \"dvr-web\": dataplane kernel, but the kernel path is unavailable: camgate lacks CAP_NET_ADMIN`) {
		t.Fatalf("the refusal does not say why:\n%s", p.Output())
	}
}

// lanBox turns lan into a LAN box beside the device: lan's eth0 goes into
// a bridge with a veth to a new device namespace (198.19.0.70), and gw
// plays the home router that port-forwards to the box (198.19.0.64), as
// fw4 or miniupnpd would. The device's gateway is the router, not the box.
func lanBox(t *testing.T, l *netlab.Lab) {
	dev := l.LAN + "-dev"
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	run("ip", "netns", "add", dev)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", dev).Run() })
	run("ip", "-n", dev, "link", "set", "lo", "up")
	run("ip", "link", "add", "d0", "netns", l.LAN, "type", "veth", "peer", "name", "eth0", "netns", dev)
	run("ip", "-n", l.LAN, "link", "add", "br0", "type", "bridge")
	run("ip", "-n", l.LAN, "addr", "flush", "dev", "eth0")
	run("ip", "-n", l.LAN, "link", "set", "eth0", "master", "br0")
	run("ip", "-n", l.LAN, "link", "set", "d0", "master", "br0")
	run("ip", "-n", l.LAN, "addr", "add", netlab.LANAddr.String()+"/24", "dev", "br0")
	for _, d := range []string{"br0", "d0"} {
		run("ip", "-n", l.LAN, "link", "set", d, "up")
	}
	run("ip", "-n", l.LAN, "route", "add", "default", "via", netlab.GWLANAddr.String())
	run("ip", "netns", "exec", l.LAN, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	run("ip", "-n", dev, "addr", "add", boxDevice.String()+"/24", "dev", "eth0")
	run("ip", "-n", dev, "link", "set", "eth0", "up")
	run("ip", "-n", dev, "route", "add", "default", "via", netlab.GWLANAddr.String())
	rules := fmt.Sprintf(`table ip homerouter {
	chain pre {
		type nat hook prerouting priority dstnat; policy accept;
		ip daddr %[1]s tcp dport { 8082, 15201 } dnat to %[2]s
		ip daddr %[1]s udp dport 19000 dnat to %[2]s
	}
}
`, netlab.GWWANAddr, netlab.LANAddr)
	cmd := exec.Command("ip", "netns", "exec", l.GW, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("home router rules: %v\n%s", err, out)
	}
}

// boxDevice is the device's address in the LAN-box topology.
var boxDevice = netip.MustParseAddr("198.19.0.70")

// TestKernelLANBox: camgate on a LAN box behind a separate router
// masquerades, because the device answers through the router, not
// through camgate.
func TestKernelLANBox(t *testing.T) {
	l := newKernelLab(t, boxDevice, netlab.Options{}, func(nl *netlab.Lab) { lanBox(t, nl) })
	gwAddr := netlab.GWWANAddr.String()
	body := fmt.Sprintf("version: 1\nstate_dir: %s\nadmin: {enabled: false}\nrules:\n"+
		"  - {name: dvr-web, external_port: 8082, internal_ip: %[2]s, guard: {hikvision: false}}\n"+
		"  - {name: bench, external_port: 15201, internal_ip: %[2]s, internal_port: 5201, guard: \"off\"}\n"+
		"  - {name: echo, protocol: udp, external_port: 19000, internal_ip: %[2]s, internal_port: 9000}\n",
		filepath.Join(l.dir, "state"), boxDevice)
	box, _ := l.serve(t, l.LAN, body)
	if !regexp.MustCompile(`rule added.*rule=dvr-web .*dataplane=kernel .*masquerade=true placement="this host's own default route leaves through br0`).MatchString(box.Output()) {
		t.Fatalf("the masquerade decision is not logged:\n%s", box.Output())
	}
	if code := l.curl(t, "http://"+gwAddr+":8082/"); code != "200" {
		t.Fatalf("got %s", code)
	}
	if src := l.sources(sim.ServiceHTTP); !src[netlab.LANAddr] || len(src) != 1 {
		t.Fatalf("the device saw %v, want only the box %s (masqueraded)", src, netlab.LANAddr)
	}
	if b := l.iperf(t, gwAddr, 15201, 2); b < 1<<20 {
		t.Fatalf("iperf3 moved %.0f bytes", b)
	}
	l.udpEcho(t, gwAddr+":19000")
	stop(t, box)
	if rs := l.ruleset(t, l.LAN); strings.Contains(rs, "camgate") {
		t.Fatalf("a camgate table is left after stop:\n%s", rs)
	}
}

var _ = io.EOF
