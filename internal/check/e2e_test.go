package check_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/check"
	"github.com/camgate/camgate/internal/netlab"
	"github.com/camgate/camgate/internal/sim"
)

// The end-to-end topology. gw plays the home router: 198.18.0.1 is its
// public address on wan, and it forwards with nftables (DNAT) to the
// camgate host in lan, with a masquerade rule so that hairpin connections
// from the LAN work:
//
//	ns wan   198.18.0.10 ........................ an outside client (--from netns:wan)
//	ns gw    198.18.0.1 (public) | 198.19.0.1     nft: 198.18.0.1:PORT → 198.19.0.65:PORT,
//	                                             masquerade LAN→LAN after DNAT (hairpin)
//	ns lan   198.19.0.64  simulated camera (sim package, patched profile)
//	         198.19.0.65  camgate serve (listen_address), camgate check runs here too
//
// A hairpin from lan: 198.19.0.64 → 198.18.0.1:8080 → gw DNAT →
// 198.19.0.65:8080 with source rewritten to 198.19.0.1 → camgate →
// 198.19.0.64:8082 (the camera's web port).

var (
	camHost   = netlab.LANAddr.String()    // 198.19.0.64
	camgateIP = netlab.LANHost(1).String() // 198.19.0.65
	publicIP  = netlab.GWWANAddr.String()  // 198.18.0.1
	forwarded = []int{8080, 8443, 10554, 18000}
)

func camgateBin(t *testing.T) string { return netlab.Camgate(t) }

