package guard

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/forward"
)

// testLogger logs to the test when -v is given.
func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// fakeClock is a settable clock for Config.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// startRule binds a forwarding rule on 127.0.0.1 with the policy's hooks
// for r, towards dev, and returns the address to connect to.
func startRule(t testing.TB, p *Policy, r config.Rule, dev netip.AddrPort) string {
	t.Helper()
	if r.Name == "" {
		r.Name = "test"
	}
	r.InternalIP = dev.Addr().String()
	r.ExternalPort = config.PortRange{First: dev.Port(), Last: dev.Port()}
	if err := config.ValidateRule(&r); err != nil {
		t.Fatalf("rule: %v", err)
	}
	admit, h, err := p.Hooks(&r)
	if err != nil {
		t.Fatal(err)
	}
	fr, err := forward.Bind(forward.Spec{
		Name: r.Name, Listen: netip.MustParseAddr("127.0.0.1"), Ports: []uint16{0},
		Target: dev.Addr().String(), TargetPorts: []uint16{dev.Port()}, TCP: true,
		Admit: admit, Handler: h, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	fr.Start()
	t.Cleanup(fr.Close)
	return fr.Addrs()[0].String()
}

// device is a fake camera web server on 127.0.0.1 that knows one
// password and records what it was asked.
type device struct {
	addr     netip.AddrPort
	failures atomic.Int64
	mu       sync.Mutex
	paths    []string
}

const goodAuth = "Basic YWRtaW46Z29vZA==" // admin:good

func startDevice(t testing.TB) *device {
	t.Helper()
	d := &device{}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		d.paths = append(d.paths, r.Method+" "+r.URL.RequestURI())
		d.mu.Unlock()
		switch {
		case strings.HasPrefix(r.URL.Path, "/ISAPI/"):
			a := r.Header.Get("Authorization")
			if a != goodAuth {
				if a != "" {
					d.failures.Add(1)
				}
				w.Header().Set("WWW-Authenticate", `Basic realm="IP Camera(12345)"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			io.Copy(io.Discard, r.Body)
			fmt.Fprintf(w, "<ok>%s</ok>", r.URL.Path)
		case r.URL.Path == "/stale":
			w.Header().Set("WWW-Authenticate", `Digest realm="x", nonce="n", stale="TRUE"`)
			w.WriteHeader(401)
		case r.URL.Path == "/chunked":
			n, _ := strconv.Atoi(r.URL.Query().Get("n"))
			fl := w.(http.Flusher)
			for i := 0; i < n; i++ {
				fmt.Fprintf(w, "chunk %d;", i)
				fl.Flush()
			}
		case r.URL.Path == "/big":
			n, _ := strconv.Atoi(r.URL.Query().Get("n"))
			w.Header().Set("Content-Length", strconv.Itoa(n))
			io.CopyN(w, zeros{}, int64(n))
		case r.URL.Path == "/close", r.URL.Path == "/close-abrupt":
			// An answer delimited by closing the connection (HTTP/1.0
			// style), large enough to be spliced.
			n, _ := strconv.Atoi(r.URL.Query().Get("n"))
			c, brw, err := w.(http.Hijacker).Hijack()
			if err != nil {
				return
			}
			brw.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n")
			brw.Flush()
			io.CopyN(c, zeros{}, int64(n))
			if r.URL.Path == "/close" {
				// Close the way RFC 9112 §9.6 asks: end the answer, then
				// read what the client still sends.
				c.(*net.TCPConn).CloseWrite()
				c.SetReadDeadline(time.Now().Add(2 * time.Second))
				io.Copy(io.Discard, c)
			}
			// /close-abrupt closes at once, as some embedded servers do:
			// a request it has not read makes its kernel reset the
			// connection and drop the unsent end of the answer.
			c.Close()
		case r.URL.Path == "/bigchunk":
			n, _ := strconv.Atoi(r.URL.Query().Get("n"))
			fl := w.(http.Flusher)
			buf := make([]byte, n)
			for i := 0; i < 3; i++ {
				w.Write(buf)
				fl.Flush()
			}
		case r.URL.Path == "/echo":
			b, _ := io.ReadAll(r.Body)
			w.Write(b)
		case r.URL.Path == "/ws":
			if r.Header.Get("Upgrade") != "websocket" {
				http.Error(w, "no upgrade", 400)
				return
			}
			c, brw, err := w.(http.Hijacker).Hijack()
			if err != nil {
				return
			}
			defer c.Close()
			brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
			brw.Flush()
			io.Copy(c, brw) // echo
		default:
			fmt.Fprintf(w, "page %s", r.URL.Path)
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	d.addr = ln.Addr().(*net.TCPAddr).AddrPort()
	return d
}

func (d *device) seen() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.paths...)
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// rawExchange writes req on a new connection and reads until the server
// closes or the timeout.
func rawExchange(t testing.TB, addr, req string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return "dial: " + err.Error()
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, req)
	b, _ := io.ReadAll(c)
	return string(b)
}

// readResponses reads n HTTP responses from br.
func readResponses(t testing.TB, br *bufio.Reader, methods ...string) []*http.Response {
	t.Helper()
	var out []*http.Response
	for _, m := range methods {
		resp, err := http.ReadResponse(br, &http.Request{Method: m})
		if err != nil {
			t.Fatalf("response %d: %v", len(out)+1, err)
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("response %d body: %v", len(out)+1, err)
		}
		resp.Body = io.NopCloser(strings.NewReader(string(b)))
		out = append(out, resp)
	}
	return out
}

func body(r *http.Response) string {
	b, _ := io.ReadAll(r.Body)
	return string(b)
}

func newPolicy(t testing.TB, clock *fakeClock, dir string) *Policy {
	t.Helper()
	c := Config{Logger: testLogger(t), StateDir: dir, PollInterval: 20 * time.Millisecond}
	if clock != nil {
		c.Now = clock.Now
	}
	p, err := NewPolicy(c)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return p
}
