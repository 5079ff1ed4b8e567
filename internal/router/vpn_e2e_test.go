package router

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/netlab"
	"github.com/camgate/camgate/internal/vpn"
)

// TestServeVPNThroughRouter is the VPN's usual home: camgate on a small
// box on the LAN behind the home router, with `vpn.router: true`. camgate
// asks miniupnpd (in gw) to forward the VPN's UDP port to it; a phone on
// the internet (Debian's wireguard-go and wg, in wan) that knows only the
// router's public address completes a handshake through that mapping and
// fetches the DVR's web page inside the tunnel, though the router forwards
// nothing else. At shutdown the mapping goes.
func TestServeVPNThroughRouter(t *testing.T) {
	if testing.Short() {
		t.Skip("builds camgate")
	}
	for _, tool := range []string{"wireguard-go", "wg", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (apt-get install wireguard-go wireguard-tools curl)", tool)
		}
	}
	m := newMiniLab(t, miniOpts{})
	m.startRouter(false)
	bin := netlab.Camgate(t)
	dir := t.TempDir()
	device := netlab.LANHost(1).String() // 198.19.0.65: the DVR
	m.startDVR(bin, dir, device, "Router-Vpn-1234", "--http-port", "8082")

	// The server's key and one peer, the phone, allowed the DVR: what
	// `camgate vpn add phone --allow dvr1` leaves in the state directory.
	serverKey, phoneKey := wgKey(t), wgKey(t)
	const phoneAddr = "100.88.0.2"
	state := filepath.Join(dir, "state")
	if err := os.MkdirAll(filepath.Join(state, "vpn"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(state, "vpn", "server.key"), []byte(serverKey.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	peers, _ := json.Marshal(map[string]any{"version": 1, "peers": []vpn.Peer{{Name: "phone", PublicKey: phoneKey.Public(),
		Address: netip.MustParseAddr(phoneAddr), Allow: []string{"dvr1"}, Created: time.Now().UTC()}}})
	if err := os.WriteFile(filepath.Join(state, "vpn", "peers.json"), peers, 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "camgate.yaml")
	cfg := fmt.Sprintf("version: 1\nstate_dir: state\nadmin: {enabled: false}\nrouter:\n  mode: auto\n  lease: 10m\n"+
		"devices:\n  - {name: dvr1, address: %s, http_port: 8082}\n"+
		"vpn: {enabled: true, router: true, endpoint: %s}\n", device, gwWAN)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	serve := m.Start(m.LAN, bin, "serve", "--config", cfgPath, "--log-level", "debug")
	t.Cleanup(func() {
		serve.Stop()
		if t.Failed() {
			t.Logf("camgate serve log:\n%s", tail(serve.Output(), 60))
		}
	})
	if !serve.WaitFor("router mapping made", 20*time.Second) {
		t.Fatalf("camgate did not map the VPN port:\n%s", serve.Output())
	}
	wantEntries(t, m, "UDP 51820->198.19.0.64:51820")

	// The phone: wireguard-go with the peer's key, the router's public
	// address as the endpoint, and a route to the DVR into the tunnel.
	const iface = "wgphone"
	cmd := m.Command(m.WAN, "wireguard-go", "-f", iface)
	cmd.Env = append(os.Environ(), "WG_PROCESS_FOREGROUND=1", "LOG_LEVEL=error")
	wg := netlab.StartCmd(cmd)
	t.Cleanup(wg.Stop)
	deadline := time.Now().Add(5 * time.Second)
	for m.Command(m.WAN, "ip", "link", "show", iface).Run() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("wireguard-go did not create %s:\n%s", iface, wg.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	keyFile := filepath.Join(dir, "phone.key")
	if err := os.WriteFile(keyFile, []byte(phoneKey.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	m.Exec(m.WAN, "wg", "set", iface, "private-key", keyFile, "peer", serverKey.Public().String(),
		"endpoint", gwWAN+":51820", "allowed-ips", device+"/32")
	m.Exec(m.WAN, "ip", "addr", "add", phoneAddr+"/32", "dev", iface)
	m.Exec(m.WAN, "ip", "link", "set", iface, "up")
	m.Exec(m.WAN, "ip", "route", "replace", device+"/32", "dev", iface)

	out, err := m.Command(m.WAN, "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
		"http://"+device+":8082/").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "2") && !strings.HasPrefix(string(out), "3") {
		t.Fatalf("phone -> router %s:51820 -> camgate's VPN -> DVR web page: %s %v\n%s", gwWAN, out, err, m.dnatRules())
	}
	hs, _ := m.Command(m.WAN, "wg", "show", iface, "latest-handshakes").Output()
	if f := strings.Fields(string(hs)); len(f) < 2 || f[1] == "0" {
		t.Fatalf("the phone completed no handshake: %q", hs)
	}

	serve.Signal(syscall.SIGTERM)
	select {
	case <-serve.Exited():
	case <-time.After(15 * time.Second):
		t.Fatalf("camgate serve did not stop:\n%s", serve.Output())
	}
	wantEntries(t, m)
}

// wgKey returns a private key made by `wg genkey`, as a phone makes one.
func wgKey(t *testing.T) vpn.Key {
	t.Helper()
	out, err := exec.Command("wg", "genkey").Output()
	if err != nil {
		t.Fatalf("wg genkey: %v", err)
	}
	k, err := vpn.ParseKey(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatal(err)
	}
	return k
}
