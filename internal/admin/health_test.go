package admin

import (
	"net/http"
	"strings"
	"testing"
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