// startSim runs the simulated camera with its sockets in lan. The returned
// function stops it (and waits), as unplugging the device would.
func startSim(t *testing.T, l *netlab.Lab, profile sim.Profile) (*sim.Device, func()) {
	t.Helper()
	ports := profile.Ports()
	ports.RTP, ports.SADP, ports.WSDiscovery, ports.WebSocket, ports.SDKOverTLS = -1, -1, -1, -1, -1
	var d *sim.Device
	cfg := sim.Config{Profile: profile, Ports: ports, Listen: netlab.LANAddr, Password: "Camgate-Test-1"}
	if err := l.Do(l.LAN, func() (err error) { d, err = sim.New(cfg); return }); err != nil {
		t.Fatalf("sim: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	return d, stop
}

const nftRouter = `
table ip home_router {
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		ip daddr %[1]s tcp dport { %[3]s } dnat to %[2]s
		ip daddr %[1]s udp dport 40000-40099 dnat to %[2]s
	}
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr 198.19.0.0/24 ip daddr %[2]s ct status dnat masquerade
	}
}
`

// runCheck runs `camgate check --json` in lan and returns the report and
// the exit code.
func runCheck(t *testing.T, l *netlab.Lab, bin, cfgPath string, args ...string) (check.Report, int, string) {
	t.Helper()
	cmd := l.Command(l.LAN, bin, append([]string{"check", "--config", cfgPath, "--json", "--timeout", "2s"}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	var rep check.Report
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("camgate check %v: exit %d, not JSON: %v\n%s\n%s", args, code, err, out, stderr.String())
	}
	return rep, code, string(out)
}

func result(t *testing.T, rep check.Report, rule string, layer check.Layer) check.Result {
	t.Helper()
	for _, rr := range rep.Rules {
		for _, r := range rr.Results {
			if rr.Rule == rule && r.Layer == layer && r.Protocol == "tcp" {
				return r
			}
		}
	}
	t.Fatalf("no %s result for %s", layer, rule)
	return check.Result{}
}

type want struct {
	rule   string
	layer  check.Layer
	status check.Status
	reason string
}

func expect(t *testing.T, rep check.Report, raw string, wants []want) {
	t.Helper()
	for _, w := range wants {
		got := result(t, rep, w.rule, w.layer)
		if got.Status != w.status || !strings.Contains(got.Reason, w.reason) {
			t.Errorf("%s %s: got %s %q, want %s containing %q", w.rule, w.layer, got.Status.Symbol(), got.Reason, w.status.Symbol(), w.reason)
		}
	}
	if t.Failed() {
		t.Logf("report:\n%s", raw)
	}
}

// TestCheckEndToEnd: a patched camera behind camgate behind a home router
// that supports hairpin NAT.
func TestCheckEndToEnd(t *testing.T) {
	bin := camgateBin(t)
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("needs nft (apt-get install nftables)")
	}
	l := netlab.New(t, netlab.Options{Forwarding: true})
	_, stopSim := startSim(t, l, sim.ProfilePatched)

	var ports []string
	for _, p := range forwarded {
		ports = append(ports, fmt.Sprint(p))
	}
	nftFile := filepath.Join(t.TempDir(), "router.nft")
	os.WriteFile(nftFile, []byte(fmt.Sprintf(nftRouter, publicIP, camgateIP, strings.Join(ports, ", "))), 0o600)
	l.Exec(l.GW, "nft", "-f", nftFile)

	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "camgate.yaml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf(`version: 1
listen_address: %[1]s
admin: {listen: "off"}
rules:
  - {name: cam-web, description: camera web page, external_port: 8080, internal_ip: %[2]s, internal_port: 8082}
  - {name: cam-https, external_port: 8443, internal_ip: %[2]s, internal_port: 443}
  - {name: cam-rtsp, external_port: 10554, internal_ip: %[2]s, internal_port: 554}
  - {name: cam-server, external_port: 18000, internal_ip: %[2]s, internal_port: 8000}
  - {name: udp-echo, protocol: udp, external_port: 19000, internal_ip: %[2]s, internal_port: 9000}
`, camgateIP, camHost)), 0o600)
	gw := l.Start(l.LAN, bin, "serve", "--config", cfgPath)
	if !gw.WaitFor("camgate is running", 15*time.Second) {
		t.Fatalf("camgate serve did not start:\n%s", gw.Output())
	}

	t.Run("patched camera through a hairpin", func(t *testing.T) {
		rep, code, raw := runCheck(t, l, bin, cfgPath, "--public-ip", publicIP, "cam-web", "cam-https", "cam-rtsp", "cam-server")
		if code != 0 || rep.Failed != 0 || rep.Unknown != 0 {
			t.Errorf("got exit %d with %d ✗ and %d ?, want exit 0 and every layer ✓\n%s", code, rep.Failed, rep.Unknown, raw)
		}
		expect(t, rep, raw, []want{
			{"cam-web", check.LayerGateway, check.OK, "camgate"},
			{"cam-web", check.LayerInside, check.OK, "looks like a Hikvision web server"},
			{"cam-web", check.LayerOutside, check.OK, "reachable at 198.18.0.1:8080 through the router (hairpin)"},
			{"cam-https", check.LayerInside, check.OK, "certificate"},
			{"cam-https", check.LayerOutside, check.OK, "through the router (hairpin)"},
			{"cam-rtsp", check.LayerInside, check.OK, "RTSP answered OPTIONS"},
			{"cam-rtsp", check.LayerOutside, check.OK, "RTSP answered OPTIONS"},
			{"cam-server", check.LayerInside, check.OK, "TCP connection accepted"},
			{"cam-server", check.LayerOutside, check.OK, "198.18.0.1:18000"},
		})
		if rep.Public.Class != check.ClassReserved || rep.Public.Source != "flag" {
			t.Errorf("public address: got %+v, want the lab address from --public-ip", rep.Public)
		}
		text, _ := l.Command(l.LAN, bin, "check", "--config", cfgPath, "--public-ip", publicIP, "cam-web", "cam-https", "cam-rtsp", "cam-server").CombinedOutput()
		t.Logf("camgate check:\n%s", text)
		if d := result(t, rep, "cam-https", check.LayerInside).Details; d["cert_subject"] == "" || d["cert_not_after"] == "" {
			t.Errorf("https details: got %v, want the certificate subject and expiry", d)
		}
	})

	t.Run("from the internet side", func(t *testing.T) {
		rep, code, raw := runCheck(t, l, bin, cfgPath, "--public-ip", publicIP, "--from", "netns:"+l.WAN, "cam-web", "cam-rtsp")
		if code != 0 || len(rep.Rules) != 2 {
			t.Errorf("got exit %d and %d rules, want 0 and the 2 named\n%s", code, len(rep.Rules), raw)
		}
		expect(t, rep, raw, []want{
			{"cam-web", check.LayerOutside, check.OK, "from network namespace " + l.WAN},
			{"cam-rtsp", check.LayerOutside, check.OK, "from network namespace " + l.WAN},
		})
		// The RTSP rule's RTP range (the default 40000-40099, which the
		// home router forwards) is free here and reachable from wan.
		var gw, out check.Result
		for _, r := range rep.Rules[1].Results {
			if r.Probe == check.KindRTP && r.Layer == check.LayerGateway {
				gw = r
			}
			if r.Probe == check.KindRTP && r.Layer == check.LayerOutside {
				out = r
			}
		}
		if gw.Status != check.OK || out.Status != check.OK || !strings.Contains(out.Reason, "RTP range is reachable") {
			t.Errorf("rtp range: got %s %q and %s %q, want ✓ free and ✓ reachable\n%s", gw.Status.Symbol(), gw.Reason, out.Status.Symbol(), out.Reason, raw)
		}
	})

	t.Run("rtp range not forwarded", func(t *testing.T) {
		l.Exec(l.GW, "nft", "flush", "chain", "ip", "home_router", "prerouting")
		defer func() {
			l.Exec(l.GW, "nft", "delete", "table", "ip", "home_router")
			l.Exec(l.GW, "nft", "-f", nftFile)
		}()
		l.Exec(l.GW, "nft", "add", "rule", "ip", "home_router", "prerouting", "ip", "daddr", publicIP, "tcp", "dport", "10554", "dnat", "to", camgateIP)
		rep, code, raw := runCheck(t, l, bin, cfgPath, "--public-ip", publicIP, "--from", "netns:"+l.WAN, "cam-rtsp")
		var out check.Result
		for _, r := range rep.Rules[0].Results {
			if r.Probe == check.KindRTP && r.Layer == check.LayerOutside {
				out = r
			}
		}
		if code != 1 || out.Status != check.Fail || !strings.Contains(out.Fix, "forward the RTP range 40000-40099/udp") {
			t.Errorf("got exit %d, rtp %s %q fix %q; want exit 1 and ✗ with the range to forward\n%s", code, out.Status.Symbol(), out.Reason, out.Fix, raw)
		}
	})

	t.Run("udp rule", func(t *testing.T) {
		rep, code, raw := runCheck(t, l, bin, cfgPath, "--public-ip", publicIP, "udp-echo")
		if code != 1 {
			t.Errorf("got exit %d, want 1 (nothing listens on the device's UDP port)", code)
		}
		var gw, in check.Result
		for _, r := range rep.Rules[0].Results {
			switch r.Layer {
			case check.LayerGateway:
				gw = r
			case check.LayerInside:
				in = r
			}
		}
		if gw.Status != check.OK || gw.Protocol != "udp" || !strings.Contains(gw.Reason, "camgate") {
			t.Errorf("gateway: got %s %q, want ✓ camgate's UDP socket\n%s", gw.Status.Symbol(), gw.Reason, raw)
		}
		if in.Status != check.Fail || !strings.Contains(in.Reason, "port unreachable") {
			t.Errorf("inside: got %s %q, want ✗ port unreachable\n%s", in.Status.Symbol(), in.Reason, raw)
		}
	})

	t.Run("CGNAT", func(t *testing.T) {
		rep, code, raw := runCheck(t, l, bin, cfgPath, "--public-ip", "100.64.1.2", "cam-web")
		if code != 1 {
			t.Errorf("got exit %d, want 1", code)
		}
		got := result(t, rep, "cam-web", check.LayerOutside)
		if got.Status != check.Fail || !strings.Contains(got.Reason, "CGNAT") || !strings.Contains(got.Fix, "VPN") ||
			!strings.Contains(got.Fix, `listen_address: "::"`) {
			t.Errorf("got %s %q fix %q, want ✗ naming CGNAT with VPN and IPv6 advice\n%s", got.Status.Symbol(), got.Reason, got.Fix, raw)
		}
		if rep.Public.Class != check.ClassCGNAT {
			t.Errorf("got class %s, want cgnat", rep.Public.Class)
		}
	})

	t.Run("router without hairpin NAT", func(t *testing.T) {
		// Without the masquerade rule the DNATed connection comes back
		// from the LAN host directly, which the client drops: the usual
		// router without NAT loopback.
		l.Exec(l.GW, "nft", "flush", "chain", "ip", "home_router", "postrouting")
		defer func() {
			l.Exec(l.GW, "nft", "delete", "table", "ip", "home_router")
			l.Exec(l.GW, "nft", "-f", nftFile)
		}()
		rep, code, raw := runCheck(t, l, bin, cfgPath, "--public-ip", publicIP, "cam-web")
		if code != 0 {
			t.Errorf("got exit %d, want 0: a failed hairpin is not a failure\n%s", code, raw)
		}
		expect(t, rep, raw, []want{{"cam-web", check.LayerOutside, check.Unknown, "many routers do not support hairpin NAT"}})
	})

	t.Run("device stopped", func(t *testing.T) {
		stopSim()
		rep, code, raw := runCheck(t, l, bin, cfgPath, "--public-ip", publicIP)
		if code != 1 {
			t.Errorf("got exit %d, want 1", code)
		}
		expect(t, rep, raw, []want{
			{"cam-web", check.LayerGateway, check.OK, "camgate"},
			{"cam-web", check.LayerInside, check.Fail, "refused the connection on 8082/tcp"},
			{"cam-rtsp", check.LayerInside, check.Fail, "refused the connection on 554/tcp"},
			{"cam-web", check.LayerOutside, check.Unknown, "the device itself does not answer"},
		})
		if fix := result(t, rep, "cam-web", check.LayerInside).Fix; !strings.Contains(fix, "internal_port") {
			t.Errorf("fix %q does not point at the device's port settings", fix)
		}
	})

	// The text form, as a user sees it.
	out, _ := l.Command(l.LAN, bin, "check", "--config", cfgPath, "--public-ip", "100.64.1.2", "cam-web").CombinedOutput()
	t.Logf("camgate check, device stopped, CGNAT:\n%s", out)
	for _, s := range []string{"RULE", "cam-web", "gateway", "inside", "outside", "✓", "✗", "fix:"} {
		if !strings.Contains(string(out), s) {
			t.Errorf("text output lacks %q:\n%s", s, out)
		}
	}
}
