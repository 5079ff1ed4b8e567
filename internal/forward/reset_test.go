package forward

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestResetPropagates: a reset on one side reaches the other side as a
// reset, not as a clean end of stream that makes a truncated answer look
// complete (#13.9).
func TestResetPropagates(t *testing.T) {
	t.Run("device resets, client sees a reset", func(t *testing.T) {
		dev := newDevice(t, func(c *net.TCPConn) {
			buf := make([]byte, 64)
			c.Read(buf)
			c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\npartial"))
			time.Sleep(50 * time.Millisecond)
			c.SetLinger(0) // the device crashes mid-answer: RST
		})
		_, addr := startRule(t, Spec{TargetPorts: []uint16{dev.port}})
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = io.ReadAll(c)
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("got %v at the client, want a connection reset", err)
		}
	})
	t.Run("client resets, device sees a reset", func(t *testing.T) {
		got := make(chan error, 1)
		dev := newDevice(t, func(c *net.TCPConn) {
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err := io.ReadAll(c)
			got <- err
		})
		_, addr := startRule(t, Spec{TargetPorts: []uint16{dev.port}})
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("hello"))
		time.Sleep(50 * time.Millisecond)
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
		if err := <-got; !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("got %v at the device, want a connection reset", err)
		}
	})
}

// TestUnreachableLogRateLimited: 200 connections to a rule whose device
// is down log "cannot reach device" at most logBurst times, and say how
// many lines were left out (#13.10).
func TestUnreachableLogRateLimited(t *testing.T) {
	var log lockedBuffer
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadPort := uint16(ln.Addr().(*net.TCPAddr).Port)
	ln.Close() // nothing listens there: every dial is refused
	r, addr := startRule(t, Spec{TargetPorts: []uint16{deadPort}, UDP: true, TCP: true,
		Logger: slog.New(slog.NewTextHandler(&log, nil))})
	for i := 0; i < 200; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		io.ReadAll(c)
		c.Close()
	}
	waitFor(t, "200 dial errors", func() bool { return r.stats.DialErrs.Load() >= 200 })
	if n := strings.Count(log.String(), "cannot reach device"); n > logBurst {
		t.Errorf("got %d \"cannot reach device\" lines for 200 connections, want at most %d", n, logBurst)
	}
	// One more line after the window says how many were suppressed.
	r.unreachable.mu.Lock()
	r.unreachable.start = time.Time{}
	r.unreachable.mu.Unlock()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(c)
	c.Close()
	waitFor(t, "the summary line", func() bool { return strings.Contains(log.String(), "suppressed_since_last=190") })
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
