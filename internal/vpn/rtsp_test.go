package vpn

import (
	"bufio"
	"bytes"
	"net/netip"
	"strings"
	"testing"
)

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestReplacePorts(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"SETUP rtsp://d/t RTSP/1.0\r\nCSeq: 3\r\nTransport: RTP/AVP;unicast;client_port=5000-5001\r\n\r\n",
			"SETUP rtsp://d/t RTSP/1.0\r\nCSeq: 3\r\nTransport: RTP/AVP;unicast;client_port=40000-40001\r\n\r\n"},
		{"RTSP/1.0 200 OK\r\ntransport: RTP/AVP;Client_Port=7000;server_port=8000-8001\r\n\r\n",
			"RTSP/1.0 200 OK\r\ntransport: RTP/AVP;Client_Port=40000-40001;server_port=8000-8001\r\n\r\n"},
		{"SETUP x RTSP/1.0\r\nX-Note: client_port=1-2\r\n\r\n", "SETUP x RTSP/1.0\r\nX-Note: client_port=1-2\r\n\r\n"},
	} {
		if got := string(replacePorts([]byte(tc.in), "client_port=", [2]uint16{40000, 40001})); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
	if a, b, ok := portPair("RTP/AVP;server_port=8000-8001;ssrc=1", "server_port="); !ok || a != 8000 || b != 8001 {
		t.Errorf("portPair: got %d %d %v", a, b, ok)
	}
}

// FuzzRTSPMessages feeds the RTSP message reader and the Transport
// rewriting what a peer or a device could send: it must not panic, and a
// rewritten head must keep its other lines.
func FuzzRTSPMessages(f *testing.F) {
	f.Add([]byte("SETUP rtsp://198.19.0.64/Streaming/Channels/101/trackID=1 RTSP/1.0\r\nCSeq: 3\r\nTransport: RTP/AVP;unicast;client_port=5000-5001\r\n\r\n"))
	f.Add([]byte("RTSP/1.0 200 OK\r\nCSeq: 3\r\nTransport: RTP/AVP;unicast;client_port=5000-5001;server_port=8000-8001;ssrc=1\r\nContent-Length: 4\r\n\r\nabcd$\x00\x00\x04rtp!"))
	f.Add([]byte("$\x01\xff\xffxx"))
	f.Add([]byte("ANNOUNCE x RTSP/1.0\r\nContent-Length: -1\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bufio.NewReader(bytes.NewReader(b))
		for range 8 {
			head, err := readRTSPHead(r)
			if err != nil {
				return
			}
			if head == nil {
				if passInterleaved(&bytes.Buffer{}, r) != nil {
					return
				}
				continue
			}
			tr := rtspHeader(head, "Transport")
			portPair(tr, "client_port=")
			portPair(tr, "server_port=")
			out := replacePorts(head, "client_port=", [2]uint16{1, 2})
			if bytes.Count(out, []byte("\n")) != bytes.Count(head, []byte("\n")) {
				t.Fatalf("rewrite changed the line count:\n%q\n%q", head, out)
			}
			if !strings.HasPrefix(string(out), firstLine(head)) && !bytes.HasPrefix(head, []byte("Transport")) {
				t.Fatalf("rewrite changed the first line:\n%q\n%q", head, out)
			}
			if passBody(&bytes.Buffer{}, r, head) != nil {
				return
			}
		}
	})
}

func firstLine(b []byte) string {
	l, _, _ := bytes.Cut(b, []byte("\n"))
	if bytes.Contains(bytes.ToLower(l), []byte("transport")) {
		return ""
	}
	return string(l)
}

// FuzzPeersFile: the state directory's peers file must parse or fail
// cleanly, and what parses must save and parse back the same.
func FuzzPeersFile(f *testing.F) {
	f.Add([]byte(`{"version":1,"peers":[{"name":"alice","public_key":"Z/mTvSO+d1M335q4RMJcW5Xl/D+HAsKZpTa4dFweGFE=","address":"100.88.0.2","allow":["dvr1"],"expires":"2027-01-05T03:43:01Z","created":"2026-12-06T03:43:01Z"}]}`))
	f.Add([]byte(`{"version":1,"peers":[]}`))
	f.Add([]byte(`{"version":2}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		peers, err := parsePeers(b)
		if err != nil {
			return
		}
		path := t.TempDir() + "/peers.json"
		if err := savePeers(path, peers); err != nil {
			t.Fatal(err)
		}
		again, err := loadPeers(path)
		if err != nil || len(again) != len(peers) {
			t.Fatalf("round trip: %v, %d peers, want %d", err, len(again), len(peers))
		}
	})
}

// FuzzExpiry: any text either parses to a future time within ten years
// or to no expiry, or is refused.
func FuzzExpiry(f *testing.F) {
	for _, s := range []string{"30d", "12h", "never", "2027-01-31", "2026-12-06T04:00:00Z", "9999999999w", "-1d"} {
		f.Add(s)
	}
	now := mustTime("2026-12-06T03:00:00Z")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseExpiry(s, now)
		if err != nil || got.IsZero() {
			return
		}
		if !got.After(now) || got.Sub(now) > maxExpiry {
			t.Fatalf("%q: got %v", s, got)
		}
	})
}
