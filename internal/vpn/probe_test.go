package vpn

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/check"
)

// handshake runs check's real WireGuard handshake against s on loopback.
func handshake(t *testing.T, pi ProbeIdentity, timeout time.Duration) error {
	t.Helper()
	listen := func() (*net.UDPConn, error) { return net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}) }
	_, err := check.Handshake(context.Background(), listen, pi.ServerKey, pi.PrivateKey, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), pi.Port), timeout)
	return err
}

// TestProbeIdentity: a probe key completes a real handshake, is neither
// listed nor saved, and after EndProbe (or its time to live) the server
// no longer answers it; a made-up key never completes one.
func TestProbeIdentity(t *testing.T) {
	dir := t.TempDir()
	s := newTestServer(t, dir, nil)
	if _, _, err := s.Add(AddRequest{Name: "alice", Allow: []string{"dvr1"}}); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(dir, "vpn", "peers.json"))

	pi, err := s.Probe(time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if pi.ServerKey != s.PublicKey() || pi.Port == 0 || pi.Port == 51820 {
		t.Fatalf("probe: got server key %v port %d, want %v and the bound (any) port", pi.ServerKey, pi.Port, s.PublicKey())
	}
	if err := handshake(t, pi, 3*time.Second); err != nil {
		t.Fatalf("handshake with the probe key: %v", err)
	}
	st := s.Status()
	if len(st.Peers) != 1 || st.Peers[0].Name != "alice" || st.Probes != 1 {
		t.Errorf("status: got %d peers and %d probes, want alice only and 1 probe", len(st.Peers), st.Probes)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "vpn", "peers.json")); string(after) != string(before) {
		t.Errorf("peers.json changed by a probe:\n%s", after)
	}
	// The probe reaches nothing: WireGuard holds no AllowedIPs for it.
	text, _ := s.dev.IpcGet()
	pub := pi.PrivateKey.Public().hex()
	if i := strings.Index(text, "public_key="+pub); i < 0 {
		t.Fatalf("the probe key is not in the device")
	} else if rest := text[i+len("public_key=")+64:]; strings.Contains(strings.SplitN(rest, "public_key=", 2)[0], "allowed_ip=") {
		t.Errorf("the probe peer has allowed IPs")
	}
	// A peer sync (an Apply, an expiry tick) leaves the probe alone.
	if err := s.Apply(testConfig()); err != nil {
		t.Fatal(err)
	}
	if text, _ := s.dev.IpcGet(); !strings.Contains(text, pub) {
		t.Errorf("a peer sync removed the live probe")
	}

	if err := s.EndProbe(pi.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.EndProbe(pi.ID); !errors.Is(err, ErrNoPeer) {
		t.Errorf("second EndProbe: got %v, want ErrNoPeer", err)
	}
	if text, _ := s.dev.IpcGet(); strings.Contains(text, pub) || s.Status().Probes != 0 {
		t.Errorf("the ended probe is still in the device")
	}
	if err := handshake(t, pi, 1500*time.Millisecond); err == nil {
		t.Errorf("an ended probe key completed a handshake")
	}
	// A key the server never gave out gets no answer either: the check
	// above can fail.
	bogus := pi
	bogus.PrivateKey, _ = newPrivateKey()
	if err := handshake(t, bogus, 1500*time.Millisecond); err == nil {
		t.Errorf("an unknown key completed a handshake")
	}

	// It expires by itself.
	short, err := s.Probe(100 * time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for s.Status().Probes != 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if text, _ := s.dev.IpcGet(); s.Status().Probes != 0 || strings.Contains(text, short.PrivateKey.Public().hex()) {
		t.Errorf("a probe outlived its time to live")
	}
}

// TestProbeLimit: at most maxProbes live at once, and Close ends them.
func TestProbeLimit(t *testing.T) {
	s := newTestServer(t, t.TempDir(), nil)
	for i := range maxProbes {
		if _, err := s.Probe(0); err != nil {
			t.Fatalf("probe %d: %v", i, err)
		}
	}
	if _, err := s.Probe(0); !errors.Is(err, ErrTooManyProbes) {
		t.Fatalf("probe %d: got %v, want ErrTooManyProbes", maxProbes+1, err)
	}
	s.Close()
	if n := s.probeCount(); n != 0 {
		t.Errorf("%d probes left after Close", n)
	}
	if _, err := s.Probe(0); !errors.Is(err, net.ErrClosed) {
		t.Errorf("probe after Close: got %v, want net.ErrClosed", err)
	}
}
