package router

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/netlab"
)

// ruleYAML is a config with router automation in mode and the given
// rules (YAML list items).
func ruleYAML(mode string, extra string, rules ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "version: 1\nrouter:\n  mode: %s\n  lease: 10m\n%s", mode, extra)
	b.WriteString("rules:\n")
	for _, r := range rules {
		b.WriteString(r)
	}
	return b.String()
}

// Rules used by the end-to-end cases. camgate itself would listen on the
// external ports and relay to internal_ip; the router maps each external
// port to this host on the same port.
const (
	ruleWeb   = "  - {name: dvr-web, protocol: tcp, external_port: 18080, internal_ip: 198.19.0.65, internal_port: 80, router: true}\n"
	ruleRTP   = "  - {name: dvr-rtp, protocol: udp, external_port: 18090-18091, internal_ip: 198.19.0.65, router: true}\n"
	ruleLocal = "  - {name: lan-only, protocol: tcp, external_port: 18100, internal_ip: 198.19.0.65, internal_port: 80}\n"
)

func wantEntries(t *testing.T, m *miniLab, want ...string) {
	t.Helper()
	got := m.upnpcEntries()
	slices.Sort(got)
	slices.Sort(want)
	if want == nil {
		want = []string{}
	}
	if got == nil {
		got = []string{}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("router mappings (upnpc -l): got %q, want %q\n%s", got, want, m.upnpcList())
	}
}

func wantState(t *testing.T, st *Status, proto string, port uint16, want State) Mapping {
	t.Helper()
	m, ok := st.mapping(proto, port)
	if !ok {
		t.Fatalf("no mapping %s/%d in status:\n%s", proto, port, st)
	}
	if m.State != want {
		t.Fatalf("%s/%d: got state %s (%q), want %s\n%s", proto, port, m.State, m.Message, want, st)
	}
	return m
}

