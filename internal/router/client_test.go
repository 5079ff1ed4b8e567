package router

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/config"
)

func mustConfig(t *testing.T, yaml string) *config.Config {
	t.Helper()
	cfg, err := config.Load([]byte(yaml))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, yaml)
	}
	return cfg
}

// loopbackYAML is a config for a fake router at gw; camgate's own
// address toward it is 127.0.0.1.
func loopbackYAML(mode string, gw fmt.Stringer, rules ...string) string {
	return ruleYAML(mode, "  gateway: "+gw.String()+"\n", rules...)
}

func TestClientPCP(t *testing.T) {
	f := newFakeNAT(t)
	c := testClient(t, f.addr, "")
	ctx := context.Background()
	if err := c.Sync(ctx, mustConfig(t, loopbackYAML("pcp", f.addr, ruleWeb, ruleRTP, ruleLocal))); err != nil {
		t.Fatal(err)
	}
	st := c.Status()
	if st.Protocol != ProtoPCP || st.ExternalIP.String() != "203.0.113.7" || st.LocalAddress.String() != "127.0.0.1" {
		t.Fatalf("got %s", &st)
	}
	for _, k := range []key{{"tcp", 18080}, {"udp", 18090}, {"udp", 18091}} {
		wantState(t, &st, k.Proto, k.Port, StateMapped)
		if _, ok := f.mapping(k.Proto, k.Port); !ok {
			t.Errorf("fake router lacks %v", k)
		}
	}
	if n := f.count(); n != 3 {
		t.Errorf("fake router has %d mappings, want 3", n)
	}
	m1, _ := f.mapping("tcp", 18080)

	// A second Sync with nothing due asks nothing; a renewal keeps the
	// nonce (a new one would be NOT_AUTHORIZED).
	before := len(f.log())
	c.Sync(ctx, mustConfig(t, loopbackYAML("pcp", f.addr, ruleWeb, ruleRTP, ruleLocal)))
	if got := f.log()[before:]; len(got) != 0 {
		t.Errorf("idle sync sent %q, want nothing", got)
	}
	c.opMu.Lock()
	for _, l := range c.leases {
		l.renewAt = time.Time{}
	}
	c.opMu.Unlock()
	c.maintain(ctx)
	m2, _ := f.mapping("tcp", 18080)
	if m1.nonce != m2.nonce {
		t.Errorf("renewal changed the nonce: %s then %s", m1.nonce, m2.nonce)
	}
	st = c.Status()
	wantState(t, &st, "tcp", 18080, StateMapped)

	// Removing a rule deletes its mappings; Close deletes the rest.
	if err := c.Sync(ctx, mustConfig(t, loopbackYAML("pcp", f.addr, ruleWeb))); err != nil {
		t.Fatal(err)
	}
	if n := f.count(); n != 1 {
		t.Errorf("after removing dvr-rtp the router has %d mappings, want 1", n)
	}
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n := f.count(); n != 0 {
		t.Errorf("after Close the router has %d mappings, want 0", n)
	}
	if err := c.Sync(ctx, mustConfig(t, loopbackYAML("pcp", f.addr, ruleWeb))); !errors.Is(err, ErrClosed) {
		t.Errorf("Sync after Close: got %v, want ErrClosed", err)
	}
}

// TestClientPCPAnswers covers the router's other answers, each a clear
// per-mapping state.
func TestClientPCPAnswers(t *testing.T) {
	tests := []struct {
		name       string
		knob       func(f *fakeNAT)
		state      State
		msg        string
		suggested  uint16
		leftOnFake int
	}{
		{"not authorized", func(f *fakeNAT) { f.result = pcpNotAuthorized }, StateRefused, "NOT_AUTHORIZED", 0, 0},
		{"no resources", func(f *fakeNAT) { f.result = pcpNoResources }, StateRefused, "no room", 0, 0},
		{"cannot provide external", func(f *fakeNAT) { f.result = pcpCannotProvideExternal }, StateConflict, "in use", 0, 0},
		{"unsupported protocol", func(f *fakeNAT) { f.result = pcpUnsuppProtocol }, StateUnsupported, "UNSUPP_PROTOCOL", 0, 0},
		{"network failure", func(f *fakeNAT) { f.result = pcpNetworkFailure }, StateError, "no working WAN", 0, 0},
		{"other port", func(f *fakeNAT) { f.assignPort = 28080 }, StateConflict, "offered 28080", 28080, 0},
		{"junk before answer", func(f *fakeNAT) { f.junkFirst = true }, StateMapped, "", 0, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeNAT(t)
			c := testClient(t, f.addr, "")
			if err := c.Sync(context.Background(), mustConfig(t, loopbackYAML("pcp", f.addr, ruleWeb))); err != nil {
				t.Fatal(err)
			}
			f.set(tc.knob)
			c.opMu.Lock()
			c.leases[key{"tcp", 18080}].renewAt = time.Time{}
			c.opMu.Unlock()
			f.set(func(f *fakeNAT) { clear(f.maps) })
			c.maintain(context.Background())
			st := c.Status()
			m := wantState(t, &st, "tcp", 18080, tc.state)
			if !strings.Contains(m.Message, tc.msg) || m.SuggestedPort != tc.suggested {
				t.Errorf("got %q suggested %d, want %q suggested %d", m.Message, m.SuggestedPort, tc.msg, tc.suggested)
			}
			if n := f.count(); n != tc.leftOnFake {
				t.Errorf("fake router holds %d mappings, want %d (an offered other port is given back)", n, tc.leftOnFake)
			}
		})
	}
}

