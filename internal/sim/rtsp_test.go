package sim

import (
	"bufio"
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/textproto"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/pion/rtp"
)

// TestRTSPffprobe reads every stream with the real ffprobe over both
// transports and checks what it decoded.
func TestRTSPffprobe(t *testing.T) {
	if _, err := exec.LookPath("ffprobe"); err != nil {
		t.Skip("needs ffprobe (apt-get install ffmpeg)")
	}
	d := start(t, Config{})
	tests := []struct {
		stream    string
		transport string
		want      string
	}{
		{"101", "tcp", "codec_name=h264|width=640|height=360"},
		{"101", "udp", "codec_name=h264|width=640|height=360"},
		{"102", "tcp", "codec_name=h264|width=352|height=288"},
		{"102", "udp", "codec_name=h264|width=352|height=288"},
		{"801", "tcp", "codec_name=h264|width=640|height=360"},
	}
	for _, tc := range tests {
		t.Run(tc.stream+"/"+tc.transport, func(t *testing.T) {
			t.Parallel()
			url := fmt.Sprintf("rtsp://%s:%s@%s/Streaming/Channels/%s", d.User(), d.Password(), d.DialAddr(ServiceRTSP), tc.stream)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-rtsp_transport", tc.transport,
				"-show_entries", "stream=codec_name,width,height", "-of", "compact", url).CombinedOutput()
			if err != nil {
				t.Fatalf("ffprobe: %v\n%s", err, out)
			}
			if got := strings.TrimSpace(string(out)); got != "stream|"+tc.want {
				t.Fatalf("got %q, want %q", got, "stream|"+tc.want)
			}
		})
	}
}

// rtspExchange sends one RTSP request on c and returns the status line,
// headers and body.
func rtspExchange(t *testing.T, c net.Conn, r *bufio.Reader, method, url string, cseq int, hdr map[string]string) (int, textproto.MIMEHeader, string) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s RTSP/1.0\r\nCSeq: %d\r\n", method, url, cseq)
	for k, v := range hdr {
		fmt.Fprintf(&b, "%s: %s\r\n", k, v)
	}
	b.WriteString("\r\n")
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(b.String())); err != nil {
		t.Fatal(err)
	}
	tp := textproto.NewReader(r)
	line, err := tp.ReadLine()
	if err != nil {
		t.Fatalf("%s: read status: %v", method, err)
	}
	f := strings.Fields(line)
	if len(f) < 2 {
		t.Fatalf("%s: bad status line %q", method, line)
	}
	code, _ := strconv.Atoi(f[1])
	h, err := tp.ReadMIMEHeader()
	if err != nil {
		t.Fatalf("%s: read headers: %v", method, err)
	}
	var body string
	if n, _ := strconv.Atoi(h.Get("Content-Length")); n > 0 {
		buf := make([]byte, n)
		if _, err := io.ReadFull(r, buf); err != nil {
			t.Fatal(err)
		}
		body = string(buf)
	}
	return code, h, body
}

// digestRTSP computes an RFC 2069 digest response, as ffmpeg does for a
// challenge without qop.
func digestRTSP(t *testing.T, challenge, user, pass, method, uri string) string {
	t.Helper()
	c, err := parseAuthorization(challenge)
	if err != nil {
		t.Fatalf("challenge %q: %v", challenge, err)
	}
	h := func(s string) string { x := md5.Sum([]byte(s)); return hex.EncodeToString(x[:]) }
	ha1 := h(user + ":" + c.params["realm"] + ":" + pass)
	ha2 := h(method + ":" + uri)
	return fmt.Sprintf(`Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s"`,
		user, c.params["realm"], c.params["nonce"], uri, h(ha1+":"+c.params["nonce"]+":"+ha2))
}

