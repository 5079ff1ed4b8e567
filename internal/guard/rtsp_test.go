package guard

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/config"
)

// rtspDevice is a fake RTSP server: Basic auth on DESCRIBE, SETUP and
// PLAY; after PLAY it streams interleaved frames (some of whose payloads
// look like RTSP) and answers GET_PARAMETER between them.
type rtspDevice struct {
	addr     netip.AddrPort
	failures atomic.Int64
	rtcp     atomic.Int64 // interleaved frames received from the client
}

var sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=test\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:trackID=1\r\n"

func startRTSPDevice(t testing.TB) *rtspDevice {
	d := &rtspDevice{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	d.addr = ln.Addr().(*net.TCPAddr).AddrPort()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go d.serve(c)
		}
	}()
	return d
}

func (d *rtspDevice) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	var wmu sync.Mutex
	write := func(s string) {
		wmu.Lock()
		io.WriteString(c, s)
		wmu.Unlock()
	}
	stop := make(chan struct{})
	defer close(stop)
	for {
		b, err := br.Peek(1)
		if err != nil {
			return
		}
		if b[0] == '$' {
			hdr := make([]byte, 4)
			io.ReadFull(br, hdr)
			io.CopyN(io.Discard, br, int64(hdr[2])<<8|int64(hdr[3]))
			d.rtcp.Add(1)
			continue
		}
		line, _ := br.ReadString('\n')
		method, _, _ := strings.Cut(line, " ")
		hdrs := map[string]string{}
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				return
			}
			l = strings.TrimRight(l, "\r\n")
			if l == "" {
				break
			}
			k, v, _ := strings.Cut(l, ":")
			hdrs[strings.ToLower(k)] = strings.TrimSpace(v)
		}
		if n, _ := strconv.Atoi(hdrs["content-length"]); n > 0 {
			io.CopyN(io.Discard, br, int64(n))
		}
		cseq := hdrs["cseq"]
		auth := hdrs["authorization"]
		needAuth := method == "DESCRIBE" || method == "SETUP" || method == "PLAY"
		switch {
		case needAuth && auth != goodAuth:
			if auth != "" {
				d.failures.Add(1)
			}
			write("RTSP/1.0 401 Unauthorized\r\nCSeq: " + cseq + "\r\nWWW-Authenticate: Basic realm=\"IP Camera(1)\"\r\n\r\n")
		case method == "DESCRIBE":
			write(fmt.Sprintf("RTSP/1.0 200 OK\r\nCSeq: %s\r\nContent-Type: application/sdp\r\nContent-Length: %d\r\n\r\n%s", cseq, len(sdp), sdp))
		case method == "SETUP":
			write("RTSP/1.0 200 OK\r\nCSeq: " + cseq + "\r\nSession: 1234;timeout=60\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n")
		case method == "PLAY":
			write("RTSP/1.0 200 OK\r\nCSeq: " + cseq + "\r\nSession: 1234\r\n\r\n")
			go func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					payload := bytes.Repeat([]byte{byte(i)}, 1+i%1400)
					if i%7 == 0 {
						payload = []byte("RTSP/1.0 200 OK\r\nCSeq: 99\r\n\r\n") // looks like a message
					}
					frame := append([]byte{'$', 0, byte(len(payload) >> 8), byte(len(payload))}, payload...)
					write(string(frame))
					time.Sleep(time.Millisecond)
				}
			}()
		default:
			write("RTSP/1.0 200 OK\r\nCSeq: " + cseq + "\r\n\r\n")
		}
	}
}

// rtspClient reads frames and responses in any order.
type rtspClient struct {
	c      net.Conn
	br     *bufio.Reader
	frames int
}

// next returns the next response, counting frames on the way.
func (r *rtspClient) next(t *testing.T) (status int, headers string, body string) {
	t.Helper()
	for {
		b, err := r.br.Peek(1)
		if err != nil {
			t.Fatalf("read: %v (after %d frames)", err, r.frames)
		}
		if b[0] == '$' {
			hdr := make([]byte, 4)
			io.ReadFull(r.br, hdr)
			if _, err := io.CopyN(io.Discard, r.br, int64(hdr[2])<<8|int64(hdr[3])); err != nil {
				t.Fatal(err)
			}
			r.frames++
			continue
		}
		line, _ := r.br.ReadString('\n')
		if !strings.HasPrefix(line, "RTSP/1.0 ") {
			t.Fatalf("got %q, want a status line", line)
		}
		status, _ = strconv.Atoi(line[9:12])
		n := 0
		for {
			l, _ := r.br.ReadString('\n')
			if l == "\r\n" || l == "" {
				break
			}
			headers += l
			if k, v, _ := strings.Cut(l, ":"); strings.EqualFold(k, "content-length") {
				n, _ = strconv.Atoi(strings.TrimSpace(v))
			}
		}
		bb := make([]byte, n)
		io.ReadFull(r.br, bb)
		return status, headers, string(bb)
	}
}