func TestClientNATPMP(t *testing.T) {
	f := newFakeNAT(t)
	c := testClient(t, f.addr, "")
	ctx := context.Background()
	if err := c.Sync(ctx, mustConfig(t, loopbackYAML("natpmp", f.addr, ruleWeb, ruleRTP))); err != nil {
		t.Fatal(err)
	}
	st := c.Status()
	if st.Protocol != ProtoNATPMP || st.ExternalIP.String() != "203.0.113.7" {
		t.Fatalf("got %s", &st)
	}
	wantState(t, &st, "udp", 18091, StateMapped)
	if n := f.count(); n != 3 {
		t.Fatalf("fake holds %d, want 3", n)
	}

	f.set(func(f *fakeNAT) { f.natpmpCode = 2; clear(f.maps) })
	c.Sync(ctx, mustConfig(t, loopbackYAML("natpmp", f.addr, ruleWeb, ruleRTP,
		"  - {name: extra, external_port: 18300, internal_ip: 198.19.0.65, router: true}\n")))
	st = c.Status()
	if m := wantState(t, &st, "tcp", 18300, StateRefused); !strings.Contains(m.Message, "result 2") {
		t.Errorf("got %q", m.Message)
	}
	f.set(func(f *fakeNAT) { f.natpmpCode = 0; f.assignPort = 40000 })
	c.Sync(ctx, mustConfig(t, loopbackYAML("natpmp", f.addr, ruleWeb, ruleRTP,
		"  - {name: other, external_port: 18400, internal_ip: 198.19.0.65, router: true}\n")))
	st = c.Status()
	if m := wantState(t, &st, "tcp", 18400, StateConflict); m.SuggestedPort != 40000 {
		t.Errorf("got suggestion %d (%q), want 40000", m.SuggestedPort, m.Message)
	}
	if _, ok := f.mapping("tcp", 18400); ok {
		t.Errorf("the offered port was not given back")
	}
	f.set(func(f *fakeNAT) { f.assignPort = 0 })
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n := f.count(); n != 0 {
		t.Errorf("after Close the fake holds %d mappings", n)
	}
}

// TestClientAutoOrder: auto prefers PCP, falls back to NAT-PMP when the
// router answers PCP with NAT-PMP's version, and to UPnP when neither
// answers.
func TestClientAutoOrder(t *testing.T) {
	t.Run("pcp", func(t *testing.T) {
		f := newFakeNAT(t)
		c := testClient(t, f.addr, "")
		c.Sync(context.Background(), mustConfig(t, loopbackYAML("auto", f.addr, ruleWeb)))
		if st := c.Status(); st.Protocol != ProtoPCP {
			t.Fatalf("got %s", &st)
		}
	})
	t.Run("natpmp-only router", func(t *testing.T) {
		f := newFakeNAT(t)
		f.set(func(f *fakeNAT) { f.natpmpOnly = true })
		c := testClient(t, f.addr, "")
		c.Sync(context.Background(), mustConfig(t, loopbackYAML("auto", f.addr, ruleWeb)))
		st := c.Status()
		if st.Protocol != ProtoNATPMP {
			t.Fatalf("got %s", &st)
		}
		wantState(t, &st, "tcp", 18080, StateMapped)
	})
	t.Run("upnp only", func(t *testing.T) {
		g := newFakeIGD(t)
		c := testClient(t, g.addr, "")
		if err := c.Sync(context.Background(), mustConfig(t, loopbackYAML("auto", g.addr, ruleWeb))); err != nil {
			t.Fatal(err)
		}
		st := c.Status()
		if st.Protocol != ProtoUPnPIGD2 || !strings.Contains(st.Device, "Debian router") {
			t.Fatalf("got %s", &st)
		}
		wantState(t, &st, "tcp", 18080, StateMapped)
		c.Close(context.Background())
	})
}

