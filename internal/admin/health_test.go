package admin

import (
	"context"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/ddns"
)

// TestHealthz: /healthz answers "ok" without a session or token, and
// carries nothing a stranger could use.
func TestHealthz(t *testing.T) {
	e := newEnv(t, envOpts{})
	c := e.client()
	r := c.do("GET", "/healthz", nil)
	if r.status != http.StatusOK {
		t.Fatalf("got status %d, want 200", r.status)
	}
	if got := string(r.raw); got != "ok\n" {
		t.Errorf("got body %q, want \"ok\\n\"", got)
	}
	for _, secret := range []string{"test", "dvr-web", "127.0.0.1", e.srv.SetupToken()} {
		if secret != "" && strings.Contains(string(r.raw), secret) {
			t.Errorf("/healthz shows %q", secret)
		}
	}
	if r := c.do("POST", "/healthz", nil); r.status != http.StatusMethodNotAllowed {
		t.Errorf("POST /healthz: got %d, want 405", r.status)
	}
}

// TestStatusShowsDDNS: the status carries a running updater's state (here
// waiting for a public address, with its fix), and nothing while DDNS is
// off.
func TestStatusShowsDDNS(t *testing.T) {
	e := newEnv(t, envOpts{})
	u := ddns.New(ddns.Config{Source: ddns.AddrFunc(func(context.Context) (netip.Addr, error) { return netip.Addr{}, nil })})
	srv, err := New(Config{Site: e.site, DDNS: u})
	if err != nil {
		t.Fatal(err)
	}
	if v := srv.status(); v.DDNS != nil {
		t.Fatalf("got ddns %+v while it is off, want none", v.DDNS)
	}
	u.SetSettings(config.DDNS{Provider: config.DDNSDuckDNS, Hostname: "mycams", TokenFile: "/nonexistent"})
	u.Check(context.Background())
	v := srv.status()
	if v.DDNS == nil || v.DDNS.State != ddns.StateWaiting || v.DDNS.Hostname != "mycams" || !strings.Contains(v.DDNS.Fix, "public_ip") {
		t.Fatalf("got ddns %+v, want waiting for mycams with a fix naming public_ip", v.DDNS)
	}
}
