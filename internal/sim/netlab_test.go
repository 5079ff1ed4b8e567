package sim

import (
	"bufio"
	"encoding/xml"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/netlab"
)

// TestCommandInLAN runs the real `camgate sim` binary in the lan
// namespace on the device's real ports, as a user would, and checks it
// from there and from the gateway namespace: SADP and WS-Discovery probes
// sent to the multicast group, ffprobe and curl --digest against it, and
// a clean exit on SIGTERM.
func TestCommandInLAN(t *testing.T) {
	l := netlab.New(t, netlab.Options{Multicast: true})
	// The gateway reaches the LAN's multicast group over lan0.
	l.Exec(l.GW, "ip", "route", "add", "224.0.0.0/4", "dev", "lan0")
	dir := t.TempDir()
	bin := netlab.Camgate(t)
	pwFile := filepath.Join(dir, "dvr-password")
	const pw = "Lan-Dvr-Pass-9"
	if err := os.WriteFile(pwFile, []byte(pw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := l.Start(l.LAN, bin, "sim", "--password-file", pwFile, "--log-level", "debug")
	if !p.WaitFor("Stop with Ctrl-C.", 20*time.Second) {
		t.Fatalf("camgate sim did not start:\n%s", p.Output())
	}
	out := p.Output()
	if strings.Contains(out, pw) {
		t.Fatalf("the banner or logs print the password from the file:\n%s", out)
	}
	for _, want := range []string{"password from --password-file", "rtsp://127.0.0.1:554/Streaming/Channels/101",
		"http://127.0.0.1:8082/", "udp 0.0.0.0:37020, group 239.255.255.250"} {
		if !strings.Contains(out, want) {
			t.Errorf("banner lacks %q:\n%s", want, out)
		}
	}
	lan := netlab.LANAddr.String()

	// Discovery by multicast, from the gateway and from the LAN itself.
	for _, from := range []struct{ ns, addr string }{{l.GW, netlab.GWLANAddr.String()}, {l.LAN, netlab.LANHost(3).String()}} {
		for _, tc := range []struct {
			port int
			file string
			want []string
		}{
			{37020, "sadp-probe-inquiry.xml", []string{"<IPv4Address>" + lan + "</IPv4Address>", "<HttpPort>8082</HttpPort>",
				"<CommandPort>8000</CommandPort>", "<IPv4Gateway>198.19.0.1</IPv4Gateway>", "<IPv4SubnetMask>255.255.255.0</IPv4SubnetMask>"}},
			{3702, "wsd-probe-nvt.xml", []string{"<d:XAddrs>http://" + lan + ":8082/onvif/device_service</d:XAddrs>",
				"<wsa:RelatesTo>uuid:0a6dc791-2be6-4991-9af1-454778a1917a</wsa:RelatesTo>"}},
		} {
			t.Run(fmt.Sprintf("%s from %s", tc.file, from.addr), func(t *testing.T) {
				pc, err := l.ListenPacket(from.ns, "udp4", from.addr+":0")
				if err != nil {
					t.Fatal(err)
				}
				defer pc.Close()
				group := &net.UDPAddr{IP: net.IPv4(239, 255, 255, 250), Port: tc.port}
				if _, err := pc.WriteTo(readTestdata(t, tc.file), group); err != nil {
					t.Fatal(err)
				}
				pc.SetReadDeadline(time.Now().Add(5 * time.Second))
				buf := make([]byte, 64<<10)
				n, src, err := pc.ReadFrom(buf)
				if err != nil {
					t.Fatalf("no reply to a multicast probe: %v\n%s", err, p.Output())
				}
				if got := src.(*net.UDPAddr).IP.String(); got != lan {
					t.Errorf("reply from %s, want %s", got, lan)
				}
				var any struct{ XMLName xml.Name }
				if err := xml.Unmarshal(buf[:n], &any); err != nil {
					t.Fatalf("reply is not XML: %v", err)
				}
				for _, w := range tc.want {
					if !strings.Contains(string(buf[:n]), w) {
						t.Errorf("reply lacks %q:\n%s", w, buf[:n])
					}
				}
			})
		}
	}

	// RTSP from the gateway: ffprobe decodes it, and DESCRIBE names the
	// device's own LAN address.
	if _, err := exec.LookPath("ffprobe"); err == nil {
		out := l.Exec(l.GW, "ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-show_entries", "stream=codec_name,width,height",
			"-of", "compact", fmt.Sprintf("rtsp://admin:%s@%s:554/Streaming/Channels/101", pw, lan))
		if got := strings.TrimSpace(out); got != "stream|codec_name=h264|width=640|height=360" {
			t.Errorf("ffprobe: got %q", got)
		}
	}
	c, err := l.Dial(l.GW, "tcp", "", lan+":554", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	url := "rtsp://" + lan + ":554/Streaming/Channels/102"
	_, h, _ := rtspExchange(t, c, r, "DESCRIBE", url, 1, nil)
	code, h, body := rtspExchange(t, c, r, "DESCRIBE", url, 2, map[string]string{
		"Authorization": digestRTSP(t, h.Get("WWW-Authenticate"), "admin", pw, "DESCRIBE", url)})
	if code != 200 || h.Get("Content-Base") != url+"/" || !strings.Contains(body, "a=control:"+url+"/trackID=1?") {
		t.Errorf("DESCRIBE from the gateway: got %d, Content-Base %q:\n%s", code, h.Get("Content-Base"), body)
	}

	// ISAPI with real curl --digest from the gateway.
	if _, err := exec.LookPath("curl"); err == nil {
		netrc := filepath.Join(dir, "netrc")
		os.WriteFile(netrc, []byte("machine "+lan+" login admin password "+pw+"\n"), 0o600)
		out := l.Exec(l.GW, "curl", "-sS", "--digest", "--netrc-file", netrc, "http://"+lan+":8082/ISAPI/System/Network/interfaces")
		if !strings.Contains(out, "<ipAddress>"+lan+"</ipAddress>") {
			t.Errorf("interfaces: want the LAN address:\n%s", out)
		}
	}

	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Exited():
		if err := p.Err(); err != nil {
			t.Fatalf("camgate sim exit: %v\n%s", err, p.Output())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("camgate sim did not stop on SIGTERM:\n%s", p.Output())
	}
	if !strings.Contains(p.Output(), "simulator stopped") {
		t.Errorf("no clean stop:\n%s", p.Output())
	}
}