func TestClientNoRouter(t *testing.T) {
	gw := loopbackAddr() // nothing listens there
	c := testClient(t, gw, "")
	err := c.Sync(context.Background(), mustConfig(t, loopbackYAML("auto", gw, ruleWeb)))
	if !errors.Is(err, ErrNoRouter) {
		t.Fatalf("got %v, want ErrNoRouter", err)
	}
	for _, want := range []string{"pcp:", "natpmp:", "upnp:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say what %s answered", err, want)
		}
	}
	st := c.Status()
	if st.Error == "" {
		t.Errorf("status has no error: %s", &st)
	}
	wantState(t, &st, "tcp", 18080, StateError)
	// Mode off needs no router at all.
	if err := c.Sync(context.Background(), mustConfig(t, loopbackYAML("off", gw, ruleWeb))); err != nil {
		t.Fatalf("mode off: %v", err)
	}
	if st := c.Status(); st.Error != "" || len(st.Mappings) != 0 || st.Mode != "off" {
		t.Errorf("mode off: got %s", &st)
	}
}

// TestClientQuietRouter: a router that stops answering costs at most a
// few timeouts per pass, not one per port.
func TestClientQuietRouter(t *testing.T) {
	f := newFakeNAT(t)
	c := testClient(t, f.addr, "")
	ctx := context.Background()
	if err := c.Sync(ctx, mustConfig(t, loopbackYAML("pcp", f.addr, ruleWeb))); err != nil {
		t.Fatal(err)
	}
	f.set(func(f *fakeNAT) { f.silent = true })
	many := "  - {name: many, protocol: tcp, external_port: 20000-20049, internal_ip: 198.19.0.65, router: true}\n"
	c.Sync(ctx, mustConfig(t, loopbackYAML("pcp", f.addr, ruleWeb, many)))
	st := c.Status()
	var pending, errs int
	for _, m := range st.Mappings {
		switch m.State {
		case StatePending:
			pending++
		case StateError:
			errs++
		}
	}
	if errs != maxQuietTimeouts || pending != 50-maxQuietTimeouts {
		t.Errorf("got %d errors and %d pending, want %d and %d\n%s", errs, pending, maxQuietTimeouts, 50-maxQuietTimeouts, &st)
	}
	asked := map[string]bool{}
	for _, r := range f.log() {
		if strings.HasPrefix(r, "ignored pcp map") {
			asked[r] = true
		}
	}
	if len(asked) != maxQuietTimeouts {
		t.Errorf("asked the silent router about %d ports, want %d: %v", len(asked), maxQuietTimeouts, asked)
	}
	if !strings.Contains(st.Error, "stopped answering") {
		t.Errorf("status error: got %q", st.Error)
	}
	// dvr-web was mapped before; it stays in the status as it was.
	wantState(t, &st, "tcp", 18080, StateMapped)

	// A reload while the router is still quiet fails discovery but must
	// not delete anything; when it is back, the mappings are renewed.
	if err := c.Sync(ctx, mustConfig(t, loopbackYAML("pcp", f.addr, ruleWeb))); !errors.Is(err, ErrNoRouter) {
		t.Fatalf("sync with a silent router: got %v, want ErrNoRouter", err)
	}
	f.set(func(f *fakeNAT) { f.silent = false })
	if err := c.Sync(ctx, mustConfig(t, loopbackYAML("pcp", f.addr, ruleWeb))); err != nil {
		t.Fatal(err)
	}
	st = c.Status()
	wantState(t, &st, "tcp", 18080, StateMapped)
	var deletes []string
	for _, r := range f.log() {
		if strings.Contains(r, "life 0") {
			deletes = append(deletes, r)
		}
		if strings.HasPrefix(r, "pcp map tcp 18080 life 0") {
			t.Errorf("a wanted mapping was deleted: %q", r)
		}
	}
	// Only the ports that were asked (and may have been made) are deleted
	// now that their rule is gone; the pending ones were never sent.
	if len(deletes) != maxQuietTimeouts {
		t.Errorf("got %d deletes, want %d: %q", len(deletes), maxQuietTimeouts, deletes)
	}
	if n := f.count(); n != 1 {
		t.Errorf("fake holds %d mappings, want 1", n)
	}
}