// TestRTSPDescribeAbsoluteControl checks the DESCRIBE answer the way a
// Hikvision device gives it: Content-Base and every a=control absolute,
// carrying the device's own IP:port, whatever address the client used.
func TestRTSPDescribeAbsoluteControl(t *testing.T) {
	tests := []struct {
		name      string
		advertise netip.Addr
		stream    string
	}{
		{"local address", netip.Addr{}, "101"},
		{"advertised address", netip.MustParseAddr("192.0.2.64"), "102"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := start(t, Config{Advertise: tc.advertise})
			own := "127.0.0.1"
			if tc.advertise.IsValid() {
				own = tc.advertise.String()
			}
			hostport := fmt.Sprintf("%s:%d", own, d.Addr(ServiceRTSP).Port())
			c, err := net.Dial("tcp", d.DialAddr(ServiceRTSP).String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			r := bufio.NewReader(c)
			// The client names the device by another name (as through a
			// gateway); the answer must still carry the device's own.
			url := fmt.Sprintf("rtsp://localhost:%d/Streaming/Channels/%s", d.Addr(ServiceRTSP).Port(), tc.stream)
			code, h, _ := rtspExchange(t, c, r, "DESCRIBE", url, 1, nil)
			if code != 401 {
				t.Fatalf("DESCRIBE without credentials: got %d, want 401", code)
			}
			chal := h.Get("WWW-Authenticate")
			if !strings.Contains(chal, `realm="`+d.Realm()+`"`) || strings.Contains(chal, "qop") {
				t.Fatalf("challenge %q: want the device realm %q and no qop", chal, d.Realm())
			}
			auth := digestRTSP(t, chal, d.User(), d.Password(), "DESCRIBE", url)
			code, h, body := rtspExchange(t, c, r, "DESCRIBE", url, 2, map[string]string{"Authorization": auth, "Accept": "application/sdp"})
			if code != 200 {
				t.Fatalf("DESCRIBE: got %d, want 200", code)
			}
			wantBase := "rtsp://" + hostport + "/Streaming/Channels/" + tc.stream + "/"
			if got := h.Get("Content-Base"); got != wantBase {
				t.Errorf("Content-Base: got %q, want %q", got, wantBase)
			}
			kind := tc.stream[2:]
			q := "?transportmode=unicast&profile=Profile_" + kind
			for _, want := range []string{
				"a=control:" + wantBase + q + "\r\n",
				"a=control:" + wantBase + "trackID=1" + q + "\r\n",
				"o=- ", "IN IP4 " + own + "\r\n",
				"a=rtpmap:96 H264/90000\r\n",
				"sprop-parameter-sets=",
			} {
				if !strings.Contains(body, want) {
					t.Errorf("SDP lacks %q:\n%s", want, body)
				}
			}
			if strings.Contains(body, "a=control:trackID") {
				t.Errorf("SDP has a relative control URL:\n%s", body)
			}
			if h.Get("Server") != "" {
				t.Errorf("Server header %q: captured devices send none", h.Get("Server"))
			}
			// SETUP on the absolute track URL, as ffmpeg and VLC do.
			track := wantBase + "trackID=1" + q
			auth = digestRTSP(t, chal, d.User(), d.Password(), "SETUP", track)
			code, h, _ = rtspExchange(t, c, r, "SETUP", track, 3, map[string]string{"Authorization": auth,
				"Transport": "RTP/AVP/TCP;unicast;interleaved=0-1"})
			if code != 200 {
				t.Fatalf("SETUP %s: got %d, want 200", track, code)
			}
			if tr := h.Get("Transport"); !strings.Contains(tr, "interleaved=0-1") {
				t.Errorf("SETUP Transport: got %q, want interleaved=0-1", tr)
			}
			session, _, _ := strings.Cut(h.Get("Session"), ";")
			code, h, _ = rtspExchange(t, c, r, "PLAY", wantBase+q, 4, map[string]string{
				"Authorization": digestRTSP(t, chal, d.User(), d.Password(), "PLAY", wantBase+q), "Session": session})
			if code != 200 {
				t.Fatalf("PLAY: got %d, want 200", code)
			}
			if ri := h.Get("RTP-Info"); !strings.HasPrefix(ri, "url="+track) {
				t.Errorf("RTP-Info: got %q, want url=%s", ri, track)
			}
		})
	}
}

