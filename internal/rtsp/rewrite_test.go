package rtsp

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func testMap() *addrMap {
	return &addrMap{device: []string{"192.168.1.64"}, public: "198.18.0.1:10554",
		publicIP: netip.MustParseAddr("198.18.0.1")}
}

// splitAnswer splits a fixture into head (CRLF, with the blank line) and body.
func splitAnswer(t testing.TB, name string) ([]byte, []byte) {
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, []byte("\r\n\r\n"))
	return b[:i+4], b[i+4:]
}

func TestRewriteAnswers(t *testing.T) {
	for _, tc := range []struct {
		file string
		want []string
	}{
		{"hikvision-ds-7608-describe.txt", []string{
			"Content-Base: rtsp://198.18.0.1:10554/Streaming/Channels/101/\r\n",
			"o=- 1696240128283086 1696240128283086 IN IP4 198.18.0.1\r\n",
			"c=IN IP4 0.0.0.0\r\n",
			"a=control:rtsp://198.18.0.1:10554/Streaming/Channels/101/trackID=1?transportmode=unicast&profile=Profile_1\r\n",
		}},
		{"hikvision-play.txt", []string{
			"RTP-Info: url=rtsp://198.18.0.1:10554/Streaming/Channels/101/trackID=1?transportmode=unicast&profile=Profile_1;seq=20730;rtptime=2213166000\r\n",
			"Session:       1273222592\r\n",
		}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			m := testMap()
			head, body := splitAnswer(t, tc.file)
			nb := m.sdp(body)
			out := string(m.answerHead(head, len(nb))) + string(nb)
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("missing %q in\n%s", w, out)
				}
			}
			if strings.Contains(out, "192.168.1.64") {
				t.Errorf("the LAN address is still there:\n%s", out)
			}
			if len(body) > 0 && !strings.Contains(out, "Content-Length: "+itoa(len(nb))+"\r\n") {
				t.Errorf("Content-Length not %d:\n%s", len(nb), out)
			}
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestURLs(t *testing.T) {
	m := testMap()
	for _, tc := range []struct{ in, want string }{
		{"rtsp://192.168.1.64/a", "rtsp://198.18.0.1:10554/a"},
		{"RTSP://192.168.1.64:554/a?b", "RTSP://198.18.0.1:10554/a?b"},
		{"url=rtsp://admin@192.168.1.64:554/x;seq=1,url=rtsp://192.168.1.64/y", "url=rtsp://admin@198.18.0.1:10554/x;seq=1,url=rtsp://198.18.0.1:10554/y"},
		{"rtsp://192.168.1.65/a", "rtsp://192.168.1.65/a"},
		{"rtsp://rtsp://192.168.1.64/", "rtsp://rtsp://198.18.0.1:10554/"},
		{"http://192.168.1.64/onvif/device_service", "http://198.18.0.1:10554/onvif/device_service"},
		{"no url here", "no url here"},
	} {
		if got := m.urls(tc.in); got != tc.want {
			t.Errorf("urls(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestSetupTransport(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		udp, usable    bool
	}{
		{"udp", "RTP/AVP;unicast;client_port=5000-5001", "RTP/AVP;unicast;client_port=6000-6001", true, true},
		{"udp single port", "RTP/AVP/UDP;unicast;client_port=5000", "RTP/AVP/UDP;unicast;client_port=6000-6001", true, true},
		{"destination dropped", "RTP/AVP;unicast;destination=203.0.113.9;client_port=5000-5001", "RTP/AVP;unicast;client_port=6000-6001", true, true},
		{"tcp untouched", "RTP/AVP/TCP;unicast;interleaved=0-1", "RTP/AVP/TCP;unicast;interleaved=0-1", false, true},
		{"multicast only", "RTP/AVP;multicast;client_port=5000-5001", "", false, false},
		{"multicast dropped from a list", "RTP/AVP;multicast, RTP/AVP/TCP;interleaved=0-1", "RTP/AVP/TCP;interleaved=0-1", false, true},
		{"udp without ports", "RTP/AVP;unicast", "", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, req := rewriteSetupRequest(tc.in, 6000, 6001)
			if got != tc.want || req.udp != tc.udp || req.usable != tc.usable {
				t.Fatalf("got %q udp=%v usable=%v, want %q udp=%v usable=%v", got, req.udp, req.usable, tc.want, tc.udp, tc.usable)
			}
		})
	}
	head, _ := splitAnswer(t, "hikvision-setup-udp.txt")
	v := fieldValue(head, "Transport")
	got, ans := rewriteSetupAnswer(v, [2]uint16{40000, 40001}, [2]uint16{5000, 5001})
	want := `RTP/AVP;unicast;client_port=5000-5001;server_port=40000-40001;ssrc=3a4dc5fa;mode="play"`
	if got != want || !ans.udp || ans.server != [2]uint16{8234, 8235} {
		t.Fatalf("answer: got %q %+v, want %q server 8234-8235", got, ans, want)
	}
	if d := sessionTimeout(fieldValue(head, "Session")); d.Seconds() != 60 {
		t.Fatalf("session timeout %v, want 60s", d)
	}
}

// FuzzRewriteAnswer feeds arbitrary answers through the rewriting a
// device's answer gets: it must never panic, must be idempotent, and a
// rewritten body's Content-Length must match it.
func FuzzRewriteAnswer(f *testing.F) {
	for _, name := range []string{"hikvision-ds-7608-describe.txt", "hikvision-setup-udp.txt", "hikvision-play.txt"} {
		head, body := splitAnswer(f, name)
		f.Add(head, body)
	}
	f.Add([]byte("RTSP/1.0 302 Found\r\nLocation: rtsp://[fe80::1]:554/x\r\n\r\n"), []byte(nil))
	f.Fuzz(func(t *testing.T, head, body []byte) {
		m := testMap()
		m.device = append(m.device, "fe80::1")
		nb := m.sdp(body)
		out := m.answerHead(head, len(nb))
		if again := m.answerHead(out, len(nb)); !bytes.Equal(again, out) {
			t.Fatalf("not idempotent:\n%q\n%q", out, again)
		}
		if again := m.sdp(nb); !bytes.Equal(again, nb) {
			t.Fatalf("sdp not idempotent:\n%q\n%q", nb, again)
		}
		if v := fieldValue(out, "Content-Length"); v != "" && fieldValue(head, "Content-Length") != "" && v != itoa(len(nb)) {
			t.Fatalf("Content-Length %s for a %d-byte body", v, len(nb))
		}
		tv := fieldValue(head, "Transport")
		rewriteSetupRequest(tv, 6000, 6001)
		rewriteSetupAnswer(tv, [2]uint16{40000, 40001}, [2]uint16{5000, 5001})
		sessionTimeout(fieldValue(head, "Session"))
	})
}
