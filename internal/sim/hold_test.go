package sim

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestSDKPortHolds checks that the server/SDK port accepts, keeps the
// connection open while the client talks, and closes it at shutdown.
func TestSDKPortHolds(t *testing.T) {
	d, err := New(Config{Listen: loopback(), Password: testPassword,
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() { cancel(); <-done }()

	c, err := net.Dial("tcp", d.DialAddr(ServiceSDK).String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("\x00\x00\x00\x20 proprietary login")); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read from a held connection: got %v, want a timeout (open, silent)", err)
	}

	// SDK over TLS: a TLS handshake with the device's certificate, then held.
	pool := x509.NewCertPool()
	pool.AddCert(d.Certificate())
	tc, err := tls.Dial("tcp", d.DialAddr(ServiceSDKOverTLS).String(), &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatalf("SDK over TLS: %v", err)
	}
	defer tc.Close()

	var connects int
	for _, r := range d.Requests() {
		if (r.Service == ServiceSDK || r.Service == ServiceSDKOverTLS) && r.Method == "CONNECT" {
			connects++
		}
	}
	if connects != 2 {
		t.Errorf("request log: got %d CONNECT entries, want 2", connects)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	done <- nil
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF && !isReset(err) {
		t.Fatalf("after shutdown: got %v, want the connection closed", err)
	}
}

func isReset(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne)
}

func TestWebSocketEcho(t *testing.T) {
	d := start(t, Config{})
	ws, res, err := websocket.DefaultDialer.Dial("ws://"+d.DialAddr(ServiceWebSocket).String()+"/", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer ws.Close()
	if res.StatusCode != 101 {
		t.Fatalf("got %d, want 101", res.StatusCode)
	}
	for _, msg := range []string{"hello", "live view"} {
		if err := ws.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, got, err := ws.ReadMessage()
		if err != nil || string(got) != msg {
			t.Fatalf("echo: got %q, %v; want %q", got, err, msg)
		}
	}
}