func TestRTSPInterleavedThroughGuard(t *testing.T) {
	d := startRTSPDevice(t)
	p := newPolicy(t, nil, "")
	addr := startRule(t, p, config.Rule{Name: "rtsp", Guard: config.Guard{Auth: true, Service: "rtsp", MaxFailures: 3}}, d.addr)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	rc := &rtspClient{c: c, br: bufio.NewReader(c)}
	url := "rtsp://" + addr + "/Streaming/Channels/101"
	send := func(method string, cseq int, extra string) {
		fmt.Fprintf(c, "%s %s RTSP/1.0\r\nCSeq: %d\r\n%s\r\n", method, url, cseq, extra)
	}
	send("OPTIONS", 1, "")
	if st, _, _ := rc.next(t); st != 200 {
		t.Fatalf("OPTIONS: got %d", st)
	}
	send("DESCRIBE", 2, "")
	if st, _, _ := rc.next(t); st != 401 {
		t.Fatalf("DESCRIBE without credentials: got %d, want 401", st)
	}
	send("DESCRIBE", 3, "Authorization: Basic wrong\r\n")
	if st, _, _ := rc.next(t); st != 401 {
		t.Fatalf("wrong password: got %d, want 401", st)
	}
	send("DESCRIBE", 4, "Authorization: "+goodAuth+"\r\n")
	if st, _, b := rc.next(t); st != 200 || b != sdp {
		t.Fatalf("DESCRIBE: got %d %q", st, b)
	}
	send("SETUP", 5, "Authorization: "+goodAuth+"\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n")
	send("PLAY", 6, "Authorization: "+goodAuth+"\r\nSession: 1234\r\n")
	for i := 0; i < 2; i++ {
		if st, _, _ := rc.next(t); st != 200 {
			t.Fatalf("SETUP/PLAY: got %d", st)
		}
	}
	// Keep-alives and RTCP receiver reports while media flows.
	for i := 0; i < 20; i++ {
		c.Write([]byte{'$', 1, 0, 8, 0x81, 0xc9, 0, 1, 0, 0, 0, 0})
		send("GET_PARAMETER", 7+i, "Session: 1234\r\n")
		st, h, _ := rc.next(t)
		if st != 200 || !strings.Contains(h, fmt.Sprintf("CSeq: %d", 7+i)) {
			t.Fatalf("GET_PARAMETER %d: got %d %q", i, st, h)
		}
		time.Sleep(3 * time.Millisecond) // let media flow in between
	}
	if rc.frames < 10 {
		t.Fatalf("got %d interleaved frames, want a stream", rc.frames)
	}
	deadline := time.Now().Add(2 * time.Second)
	for d.rtcp.Load() < 20 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := d.rtcp.Load(); got != 20 {
		t.Fatalf("device got %d interleaved frames from the client, want 20", got)
	}
	cs, _ := p.Counters("rtsp")
	if cs.AuthFailures != 1 || cs.AuthSuccesses != 3 {
		t.Fatalf("got counters %+v, want 1 failure and 3 successes", cs)
	}
}

func TestRTSPBan(t *testing.T) {
	d := startRTSPDevice(t)
	p := newPolicy(t, nil, "")
	addr := startRule(t, p, config.Rule{Name: "rtsp", Guard: config.Guard{Auth: true, Service: "rtsp", MaxFailures: 2}}, d.addr)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	for i := 1; i <= 5; i++ {
		fmt.Fprintf(c, "DESCRIBE rtsp://cam/ RTSP/1.0\r\nCSeq: %d\r\nAuthorization: Basic guess%d\r\n\r\n", i, i)
	}
	b, _ := io.ReadAll(c)
	if got := strings.Count(string(b), "401 Unauthorized"); got != 2 {
		t.Fatalf("got %d answers 401 in %q, want 2 before the ban cuts the connection", got, b)
	}
	if got := d.failures.Load(); got != 2 {
		t.Fatalf("device saw %d failures, want 2", got)
	}
	if len(p.Bans()) != 1 {
		t.Fatalf("got bans %v", p.Bans())
	}
}
