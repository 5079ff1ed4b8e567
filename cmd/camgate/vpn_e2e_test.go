package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/netlab"
	"github.com/camgate/camgate/internal/sim"
	"github.com/camgate/camgate/internal/vpn"
)

// vpnLab is a gateway with the VPN on in gw, two simulated DVRs in lan
// and an API token for the vpn commands.
type vpnLab struct {
	l       *netlab.Lab
	bin     string
	dir     string
	cfgPath string
	token   string
	gw      *netlab.Proc
	dvrPass string
}

const (
	vpnTestPass  = "Camgate-Vpn-Test-1"
	vpnOwnerPass = "Vpn-Owner-Pass-8472!"
)

// vpnAdmin is where the test gateway's admin API listens: on the LAN side
// only, so the wan scan sees nothing of it.
var vpnAdmin = netlab.GWLANAddr.String() + ":8443"

func newVPNLab(t *testing.T, rules string) *vpnLab {
	t.Helper()
	if s := netlab.Skip(); s != "" {
		t.Skip(s)
	}
	need(t, "wireguard-go", "wg", "zbarimg", "curl", "ffprobe")
	v := &vpnLab{bin: camgateBin(t), dir: t.TempDir(), dvrPass: vpnTestPass}
	v.l = netlab.New(t, netlab.Options{})
	ports := sim.ProfileDefault.Ports()
	ports.SADP, ports.WSDiscovery = -1, -1
	labSim(t, v.l, v.l.LAN, sim.Config{Listen: netlab.LANAddr, Ports: ports, Password: vpnTestPass})
	labSim(t, v.l, v.l.LAN, sim.Config{Listen: netlab.LANHost(1), Ports: ports, Password: vpnTestPass})
	v.cfgPath = writeConfig(t, v.dir, fmt.Sprintf(`version: 1
rules: [%s]
admin: {listen: "%s", allow: [198.19.0.0/24]}
devices:
  - {name: dvr1, address: %s, http_port: 8082}
  - {name: dvr2, address: %s, http_port: 8082}
vpn: {enabled: true, endpoint: %s}
`, rules, vpnAdmin, netlab.LANAddr, netlab.LANHost(1), netlab.GWWANAddr))
	v.gw = v.l.Start(v.l.GW, v.bin, "serve", "--config", v.cfgPath, "--log-level", "debug")
	if !v.gw.WaitFor("camgate is running", 15*time.Second) {
		t.Fatalf("camgate did not start:\n%s", v.gw.Output())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("camgate's log:\n%s", v.gw.Output())
		}
	})
	v.token = v.apiToken(t)
	return v
}

// apiToken creates the admin account with the logged setup token and an
// API token, as the owner does in the UI.
func (v *vpnLab) apiToken(t *testing.T) string {
	t.Helper()
	m := regexp.MustCompile(`setup#token=([0-9a-zA-Z_-]+)`).FindStringSubmatch(v.gw.Output())
	if m == nil {
		t.Fatalf("no setup URL in the log:\n%s", v.gw.Output())
	}
	hc := v.http()
	session := ""
	post := func(path string, body any) map[string]any {
		return apiPost(t, hc, "https://"+vpnAdmin+path, session, body)
	}
	session, _ = post("/api/v1/setup", map[string]string{"token": m[1], "user": "owner", "password": vpnOwnerPass})["session"].(string)
	out := post("/api/v1/tokens", map[string]string{"name": "vpn-test"})
	return out["secret"].(string)
}

// apiPost posts body as JSON to url with a session secret (if any) and
// returns the decoded answer; a status of 300 or more fails the test.
func apiPost(t *testing.T, hc *http.Client, url, session string, body any) map[string]any {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", url, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if session != "" {
		req.Header.Set("X-Camgate-Session", session)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode >= 300 {
		t.Fatalf("POST %s: %d %v", url, resp.StatusCode, out)
	}
	return out
}

// http is a client inside gw that keeps cookies; the test trusts the
// gateway's self-signed certificate blindly, which the CLI does not.
func (v *vpnLab) http() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return v.l.Dial(v.l.GW, network, "", addr, 5*time.Second)
		},
	}}
}

