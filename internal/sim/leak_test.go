package sim

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/gorilla/websocket"
)

// TestRunLeavesNoGoroutines runs every service with live clients on each
// (an idle keep-alive HTTP connection, a playing RTSP session, a held SDK
// connection, an open WebSocket), stops the device while they are still
// connected, and checks that the goroutine count returns to where it was.
func TestRunLeavesNoGoroutines(t *testing.T) {
	// Let goroutines of earlier tests finish first.
	settle := func() int {
		n := runtime.NumGoroutine()
		for i := 0; i < 50; i++ {
			time.Sleep(20 * time.Millisecond)
			m := runtime.NumGoroutine()
			if m == n {
				return m
			}
			n = m
		}
		return n
	}
	base0 := settle()

	d, err := New(Config{Listen: loopback(), Password: testPassword,
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()

	// HTTP keep-alive connection left idle.
	tr := &http.Transport{}
	res, err := (&http.Client{Transport: tr}).Get("http://" + d.DialAddr(ServiceHTTP).String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	// RTSP session playing over TCP.
	u, _ := base.ParseURL(fmt.Sprintf("rtsp://%s:%s@%s/Streaming/Channels/101", d.User(), d.Password(), d.DialAddr(ServiceRTSP)))
	tcp := gortsplib.ProtocolTCP
	rc := gortsplib.Client{Scheme: u.Scheme, Host: u.Host, Protocol: &tcp}
	if err := rc.Start(); err != nil {
		t.Fatal(err)
	}
	desc, _, err := rc.Describe(u)
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.SetupAll(desc.BaseURL, desc.Medias); err != nil {
		t.Fatal(err)
	}
	if _, err := rc.Play(nil); err != nil {
		t.Fatal(err)
	}
	// SDK connection held.
	sdk, err := net.Dial("tcp", d.DialAddr(ServiceSDK).String())
	if err != nil {
		t.Fatal(err)
	}
	// WebSocket open.
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+d.DialAddr(ServiceWebSocket).String()+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	running := runtime.NumGoroutine()

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	// Client-side goroutines are ours to stop, not the device's.
	rc.Close()
	ws.Close()
	sdk.Close()
	tr.CloseIdleConnections()

	n := settle()
	t.Logf("goroutines: %d before New, %d while serving, %d after Run returned", base0, running, n)
	if running < base0+15 {
		t.Fatalf("only %d goroutines while serving (from %d): the clients did not connect", running, base0)
	}
	if n > base0+2 {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var sim []string
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "internal/sim.") && !strings.Contains(g, "TestRunLeavesNoGoroutines") {
				sim = append(sim, g)
			}
		}
		t.Fatalf("goroutines: %d before, %d after Run returned; the device's:\n%s", base0, n, strings.Join(sim, "\n\n"))
	}
}