// TestMiniupnpdProtocols proves each protocol against a real miniupnpd:
// the mappings appear in the router's table, real traffic from wan flows
// through its DNAT, removing a rule removes its mapping, and Close
// removes them all.
func TestMiniupnpdProtocols(t *testing.T) {
	m := newMiniLab(t, miniOpts{})
	m.serveBanner(m.LAN, lanHost+":18080", "hello from the camgate host\n")
	cases := []struct {
		name  string
		igd1  bool
		mode  string
		proto Protocol
	}{
		{"upnp-igd2", false, "upnp", ProtoUPnPIGD2},
		{"natpmp", false, "natpmp", ProtoNATPMP},
		{"pcp", false, "pcp", ProtoPCP},
		{"auto", false, "auto", ProtoPCP},
		{"upnp-igd1", true, "upnp", ProtoUPnPIGD1},
	}
	igd1 := true // force the first start
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.igd1 != igd1 || m.mu == nil {
				m.startRouter(tc.igd1)
				igd1 = tc.igd1
			} else {
				m.flush()
			}
			wantEntries(t, m)
			d := startDriver(t, m.Lab, m.LAN, "")

			// 1. Map the router: true rules; the LAN-only rule stays unmapped.
			rep := d.do("sync", ruleYAML(tc.mode, "", ruleWeb, ruleRTP, ruleLocal))
			if rep.Err != "" {
				t.Fatalf("sync: %s\n%s", rep.Err, rep.Status)
			}
			st := rep.Status
			if st.Protocol != tc.proto {
				t.Fatalf("protocol: got %q, want %q\n%s", st.Protocol, tc.proto, st)
			}
			if got := st.ExternalIP.String(); got != gwWAN {
				t.Errorf("external IP: got %s, want %s", got, gwWAN)
			}
			if st.WAN != WANPrivate || !strings.Contains(st.Advice, "benchmarking") {
				t.Errorf("WAN verdict for %s: got %s %q, want private with advice", gwWAN, st.WAN, st.Advice)
			}
			if len(st.Mappings) != 3 {
				t.Fatalf("got %d mappings, want 3 (tcp 18080, udp 18090, udp 18091)\n%s", len(st.Mappings), st)
			}
			for _, k := range []key{{"tcp", 18080}, {"udp", 18090}, {"udp", 18091}} {
				mp := wantState(t, st, k.Proto, k.Port, StateMapped)
				if mp.InternalAddr.String() != lanHost || mp.InternalPort != k.Port {
					t.Errorf("%v: points at %s:%d, want %s:%d", k, mp.InternalAddr, mp.InternalPort, lanHost, k.Port)
				}
				if left := time.Until(mp.Expires); left < 5*time.Minute || left > 10*time.Minute+time.Second {
					t.Errorf("%v: lease expires in %v, want about 10m", k, left)
				}
			}
			wantEntries(t, m, "TCP 18080->198.19.0.64:18080", "UDP 18090->198.19.0.64:18090", "UDP 18091->198.19.0.64:18091")

			// 2. Real traffic from the internet side through the router's DNAT.
			got, err := m.fetchFromWAN(18080)
			if err != nil || got != "hello from the camgate host\n" {
				t.Fatalf("wan -> %s:18080: got %q, %v; want the LAN server's banner\n%s", gwWAN, got, err, m.dnatRules())
			}

			// Renewal keeps the mapping (same nonce for PCP) and moves the expiry.
			before := wantState(t, st, "tcp", 18080, StateMapped).Expires
			time.Sleep(1100 * time.Millisecond)
			rep = d.do("renew", "")
			after := wantState(t, rep.Status, "tcp", 18080, StateMapped).Expires
			if !after.After(before) {
				t.Errorf("renewal did not move the expiry: before %v, after %v", before, after)
			}
			wantEntries(t, m, "TCP 18080->198.19.0.64:18080", "UDP 18090->198.19.0.64:18090", "UDP 18091->198.19.0.64:18091")

			// 3. Removing the rule removes its mapping, and traffic stops.
			rep = d.do("sync", ruleYAML(tc.mode, "", ruleRTP, ruleLocal))
			if rep.Err != "" {
				t.Fatalf("sync without dvr-web: %s", rep.Err)
			}
			if _, ok := rep.Status.mapping("tcp", 18080); ok {
				t.Errorf("status still lists tcp/18080:\n%s", rep.Status)
			}
			wantEntries(t, m, "UDP 18090->198.19.0.64:18090", "UDP 18091->198.19.0.64:18091")
			if got, err := m.fetchFromWAN(18080); err == nil {
				t.Errorf("wan still reaches 18080 after the rule was removed: %q", got)
			}

			// 4. Close removes everything.
			rep = d.do("close", "")
			if rep.Err != "" {
				t.Fatalf("close: %s", rep.Err)
			}
			wantEntries(t, m)
			if out := m.dnatRules(); strings.Contains(out, "dnat") {
				t.Errorf("DNAT rules left after Close:\n%s", out)
			}
			if rep := d.do("sync", ruleYAML(tc.mode, "", ruleWeb)); !strings.Contains(rep.Err, "closed") {
				t.Errorf("sync after close: got %q, want ErrClosed", rep.Err)
			}
		})
	}
}

