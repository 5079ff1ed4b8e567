package check

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/portowner"
	"github.com/camgate/camgate/internal/vpn"
)

// TestVPNLayers runs the VPN's layers against a real vpn.Server on
// loopback (standing in for the public address): the handshake with a
// probe key it hands out passes, a key it does not know fails (✗ from a
// vantage point, ? as a hairpin), and every probe is ended.
func TestVPNLayers(t *testing.T) {
	srv, err := vpn.New(vpn.Config{StateDir: t.TempDir(), AnyPort: true}, &config.Config{
		Version: config.CurrentVersion, VPN: config.VPN{Enabled: true, Endpoint: "198.18.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	first, err := srv.Probe(time.Second)
	if err != nil {
		t.Fatal(err)
	}
	srv.EndProbe(first.ID)
	bound := first.Port
	real := func(context.Context) (VPNProbe, error) {
		pi, err := srv.Probe(0)
		if err != nil {
			return VPNProbe{}, err
		}
		return VPNProbe{ServerKey: pi.ServerKey, PrivateKey: pi.PrivateKey, Port: pi.Port, End: func() { srv.EndProbe(pi.ID) }}, nil
	}
	ended := 0
	unknownKey := func(context.Context) (VPNProbe, error) {
		return VPNProbe{ServerKey: srv.PublicKey(), PrivateKey: [32]byte{1: 1, 31: 64}, Port: bound, End: func() { ended++ }}, nil
	}
	noToken := func(context.Context) (VPNProbe, error) {
		return VPNProbe{}, errors.New("no API token given to ask for one")
	}

	cfg := loopbackConfig(t, fmt.Sprintf("version: 1\nvpn: {enabled: true, listen_port: %d}\n", bound))
	lo := netip.MustParseAddr("127.0.0.1")
	newRunner := func(probe func(context.Context) (VPNProbe, error), from From) *runner {
		return &runner{c: Config{Timeout: 1500 * time.Millisecond, VPNProbe: probe}, cfg: cfg, from: from, log: (&Config{}).logger(),
			owners: portowner.NewIndex("/proc"), public: PublicAddress{IP: lo, Class: ClassPublic}}
	}

	gw := newRunner(real, From{}).vpnGateway(bound)
	if gw.Status != OK || !strings.Contains(gw.Reason, "this process") {
		t.Errorf("gateway: got %s %q, want ✓ held by this process", gw.Status, gw.Reason)
	}
	if got := newRunner(real, From{}).vpnGateway(port(closedPort(t, "udp"))); got.Status != Fail || !strings.Contains(got.Reason, "nothing is bound") {
		t.Errorf("gateway on a free port: got %s %q, want ✗", got.Status, got.Reason)
	}
	for _, tt := range []struct {
		name   string
		probe  func(context.Context) (VPNProbe, error)
		from   From
		gw     Result
		status Status
		reason string
		fix    string
	}{
		{"hairpin handshake", real, From{}, gw, OK, "WireGuard handshake with a probe key completed at 127.0.0.1:", ""},
		{"from a vantage point", real, From{Netns: "/proc/self/ns/net"}, gw, OK, "from network namespace net", ""},
		{"unknown key from a vantage point", unknownKey, From{Netns: "/proc/self/ns/net"}, gw, Fail, "no WireGuard handshake", fmt.Sprintf("forward UDP %d on the router to this gateway, or set vpn.router: true", bound)},
		{"unknown key as a hairpin", unknownKey, From{}, gw, Unknown, "hairpin NAT", "mobile data"},
		{"not listening", unknownKey, From{Netns: "/proc/self/ns/net"}, Result{Status: Fail}, Unknown, "as expected while camgate does not listen", "gateway layer first"},
		{"no probe key", noToken, From{}, gw, Unknown, "gave no probe key: no API token", "CAMGATE_TOKEN"},
		{"no way to ask", nil, From{}, gw, Unknown, "no probe key", "admin API"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := newRunner(tt.probe, tt.from).vpnOutside(context.Background(), bound, tt.gw)
			if got.Status != tt.status || !strings.Contains(got.Reason, tt.reason) || !strings.Contains(got.Fix, tt.fix) || got.Probe != KindWireGuard {
				t.Errorf("got %s %q fix %q, want %s containing %q, fix %q", got.Status, got.Reason, got.Fix, tt.status, tt.reason, tt.fix)
			}
		})
	}
	cg := newRunner(real, From{})
	cg.public = PublicAddress{IP: netip.MustParseAddr("100.64.1.2"), Class: ClassCGNAT}
	if got := cg.vpnOutside(context.Background(), bound, gw); got.Status != Fail || !strings.Contains(got.Reason, "CGNAT") || !strings.Contains(got.Fix, "public IPv4") {
		t.Errorf("CGNAT: got %s %q fix %q, want ✗ naming CGNAT", got.Status, got.Reason, got.Fix)
	}
	if ended != 3 {
		t.Errorf("End called %d times for 3 handshakes with an unknown key, want every probe ended", ended)
	}
	if n := srv.Status().Probes; n != 0 {
		t.Errorf("%d probe keys left in the server", n)
	}
}

// TestRunSelectsVPN: "vpn" names the VPN unless a rule has that name; the
// report carries it in its own field and in the counts.
func TestRunSelectsVPN(t *testing.T) {
	off := loopbackConfig(t, "version: 1\nrules:\n  - {name: web, external_port: 18080, internal_ip: 127.0.0.1, listen_address: 127.0.0.1}\n")
	if _, err := Run(context.Background(), Config{}, off, []string{"vpn"}); !errors.Is(err, ErrUnknownRule) {
		t.Errorf("vpn off: got %v, want ErrUnknownRule", err)
	}
	on := loopbackConfig(t, "version: 1\nvpn: {enabled: true, listen_port: 1}\nrules:\n  - {name: web, external_port: 18080, internal_ip: 127.0.0.1, listen_address: 127.0.0.1}\n")
	rep, err := Run(context.Background(), Config{Timeout: time.Second}, on, []string{"vpn"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.VPN == nil || len(rep.Rules) != 0 || len(rep.VPN.Results) != 2 || rep.OK+rep.Failed+rep.Unknown != 2 {
		t.Fatalf("check vpn: got %d rules, vpn %+v, counts %d/%d/%d; want the VPN's 2 layers only", len(rep.Rules), rep.VPN, rep.OK, rep.Failed, rep.Unknown)
	}
	if rep, _ := Run(context.Background(), Config{Timeout: time.Second}, on, []string{"web"}); rep.VPN != nil {
		t.Errorf("check web: the VPN was checked too")
	}
	if rep, _ := Run(context.Background(), Config{Timeout: time.Second}, on, nil); rep.VPN == nil || len(rep.Rules) != 1 {
		t.Errorf("check (all): got %d rules and vpn %v, want both", len(rep.Rules), rep.VPN != nil)
	}
}