// TestClientRenewal: Run renews at half of the lifetime the router
// grants, and a router reboot (epoch back to 0) makes it map again.
func TestClientRenewal(t *testing.T) {
	f := newFakeNAT(t)
	f.set(func(f *fakeNAT) { f.lifetime = 2 }) // seconds; renewal at 1 s
	c := testClient(t, f.addr, "")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	if err := c.Sync(ctx, mustConfig(t, loopbackYAML("pcp", f.addr, ruleWeb))); err != nil {
		t.Fatal(err)
	}
	count := func() int {
		n := 0
		for _, r := range f.log() {
			if strings.HasPrefix(r, "pcp map tcp 18080 life 600") {
				n++
			}
		}
		return n
	}
	deadline := time.Now().Add(5 * time.Second)
	for count() < 3 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := count(); n < 3 {
		t.Fatalf("got %d MAP requests in 5 s with a 2 s lifetime, want at least 3 (renewals at half-life)\n%q", n, f.log())
	}
	st := c.Status()
	if m := wantState(t, &st, "tcp", 18080, StateMapped); time.Until(m.Expires) > 2*time.Second {
		t.Errorf("expiry %v is beyond the granted 2 s", m.Expires)
	}

	// Reboot: the epoch restarts and the mappings are gone.
	f.set(func(f *fakeNAT) { f.lifetime = 0; f.epoch = 0; clear(f.maps) })
	c.opMu.Lock()
	c.leases[key{"tcp", 18080}].renewAt = time.Time{}
	c.opMu.Unlock()
	cfg := mustConfig(t, loopbackYAML("pcp", f.addr, ruleWeb, "  - {name: more, external_port: 18500, internal_ip: 198.19.0.65, router: true}\n"))
	c.Sync(ctx, cfg)
	if _, ok := f.mapping("tcp", 18080); !ok {
		t.Fatalf("after the reboot, 18080 was not mapped again: %q", f.log())
	}
}

// TestClientReclaim: leases persisted by a client that crashed are
// renewed with their nonce by the next one, and unwanted ones deleted.
func TestClientReclaim(t *testing.T) {
	f := newFakeNAT(t)
	dir := t.TempDir()
	ctx := context.Background()
	c1 := testClient(t, f.addr, dir)
	if err := c1.Sync(ctx, mustConfig(t, loopbackYAML("pcp", f.addr, ruleWeb, ruleRTP))); err != nil {
		t.Fatal(err)
	}
	// c1 "crashes": no Close.
	b, err := os.ReadFile(filepath.Join(dir, stateFileName))
	if err != nil || strings.Count(string(b), `"nonce"`) != 3 {
		t.Fatalf("state file: %v\n%s", err, b)
	}
	c2 := testClient(t, f.addr, dir)
	if err := c2.Sync(ctx, mustConfig(t, loopbackYAML("pcp", f.addr, ruleWeb))); err != nil {
		t.Fatal(err)
	}
	st := c2.Status()
	wantState(t, &st, "tcp", 18080, StateMapped) // a new nonce would have been NOT_AUTHORIZED
	if n := f.count(); n != 1 || st.Stale != 0 {
		t.Fatalf("fake holds %d mappings, %d stale; want 1 and 0: %q", n, st.Stale, f.log())
	}
	if err := c2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(filepath.Join(dir, stateFileName))
	if strings.Contains(string(b), "nonce") {
		t.Errorf("state file after Close: %s", b)
	}
	// A damaged file is reported and ignored.
	os.WriteFile(filepath.Join(dir, stateFileName), []byte("{not json"), 0o600)
	c3 := testClient(t, f.addr, dir)
	if err := c3.Sync(ctx, mustConfig(t, loopbackYAML("pcp", f.addr, ruleWeb))); err != nil {
		t.Fatal(err)
	}
	c3.Close(ctx)
}

// TestClientModeChange: switching protocol deletes the old mappings with
// the old protocol before making new ones.
func TestClientModeChange(t *testing.T) {
	f := newFakeNAT(t)
	c := testClient(t, f.addr, "")
	ctx := context.Background()
	c.Sync(ctx, mustConfig(t, loopbackYAML("pcp", f.addr, ruleWeb)))
	c.Sync(ctx, mustConfig(t, loopbackYAML("natpmp", f.addr, ruleWeb)))
	log := f.log()
	del := slices.IndexFunc(log, func(r string) bool { return strings.HasPrefix(r, "pcp map tcp 18080 life 0") })
	add := slices.IndexFunc(log, func(r string) bool { return strings.HasPrefix(r, "natpmp map tcp 18080 ext 18080 life 600") })
	if del < 0 || add < del {
		t.Fatalf("requests: %q; want a PCP delete, then a NAT-PMP map", log)
	}
	st := c.Status()
	if st.Protocol != ProtoNATPMP {
		t.Fatalf("got %s", &st)
	}
	c.Sync(ctx, mustConfig(t, loopbackYAML("off", f.addr, ruleWeb)))
	if n := f.count(); n != 0 {
		t.Errorf("mode off left %d mappings", n)
	}
}