// TestRTSPgortsplibClient plays a stream with gortsplib's client over
// interleaved TCP: it follows the absolute control URLs and must receive
// H.264 frames.
func TestRTSPgortsplibClient(t *testing.T) {
	d := start(t, Config{})
	u, err := base.ParseURL(fmt.Sprintf("rtsp://%s:%s@%s/Streaming/Channels/102", d.User(), d.Password(), d.DialAddr(ServiceRTSP)))
	if err != nil {
		t.Fatal(err)
	}
	tcp := gortsplib.ProtocolTCP
	c := gortsplib.Client{Scheme: u.Scheme, Host: u.Host, Protocol: &tcp}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	desc, _, err := c.Describe(u)
	if err != nil {
		t.Fatalf("Describe: %v", err)
	}
	wantBase := fmt.Sprintf("rtsp://127.0.0.1:%d/Streaming/Channels/102/", d.Addr(ServiceRTSP).Port())
	// gortsplib takes the session-level a=control as the base URL.
	if got := desc.BaseURL.CloneWithoutCredentials().String(); !strings.HasPrefix(got, wantBase) {
		t.Errorf("base URL: got %q, want it under %q", got, wantBase)
	}
	var h264 *format.H264
	medi := desc.FindFormat(&h264)
	if medi == nil {
		t.Fatalf("no H264 media in %+v", desc.Medias)
	}
	if !strings.HasPrefix(medi.Control, "rtsp://127.0.0.1:") {
		t.Errorf("media control %q: want an absolute URL", medi.Control)
	}
	if _, err := c.Setup(desc.BaseURL, medi, 0, 0); err != nil {
		t.Fatalf("Setup: %v", err)
	}
	var frames atomic.Int32
	got := make(chan struct{})
	dec, err := h264.CreateDecoder()
	if err != nil {
		t.Fatal(err)
	}
	c.OnPacketRTP(medi, h264, func(pkt *rtp.Packet) {
		if au, err := dec.Decode(pkt); err == nil && len(au) > 0 {
			if frames.Add(1) == 10 {
				close(got)
			}
		}
	})
	if _, err := c.Play(nil); err != nil {
		t.Fatalf("Play: %v", err)
	}
	select {
	case <-got:
	case <-time.After(10 * time.Second):
		t.Fatalf("got %d frames in 10s, want 10", frames.Load())
	}
}

// TestRTSPAuthFailures checks that wrong RTSP credentials count toward the
// illegal-login lock like ISAPI ones, and that unknown channels are 404.
func TestRTSPAuthFailures(t *testing.T) {
	d := start(t, Config{MaxFailedLogins: 2})
	c, err := net.Dial("tcp", d.DialAddr(ServiceRTSP).String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	url := "rtsp://" + d.DialAddr(ServiceRTSP).String() + "/Streaming/Channels/101"
	_, h, _ := rtspExchange(t, c, r, "DESCRIBE", url, 1, nil)
	chal := h.Get("WWW-Authenticate")
	bad := digestRTSP(t, chal, d.User(), "wrong", "DESCRIBE", url)
	if code, _, _ := rtspExchange(t, c, r, "DESCRIBE", url, 2, map[string]string{"Authorization": bad}); code != 401 {
		t.Fatalf("wrong password: got %d, want 401", code)
	}
	if got := d.FailedLogins(loopback()); got != 1 {
		t.Fatalf("failed logins: got %d, want 1", got)
	}
	missing := "rtsp://" + d.DialAddr(ServiceRTSP).String() + "/Streaming/Channels/1101"
	good := digestRTSP(t, chal, d.User(), d.Password(), "DESCRIBE", missing)
	if code, _, _ := rtspExchange(t, c, r, "DESCRIBE", missing, 3, map[string]string{"Authorization": good}); code != 404 {
		t.Fatalf("channel 11 of a 10-channel DVR: got %d, want 404", code)
	}
	if got := d.FailedLogins(loopback()); got != 0 {
		t.Fatalf("failed logins after a success: got %d, want 0", got)
	}
	for i := 0; i < 2; i++ {
		rtspExchange(t, c, r, "DESCRIBE", url, 4+i, map[string]string{"Authorization": bad})
	}
	if !d.Locked(loopback()) {
		t.Fatal("source not locked after 2 failures with MaxFailedLogins 2")
	}
	good = digestRTSP(t, chal, d.User(), d.Password(), "DESCRIBE", url)
	if code, _, _ := rtspExchange(t, c, r, "DESCRIBE", url, 9, map[string]string{"Authorization": good}); code != 401 {
		t.Fatalf("right password while locked: got %d, want 401", code)
	}
	var rtspReqs int
	for _, q := range d.Requests() {
		if q.Service == ServiceRTSP {
			rtspReqs++
		}
	}
	if rtspReqs != 6 {
		t.Errorf("request log: got %d RTSP entries, want 6", rtspReqs)
	}
}
