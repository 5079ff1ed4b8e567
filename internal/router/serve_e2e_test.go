package router

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/netlab"
)

// TestServeTwoLevel is the seed guide's diagram made real, for each
// protocol (auto, PCP, NAT-PMP, UPnP IGD2, IGD1): an internet client in
// wan connects to the home router's WAN address; miniupnpd's DNAT, made by
// a real `camgate serve` for a rule with router: true, sends it to the
// camgate host in lan, and camgate relays it to the device on another lan
// address. A reload that drops router: true removes the mapping, `camgate
// router status` reads the router, and shutdown removes everything.
func TestServeTwoLevel(t *testing.T) {
	if testing.Short() {
		t.Skip("builds camgate")
	}
	m := newMiniLab(t, miniOpts{})
	bin := netlab.Camgate(t)
	device := netlab.LANHost(1).String() // 198.19.0.65: the DVR stand-in
	m.serveBanner(m.LAN, device+":8081", "DVR web page\n")
	cases := []struct {
		name, mode string
		igd1       bool
		proto      Protocol
	}{
		{"auto", "auto", false, ProtoPCP},
		{"pcp", "pcp", false, ProtoPCP},
		{"natpmp", "natpmp", false, ProtoNATPMP},
		{"upnp-igd2", "upnp", false, ProtoUPnPIGD2},
		{"upnp-igd1", "upnp", true, ProtoUPnPIGD1},
	}
	igd1 := true
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.igd1 != igd1 || m.mu == nil {
				m.startRouter(tc.igd1)
				igd1 = tc.igd1
			} else {
				m.flush()
			}
			serveTwoLevel(t, m, bin, device, tc.mode, tc.proto, i == 0)
		})
	}
}

func serveTwoLevel(t *testing.T, m *miniLab, bin, device, mode string, proto Protocol, checkStatusCmd bool) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "camgate.yaml")
	write := func(router bool) {
		r := "false"
		if router {
			r = "true"
		}
		cfg := "version: 1\nstate_dir: state\nadmin: {enabled: false}\nrouter:\n  mode: " + mode + "\n  lease: 10m\nrules:\n" +
			"  - {name: dvr-web, protocol: tcp, external_port: 18080, internal_ip: " + device + ", internal_port: 8081, router: " + r + "}\n"
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(true)
	serve := m.Start(m.LAN, bin, "serve", "--config", cfgPath, "--log-level", "debug")
	t.Cleanup(func() {
		serve.Stop()
		if t.Failed() {
			t.Logf("camgate serve log:\n%s", serve.Output())
		}
	})
	if !serve.WaitFor("router mapping made", 15*time.Second) {
		t.Fatalf("camgate did not map the rule:\n%s", serve.Output())
	}
	if !strings.Contains(serve.Output(), "protocol="+string(proto)) {
		t.Errorf("camgate did not use %s:\n%s", proto, serve.Output())
	}
	wantEntries(t, m, "TCP 18080->198.19.0.64:18080")
	got, err := m.fetchFromWAN(18080)
	if err != nil || got != "DVR web page\n" {
		t.Fatalf("wan -> router %s:18080 -> camgate -> DVR: got %q, %v\n%s", gwWAN, got, err, m.dnatRules())
	}

	if checkStatusCmd {
		// The read-only status command, from the camgate host.
		out, err := m.Command(m.LAN, bin, "router", "status", "--config", cfgPath, "--json").Output()
		if err != nil {
			t.Fatalf("camgate router status: %v\n%s", err, out)
		}
		var rep Report
		if err := json.Unmarshal(out, &rep); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if rep.Protocol != proto || len(rep.Rules) != 1 || rep.Rules[0].State != StateMapped || rep.ExternalIP.String() != gwWAN {
			t.Errorf("router status: got %s", out)
		}
		text, _ := m.Command(m.LAN, bin, "router", "status", "--config", cfgPath).CombinedOutput()
		t.Logf("camgate router status:\n%s", text)
		for _, want := range []string{"In use:      " + string(proto), "WAN address: 198.18.0.1 (private)", "dvr-web", "mapped"} {
			if !strings.Contains(string(text), want) {
				t.Errorf("router status output lacks %q:\n%s", want, text)
			}
		}
	}

	// Reload without router: true: the mapping goes, the rule stays.
	write(false)
	serve.Signal(syscall.SIGHUP)
	if !serve.WaitFor("router mapping deleted", 10*time.Second) {
		t.Fatalf("reload did not delete the mapping:\n%s", serve.Output())
	}
	wantEntries(t, m)

	// Back on, then shutdown removes it.
	write(true)
	serve.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(10 * time.Second)
	for len(m.upnpcEntries()) == 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	wantEntries(t, m, "TCP 18080->198.19.0.64:18080")
	serve.Signal(syscall.SIGTERM)
	select {
	case <-serve.Exited():
	case <-time.After(15 * time.Second):
		t.Fatalf("camgate serve did not stop:\n%s", serve.Output())
	}
	wantEntries(t, m)
	b, _ := os.ReadFile(filepath.Join(dir, "state", stateFileName))
	if strings.Contains(string(b), `"port"`) {
		t.Errorf("leases left in the state file after shutdown:\n%s", b)
	}
}
