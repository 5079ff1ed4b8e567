package check

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/sim"
)

// TestLoginLockShown: issue 14. While the simulated DVR locks this
// address out, check must not say every layer works.
func TestLoginLockShown(t *testing.T) {
	d, err := sim.New(sim.Config{Listen: netip.MustParseAddr("127.0.0.1"), Password: "Sim-Pass-1234",
		Ports: sim.Ports{HTTPS: -1, RTSP: -1, RTP: -1, SDK: -1, SDKOverTLS: -1, WebSocket: -1, SADP: -1, WSDiscovery: -1}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() { cancel(); <-done }()
	web := d.Addr(sim.ServiceHTTP)
	cfg := loopbackConfig(t, fmt.Sprintf("version: 1\nlisten_address: 127.0.0.1\npublic_ip: 192.0.2.1\nrules:\n  - {name: dvr-web, external_port: %d, internal_ip: 127.0.0.1, internal_port: %d}\n",
		port(closedPort(t, "tcp")), web.Port()))
	run := func() Result {
		rep, err := Run(context.Background(), Config{Timeout: 2 * time.Second}, cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		return find(t, rep, "dvr-web", LayerLogin, "tcp")
	}
	if got := run(); got.Status != OK || !strings.Contains(got.Reason, "7 failed logins left") {
		t.Fatalf("before: got %s %q", got.Status, got.Reason)
	}
	for i := 0; i < 7; i++ {
		req, _ := http.NewRequest("GET", "http://"+web.String()+"/ISAPI/System/deviceInfo", nil)
		req.SetBasicAuth("admin", "wrong")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}
	if got := run(); got.Status != Fail || !strings.Contains(got.Reason, "locking camgate's address out") {
		t.Fatalf("locked: got %s %q, want ✗ saying the device locks camgate out", got.Status, got.Reason)
	}
}
