package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/camgate/camgate/internal/check"
	"github.com/camgate/camgate/internal/netlab"
)

// checkVPN runs `camgate check --json vpn` in gw with environ and returns
// the VPN's gateway and outside results and the exit code.
func checkVPN(t *testing.T, v *vpnLab, environ []string, args ...string) (gw, out check.Result, code int) {
	t.Helper()
	cmd := v.l.Command(v.l.GW, v.bin, append([]string{"check", "--config", v.cfgPath, "--json", "--timeout", "2s",
		"--public-ip", netlab.GWWANAddr.String()}, append(args, "vpn")...)...)
	cmd.Env = append(os.Environ(), environ...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	raw, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	var rep check.Report
	if err := json.Unmarshal(raw, &rep); err != nil || rep.VPN == nil || len(rep.Rules) != 0 {
		t.Fatalf("camgate check %v: exit %d, want a report with the vpn and no rules: %v\n%s\n%s", args, code, err, raw, stderr.String())
	}
	for _, r := range rep.VPN.Results {
		switch r.Layer {
		case check.LayerGateway:
			gw = r
		case check.LayerOutside:
			out = r
		}
	}
	t.Logf("check %v: exit %d\n  gateway %s %s\n  outside %s %s (fix: %s)", args, code, gw.Status.Symbol(), gw.Reason, out.Status.Symbol(), out.Reason, out.Fix)
	return gw, out, code
}

// TestCheckVPNEndToEnd: `camgate check` tests the VPN's port with a real
// WireGuard handshake, from wan and as a hairpin: ✓ while the port is
// reachable, ✗ with the fix when gw drops it, ? without an API token;
// the probe key never outlives the check.
func TestCheckVPNEndToEnd(t *testing.T) {
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("needs nft (apt-get install nftables)")
	}
	v := newVPNLab(t, "")
	token := []string{"CAMGATE_TOKEN=" + v.token}
	noProbes := func(when string) {
		t.Helper()
		if n := v.status(t).Probes; n != 0 {
			t.Errorf("%s: %d probe keys left in the VPN", when, n)
		}
	}

	t.Run("reachable from wan", func(t *testing.T) {
		gw, out, code := checkVPN(t, v, token, "--from", "netns:"+v.l.WAN)
		if code != 0 || gw.Status != check.OK || !strings.Contains(gw.Reason, "camgate") || gw.Probe != check.KindWireGuard {
			t.Errorf("gateway: exit %d, %s %q; want exit 0 and ✓ camgate holds the port", code, gw.Status.Symbol(), gw.Reason)
		}
		if out.Status != check.OK || !strings.Contains(out.Reason, "WireGuard handshake with a probe key completed at 198.18.0.1:51820 from network namespace") {
			t.Errorf("outside: got %s %q, want ✓ handshake completed", out.Status.Symbol(), out.Reason)
		}
		noProbes("after the check")
	})

	t.Run("hairpin", func(t *testing.T) {
		_, out, code := checkVPN(t, v, token)
		if code != 0 || out.Status != check.OK || !strings.Contains(out.Reason, "through the router (hairpin)") {
			t.Errorf("exit %d, outside %s %q; want ✓ through the hairpin", code, out.Status.Symbol(), out.Reason)
		}
	})

	t.Run("port blocked", func(t *testing.T) {
		// gw's firewall drops the VPN's port from wan, as a router that
		// does not forward it would.
		v.l.Exec(v.l.GW, "nft", "add table inet cgvpncheck { chain input { type filter hook input priority 0; policy accept; iifname != \"lo\" udp dport 51820 drop; }; }")
		defer v.l.Exec(v.l.GW, "nft", "delete", "table", "inet", "cgvpncheck")
		gw, out, code := checkVPN(t, v, token, "--from", "netns:"+v.l.WAN)
		if code != 1 || gw.Status != check.OK || out.Status != check.Fail ||
			!strings.Contains(out.Reason, "no WireGuard handshake") || out.Fix != "forward UDP 51820 on the router to this gateway, or set vpn.router: true" {
			t.Errorf("exit %d, gateway %s, outside %s %q fix %q; want exit 1, ✓ listener and ✗ with the forwarding fix", code, gw.Status.Symbol(), out.Status.Symbol(), out.Reason, out.Fix)
		}
		noProbes("after a failed check")
	})

	t.Run("no token", func(t *testing.T) {
		_, out, code := checkVPN(t, v, nil, "--from", "netns:"+v.l.WAN)
		if code != 0 || out.Status != check.Unknown || !strings.Contains(out.Fix, "CAMGATE_TOKEN") {
			t.Errorf("exit %d, outside %s %q fix %q; want ? asking for a token", code, out.Status.Symbol(), out.Reason, out.Fix)
		}
	})

	// The text form, as a user sees it.
	cmd := v.l.Command(v.l.GW, v.bin, "check", "--config", v.cfgPath, "--public-ip", netlab.GWWANAddr.String(), "--from", "netns:"+v.l.WAN)
	cmd.Env = append(os.Environ(), token...)
	text, _ := cmd.CombinedOutput()
	t.Logf("camgate check:\n%s", text)
	if !strings.Contains(string(text), "vpn ") || !strings.Contains(string(text), "WireGuard handshake") {
		t.Errorf("the text report lacks the VPN:\n%s", text)
	}
}
