package admin

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/forward"
	"github.com/camgate/camgate/internal/gateway"
)

// TestHandEditIsRefusedWith409: a change through the API to a file
// edited on disk is refused with 409 and the status says the file
// differs, for the UI's banner (issue #13, item 1).
func TestHandEditIsRefusedWith409(t *testing.T) {
	e := newEnv(t, envOpts{})
	c := e.owner()
	if st := c.must(200, "GET", "/api/v1/status", nil); st.body["config_file"].(map[string]any)["changed_on_disk"] != false {
		t.Fatalf("status: got %s, want the file unchanged", st.raw)
	}
	b, _ := os.ReadFile(e.cfgPath)
	hand := string(b) + "# the owner was here\n"
	os.WriteFile(e.cfgPath, []byte(hand), 0o600)
	r := c.must(409, "POST", "/api/v1/rules/dvr-web/disable", nil)
	if r.body["error"] != "camgate.yaml changed on disk: reload it first" {
		t.Fatalf("got %s", r.raw)
	}
	if after, _ := os.ReadFile(e.cfgPath); string(after) != hand {
		t.Fatalf("the hand edit was overwritten:\n%s", after)
	}
	if st := c.must(200, "GET", "/api/v1/status", nil); st.body["config_file"].(map[string]any)["changed_on_disk"] != true {
		t.Fatalf("status: got %s, want changed_on_disk", st.raw)
	}
	// The banner's button: reload, then the change goes through and the
	// hand edit stays.
	os.WriteFile(e.cfgPath, []byte(hand+"bogus: 1\n"), 0o600)
	if r := c.must(422, "POST", "/api/v1/config/reload", nil); !strings.Contains(string(r.raw), "bogus") {
		t.Fatalf("reload of an invalid file: got %s", r.raw)
	}
	st := c.must(200, "GET", "/api/v1/status", nil)
	if cf := st.body["config_file"].(map[string]any); cf["changed_on_disk"] != true || !strings.Contains(cf["refused"].(string), "bogus") {
		t.Fatalf("status: got %s, want changed and refused", st.raw)
	}
	os.WriteFile(e.cfgPath, []byte(hand), 0o600)
	c.must(200, "POST", "/api/v1/config/reload", nil)
	c.must(200, "POST", "/api/v1/rules/dvr-web/disable", nil)
	if after, _ := os.ReadFile(e.cfgPath); !strings.Contains(string(after), "# the owner was here") || !strings.Contains(string(after), "enabled: false") {
		t.Fatalf("after reload and disable:\n%s", after)
	}
}

// undoBreaker removes the prepared file while a change is applied (so
// the save fails) and takes the old port while the change is undone (so
// the undo fails too).
type undoBreaker struct {
	gateway.DefaultPolicy
	dir   string
	port  int
	mu    sync.Mutex
	calls int
	thief net.Listener
}

func (p *undoBreaker) Hooks(r *config.Rule) (func(netip.AddrPort, string) (func(), error), forward.Handler, error) {
	p.mu.Lock()
	p.calls++
	switch p.calls {
	case 2:
		names, _ := filepath.Glob(filepath.Join(p.dir, ".camgate.yaml.tmp-*"))
		for _, n := range names {
			os.Remove(n)
		}
	case 3:
		p.thief, _ = net.Listen("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port)))
	}
	p.mu.Unlock()
	return p.DefaultPolicy.Hooks(r)
}

// TestFailedUndoIsReported: the API answer and /status last_error say
// that the gateway runs a config the file does not hold (item 3).
func TestFailedUndoIsReported(t *testing.T) {
	p := &undoBreaker{}
	e := newEnv(t, envOpts{policy: p})
	t.Cleanup(func() {
		if p.thief != nil {
			p.thief.Close()
		}
	})
	c := e.owner()
	p.dir = e.dir
	p.port = int(e.site.Config().Rule("dvr-web").ExternalPort.First)
	rule := c.must(200, "GET", "/api/v1/rules/dvr-web", nil)
	rule.body["external_port"] = freePort(t)
	delete(rule.body, "etag")
	r := c.must(500, "PUT", "/api/v1/rules/dvr-web", rule.body)
	if msg, _ := r.body["error"].(string); !strings.Contains(msg, "undoing the change failed too") {
		t.Fatalf("got %s, want the failed undo in the answer", r.raw)
	}
	st := c.must(200, "GET", "/api/v1/status", nil)
	if le, _ := st.body["last_error"].(string); !strings.Contains(le, "the gateway runs a config the file does not hold") {
		t.Fatalf("status: got %s, want last_error saying gateway and file are out of step", st.raw)
	}
}
