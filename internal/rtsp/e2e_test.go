package rtsp_test

import (
	"bufio"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/netlab"
	"github.com/camgate/camgate/internal/sim"
)

// The end-to-end tests: the simulated DVR in lan (RTSP on 554, RTP over
// UDP from its own ports), camgate serve in gw forwarding external 10554
// to 554 with no RTSP settings at all, and real players in wan: ffprobe,
// ffmpeg and GStreamer, and a raw client that looks at the bytes.

const (
	simPass = "Sim-Pass-1234"
	extPort = 10554
	// rtpFirst-rtpLast is the test's external RTP range (4 pairs).
	rtpFirst = 41000
	rtpLast  = 41007
)

const e2eConfig = `version: 1
listen_address: %[1]s
state_dir: %[2]s
rtsp:
  rtp_ports: %[4]d-%[5]d
rules:
  - name: dvr-rtsp
    external_port: %[6]d
    internal_ip: %[3]s
    internal_port: 554
`

type lab struct {
	*netlab.Lab
	dev *sim.Device
	gw  *netlab.Proc
	dir string
}

func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
}

func startLab(t *testing.T, extraConfig string) *lab {
	t.Helper()
	return startLabOn(t, netlab.Options{}, netlab.GWWANAddr.String(), extraConfig)
}