// TestMiniupnpdConflict: a port already mapped to another LAN host gives
// a conflict (UPnP 718 under secure_mode) with a free port suggested,
// and the read-only probe lists the holder.
func TestMiniupnpdConflict(t *testing.T) {
	m := newMiniLab(t, miniOpts{})
	m.startRouter(false)
	other := netlab.LANHost(1).String() // 198.19.0.65
	holder := startDriver(t, m.Lab, m.LAN, "")
	rep := holder.do("sync", ruleYAML("upnp", "  local_address: "+other+"\n",
		"  - {name: other-host, protocol: tcp, external_port: 18200-18201, internal_ip: 198.19.0.66, router: true}\n"))
	if rep.Err != "" {
		t.Fatalf("holder sync: %s\n%s", rep.Err, rep.Status)
	}
	wantState(t, rep.Status, "tcp", 18200, StateMapped)
	wantEntries(t, m, "TCP 18200->"+other+":18200", "TCP 18201->"+other+":18201")

	d := startDriver(t, m.Lab, m.LAN, "")
	cfg := ruleYAML("upnp", "", ruleWeb,
		"  - {name: dvr-clash, protocol: tcp, external_port: 18200, internal_ip: 198.19.0.65, router: true}\n")
	rep = d.do("sync", cfg)
	if rep.Err != "" {
		t.Fatalf("sync: %s", rep.Err)
	}
	wantState(t, rep.Status, "tcp", 18080, StateMapped)
	c := wantState(t, rep.Status, "tcp", 18200, StateConflict)
	if !strings.Contains(c.Message, "718") || !strings.Contains(c.Message, other) {
		t.Errorf("conflict message: got %q, want UPnP 718 and the holder %s", c.Message, other)
	}
	if c.SuggestedPort != 18202 {
		t.Errorf("suggested port: got %d, want 18202 (18200-18201 are held)", c.SuggestedPort)
	}

	// The read-only probe sees the same table.
	rep = d.do("probe", cfg)
	if rep.Err != "" || rep.Report == nil {
		t.Fatalf("probe: %s", rep.Err)
	}
	r := rep.Report
	if r.Protocol != ProtoUPnPIGD2 || r.ExternalIP.String() != gwWAN || len(r.Checks) != 1 {
		t.Errorf("probe: protocol %s, WAN %s, %d checks; want upnp-igd2 (mode upnp) only, and %s", r.Protocol, r.ExternalIP, len(r.Checks), gwWAN)
	}
	states := map[uint16]State{}
	for _, mp := range r.Rules {
		states[mp.ExternalPort] = mp.State
	}
	if states[18080] != StateMapped || states[18200] != StateConflict {
		t.Errorf("probe rule states: got %v, want 18080 mapped, 18200 conflict", states)
	}
	if len(r.Entries) != 3 {
		t.Errorf("probe listed %d entries, want 3: %+v", len(r.Entries), r.Entries)
	}
	for _, dd := range []*driver{d, holder} {
		if rep := dd.do("close", ""); rep.Err != "" {
			t.Errorf("close: %s", rep.Err)
		}
	}
	wantEntries(t, m)
}