func TestClientUPnP(t *testing.T) {
	g := newFakeIGD(t)
	c := testClient(t, g.addr, "")
	ctx := context.Background()
	if err := c.Sync(ctx, mustConfig(t, loopbackYAML("upnp", g.addr, ruleWeb, ruleRTP))); err != nil {
		t.Fatal(err)
	}
	st := c.Status()
	if st.Protocol != ProtoUPnPIGD2 || st.ExternalIP.String() != "203.0.113.7" || st.ControlURL != "http://"+g.addr.String()+":"+g.srv.URL[strings.LastIndex(g.srv.URL, ":")+1:]+"/ctl/IPConn" {
		t.Fatalf("got %s control %s", &st, st.ControlURL)
	}
	es := g.entries()
	if len(es) != 3 || es[0].desc != "camgate dvr-web" || es[0].client != "127.0.0.1" || es[0].lease != 600 {
		t.Fatalf("router table: %+v", es)
	}
	// Another host holds 18600-18601: conflict, with the next free port.
	g.set(func(g *fakeIGD) {
		g.table = append(g.table, fakeEntry{"tcp", 18600, "127.0.0.2", 18600, "someone", 0}, fakeEntry{"tcp", 18601, "127.0.0.2", 18601, "someone", 0})
	})
	clash := "  - {name: clash, external_port: 18600, internal_ip: 198.19.0.65, router: true}\n"
	c.Sync(ctx, mustConfig(t, loopbackYAML("upnp", g.addr, ruleWeb, ruleRTP, clash)))
	st = c.Status()
	m := wantState(t, &st, "tcp", 18600, StateConflict)
	if m.SuggestedPort != 18602 || !strings.Contains(m.Message, "718") || !strings.Contains(m.Message, "held by 127.0.0.2:18600") {
		t.Errorf("conflict: got %q suggested %d, want 718, the holder and 18602", m.Message, m.SuggestedPort)
	}
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if es := g.entries(); len(es) != 2 {
		t.Errorf("after Close the table has %+v, want only the other host's two", es)
	}
}

// TestClientUPnPBadAnswers: faults, garbage, wrong content types and
// silence each end as a clear per-mapping error, never a crash.
func TestClientUPnPBadAnswers(t *testing.T) {
	fault606 := func(w http.ResponseWriter) { soapFault(w, 606, "Action not authorized") }
	tests := []struct {
		name  string
		resp  func(w http.ResponseWriter)
		state State
		msg   string
	}{
		{"606 not authorized", fault606, StateRefused, "policy forbids"},
		{"728 table full", func(w http.ResponseWriter) { soapFault(w, 728, "NoPortMapsAvailable") }, StateRefused, "table is full"},
		{"729 other mechanism", func(w http.ResponseWriter) { soapFault(w, 729, "ConflictWithOtherMechanisms") }, StateConflict, "another mechanism"},
		{"727 wildcard only", func(w http.ResponseWriter) { soapFault(w, 727, "ExternalPortOnlySupportsWildcard") }, StateUnsupported, "does not support"},
		{"501 action failed", func(w http.ResponseWriter) { soapFault(w, 501, "Action Failed") }, StateError, "UPnP error 501"},
		{"fault without code", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/xml")
			w.WriteHeader(500)
			fmt.Fprint(w, `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultcode>s:Server</faultcode><faultstring>Busy</faultstring></s:Fault></s:Body></s:Envelope>`)
		}, StateError, "without a UPnP error code (s:Server: Busy)"},
		{"malformed XML", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/xml")
			fmt.Fprint(w, `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><u:AddPortMappingResp`)
		}, StateError, "bad answer to add"},
		{"login page", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprint(w, "<!DOCTYPE html><html><body>Please log in</body></html>")
		}, StateError, `content type "text/html; charset=utf-8", not XML`},
		{"mislabelled but XML", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/plain")
			fmt.Fprint(w, `<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><u:AddPortMappingResponse xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:2"/></s:Body></s:Envelope>`)
		}, StateMapped, ""},
		{"empty 500", func(w http.ResponseWriter) { w.WriteHeader(500) }, StateError, "HTTP 500"},
		{"huge answer", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/xml")
			fmt.Fprint(w, `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>`+strings.Repeat("<x/>", upnpMaxBody/4+10))
		}, StateError, "larger than"},
		{"silence", func(w http.ResponseWriter) { time.Sleep(600 * time.Millisecond) }, StateError, "no answer"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := newFakeIGD(t)
			g.set(func(g *fakeIGD) {
				g.override = func(action string, w http.ResponseWriter) bool {
					if action != "AddPortMapping" {
						return false
					}
					tc.resp(w)
					return true
				}
			})
			c := testClient(t, g.addr, "")
			if tc.name != "silence" {
				c.cfg.RequestTimeout = 10 * time.Second // a megabyte on a loaded machine
			}
			if err := c.Sync(context.Background(), mustConfig(t, loopbackYAML("upnp", g.addr, ruleWeb))); err != nil {
				t.Fatal(err)
			}
			st := c.Status()
			m := wantState(t, &st, "tcp", 18080, tc.state)
			if !strings.Contains(m.Message, tc.msg) {
				t.Errorf("got %q, want it to contain %q", m.Message, tc.msg)
			}
		})
	}
}

