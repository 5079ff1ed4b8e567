package guard

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// seeds returns the testdata files matching a glob.
func seeds(t testing.TB, glob string) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", glob))
	if err != nil || len(files) == 0 {
		t.Fatalf("no seeds for %s: %v", glob, err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[f] = b
	}
	return out
}

// walk reads a whole stream as the session does: messages with their
// bodies, and (RTSP) interleaved frames. It returns what would be
// forwarded and the messages seen, stopping at the first error.
func walk(data []byte, rtsp, fromClient bool) ([]byte, []*message, error) {
	br := bufio.NewReaderSize(bytes.NewReader(data), readerSize)
	var out bytes.Buffer
	buf := make([]byte, 4096)
	lim := requestLimits
	if !fromClient {
		lim = responseLimits
	}
	var msgs []*message
	for {
		b, err := br.Peek(1)
		if err != nil {
			return out.Bytes(), msgs, nil
		}
		if rtsp && b[0] == '$' {
			if err := copyFrame(&out, br, buf); err != nil {
				return out.Bytes(), msgs, err
			}
			continue
		}
		m, err := readMessage(br, lim, rtsp, fromClient)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return out.Bytes(), msgs, nil
			}
			return out.Bytes(), msgs, err
		}
		msgs = append(msgs, m)
		kind, n := m.requestBody()
		if m.response {
			kind, n = m.responseBody("GET", rtsp)
		}
		if err := writeMessage(&out, m.head, br, nil, kind, n, buf); err != nil {
			return out.Bytes(), msgs, err
		}
	}
}

// TestFixtures: every captured stream parses to its end.
func TestFixtures(t *testing.T) {
	for name, data := range seeds(t, "*/*.re*") {
		rtsp := strings.Contains(name, "rtsp/")
		fromClient := strings.HasSuffix(name, ".req")
		out, msgs, err := walk(data, rtsp, fromClient)
		if err != nil || len(msgs) == 0 {
			t.Errorf("%s: got %d messages, error %v", name, len(msgs), err)
			continue
		}
		// Forwarding is faithful: the fixtures already use CRLF; only the
		// optional whitespace after a field's colon is normalised.
		if !bytes.Equal(out, ows.ReplaceAll(data, []byte(": "))) {
			t.Errorf("%s: forwarded bytes differ from the input:\n%q\n%q", name, out, data)
		}
	}
}

var ows = regexp.MustCompile(`:[ \t]+`)

// checkRoundTrip: what the guard forwards parses again to the same
// messages and re-emits identically (the device sees one reading only).
func checkRoundTrip(t *testing.T, data []byte, rtsp, fromClient bool) {
	out, msgs, err1 := walk(data, rtsp, fromClient)
	out2, msgs2, err2 := walk(out, rtsp, fromClient)
	if err1 == nil && err2 != nil {
		t.Fatalf("forwarded stream does not parse: %v\n%q", err2, out)
	}
	// With an error, the forwarded stream ends inside the message that
	// failed; the ones before it must read the same.
	n := len(msgs)
	if err1 != nil {
		n = min(len(msgs)-1, len(msgs2))
	}
	if n > len(msgs2) {
		t.Fatalf("got %d messages after forwarding, want %d", len(msgs2), n)
	}
	for i := 0; i < n; i++ {
		a, b := msgs[i], msgs2[i]
		if a.method != b.method || a.target != b.target || a.status != b.status ||
			a.contentLength != b.contentLength || a.chunked != b.chunked || a.authorization != b.authorization ||
			!bytes.Equal(a.head, b.head) {
			t.Fatalf("message %d reads differently after forwarding:\n%+v\n%+v", i, a, b)
		}
	}
	if err1 == nil && !bytes.Equal(out, out2) {
		t.Fatalf("forwarding is not idempotent:\n%q\n%q", out, out2)
	}
}

func addSeeds(f *testing.F, glob string) {
	for _, b := range seeds(f, glob) {
		f.Add(b)
	}
}

func FuzzRequest(f *testing.F) {
	addSeeds(f, "http/*.req")
	addSeeds(f, "attack/*.http")
	f.Add([]byte("GET / HTTP/1.1\nHost: x\n\n"))
	f.Add([]byte("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkRoundTrip(t, data, false, true)
		// The filter never panics on what the parser accepts.
		_, msgs, _ := walk(data, false, true)
		flt := NewFilter(HikvisionSignatures())
		for _, m := range msgs {
			if !m.response {
				flt.Check(m.method, m.target)
				loginAttempt(m)
			}
		}
	})
}

func FuzzResponse(f *testing.F) {
	addSeeds(f, "http/*.resp")
	f.Add([]byte("HTTP/1.0 200 OK\r\n\r\nuntil close"))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkRoundTrip(t, data, false, false)
	})
}

func FuzzRTSP(f *testing.F) {
	for _, b := range seeds(f, "rtsp/*") {
		f.Add(b, false)
		f.Add(b, true)
	}
	f.Fuzz(func(t *testing.T, data []byte, fromClient bool) {
		checkRoundTrip(t, data, true, fromClient)
	})
}

func FuzzFilter(f *testing.F) {
	for _, tt := range []string{"/SDK/webLanguage", "/%2e%2e/x", "/onvif-http/snapshot?auth=YWRtaW46MTEK", "/a/./b//c;x", "*", "http://h/x?y"} {
		f.Add("PUT", tt)
	}
	flt := NewFilter(HikvisionSignatures())
	f.Fuzz(func(t *testing.T, method, target string) {
		v := flt.Check(method, target)
		path, _, ok := normalizeTarget(target)
		if v == nil && ok && path != "" {
			// Whatever passes has no ".." segment in any decoding the
			// filter tried, and is never a write to /SDK/.
			if strings.Contains(path+"/", "/../") {
				t.Fatalf("%q passed with path %q", target, path)
			}
			if strings.HasPrefix(path, "/sdk/") && !strings.EqualFold(method, "GET") && !strings.EqualFold(method, "HEAD") && method != "CONNECT" {
				t.Fatalf("%s %q passed with path %q", method, target, path)
			}
		}
	})
}