// camgate runs a camgate command in gw with the API token.
func (v *vpnLab) camgate(t *testing.T, args ...string) (int, string) {
	t.Helper()
	args = append(args, "--config", v.cfgPath)
	return camgateIn(t, v.l, v.l.GW, v.bin, []string{"CAMGATE_TOKEN=" + v.token}, args...)
}

// addPeer runs `vpn add` and returns the config decoded from the PNG with
// zbarimg, after checking it is the printed one.
func (v *vpnLab) addPeer(t *testing.T, name string, args ...string) string {
	t.Helper()
	png := filepath.Join(v.dir, name+".png")
	code, out := v.camgate(t, append([]string{"vpn", "add", name, "--qr", png}, args...)...)
	if code != 0 {
		t.Fatalf("vpn add %s: exit %d\n%s", name, code, out)
	}
	dec, err := exec.Command("zbarimg", "--raw", "-q", png).Output()
	if err != nil {
		t.Fatalf("zbarimg %s: %v", png, err)
	}
	conf := strings.TrimRight(string(dec), "\n") + "\n"
	if !strings.Contains(out, conf) {
		t.Fatalf("the QR code's config is not the printed one:\nQR:\n%s\nprinted:\n%s", conf, out)
	}
	return conf
}

// phone brings up a userspace WireGuard interface in wan from a wg-quick
// config, as wg-quick would: wireguard-go, wg setconf with the [Interface]
// address stripped, the address, and a route per AllowedIPs entry.
type phone struct {
	v     *vpnLab
	iface string
	proc  *netlab.Proc
}