// TestMiniupnpdCrashReclaim: after a crash the next start renews the PCP
// mappings with their persisted nonces (no duplicates), deletes those of
// rules that are gone, and cleans up mappings made with another protocol.
func TestMiniupnpdCrashReclaim(t *testing.T) {
	m := newMiniLab(t, miniOpts{})
	m.startRouter(false)
	state := t.TempDir()
	d := startDriver(t, m.Lab, m.LAN, state)
	rep := d.do("sync", ruleYAML("pcp", "", ruleWeb, ruleRTP))
	if rep.Err != "" {
		t.Fatalf("sync: %s", rep.Err)
	}
	wantEntries(t, m, "TCP 18080->198.19.0.64:18080", "UDP 18090->198.19.0.64:18090", "UDP 18091->198.19.0.64:18091")
	d.kill() // no Close: the mappings stay on the router
	b, err := os.ReadFile(filepath.Join(state, stateFileName))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), `"nonce"`); n != 3 {
		t.Fatalf("state file has %d nonces, want 3:\n%s", n, b)
	}

	// Next start: only dvr-web is left. Its mapping is renewed in place
	// (a new nonce would get NOT_AUTHORIZED), dvr-rtp's are deleted.
	d2 := startDriver(t, m.Lab, m.LAN, state)
	rep = d2.do("sync", ruleYAML("pcp", "", ruleWeb))
	if rep.Err != "" {
		t.Fatalf("sync after crash: %s\n%s", rep.Err, rep.Status)
	}
	wantState(t, rep.Status, "tcp", 18080, StateMapped)
	if rep.Status.Stale != 0 {
		t.Errorf("stale mappings left: %d", rep.Status.Stale)
	}
	wantEntries(t, m, "TCP 18080->198.19.0.64:18080")
	d2.kill()

	// Next start switches to UPnP: the PCP mapping from before the crash
	// is deleted with its nonce and the UPnP one takes its place.
	d3 := startDriver(t, m.Lab, m.LAN, state)
	rep = d3.do("sync", ruleYAML("upnp", "", ruleWeb))
	if rep.Err != "" {
		t.Fatalf("sync with upnp: %s", rep.Err)
	}
	wantState(t, rep.Status, "tcp", 18080, StateMapped)
	if rep.Status.Protocol != ProtoUPnPIGD2 || rep.Status.Stale != 0 {
		t.Errorf("got protocol %s with %d stale, want upnp-igd2 and 0", rep.Status.Protocol, rep.Status.Stale)
	}
	list := m.upnpcList()
	if !strings.Contains(list, "'camgate dvr-web'") || strings.Count(list, "TCP 18080->") != 1 {
		t.Errorf("want exactly one UPnP mapping named \"camgate dvr-web\":\n%s", list)
	}
	if rep := d3.do("close", ""); rep.Err != "" {
		t.Fatalf("close: %s", rep.Err)
	}
	wantEntries(t, m)
	b, _ = os.ReadFile(filepath.Join(state, stateFileName))
	if strings.Contains(string(b), `"port"`) {
		t.Errorf("state file still lists leases after Close:\n%s", b)
	}
}

// TestMiniupnpdCGNAT: a router whose WAN address is in 100.64.0.0/10 is
// reported as CGNAT, with advice.
func TestMiniupnpdCGNAT(t *testing.T) {
	m := newMiniLab(t, miniOpts{
		setup: func(l *netlab.Lab) {
			// The ISP's CGNAT network: gw's primary WAN address becomes
			// 100.64.0.1 (miniupnpd uses the first address), and the STUN
			// server sits on the ISP side.
			l.Exec(l.GW, "ip", "addr", "flush", "dev", "wan0")
			l.Exec(l.GW, "ip", "addr", "add", "100.64.0.1/10", "dev", "wan0")
			l.Exec(l.GW, "ip", "addr", "add", gwWAN+"/24", "dev", "wan0")
			l.Exec(l.WAN, "ip", "addr", "add", "100.64.0.10/10", "dev", "eth0")
			l.Exec(l.WAN, "ip", "addr", "add", "100.64.0.11/10", "dev", "eth0")
		},
		stunHost: "100.64.0.10", stunAlt: "100.64.0.11",
	})
	m.startRouter(false)
	d := startDriver(t, m.Lab, m.LAN, "")
	for _, mode := range []string{"upnp", "natpmp"} {
		rep := d.do("sync", ruleYAML(mode, "", ruleWeb))
		if rep.Err != "" {
			t.Fatalf("%s sync: %s", mode, rep.Err)
		}
		st := rep.Status
		if st.ExternalIP.String() != "100.64.0.1" || st.WAN != WANCGNAT {
			t.Fatalf("%s: got WAN %s verdict %s, want 100.64.0.1 cgnat\n%s", mode, st.ExternalIP, st.WAN, st)
		}
		if !strings.Contains(st.Advice, "carrier-grade NAT") || !strings.Contains(st.Advice, "VPN") || !strings.Contains(st.Advice, "public IPv4") || !strings.Contains(st.Advice, `listen_address: "::"`) {
			t.Errorf("%s: advice does not say what to do: %q", mode, st.Advice)
		}
	}
	rep := d.do("probe", ruleYAML("auto", "", ruleWeb))
	if rep.Report == nil || rep.Report.WAN != WANCGNAT {
		t.Errorf("probe: got %+v, want a cgnat verdict", rep.Report)
	}
	d.do("close", "")
	wantEntries(t, m)
}