// TestClientUPnPPermanentOnly: a router that only takes lease 0 (UPnP
// 725) gets a permanent mapping, which Close still deletes.
func TestClientUPnPPermanentOnly(t *testing.T) {
	g := newFakeIGD(t)
	g.set(func(g *fakeIGD) { g.onlyPermanent = true })
	c := testClient(t, g.addr, "")
	c.Sync(context.Background(), mustConfig(t, loopbackYAML("upnp", g.addr, ruleWeb)))
	st := c.Status()
	m := wantState(t, &st, "tcp", 18080, StateMapped)
	if !m.Expires.IsZero() {
		t.Errorf("permanent mapping has expiry %v", m.Expires)
	}
	if es := g.entries(); len(es) != 1 || es[0].lease != 0 {
		t.Fatalf("table %+v", es)
	}
	c.Close(context.Background())
	if es := g.entries(); len(es) != 0 {
		t.Fatalf("after Close: %+v", es)
	}
}

// TestClientUPnPForeignLocation: an SSDP LOCATION naming another host is
// repointed at the gateway (tailscale #5502), and the other host is never
// contacted.
func TestClientUPnPForeignLocation(t *testing.T) {
	g := newFakeIGD(t)
	other := loopbackAddr()
	port := g.srv.URL[strings.LastIndex(g.srv.URL, ":")+1:]
	g.set(func(g *fakeIGD) { g.location = "http://" + other.String() + ":" + port + "/rootDesc.xml" })
	c := testClient(t, g.addr, "")
	if err := c.Sync(context.Background(), mustConfig(t, loopbackYAML("upnp", g.addr, ruleWeb))); err != nil {
		t.Fatal(err)
	}
	st := c.Status()
	wantState(t, &st, "tcp", 18080, StateMapped)
	if !strings.Contains(st.ControlURL, g.addr.String()) {
		t.Errorf("control URL %s does not point at the gateway %s", st.ControlURL, g.addr)
	}
	c.Close(context.Background())
}

func TestClientUPnPBadDescriptions(t *testing.T) {
	tests := []struct {
		name string
		desc string
		err  string
	}{
		{"html", "<html><body>Router login</body></html>", "malformed device description"},
		{"no WAN service", `<?xml version="1.0"?><root xmlns="urn:schemas-upnp-org:device-1-0"><device><deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:2</deviceType><serviceList><service><serviceType>urn:schemas-upnp-org:service:Layer3Forwarding:1</serviceType><controlURL>/l3f</controlURL></service></serviceList></device></root>`, "no WAN connection service"},
		{"https control", `<?xml version="1.0"?><root xmlns="urn:schemas-upnp-org:device-1-0"><device><deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1</deviceType><serviceList><service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:1</serviceType><controlURL>https://10.0.0.1/ctl</controlURL></service></serviceList></device></root>`, "no usable control URL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := newFakeIGD(t)
			g.set(func(g *fakeIGD) { g.rootDesc = []byte(tc.desc) })
			c := testClient(t, g.addr, "")
			err := c.Sync(context.Background(), mustConfig(t, loopbackYAML("upnp", g.addr, ruleWeb)))
			if !errors.Is(err, ErrNoRouter) || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("got %v, want ErrNoRouter with %q", err, tc.err)
			}
		})
	}
}

