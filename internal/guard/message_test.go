package guard

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func parse(s string, rtsp, fromClient bool) (*message, error) {
	lim := requestLimits
	if !fromClient {
		lim = responseLimits
	}
	return readMessage(bufio.NewReaderSize(strings.NewReader(s), readerSize), lim, rtsp, fromClient)
}

func TestReadRequest(t *testing.T) {
	tests := []struct {
		name, in     string
		rtsp         bool
		method, targ string
		kind         bodyKind
		n            int64
		auth, upg    bool
		status       int // expected refusal; 0 = parses
	}{
		{name: "get", in: "GET /a?b=c HTTP/1.1\r\nHost: x\r\n\r\n", method: "GET", targ: "/a?b=c"},
		{name: "bare lf", in: "GET / HTTP/1.1\nHost: x\n\n", method: "GET", targ: "/"},
		{name: "leading crlf", in: "\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", method: "GET", targ: "/"},
		{name: "http/1.0 no host", in: "GET / HTTP/1.0\r\n\r\n", method: "GET", targ: "/"},
		{name: "content-length", in: "PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n", method: "PUT", targ: "/x", kind: bodyFixed, n: 12},
		{name: "equal lengths", in: "PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\n", method: "PUT", targ: "/x", kind: bodyFixed, n: 5},
		{name: "chunked", in: "POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n", method: "POST", targ: "/x", kind: bodyChunked},
		// Issue 14: only a single chunked passes, and it is re-emitted as
		// "Transfer-Encoding: chunked" (TestTransferEncodingNormalised).
		{name: "te upper case", in: "POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: CHUNKED\r\n\r\n", method: "POST", targ: "/x", kind: bodyChunked},
		{name: "te with parameter", in: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked;x=1\r\n\r\n", status: 400},
		{name: "te identity then chunked", in: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity, chunked\r\n\r\n", status: 400},
		{name: "te gzip then chunked", in: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n", status: 400},
		{name: "te split over fields", in: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\n\r\n", status: 400},
		{name: "fragment in target", in: "PUT /x#/../SDK/webLanguage HTTP/1.1\r\nHost: x\r\n\r\n", status: 400},
		{name: "two authorization fields", in: "GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Basic YQ==\r\nAuthorization: Basic Yg==\r\n\r\n", status: 400},
		{name: "authorization", in: "GET / HTTP/1.1\r\nHost: x\r\nauthorization: Digest username=\"admin\"\r\n\r\n", method: "GET", targ: "/", auth: true},
		{name: "upgrade", in: "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", method: "GET", targ: "/ws", upg: true},
		{name: "absolute form", in: "GET http://cam/ISAPI/x HTTP/1.1\r\nHost: cam\r\n\r\n", method: "GET", targ: "http://cam/ISAPI/x"},
		{name: "rtsp describe", rtsp: true, in: "DESCRIBE rtsp://cam:554/Streaming/Channels/101 RTSP/1.0\r\nCSeq: 2\r\nAccept: application/sdp\r\n\r\n", method: "DESCRIBE", targ: "rtsp://cam:554/Streaming/Channels/101"},
		{name: "rtsp body", rtsp: true, in: "SET_PARAMETER rtsp://cam/ RTSP/1.0\r\nCSeq: 9\r\nContent-Length: 3\r\n\r\n", method: "SET_PARAMETER", targ: "rtsp://cam/", kind: bodyFixed, n: 3},

		{name: "cl and te", in: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n", status: 400},
		{name: "te not chunked", in: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", status: 400},
		{name: "te chunked twice", in: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", status: 400},
		{name: "te in http/1.0", in: "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", status: 400},
		{name: "conflicting lengths", in: "PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", status: 400},
		{name: "negative length", in: "PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", status: 400},
		{name: "huge length", in: "PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n", status: 400},
		{name: "space before colon", in: "GET / HTTP/1.1\r\nHost : x\r\n\r\n", status: 400},
		{name: "obs-fold", in: "GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n\tb\r\n\r\n", status: 400},
		{name: "ctl in value", in: "GET / HTTP/1.1\r\nHost: x\r\nX: a\x01b\r\n\r\n", status: 400},
		{name: "bare cr", in: "GET / HTTP/1.1\r\nHost: x\rX: y\r\n\r\n", status: 400},
		{name: "no colon", in: "GET / HTTP/1.1\r\nHost: x\r\nnonsense\r\n\r\n", status: 400},
		{name: "two hosts", in: "GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", status: 400},
		{name: "double space", in: "GET  / HTTP/1.1\r\nHost: x\r\n\r\n", status: 400},
		{name: "bad method", in: "G(T / HTTP/1.1\r\nHost: x\r\n\r\n", status: 400},
		{name: "http/2", in: "PRI * HTTP/2.0\r\n\r\n", status: 505},
		{name: "http/0.9", in: "GET /\r\n\r\n", status: 400},
		{name: "response from client", in: "HTTP/1.1 200 OK\r\n\r\n", status: 400},
		{name: "rtsp te", rtsp: true, in: "PLAY rtsp://c/ RTSP/1.0\r\nCSeq: 1\r\nTransfer-Encoding: chunked\r\n\r\n", status: 400},
		{name: "rtsp version", rtsp: true, in: "PLAY rtsp://c/ RTSP/2.0\r\nCSeq: 1\r\n\r\n", status: 505},
		{name: "long line", in: "GET /" + strings.Repeat("x", 9000) + " HTTP/1.1\r\nHost: x\r\n\r\n", status: 414},
		{name: "long field", in: "GET / HTTP/1.1\r\nHost: x\r\nX: " + strings.Repeat("x", 9000) + "\r\n\r\n", status: 431},
		{name: "many fields", in: "GET / HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X: y\r\n", 101) + "\r\n", status: 431},
		{name: "empty lines", in: "\r\n\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\n\r\n", status: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := parse(tt.in, tt.rtsp, true)
			if tt.status != 0 {
				var pe *parseError
				if !errors.As(err, &pe) || pe.status != tt.status {
					t.Fatalf("got %v, %v; want a %d refusal", m, err, tt.status)
				}
				return
			}
			if err != nil {
				t.Fatalf("got %v, want a request", err)
			}
			kind, n := m.requestBody()
			if m.method != tt.method || m.target != tt.targ || kind != tt.kind || n != tt.n || m.authorization != tt.auth || m.upgrade != tt.upg {
				t.Fatalf("got %s %s body %v/%d auth %v upgrade %v, want %s %s body %v/%d auth %v upgrade %v",
					m.method, m.target, kind, n, m.authorization, m.upgrade, tt.method, tt.targ, tt.kind, tt.n, tt.auth, tt.upg)
			}
			// The re-emitted head parses to the same thing and uses CRLF.
			if bytes.Count(m.head, []byte("\n")) != bytes.Count(m.head, []byte("\r\n")) {
				t.Fatalf("re-emitted head %q has bare LFs", m.head)
			}
			m2, err := parse(string(m.head), tt.rtsp, true)
			if err != nil || m2.method != m.method || string(m2.head) != string(m.head) {
				t.Fatalf("re-parse: got %v %v, want the same head", m2, err)
			}
		})
	}
}

func TestReadResponse(t *testing.T) {
	tests := []struct {
		name, in, method string
		rtsp             bool
		status           int
		kind             bodyKind
		n                int64
		stale            bool
		bad              bool
	}{
		{name: "fixed", in: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", method: "GET", status: 200, kind: bodyFixed, n: 5},
		{name: "no reason", in: "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", method: "GET", status: 200, kind: bodyNone},
		{name: "head", in: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", method: "HEAD", status: 200, kind: bodyNone},
		{name: "204", in: "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", method: "GET", status: 204, kind: bodyNone},
		{name: "304", in: "HTTP/1.1 304 Not Modified\r\n\r\n", method: "GET", status: 304, kind: bodyNone},
		{name: "100", in: "HTTP/1.1 100 Continue\r\n\r\n", method: "PUT", status: 100, kind: bodyNone},
		{name: "chunked", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", method: "GET", status: 200, kind: bodyChunked},
		{name: "chunked wins", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 7\r\n\r\n", method: "GET", status: 200, kind: bodyChunked},
		{name: "until close", in: "HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace\r\n\r\n", method: "GET", status: 200, kind: bodyClose},
		{name: "other te", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", method: "GET", status: 200, kind: bodyClose},
		{name: "401 hikvision", in: "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Digest qop=\"auth\", realm=\"IP Camera(21388)\", nonce=\"4e5468694e7a42694e7a4d364f4449354d7a6b354d54513d\", stale=\"FALSE\"\r\nContent-Length: 0\r\n\r\n", method: "GET", status: 401},
		{name: "401 stale", in: "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Digest realm=\"x\", nonce=\"y\", stale=TRUE\r\n\r\n", method: "GET", status: 401, kind: bodyClose, stale: true},
		{name: "rtsp", rtsp: true, in: "RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Length: 40\r\n\r\n", method: "DESCRIBE", status: 200, kind: bodyFixed, n: 40},
		{name: "rtsp no length", rtsp: true, in: "RTSP/1.0 200 OK\r\nCSeq: 3\r\nSession: 1;timeout=60\r\n\r\n", method: "SETUP", status: 200, kind: bodyNone},
		{name: "rtsp server request", rtsp: true, in: "GET_PARAMETER rtsp://c/ RTSP/1.0\r\nCSeq: 1\r\n\r\n"},
		{name: "garbage", in: "SSH-2.0-OpenSSH\r\n\r\n", bad: true},
		{name: "bad code", in: "HTTP/1.1 2x0 OK\r\n\r\n", bad: true},
		{name: "nul", in: "HTTP/1.1 200 OK\r\nX: a\x00\r\n\r\n", bad: true},
		{name: "truncated", in: "HTTP/1.1 200 OK\r\nX: a\r\n", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := parse(tt.in, tt.rtsp, false)
			if tt.bad {
				if err == nil {
					t.Fatalf("got %+v, want an error", m)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !m.response {
				if tt.status != 0 {
					t.Fatalf("got a request, want a response")
				}
				return
			}
			kind, n := m.responseBody(tt.method, tt.rtsp)
			if m.status != tt.status || kind != tt.kind || n != tt.n || m.stale != tt.stale {
				t.Fatalf("got %d body %v/%d stale %v, want %d body %v/%d stale %v", m.status, kind, n, m.stale, tt.status, tt.kind, tt.n, tt.stale)
			}
		})
	}
}

// TestPipelinedStream reads several messages and bodies off one stream,
// as the session does, and checks what would be forwarded.
func TestPipelinedStream(t *testing.T) {
	in := "GET /a HTTP/1.1\nHost: x\n\n" +
		"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody" +
		"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;name=v\r\nabc\r\n0\r\nTrailer-X: 1\r\n\r\n" +
		"GET /d HTTP/1.1\r\nHost: x\r\n\r\n"
	want := "GET /a HTTP/1.1\r\nHost: x\r\n\r\n" +
		"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody" +
		"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;name=v\r\nabc\r\n0\r\nTrailer-X: 1\r\n\r\n" +
		"GET /d HTTP/1.1\r\nHost: x\r\n\r\n"
	br := bufio.NewReaderSize(strings.NewReader(in), readerSize)
	var out bytes.Buffer
	buf := make([]byte, 64)
	var targets []string
	for {
		m, err := readMessage(br, requestLimits, false, true)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		targets = append(targets, m.target)
		kind, n := m.requestBody()
		if err := writeMessage(&out, m.head, br, nil, kind, n, buf); err != nil {
			t.Fatal(err)
		}
	}
	if strings.Join(targets, " ") != "/a /b /c /d" {
		t.Fatalf("got targets %v", targets)
	}
	if out.String() != want {
		t.Fatalf("forwarded\n%q\nwant\n%q", out.String(), want)
	}
}

func TestChunked(t *testing.T) {
	tests := []struct {
		name, in, want string
		bad            bool
	}{
		{"simple", "4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n", "4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n", false},
		{"bare lf", "4\nWiki\n0\n\n", "4\r\nWiki\r\n0\r\n\r\n", false},
		{"upper hex", "A\r\n0123456789\r\n0\r\n\r\n", "A\r\n0123456789\r\n0\r\n\r\n", false},
		{"extension", "1;a=b\r\nx\r\n0;last\r\n\r\n", "1;a=b\r\nx\r\n0;last\r\n\r\n", false},
		{"trailer", "1\r\nx\r\n0\r\nA: 1\r\nB: 2\r\n\r\n", "1\r\nx\r\n0\r\nA: 1\r\nB: 2\r\n\r\n", false},
		{"bad size", "x\r\n", "", true},
		{"empty size", "\r\n", "", true},
		{"overflow", "fffffffffffffffff\r\n", "", true},
		{"short data", "5\r\nabc", "", true},
		{"missing crlf", "3\r\nabcXY0\r\n\r\n", "", true},
		{"bad trailer", "0\r\nno colon\r\n\r\n", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			err := copyChunked(&out, bufio.NewReader(strings.NewReader(tt.in)), nil, make([]byte, 8<<10))
			if tt.bad != (err != nil) {
				t.Fatalf("got error %v, want error %v", err, tt.bad)
			}
			if !tt.bad && out.String() != tt.want {
				t.Fatalf("got %q, want %q", out.String(), tt.want)
			}
		})
	}
}

// TestInterleavedStream walks an RTSP stream of responses and binary
// frames the way the response loop does.
func TestInterleavedStream(t *testing.T) {
	frame := func(ch byte, payload string) string {
		return string([]byte{'$', ch, byte(len(payload) >> 8), byte(len(payload))}) + payload
	}
	in := "RTSP/1.0 200 OK\r\nCSeq: 5\r\nSession: 7\r\n\r\n" +
		frame(0, "RTSP/1.0 401 Unauthorized\r\n\r\n") + // a payload that looks like a message
		frame(1, strings.Repeat("\x80", 300)) +
		"RTSP/1.0 200 OK\r\nCSeq: 6\r\nContent-Length: 3\r\n\r\nabc" +
		frame(0, "") +
		"ANNOUNCE rtsp://c/ RTSP/1.0\r\nCSeq: 1\r\n\r\n" +
		frame(0, "x")
	br := bufio.NewReader(strings.NewReader(in))
	var out bytes.Buffer
	buf := make([]byte, 1024)
	var seen []string
	for {
		b, err := br.Peek(1)
		if err != nil {
			break
		}
		if b[0] == '$' {
			if err := copyFrame(&out, br, buf); err != nil {
				t.Fatal(err)
			}
			seen = append(seen, "frame")
			continue
		}
		m, err := readMessage(br, responseLimits, true, false)
		if err != nil {
			t.Fatal(err)
		}
		kind, n := m.responseBody("DESCRIBE", true)
		if !m.response {
			kind, n = m.requestBody()
			seen = append(seen, "request "+m.method)
		} else {
			seen = append(seen, "response "+m.cseq)
		}
		if err := writeMessage(&out, m.head, br, nil, kind, n, buf); err != nil {
			t.Fatal(err)
		}
	}
	want := "response 5,frame,frame,response 6,frame,request ANNOUNCE,frame"
	if got := strings.Join(seen, ","); got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	if out.String() != in {
		t.Fatalf("forwarded stream differs:\n%q\nwant\n%q", out.String(), in)
	}
}