// startLabOn is startLab with netlab options and camgate's listen_address.
func startLabOn(t *testing.T, opts netlab.Options, listen, extraConfig string) *lab {
	t.Helper()
	if why := netlab.Skip(); why != "" {
		t.Skip("netlab: " + why)
	}
	bin := netlab.Camgate(t)
	l := &lab{Lab: netlab.New(t, opts), dir: t.TempDir()}
	err := l.Do(l.LAN, func() error {
		var err error
		l.dev, err = sim.New(sim.Config{
			Listen:   netlab.LANAddr,
			Password: simPass,
			Ports:    sim.Ports{HTTP: 80, HTTPS: -1, RTSP: 554, RTP: 0, SDK: -1, SDKOverTLS: -1, WebSocket: -1, SADP: -1, WSDiscovery: -1},
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

	cfg := filepath.Join(l.dir, "camgate.yaml")
	body := fmt.Sprintf(e2eConfig, `"`+listen+`"`, filepath.Join(l.dir, "state"), netlab.LANAddr, rtpFirst, rtpLast, extPort) + extraConfig
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	l.gw = l.Start(l.GW, bin, "serve", "--config", cfg, "--log-level", "debug")
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

func streamURL(channel int) string {
	return fmt.Sprintf("rtsp://admin:%s@%s:%d/Streaming/Channels/%d01", simPass, netlab.GWWANAddr, extPort, channel)
}

// probe runs ffprobe in ns and checks it reads h264 within 5 s without
// falling back to TCP.
func (l *lab) probe(t *testing.T, ns string, transport []string, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	args := append([]string{"-v", "warning", "-show_streams", "-of", "json"}, transport...)
	cmd := l.CommandContext(ctx, ns, "ffprobe", append(args, url)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	out, err := cmd.Output()
	took := time.Since(start)
	if err != nil {
		t.Fatalf("ffprobe %v: %v after %v\n%s", transport, err, took, stderr.String())
	}
	var res struct {
		Streams []struct {
			Codec string `json:"codec_name"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(out, &res); err != nil || len(res.Streams) == 0 || res.Streams[0].Codec != "h264" {
		t.Fatalf("ffprobe %v: got %s (%v), want an h264 stream\n%s", transport, out, err, stderr.String())
	}
	if strings.Contains(stderr.String(), "retrying with TCP") {
		t.Fatalf("ffprobe %v fell back to TCP:\n%s", transport, stderr.String())
	}
	if took > 5*time.Second {
		t.Fatalf("ffprobe %v took %v, want under 5 s", transport, took)
	}
	t.Logf("ffprobe %v: h264 in %v", transport, took.Round(time.Millisecond))
}

// poolFree checks, from inside gw, that every external RTP port is free
// again (camgate released it), waiting a little for a TEARDOWN to land.
func (l *lab) poolFree(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		busy := -1
		for p := rtpFirst; p <= rtpLast && busy < 0; p++ {
			pc, err := l.ListenPacket(l.GW, "udp4", net.JoinHostPort(netlab.GWWANAddr.String(), strconv.Itoa(p)))
			if err != nil {
				busy = p
				continue
			}
			pc.Close()
		}
		if busy < 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("external rtp port %d still in use after the players ended", busy)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestPlayersThroughCamgate(t *testing.T) {
	need(t, "ffprobe", "ffmpeg")
	l := startLab(t, "")
	url := streamURL(1)
	l.WaitTCP(l.WAN, net.JoinHostPort(netlab.GWWANAddr.String(), strconv.Itoa(extPort)), 5*time.Second)

	t.Run("ffprobe udp", func(t *testing.T) { l.probe(t, l.WAN, []string{"-rtsp_transport", "udp"}, url) })
	t.Run("ffprobe tcp", func(t *testing.T) { l.probe(t, l.WAN, []string{"-rtsp_transport", "tcp"}, url) })
	t.Run("ffprobe default", func(t *testing.T) { l.probe(t, l.WAN, nil, url) })

	t.Run("gstreamer udp", func(t *testing.T) {
		need(t, "gst-launch-1.0")
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		u := fmt.Sprintf("rtsp://%s:%d/Streaming/Channels/101", netlab.GWWANAddr, extPort)
		out, err := l.CommandContext(ctx, l.WAN, "gst-launch-1.0", "rtspsrc", "protocols=udp", "location="+u,
			"user-id=admin", "user-pw="+simPass, "!", "fakesink", "num-buffers=100").CombinedOutput()
		if err != nil {
			t.Fatalf("gst-launch-1.0: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), "Got EOS") {
			t.Fatalf("gst-launch-1.0 did not get 100 buffers:\n%s", out)
		}
	})

	t.Run("ffmpeg 10 s over udp without decode errors", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := l.CommandContext(ctx, l.WAN, "ffmpeg", "-nostdin", "-v", "warning", "-rtsp_transport", "udp",
			"-i", url, "-t", "10", "-f", "null", "-").CombinedOutput()
		if err != nil {
			t.Fatalf("ffmpeg: %v\n%s", err, out)
		}
		if s := strings.TrimSpace(string(out)); s != "" {
			t.Fatalf("ffmpeg reported problems, want none:\n%s", s)
		}
	})

	t.Run("ports back in the pool", func(t *testing.T) { l.poolFree(t) })
}

// guardedRule is the same DVR behind the brute-force guard.
const guardedRule = `  - name: dvr-rtsp-guarded
    external_port: 10555
    internal_ip: %s
    internal_port: 554
    guard: {auth: true, max_failures: 3}
`

// TestGuardWithUDP: the brute-force guard keeps judging logins on a rule
// that relays RTP over UDP.
func TestGuardWithUDP(t *testing.T) {
	need(t, "ffprobe")
	l := startLab(t, fmt.Sprintf(guardedRule, netlab.LANAddr))
	addr := net.JoinHostPort(netlab.GWWANAddr.String(), "10555")
	l.WaitTCP(l.WAN, addr, 5*time.Second)
	good := fmt.Sprintf("rtsp://admin:%s@%s/Streaming/Channels/101", simPass, addr)
	l.probe(t, l.WAN, []string{"-rtsp_transport", "udp"}, good)
	bad := fmt.Sprintf("rtsp://admin:wrong-guess@%s/Streaming/Channels/101", addr)
	for i := 0; i < 3; i++ {
		l.Command(l.WAN, "ffprobe", "-v", "quiet", "-rtsp_transport", "udp", bad).Run()
	}
	// Banned now: even the right password is refused, over UDP or TCP.
	out, err := l.Command(l.WAN, "ffprobe", "-v", "error", "-rtsp_transport", "udp", good).CombinedOutput()
	if err == nil {
		t.Fatalf("after 3 failed logins: ffprobe played (%s), want the source refused", out)
	}
	if !strings.Contains(l.gw.Output(), `msg="source banned"`) {
		t.Fatal("camgate logged no ban")
	}
}

func TestNATViewerAndTwoViewers(t *testing.T) {
	need(t, "ffprobe", "ffmpeg")
	l := startLab(t, "admin:\n  listen: 198.18.0.1:8443\n  metrics_public: true\n  allow: [198.18.0.0/24]\n")
	viewer := l.NATViewer()
	l.WaitTCP(l.WAN, net.JoinHostPort(netlab.GWWANAddr.String(), strconv.Itoa(extPort)), 5*time.Second)

	t.Run("viewer behind nat over udp", func(t *testing.T) {
		l.probe(t, viewer, []string{"-rtsp_transport", "udp"}, streamURL(1))
		// The NAT gave the viewer's ports other numbers: camgate must have
		// learnt them from its packets.
		if !strings.Contains(l.gw.Output(), `msg="rtp latched"`) {
			t.Fatal("camgate never latched onto the NAT'd viewer's real ports")
		}
	})

	t.Run("two viewers on two channels", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make([]string, 2)
		for i, ns := range []string{l.WAN, viewer} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				out, err := l.CommandContext(ctx, ns, "ffmpeg", "-nostdin", "-v", "warning", "-rtsp_transport", "udp",
					"-i", streamURL(i+1), "-t", "4", "-f", "null", "-").CombinedOutput()
				if err != nil || strings.TrimSpace(string(out)) != "" {
					errs[i] = fmt.Sprintf("viewer %d (%s): %v\n%s", i+1, ns, err, out)
				}
			}()
		}
		wg.Wait()
		for _, e := range errs {
			if e != "" {
				t.Error(e)
			}
		}
		l.poolFree(t)
	})

	t.Run("metrics show rtp sessions and udp bytes", func(t *testing.T) {
		out := l.Exec(l.WAN, "curl", "-sSk", "--max-time", "5", "https://198.18.0.1:8443/metrics")
		for _, want := range []string{`camgate_rule_rtp_sessions_total{rule="dvr-rtsp"} 3`, `camgate_rule_rtp_sessions_active{rule="dvr-rtsp"} 0`,
			`camgate_rtp_port_pairs 4`, `camgate_rtp_port_pairs_in_use 0`} {
			if !strings.Contains(out, want) {
				t.Errorf("metrics lack %q:\n%s", want, grepLines(out, "rtp"))
			}
		}
		if !strings.Contains(out, `camgate_rule_rtp_udp_bytes_total{direction="out",rule="dvr-rtsp"}`) ||
			strings.Contains(out, `camgate_rule_rtp_udp_bytes_total{direction="out",rule="dvr-rtsp"} 0`+"\n") {
			t.Errorf("metrics show no UDP bytes relayed:\n%s", grepLines(out, "rtp"))
		}
	})
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// rawClient speaks RTSP by hand so the test sees every byte camgate
// sends back.
type rawClient struct {
	t     *testing.T
	c     net.Conn
	br    *bufio.Reader
	cseq  int
	realm string
	nonce string
	all   strings.Builder // every answer, raw
}

func (r *rawClient) do(method, url string, extra ...string) (int, string, string) {
	r.t.Helper()
	r.cseq++
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s RTSP/1.0\r\nCSeq: %d\r\nUser-Agent: camgate-test\r\n", method, url, r.cseq)
	if r.nonce != "" {
		ha1 := md5hex("admin:" + r.realm + ":" + simPass)
		ha2 := md5hex(method + ":" + url)
		fmt.Fprintf(&b, "Authorization: Digest username=\"admin\", realm=\"%s\", nonce=\"%s\", uri=\"%s\", response=\"%s\"\r\n",
			r.realm, r.nonce, url, md5hex(ha1+":"+r.nonce+":"+ha2))
	}
	for _, e := range extra {
		b.WriteString(e + "\r\n")
	}
	b.WriteString("\r\n")
	if _, err := r.c.Write([]byte(b.String())); err != nil {
		r.t.Fatal(err)
	}
	status, head, body := r.read()
	if status == 401 && r.nonce == "" {
		for _, l := range strings.Split(head, "\r\n") {
			if v, ok := strings.CutPrefix(l, "WWW-Authenticate: Digest "); ok {
				r.realm, r.nonce = param(v, "realm"), param(v, "nonce")
			}
		}
		r.cseq--
		return r.do(method, url, extra...)
	}
	return status, head, body
}

func (r *rawClient) read() (int, string, string) {
	r.t.Helper()
	r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var head strings.Builder
	n := 0
	for {
		line, err := r.br.ReadString('\n')
		if err != nil {
			r.t.Fatalf("reading an answer: %v (so far %q)", err, head.String())
		}
		head.WriteString(line)
		if line == "\r\n" {
			break
		}
		if v, ok := strings.CutPrefix(line, "Content-Length: "); ok {
			n, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r.br, body); err != nil {
		r.t.Fatal(err)
	}
	r.all.WriteString(head.String())
	r.all.Write(body)
	f := strings.Fields(head.String())
	status, _ := strconv.Atoi(f[1])
	return status, head.String(), string(body)
}

func md5hex(s string) string { h := md5.Sum([]byte(s)); return hex.EncodeToString(h[:]) }

func param(v, name string) string {
	i := strings.Index(v, name+"=\"")
	if i < 0 {
		return ""
	}
	v = v[i+len(name)+2:]
	return v[:strings.IndexByte(v, '"')]
}

func field(head, name string) string {
	for _, l := range strings.Split(head, "\r\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(k, name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func TestNoLANAddressAndLatching(t *testing.T) {
	l := startLab(t, "")
	addr := net.JoinHostPort(netlab.GWWANAddr.String(), strconv.Itoa(extPort))
	l.WaitTCP(l.WAN, addr, 5*time.Second)
	c, err := l.Dial(l.WAN, "tcp", "", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := &rawClient{t: t, c: c, br: bufio.NewReader(c)}
	base := fmt.Sprintf("rtsp://%s/Streaming/Channels/101", addr)

	st, head, sdp := r.do("DESCRIBE", base, "Accept: application/sdp")
	if st != 200 {
		t.Fatalf("DESCRIBE: %d\n%s", st, head)
	}
	if cb := field(head, "Content-Base"); !strings.HasPrefix(cb, "rtsp://"+addr+"/") {
		t.Errorf("Content-Base %q, want it on %s", cb, addr)
	}
	control := ""
	for _, line := range strings.Split(sdp, "\r\n") {
		if v, ok := strings.CutPrefix(line, "a=control:"); ok && strings.Contains(v, "trackID") {
			control = v
		}
		if strings.HasPrefix(line, "o=") && !strings.HasSuffix(line, "IN IP4 "+netlab.GWWANAddr.String()) {
			t.Errorf("SDP %q, want camgate's address", line)
		}
	}
	if !strings.HasPrefix(control, "rtsp://"+addr+"/") {
		t.Fatalf("track control %q, want an URL on %s\n%s", control, addr, sdp)
	}

	// A third party in wan sends first to every external port: it must
	// not take the stream.
	thief, err := l.ListenPacket(l.WAN, "udp4", netlab.WANClient(5).String()+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer thief.Close()
	// The viewer declares ports it will not use: its real socket is
	// another, as behind a NAT.
	media, err := l.ListenPacket(l.WAN, "udp4", netlab.WANAddr.String()+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer media.Close()
	st, head, _ = r.do("SETUP", control, "Transport: RTP/AVP;unicast;client_port=50000-50001")
	if st != 200 {
		t.Fatalf("SETUP: %d\n%s", st, head)
	}
	tr := field(head, "Transport")
	sp := ""
	for _, p := range strings.Split(tr, ";") {
		if v, ok := strings.CutPrefix(p, "server_port="); ok {
			sp = v
		}
	}
	first, _, _ := strings.Cut(sp, "-")
	port, _ := strconv.Atoi(first)
	if port < rtpFirst || port > rtpLast || !strings.Contains(tr, "client_port=50000-50001") {
		t.Fatalf("Transport %q: want server_port in %d-%d and the client's own client_port", tr, rtpFirst, rtpLast)
	}
	session := sessionOf(field(head, "Session"))
	rtpAddr := &net.UDPAddr{IP: netlab.GWWANAddr.AsSlice(), Port: port}
	for i := 0; i < 3; i++ {
		thief.WriteTo([]byte{0x80, 0x60, 0, 0}, rtpAddr)
	}
	time.Sleep(100 * time.Millisecond)
	media.WriteTo([]byte{0x80, 0x60, 0, 0}, rtpAddr) // the viewer punches: latch
	st, head, _ = r.do("PLAY", base+"/", "Session: "+session, "Range: npt=0.000-")
	if st != 200 {
		t.Fatalf("PLAY: %d\n%s", st, head)
	}
	media.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 2048)
	n, from, err := media.ReadFrom(buf)
	if err != nil {
		t.Fatalf("no RTP reached the latched viewer: %v", err)
	}
	if n < 12 || buf[0]>>6 != 2 || from.(*net.UDPAddr).Port != port {
		t.Fatalf("got %d bytes from %v, want RTP from port %d", n, from, port)
	}
	thief.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, _, err := thief.ReadFrom(buf); err == nil {
		t.Fatalf("the third party received %d bytes of the stream", n)
	}
	st, head, _ = r.do("TEARDOWN", base+"/", "Session: "+session)
	if st != 200 {
		t.Fatalf("TEARDOWN: %d\n%s", st, head)
	}
	if all := r.all.String(); strings.Contains(all, netlab.LANAddr.String()) {
		t.Fatalf("an answer carries the LAN address %s:\n%s", netlab.LANAddr, all)
	}

	t.Run("multicast gets 461 at once", func(t *testing.T) {
		start := time.Now()
		st, _, _ := r.do("SETUP", control, "Transport: RTP/AVP;multicast;client_port=50002-50003")
		if st != 461 || time.Since(start) > time.Second {
			t.Fatalf("got %d after %v, want 461 at once", st, time.Since(start))
		}
	})
	t.Run("exhausted range gets 461", func(t *testing.T) {
		// One session per connection, as players do.
		var clients []*rawClient
		for i := 0; i <= (rtpLast-rtpFirst+1)/2; i++ {
			c, err := l.Dial(l.WAN, "tcp", "", addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			rc := &rawClient{t: t, c: c, br: bufio.NewReader(c)}
			clients = append(clients, rc)
			st, head, _ := rc.do("SETUP", control, fmt.Sprintf("Transport: RTP/AVP;unicast;client_port=%d-%d", 50010+2*i, 50011+2*i))
			want := 200
			if i == (rtpLast-rtpFirst+1)/2 {
				want = 461
			}
			if st != want {
				t.Fatalf("SETUP %d: got %d, want %d\n%s", i, st, want, head)
			}
		}
		// A connection's end frees its pairs.
		for _, rc := range clients {
			rc.c.Close()
		}
		l.poolFree(t)
	})
}

func sessionOf(v string) string { s, _, _ := strings.Cut(v, ";"); return strings.TrimSpace(s) }