// TestClientProbe: the read-only probe lists the router's table and
// judges each router: true rule against it, changing nothing.
func TestClientProbe(t *testing.T) {
	g := newFakeIGD(t)
	g.set(func(g *fakeIGD) {
		g.table = []fakeEntry{{"tcp", 18080, "127.0.0.1", 18080, "camgate dvr-web", 3000}, {"udp", 18090, "127.0.0.9", 18090, "phone", 0}}
	})
	c := testClient(t, g.addr, "")
	rep, err := c.Probe(context.Background(), mustConfig(t, loopbackYAML("off", g.addr, ruleWeb, ruleRTP)))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Protocol != ProtoUPnPIGD2 || len(rep.Checks) != 3 || len(rep.Entries) != 2 || rep.WAN != WANPrivate {
		t.Fatalf("got %+v", rep)
	}
	states := map[key]State{}
	for _, m := range rep.Rules {
		states[key{m.Protocol, m.ExternalPort}] = m.State
	}
	want := map[key]State{{"tcp", 18080}: StateMapped, {"udp", 18090}: StateConflict, {"udp", 18091}: StatePending}
	for k, s := range want {
		if states[k] != s {
			t.Errorf("%v: got %s, want %s", k, states[k], s)
		}
	}
	for _, r := range g.log() {
		if strings.HasPrefix(r, "Add") || strings.HasPrefix(r, "Delete") {
			t.Errorf("probe changed the router: %s", r)
		}
	}
	if got := slices.Collect(func(yield func(string) bool) {
		for _, ch := range rep.Checks {
			if !yield(string(ch.Protocol)) {
				return
			}
		}
	}); !slices.Equal(got, []string{"pcp", "natpmp", "upnp-igd2"}) {
		t.Errorf("checks: got %v", got)
	}
}

// TestClientListenAddress: a rule listening on one address only cannot
// take the router's traffic to this host; it is reported, not mapped.
func TestClientListenAddress(t *testing.T) {
	f := newFakeNAT(t)
	c := testClient(t, f.addr, "")
	only := "  - {name: only-vpn, external_port: 18700, internal_ip: 198.19.0.65, listen_address: 10.9.9.9, router: true}\n"
	c.Sync(context.Background(), mustConfig(t, loopbackYAML("pcp", f.addr, ruleWeb, only)))
	st := c.Status()
	m := wantState(t, &st, "tcp", 18700, StateError)
	if !strings.Contains(m.Message, "listens on 10.9.9.9 only") {
		t.Errorf("got %q", m.Message)
	}
	if _, ok := f.mapping("tcp", 18700); ok {
		t.Errorf("mapped anyway")
	}
	c.Close(context.Background())
}

// TestClientLowPortTimeout: a low port the router ignores (miniupnpd's
// PCP/NAT-PMP with default rules) gets advice and a high-port suggestion.
func TestClientLowPortTimeout(t *testing.T) {
	f := newFakeNAT(t)
	c := testClient(t, f.addr, "")
	ctx := context.Background()
	c.Sync(ctx, mustConfig(t, loopbackYAML("pcp", f.addr, ruleWeb)))
	f.set(func(f *fakeNAT) { f.silent = true })
	// A web rule on the low port: an RTSP rule would also ask for the
	// RTP range first (high ports go first), and the silent router would
	// be given up on before 554 is asked.
	low := "  - {name: low, external_port: 554, internal_ip: 198.19.0.65, internal_port: 80, router: true}\n"
	c.Sync(ctx, mustConfig(t, loopbackYAML("pcp", f.addr, ruleWeb, low)))
	st := c.Status()
	m := wantState(t, &st, "tcp", 554, StateError)
	if m.SuggestedPort != 10554 || !strings.Contains(m.Message, "1024 or more") {
		t.Errorf("got %q suggested %d", m.Message, m.SuggestedPort)
	}
}

