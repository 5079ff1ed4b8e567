package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/cookiejar"
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
	dvr1    *sim.Device
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
	return newVPNLabOn(t, netlab.Options{}, netlab.GWWANAddr.String(), rules)
}

// newVPNLabOn is newVPNLab with netlab options and the VPN's endpoint
// (what phones' configs dial).
func newVPNLabOn(t *testing.T, opts netlab.Options, endpoint, rules string) *vpnLab {
	t.Helper()
	if s := netlab.Skip(); s != "" {
		t.Skip(s)
	}
	need(t, "wireguard-go", "wg", "zbarimg", "curl", "ffprobe")
	v := &vpnLab{bin: camgateBin(t), dir: t.TempDir(), dvrPass: vpnTestPass}
	v.l = netlab.New(t, opts)
	ports := sim.ProfileDefault.Ports()
	ports.SADP, ports.WSDiscovery = -1, -1
	v.dvr1 = labSim(t, v.l, v.l.LAN, sim.Config{Listen: netlab.LANAddr, Ports: ports, Password: vpnTestPass})
	labSim(t, v.l, v.l.LAN, sim.Config{Listen: netlab.LANHost(1), Ports: ports, Password: vpnTestPass})
	v.cfgPath = writeConfig(t, v.dir, fmt.Sprintf(`version: 1
rules: [%s]
admin: {listen: "%s", allow: [198.19.0.0/24]}
devices:
  - {name: dvr1, address: %s, http_port: 8082}
  - {name: dvr2, address: %s, http_port: 8082}
vpn: {enabled: true, endpoint: "%s"}
`, rules, vpnAdmin, netlab.LANAddr, netlab.LANHost(1), endpoint))
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

// api GETs an admin API path with the API token and decodes the answer
// into out.
func (v *vpnLab) api(t *testing.T, path string, out any) {
	t.Helper()
	req, _ := http.NewRequest("GET", "https://"+vpnAdmin+path, nil)
	req.Header.Set("Authorization", "Bearer "+v.token)
	resp, err := v.http().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", path, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

// ruleView is what the tests read of a rule in /api/v1/status.
type ruleView struct {
	Name  string `json:"name"`
	Stats struct {
		Total uint64 `json:"total"`
	} `json:"stats"`
	Guard struct {
		Blocked      uint64 `json:"blocked"`
		AuthFailures uint64 `json:"auth_failures"`
		Lockdown     uint64 `json:"lockdown"`
	} `json:"guard"`
	RTSP struct {
		RTPSessionsTotal uint64 `json:"rtp_sessions_total"`
		UDPPacketsOut    uint64 `json:"udp_packets_out"`
	} `json:"rtsp"`
}

// rule returns a rule's status.
func (v *vpnLab) rule(t *testing.T, name string) ruleView {
	t.Helper()
	var st struct {
		Rules []ruleView `json:"rules"`
	}
	v.api(t, "/api/v1/status", &st)
	for _, r := range st.Rules {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("rule %q not in the status", name)
	return ruleView{}
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
	// QR codes only, as a phone's camera reads: zbar's 1D decoders
	// sometimes see a spurious barcode (an EAN fragment) in the QR image.
	dec, err := exec.Command("zbarimg", "--raw", "-q", "-Sdisable", "-Sqrcode.enable", png).Output()
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
	// allowlist judges a peer too. Its web page (with the auth guard) and
	// RTSP are forwarded on other external ports: a peer reaching the
	// device's own ports in the tunnel meets those rules' guards. dvr2 has
	// no rule at all: the VPN alone carries it.
	dvr1 := netlab.LANAddr.String()
	v := newVPNLab(t, "{name: dvr1-sdk, external_port: 18000, internal_ip: "+dvr1+", internal_port: 8000, allow: [198.18.0.0/24]},"+
		"{name: dvr1-web, external_port: 18082, internal_ip: "+dvr1+", internal_port: 8082, device: dvr1, guard: {auth: true}},"+
		"{name: dvr1-rtsp, external_port: 10554, internal_ip: "+dvr1+", internal_port: 554, device: dvr1}")
	conf := v.addPeer(t, "alice-phone", "--allow", "dvr1", "--expires", "30d")
	if !strings.Contains(conf, "AllowedIPs = "+netlab.LANAddr.String()+"/32\n") {
		t.Fatalf("AllowedIPs should be exactly dvr1's address:\n%s", conf)
	}
	ph := v.phone(t, "wg0", conf)

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
	t.Run("rtsp is the rule's relay", func(t *testing.T) {
		// Both players went through rule dvr1-rtsp, the UDP one's RTP
		// through the relay's ports bound in the tunnel.
		r := v.rule(t, "dvr1-rtsp")
		if r.Stats.Total < 2 || r.RTSP.RTPSessionsTotal == 0 || r.RTSP.UDPPacketsOut == 0 {
			t.Fatalf("rule dvr1-rtsp: %d connections, %d RTP sessions, %d RTP packets out; want the two players and UDP RTP",
				r.Stats.Total, r.RTSP.RTPSessionsTotal, r.RTSP.UDPPacketsOut)
		}
	})
	t.Run("exploit filter", func(t *testing.T) {
		// CVE-2017-7921's authentication bypass, sent to the device's own
		// web port through the tunnel: rule dvr1-web's filter refuses it.
		before := v.rule(t, "dvr1-web").Guard.Blocked
		out, _ := v.l.Command(v.l.WAN, "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5",
			"http://"+dvr1+":8082/System/configurationFile?auth=YWRtaW46MTEK").Output()
		if string(out) != "403" {
			t.Errorf("the exploit got %q through the tunnel, want 403 from camgate", out)
		}
		if got := v.rule(t, "dvr1-web").Guard.Blocked; got != before+1 {
			t.Errorf("rule dvr1-web blocked %d requests, was %d; want one more", got, before)
		}
		for _, r := range v.dvr1.Requests() {
			if strings.Contains(strings.ToLower(r.Path), "configurationfile") {
				t.Errorf("the device received the exploit: %s %s from %s", r.Method, r.Path, r.Source)
			}
		}
	})
	t.Run("onvif addresses", func(t *testing.T) {
		// The device names itself by its LAN address and its own ports.
		// Through the tunnel the guard rewrites the answers as for an
		// internet client (to the Host the client used) but keeps the
		// device's ports, which the peer reaches, not the rules' external
		// ones (18082, 10554), which it does not.
		caps := v.onvif(t, dvr1+":8082", "cam.tunnel.test:8082", "/onvif/device_service", "GetCapabilities", "")
		if !strings.Contains(caps, "<tt:XAddr>http://cam.tunnel.test:8082/onvif/Media</tt:XAddr>") {
			t.Errorf("GetCapabilities through the tunnel: want the Media XAddr on the Host used and the device's port, http://cam.tunnel.test:8082/onvif/Media:\n%s", caps)
		}
		uri := v.onvif(t, dvr1+":8082", dvr1+":8082", "/onvif/Media", "GetStreamUri", "<ProfileToken>Profile_1</ProfileToken>")
		m := regexp.MustCompile(`<tt:Uri>(rtsp://[^<]+)</tt:Uri>`).FindStringSubmatch(uri)
		if m == nil || !strings.HasPrefix(m[1], "rtsp://"+dvr1+"/") {
			t.Fatalf("GetStreamUri through the tunnel: want rtsp://%s/..., got\n%s", dvr1, uri)
		}
		for _, a := range []string{"18082", "10554", netlab.GWWANAddr.String()} {
			if strings.Contains(caps+uri, a) {
				t.Errorf("an ONVIF answer names %s, which the peer cannot use:\n%s\n%s", a, caps, uri)
			}
		}
		stream := strings.Replace(strings.ReplaceAll(m[1], "&amp;", "&"), "rtsp://", "rtsp://admin:"+vpnTestPass+"@", 1)
		out, err := v.l.Command(v.l.WAN, "ffprobe", "-v", "error", "-timeout", "8000000", "-rtsp_transport", "udp",
			"-show_entries", "stream=codec_name", "-of", "compact", stream).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "codec_name=h264") {
			t.Fatalf("ffprobe of the ONVIF stream URI through the tunnel: %v\n%s", err, out)
		}
	})
	t.Run("vpn-only device rtsp", func(t *testing.T) {
		// No rule forwards dvr2: its RTSP goes through the tunnel's own
		// RTSP rule, the same relay. A second person may reach dvr2 only.
		conf := v.addPeer(t, "carol-phone", "--allow", "dvr2")
		carol := v.phone(t, "wg2", conf)
		defer func() {
			carol.proc.Stop()
			v.camgate(t, "vpn", "rm", "carol-phone")
		}()
		for _, tr := range []string{"udp", "tcp"} {
			out, err := ffprobeH264(v, tr, netlab.LANHost(1).String())
			if err != nil || !strings.HasSuffix(out, "stream|codec_name=h264|width=640|height=360") {
				t.Fatalf("ffprobe over %s to dvr2 through the tunnel: %v\n%s", tr, err, out)
			}
		}
		// A live stream through the tunnel's own rule is on the
		// Connections list like a rule's, and can be cut from there.
		ff := v.l.Start(v.l.WAN, "ffmpeg", "-nostdin", "-v", "error", "-rtsp_transport", "tcp",
			"-i", fmt.Sprintf("rtsp://admin:%s@%s:554/Streaming/Channels/101", vpnTestPass, netlab.LANHost(1)), "-f", "null", "-")
		defer ff.Stop()
		var conns struct {
			Connections []struct {
				ID     uint64 `json:"id"`
				Rule   string `json:"rule"`
				Client string `json:"client"`
			} `json:"connections"`
		}
		// Polled gently: the admin API slows down a client that asks
		// many times a second.
		deadline := time.Now().Add(6 * time.Second)
		for len(conns.Connections) == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("the stream to dvr2 through the tunnel is not on the Connections list:\n%s", ff.Output())
			}
			time.Sleep(500 * time.Millisecond)
			v.api(t, "/api/v1/connections?rule=vpn_dvr2_rtsp", &conns)
		}
		if c := conns.Connections[0]; !strings.HasPrefix(c.Client, "100.88.0.") {
			t.Fatalf("listed with client %q, want carol-phone's tunnel address", c.Client)
		}
		req, _ := http.NewRequest("DELETE", fmt.Sprintf("https://%s/api/v1/connections/%d", vpnAdmin, conns.Connections[0].ID), nil)
		req.Header.Set("Authorization", "Bearer "+v.token)
		resp, err := v.http().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Fatalf("cutting the tunnel's connection: %s", resp.Status)
		}
		select {
		case <-ff.Exited():
		case <-time.After(10 * time.Second):
			t.Fatal("ffmpeg still plays after its connection was cut")
		}
	})

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
		c, err := v.l.Dial(v.l.WAN, "tcp", "", dvr1+":8000", 3*time.Second)
		if err == nil {
			c.Close()
			t.Fatal("the peer reached dvr1's SDK port although rule dvr1-sdk allows only 198.18.0.0/24")
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("connecting to dvr1's SDK port: %v; want it refused at once, as by a closed port", err)
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
		// The tunnel's connection is one of rule dvr1-rtsp's, listed with
		// the peer's tunnel address.
		var conns struct {
			Connections []struct {
				Rule   string `json:"rule"`
				Client string `json:"client"`
			} `json:"connections"`
		}
		var alice netip.Addr
		for _, p := range v.status(t).Peers {
			if p.Name == "alice-phone" {
				alice = p.Address
			}
		}
		v.api(t, "/api/v1/connections?rule=dvr1-rtsp", &conns)
		listed := false
		for _, c := range conns.Connections {
			listed = listed || strings.HasPrefix(c.Client, alice.String()+":")
		}
		if !listed {
			t.Errorf("the stream through the tunnel is not among rule dvr1-rtsp's connections: %+v", conns.Connections)
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

	t.Run("logins judged by the auth guard", func(t *testing.T) {
		// Seven wrong logins from one peer, the device's lockout
		// threshold: relayed as they are, they would lock camgate (and so
		// the owner) out of dvr1. camgate does not know dvr1's password
		// here, so rule dvr1-web's auth guard holds the attempts to the
		// device's failure budget. (Last: the guesser ends up banned.)
		conf := v.addPeer(t, "mallory-phone", "--allow", "dvr1")
		mallory := v.phone(t, "wg3", conf)
		defer mallory.proc.Stop()
		start := v.dvr1.FailedLogins(netlab.GWLANAddr)
		before := v.rule(t, "dvr1-web")
		for range 7 {
			v.l.Command(v.l.WAN, "curl", "-sS", "-o", "/dev/null", "--max-time", "5", "--digest", "-u", "admin:wrong-guess",
				"http://"+dvr1+":8082/ISAPI/System/deviceInfo").Run()
		}
		failed := v.dvr1.FailedLogins(netlab.GWLANAddr) - start
		after := v.rule(t, "dvr1-web")
		t.Logf("the device counted %d failed logins of 7; the guard: %d failures, %d held back",
			failed, after.Guard.AuthFailures-before.Guard.AuthFailures, after.Guard.Lockdown-before.Guard.Lockdown)
		if failed > 5 || v.dvr1.Locked(netlab.GWLANAddr) {
			t.Fatalf("the device counted %d failed logins (locked %v); want at most the budget of 5", failed, v.dvr1.Locked(netlab.GWLANAddr))
		}
		if after.Guard.AuthFailures == before.Guard.AuthFailures {
			t.Fatal("rule dvr1-web's auth guard saw no failed login from the tunnel")
		}
		if after.Stats.Total <= before.Stats.Total {
			t.Fatal("the logins through the tunnel are not counted as rule dvr1-web's connections")
		}
	})
}

// onvif posts an ONVIF action with a WS-UsernameToken (ONVIF Core
// §5.12) from the phone through the tunnel to addr with the given Host
// header, and returns the answer's body.
func (v *vpnLab) onvif(t *testing.T, addr, host, path, action, arg string) string {
	t.Helper()
	nonce := []byte("camgate-vpn-test")
	created := time.Now().UTC().Format(time.RFC3339)
	h := sha1.New()
	h.Write(nonce)
	h.Write([]byte(created))
	h.Write([]byte(vpnTestPass))
	body := `<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Header><Security><UsernameToken><Username>admin</Username><Password>` +
		base64.StdEncoding.EncodeToString(h.Sum(nil)) + `</Password><Nonce>` + base64.StdEncoding.EncodeToString(nonce) +
		`</Nonce><Created>` + created + `</Created></UsernameToken></Security></s:Header><s:Body><` + action + `>` + arg +
		`</` + action + `></s:Body></s:Envelope>`
	out, err := v.l.Command(v.l.WAN, "curl", "-sS", "--fail", "--max-time", "5", "-H", "Host: "+host,
		"-H", "Content-Type: application/soap+xml; charset=utf-8", "--data-binary", body, "http://"+addr+path).CombinedOutput()
	if err != nil {
		t.Fatalf("ONVIF %s through the tunnel: %v\n%s", action, err, out)
	}
	return string(out)
}

// TestVPNOnlyScan: with the VPN on and no rules, a scan of the gateway's
// internet-side address from wan finds nothing open but WireGuard's UDP
// port (which answers nothing to a stranger, so nmap says open|filtered).
// TestVPNPhoneOverIPv6: a phone on an IPv6-only mobile network dials the
// VPN's IPv6 endpoint (the config from the QR code says so, bracketed)
// and reaches the IPv4 DVR inside the tunnel: its web page and its RTSP
// stream over UDP.
func TestVPNPhoneOverIPv6(t *testing.T) {
	v := newVPNLabOn(t, netlab.Options{IPv6: true}, netlab.GWWANAddr6.String(), "")
	conf := v.addPeer(t, "ipv6-phone", "--allow", "dvr1")
	want := "Endpoint = [" + netlab.GWWANAddr6.String() + "]:51820\n"
	if !strings.Contains(conf, want) {
		t.Fatalf("the phone's config lacks %q:\n%s", want, conf)
	}
	ph := v.phone(t, "wg6", conf)
	dvr1 := netlab.LANAddr.String()
	out, err := v.curl(t, "http://"+dvr1+":8082/", "10")
	if err != nil || !strings.Contains(strings.ToLower(out), "<html") {
		t.Fatalf("curl through the tunnel over IPv6: %v\n%s", err, out)
	}
	out, err = ffprobeH264(v, "udp", dvr1)
	if err != nil || !strings.HasSuffix(out, "stream|codec_name=h264|width=640|height=360") {
		t.Fatalf("ffprobe over udp through the tunnel over IPv6: %v\n%s", err, out)
	}
	if ph.handshake(t) == 0 {
		t.Fatal("no handshake recorded by the phone")
	}
	// The handshake came over IPv6: camgate knows the phone by its IPv6
	// endpoint.
	st := v.status(t)
	found := false
	for _, p := range st.Peers {
		found = found || p.Name == "ipv6-phone" && strings.Contains(p.Endpoint, netlab.WANAddr6.String())
	}
	if !found {
		t.Fatalf("the phone's endpoint as camgate sees it is not its IPv6 address: %+v", st.Peers)
	}
}

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
			dec, err := exec.Command("zbarimg", "--raw", "-q", "-Sdisable", "-Sqrcode.enable", strings.TrimPrefix(line, "CHECK qr ")).Output()
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
