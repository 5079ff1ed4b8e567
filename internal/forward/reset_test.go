package forward

import (
	"errors"
	"io"
	"net"
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