// TestCapturedSOAP replays miniupnpd 2.3.1's captured SOAP answers
// (testdata) to the client and checks what it makes of each.
func TestCapturedSOAP(t *testing.T) {
	tests := []struct {
		capture string
		state   State
		msg     string
	}{
		{"miniupnpd-2.3.1-soap-addok.http", StateMapped, ""},
		{"miniupnpd-2.3.1-soap-fault-718.http", StateConflict, "718 ConflictInMappingEntry"},
		{"miniupnpd-2.3.1-soap-fault-606.http", StateRefused, "606 Action not authorized"},
		{"miniupnpd-2.3.1-soap-fault-713.http", StateError, "UPnP error 713 SpecifiedArrayIndexInvalid"},
	}
	for _, tc := range tests {
		t.Run(tc.capture, func(t *testing.T) {
			g := newFakeIGD(t)
			resp, body := readCapture(t, tc.capture)
			_, extIP := readCapture(t, "miniupnpd-2.3.1-soap-getexternalip.http")
			replay := func(w http.ResponseWriter, status int, b []byte) {
				w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
				w.WriteHeader(status)
				w.Write(b)
			}
			g.set(func(g *fakeIGD) {
				g.override = func(action string, w http.ResponseWriter) bool {
					switch action {
					case "AddPortMapping":
						replay(w, resp.StatusCode, body)
					case "GetExternalIPAddress":
						replay(w, 200, extIP)
					default:
						return false
					}
					return true
				}
			})
			c := testClient(t, g.addr, "")
			if err := c.Sync(context.Background(), mustConfig(t, loopbackYAML("upnp", g.addr, ruleWeb))); err != nil {
				t.Fatal(err)
			}
			st := c.Status()
			m := wantState(t, &st, "tcp", 18080, tc.state)
			if !strings.Contains(m.Message, tc.msg) {
				t.Errorf("got %q, want %q", m.Message, tc.msg)
			}
			if st.ExternalIP.String() != "198.18.0.1" {
				t.Errorf("external IP from the capture: got %s", st.ExternalIP)
			}
		})
	}
}

// TestCapturedNATPMP replays miniupnpd 2.3.1's captured NAT-PMP answers
// through go-nat-pmp.
func TestCapturedNATPMP(t *testing.T) {
	f := newFakeNAT(t)
	f.set(func(f *fakeNAT) {
		f.replay = map[byte][]byte{
			0: readTestdata(t, "miniupnpd-2.3.1-natpmp-external-address.bin"),
			2: readTestdata(t, "miniupnpd-2.3.1-natpmp-map-tcp.bin"),
		}
	})
	c := testClient(t, f.addr, "")
	port18096 := "  - {name: cap, external_port: 18096, internal_ip: 198.19.0.65, router: true}\n"
	if err := c.Sync(context.Background(), mustConfig(t, loopbackYAML("natpmp", f.addr, port18096))); err != nil {
		t.Fatal(err)
	}
	st := c.Status()
	m := wantState(t, &st, "tcp", 18096, StateMapped)
	if st.ExternalIP.String() != "198.18.0.1" || time.Until(m.Expires) > 600*time.Second {
		t.Errorf("got %s", &st)
	}
	f.set(func(f *fakeNAT) { f.replay[2] = readTestdata(t, "miniupnpd-2.3.1-natpmp-delete.bin") })
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestClientStaleQuietRouter: mappings left by an earlier run at a router
// that no longer answers are tried a bounded number of times, and Run
// does not spin on them.
func TestClientStaleQuietRouter(t *testing.T) {
	f := newFakeNAT(t)
	f.set(func(f *fakeNAT) { f.silent = true })
	dir := t.TempDir()
	var ls []*lease
	for p := uint16(19000); p < 19005; p++ {
		ls = append(ls, &lease{Rule: "old", Proto: "tcp", Port: p, Internal: netip.MustParseAddr("127.0.0.1"), Method: ProtoPCP,
			Gateway: f.addr, Nonce: newNonce().String(), Held: true, Expires: time.Now().Add(time.Hour)})
	}
	data, _ := encodeState(ls)
	if err := writeState(dir, data); err != nil {
		t.Fatal(err)
	}
	c := testClient(t, f.addr, dir)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	if err := c.Sync(ctx, mustConfig(t, loopbackYAML("off", f.addr, ruleWeb))); err != nil {
		t.Fatal(err)
	}
	asked := len(f.log())
	go func() { c.Run(ctx); close(done) }()
	time.Sleep(time.Second)
	cancel()
	<-done
	ports := map[string]bool{}
	for _, r := range f.log() {
		ports[r] = true
	}
	if len(ports) != maxQuietTimeouts {
		t.Errorf("asked about %d stale mappings, want %d before giving the quiet router a rest: %v", len(ports), maxQuietTimeouts, ports)
	}
	if n := len(f.log()); n != asked {
		t.Errorf("Run sent %d more requests within a second; want none until the retry interval", n-asked)
	}
	if st := c.Status(); st.Stale != 5 {
		t.Errorf("stale: got %d, want 5 (kept for later)", st.Stale)
	}
}