func (v *vpnLab) phone(t *testing.T, iface, conf string) *phone {
	t.Helper()
	cmd := v.l.Command(v.l.WAN, "wireguard-go", "-f", iface)
	cmd.Env = append(os.Environ(), "WG_PROCESS_FOREGROUND=1", "LOG_LEVEL=error")
	p := &phone{v: v, iface: iface, proc: netlab.StartCmd(cmd)}
	t.Cleanup(p.proc.Stop)
	deadline := time.Now().Add(5 * time.Second)
	for v.l.Command(v.l.WAN, "ip", "link", "show", iface).Run() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("wireguard-go did not create %s:\n%s", iface, p.proc.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	var addr string
	var allowed []string
	var stripped strings.Builder
	for line := range strings.Lines(conf) {
		k, val, _ := strings.Cut(line, "=")
		switch strings.TrimSpace(k) {
		case "Address":
			addr = strings.TrimSpace(val)
			continue
		case "AllowedIPs":
			for a := range strings.SplitSeq(val, ",") {
				allowed = append(allowed, strings.TrimSpace(a))
			}
		}
		stripped.WriteString(line)
	}
	cf := filepath.Join(v.dir, iface+".conf")
	os.WriteFile(cf, []byte(stripped.String()), 0o600)
	v.l.Exec(v.l.WAN, "wg", "setconf", iface, cf)
	v.l.Exec(v.l.WAN, "ip", "addr", "add", addr, "dev", iface)
	v.l.Exec(v.l.WAN, "ip", "link", "set", iface, "up")
	for _, a := range allowed {
		v.l.Exec(v.l.WAN, "ip", "route", "replace", a, "dev", iface)
	}
	return p
}

// rx returns the bytes the phone has received through the tunnel.
func (p *phone) rx(t *testing.T) uint64 {
	out, err := p.v.l.Command(p.v.l.WAN, "wg", "show", p.iface, "transfer").Output()
	if err != nil {
		t.Fatalf("wg show: %v", err)
	}
	f := strings.Fields(string(out))
	if len(f) < 3 {
		return 0
	}
	n, _ := strconv.ParseUint(f[1], 10, 64)
	return n
}

// handshake returns the phone's latest handshake time (0: none).
func (p *phone) handshake(t *testing.T) int64 {
	out, _ := p.v.l.Command(p.v.l.WAN, "wg", "show", p.iface, "latest-handshakes").Output()
	f := strings.Fields(string(out))
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.ParseInt(f[1], 10, 64)
	return n
}

func (v *vpnLab) curl(t *testing.T, url string, maxTime string) (string, error) {
	out, err := v.l.Command(v.l.WAN, "curl", "-sS", "--fail", "--max-time", maxTime, url).CombinedOutput()
	return string(out), err
}

func (v *vpnLab) status(t *testing.T) vpn.Status {
	t.Helper()
	code, out := v.camgate(t, "vpn", "list", "--json")
	if code != 0 {
		t.Fatalf("vpn list: exit %d\n%s", code, out)
	}
	var st struct {
		VPN vpn.Status `json:"vpn"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("vpn list --json: %v\n%s", err, out)
	}
	return st.VPN
}

func ffprobeH264(v *vpnLab, transport, host string) (string, error) {
	out, err := v.l.Command(v.l.WAN, "ffprobe", "-v", "error", "-timeout", "8000000", "-rtsp_transport", transport,
		"-show_entries", "stream=codec_name,width,height", "-of", "compact",
		fmt.Sprintf("rtsp://admin:%s@%s:554/Streaming/Channels/101", vpnTestPass, host)).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// TestVPNPhoneEndToEnd: a phone (wireguard-go + wg in wan) configured
// from camgate's QR code, decoded with zbarimg, watches dvr1 over RTSP
// (TCP and UDP) and reaches its web page; it cannot reach dvr2, the admin
// UI or camgate itself, and the refused packets are counted.
func TestVPNPhoneEndToEnd(t *testing.T) {
	// dvr1's SDK port is forwarded for one office only: the rule's
	// allowlist judges a peer too.
	v := newVPNLab(t, "{name: dvr1-sdk, external_port: 18000, internal_ip: "+netlab.LANAddr.String()+", internal_port: 8000, allow: [198.18.0.0/24]}")
	conf := v.addPeer(t, "alice-phone", "--allow", "dvr1", "--expires", "30d")
	if !strings.Contains(conf, "AllowedIPs = "+netlab.LANAddr.String()+"/32\n") {
		t.Fatalf("AllowedIPs should be exactly dvr1's address:\n%s", conf)
	}
	ph := v.phone(t, "wg0", conf)
	dvr1 := netlab.LANAddr.String()

	t.Run("web page", func(t *testing.T) {
		out, err := v.curl(t, "http://"+dvr1+":8082/", "10")
		if err != nil || !strings.Contains(strings.ToLower(out), "<html") {
			t.Fatalf("curl through the tunnel: %v\n%s", err, out)
		}
	})
	for _, tr := range []string{"tcp", "udp"} {
		t.Run("rtsp "+tr, func(t *testing.T) {
			// Over UDP a lost datagram may make the decoder complain about
			// one frame; the stream line is what proves the path.
			out, err := ffprobeH264(v, tr, dvr1)
			if err != nil || !strings.HasSuffix(out, "stream|codec_name=h264|width=640|height=360") {
				t.Fatalf("ffprobe over %s through the tunnel: %v\n%s", tr, err, out)
			}
		})
	}
	if ph.handshake(t) == 0 {
		t.Fatal("no handshake recorded by the phone")
	}

	t.Run("refused", func(t *testing.T) {
		// A phone that routes more into the tunnel than its config says:
		// the rest of the LAN and camgate's tunnel address.
		v.l.Exec(v.l.WAN, "wg", "set", "wg0", "peer", v.status(t).PublicKey.String(), "allowed-ips",
			dvr1+"/32,"+netlab.LANHost(1).String()+"/32,"+netlab.GWLANAddr.String()+"/32,100.88.0.1/32")
		for _, a := range []string{netlab.LANHost(1).String(), netlab.GWLANAddr.String(), "100.88.0.1"} {
			v.l.Exec(v.l.WAN, "ip", "route", "replace", a+"/32", "dev", "wg0")
		}
		before := v.status(t).Peers[0].Refused
		for _, u := range []string{"http://" + netlab.LANHost(1).String() + ":8082/", "https://" + vpnAdmin + "/", "http://100.88.0.1:8443/"} {
			if out, err := v.curl(t, u, "2"); err == nil {
				t.Errorf("%s answered through the tunnel:\n%s", u, out)
			}
		}
		if _, err := ffprobeH264(v, "tcp", netlab.LANHost(1).String()); err == nil {
			t.Error("dvr2's RTSP answered through the tunnel")
		}
		st := v.status(t)
		if got := st.Peers[0].Refused; got <= before {
			t.Errorf("refused packets: got %d after, %d before; want more", got, before)
		}
		if out, err := v.curl(t, "http://"+dvr1+":8082/", "5"); err != nil {
			t.Errorf("dvr1 after the refusals: %v\n%s", err, out)
		}
		t.Logf("peer refused %d packets; list:\n%s", st.Peers[0].Refused, func() string { _, o := v.camgate(t, "vpn", "list"); return o }())
	})

	t.Run("rule guard applies", func(t *testing.T) {
		if c, err := v.l.Dial(v.l.GW, "tcp", "", dvr1+":8000", 2*time.Second); err != nil {
			t.Fatalf("dvr1's SDK port from the gateway: %v", err)
		} else {
			c.Close()
		}
		before := v.status(t).Peers[0].Refused
		if c, err := v.l.Dial(v.l.WAN, "tcp", "", dvr1+":8000", 3*time.Second); err == nil {
			c.Close()
			t.Fatal("the peer reached dvr1's SDK port although rule dvr1-sdk allows only 198.18.0.0/24")
		}
		if got := v.status(t).Peers[0].Refused; got <= before {
			t.Errorf("refused: got %d after, %d before; want the guard's refusal counted", got, before)
		}
	})

	t.Run("expired peer cannot handshake", func(t *testing.T) {
		exp := time.Now().Add(3 * time.Second).UTC().Format(time.RFC3339)
		conf := v.addPeer(t, "bob-phone", "--allow", "dvr2", "--expires", exp)
		dvr2 := netlab.LANHost(1).String()
		for _, p := range v.status(t).Peers {
			if p.Name == "bob-phone" && p.Expired {
				t.Fatal("bob-phone listed as expired before its expiry")
			}
		}
		deadline, _ := time.Parse(time.RFC3339, exp)
		time.Sleep(time.Until(deadline) + 1100*time.Millisecond)
		// The phone comes up after the expiry (its persistent keepalive
		// starts a handshake at once) and keeps trying.
		bob := v.phone(t, "wg1", conf)
		if out, err := v.curl(t, "http://"+dvr2+":8082/", "4"); err == nil {
			t.Fatalf("the expired phone reached dvr2:\n%s", out)
		}
		if hs := bob.handshake(t); hs != 0 {
			t.Fatalf("the expired phone completed a handshake at %d", hs)
		}
		var expired bool
		for _, p := range v.status(t).Peers {
			expired = expired || p.Name == "bob-phone" && p.Expired
		}
		if !expired {
			t.Error("vpn list does not show bob-phone as expired")
		}
		if code, out := v.camgate(t, "vpn", "rm", "bob-phone"); code != 0 {
			t.Fatalf("vpn rm: exit %d\n%s", code, out)
		}
	})

	t.Run("revoke cuts within 1s", func(t *testing.T) {
		ff := v.l.Start(v.l.WAN, "ffmpeg", "-v", "error", "-rtsp_transport", "tcp",
			"-i", fmt.Sprintf("rtsp://admin:%s@%s:554/Streaming/Channels/101", vpnTestPass, dvr1), "-f", "null", "-")
		defer ff.Stop()
		start := ph.rx(t)
		deadline := time.Now().Add(10 * time.Second)
		for ph.rx(t) < start+20<<10 {
			if time.Now().After(deadline) {
				t.Fatalf("the stream did not flow: rx %d -> %d\n%s", start, ph.rx(t), ff.Output())
			}
			time.Sleep(100 * time.Millisecond)
		}
		if code, out := v.camgate(t, "vpn", "rm", "alice-phone"); code != 0 {
			t.Fatalf("vpn rm: exit %d\n%s", code, out)
		}
		time.Sleep(time.Second)
		a := ph.rx(t)
		time.Sleep(2 * time.Second)
		if b := ph.rx(t); b != a {
			t.Fatalf("1 s after vpn rm the phone still receives: %d -> %d bytes", a, b)
		}
		if out, err := v.curl(t, "http://"+dvr1+":8082/", "2"); err == nil {
			t.Fatalf("the revoked phone still reaches dvr1:\n%s", out)
		}
	})
}

// TestVPNOnlyScan: with the VPN on and no rules, a scan of the gateway's
// internet-side address from wan finds nothing open but WireGuard's UDP
// port (which answers nothing to a stranger, so nmap says open|filtered).
func TestVPNOnlyScan(t *testing.T) {
	need(t, "nmap")
	v := newVPNLab(t, "")
	gw := netlab.GWWANAddr.String()
	// The kernel's ICMP rate limit (per namespace) would make closed
	// ports look open|filtered to a fast scan.
	v.l.Exec(v.l.GW, "sysctl", "-qw", "net.ipv4.icmp_ratelimit=0")
	out := v.l.Exec(v.l.WAN, "nmap", "-n", "-Pn", "-sU", "--max-retries", "3", "-p",
		"51820,53,80,123,443,554,1900,3702,5351,8000,8082,8443,37020", "-oG", "-", gw)
	ports := nmapPorts(out)
	if ports["51820/open|filtered/udp"] != true {
		t.Errorf("udp scan: 51820 not found open|filtered:\n%s", out)
	}
	for p := range ports {
		if p != "51820/open|filtered/udp" && !strings.Contains(p, "/closed/") {
			t.Errorf("udp scan: %s", p)
		}
	}
	out = v.l.Exec(v.l.WAN, "nmap", "-n", "-Pn", "-sT", "-p-", "--min-rate", "5000", "-oG", "-", gw)
	if !strings.Contains(out, "Ports:") && !strings.Contains(out, "Status: Up") || strings.Contains(out, "/open/") {
		t.Errorf("tcp scan found an open port:\n%s", out)
	}
	t.Logf("udp: %v", ports)
}

// nmapPorts returns the "port/state/proto" entries of nmap's grepable
// output.
func nmapPorts(out string) map[string]bool {
	m := map[string]bool{}
	for line := range strings.Lines(out) {
		_, ports, ok := strings.Cut(line, "Ports: ")
		if !ok {
			continue
		}
		ports, _, _ = strings.Cut(ports, "\t")
		for p := range strings.SplitSeq(ports, ",") {
			f := strings.Split(strings.TrimSpace(p), "/")
			if len(f) >= 3 {
				m[f[0]+"/"+f[1]+"/"+f[2]] = true
			}
		}
	}
	return m
}

// TestVPNPageInChromium: the admin UI's VPN page in real Chromium (web/
// vpn-e2e.mjs): add a person with one camera, the QR code shown once and
// its one-time link (decoded here with zbarimg), the peer listed, revoked.
func TestVPNPageInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("browser end-to-end test skipped in -short mode")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("needs node (apt-get install nodejs)")
	}
	webDir, _ := filepath.Abs(filepath.Join("..", "..", "web"))
	if _, err := os.Stat(filepath.Join(webDir, "node_modules", "playwright-core")); err != nil {
		t.Skipf("needs playwright-core in web/node_modules: run `npm ci` in %s (scripts/test.sh does)", webDir)
	}
	v := newVPNLab(t, "")
	artifacts, _ := filepath.Abs(filepath.Join("..", "..", "artifacts", "vpn-e2e"))
	cmd := v.l.Command(v.l.GW, node, filepath.Join(webDir, "vpn-e2e.mjs"))
	cmd.Dir = webDir
	cmd.Env = append(os.Environ(), "CAMGATE_URL=https://"+vpnAdmin, "CAMGATE_USER=owner",
		"CAMGATE_PASSWORD="+vpnOwnerPass, "ARTIFACTS="+artifacts)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := false
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "CHECK qr "):
			dec, err := exec.Command("zbarimg", "--raw", "-q", strings.TrimPrefix(line, "CHECK qr ")).Output()
			if err != nil || !strings.Contains(string(dec), "AllowedIPs = "+netlab.LANAddr.String()+"/32") {
				t.Errorf("the UI's QR code: %v\n%s", err, dec)
				fmt.Fprintln(stdin, "fail qr")
				continue
			}
			fmt.Fprintln(stdin, "ok")
		case line == "CHECK revoked carol-phone":
			if st := v.status(t); len(st.Peers) != 0 {
				t.Errorf("after Revoke the gateway still lists %+v", st.Peers)
				fmt.Fprintln(stdin, "fail still listed")
				continue
			}
			fmt.Fprintln(stdin, "ok")
		case line == "DONE":
			done = true
		}
	}
	if err := cmd.Wait(); err != nil || !done {
		t.Fatalf("vpn-e2e.mjs: %v\n%s", err, stderr.String())
	}
}
