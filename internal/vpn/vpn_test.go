package vpn

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/config"
)

func testConfig() *config.Config {
	return &config.Config{
		Version: config.CurrentVersion,
		Devices: []config.Device{{Name: "dvr1", Address: "198.19.0.64"}, {Name: "dvr2", Address: "198.19.0.65"}},
		VPN:     config.VPN{Enabled: true, Endpoint: "198.18.0.1"},
	}
}

func newTestServer(t *testing.T, dir string, now func() time.Time) *Server {
	t.Helper()
	s, err := New(Config{StateDir: dir, AnyPort: true, Now: now}, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// TestPeersSurviveRestart: the key and the peers are in the state
// directory (0600) and a new server reads them back; removing a peer is
// saved too.
func TestPeersSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	s := newTestServer(t, dir, nil)
	pub := s.PublicKey()
	p, conf, err := s.Add(AddRequest{Name: "alice", Allow: []string{"dvr1"}, Expires: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Address = 100.88.0.2/32", "AllowedIPs = 198.19.0.64/32\n", "Endpoint = 198.18.0.1:51820", "PublicKey = " + pub.String()} {
		if !strings.Contains(conf, want) {
			t.Errorf("config lacks %q:\n%s", want, conf)
		}
	}
	if _, _, err := s.Add(AddRequest{Name: "bob", Allow: []string{"dvr1", "dvr2"}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Add(AddRequest{Name: "alice", Allow: []string{"dvr1"}}); !errors.Is(err, ErrPeerExists) {
		t.Errorf("second alice: got %v, want ErrPeerExists", err)
	}
	s.Close()
	for _, f := range []string{"server.key", "peers.json"} {
		fi, err := os.Stat(filepath.Join(dir, "vpn", f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: got %v %v, want mode 0600", f, fi.Mode(), err)
		}
	}

	s2 := newTestServer(t, dir, nil)
	if s2.PublicKey() != pub {
		t.Error("the server key changed across a restart")
	}
	st := s2.Status()
	if len(st.Peers) != 2 || st.Peers[0].Name != "alice" || st.Peers[0].PublicKey != p.PublicKey || st.Peers[1].Address.String() != "100.88.0.3" {
		t.Fatalf("peers after restart: %+v", st.Peers)
	}
	if err := s2.Remove("alice"); err != nil {
		t.Fatal(err)
	}
	if err := s2.Remove("alice"); !errors.Is(err, ErrNoPeer) {
		t.Errorf("removing twice: got %v, want ErrNoPeer", err)
	}
	peers, err := loadPeers(filepath.Join(dir, "vpn", "peers.json"))
	if err != nil || len(peers) != 1 || peers[0].Name != "bob" {
		t.Fatalf("saved after remove: %+v %v", peers, err)
	}
	// bob's tunnel address may reach both devices and nothing else.
	if !s2.filter.allows(peers[0].Address, netip.MustParseAddr("198.19.0.65")) || s2.filter.allows(peers[0].Address, netip.MustParseAddr("198.19.0.1")) {
		t.Error("bob's access list is wrong")
	}
}

// TestExpiryLeavesTheDevice: once a peer's expiry passes, Run takes it
// out of WireGuard and the filter, without a restart.
func TestExpiryLeavesTheDevice(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	s := newTestServer(t, t.TempDir(), func() time.Time { return clock() })
	p, _, err := s.Add(AddRequest{Name: "temp", Allow: []string{"dvr1"}, Expires: now.Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if !s.filter.allows(p.Address, netip.MustParseAddr("198.19.0.64")) || !strings.Contains(ipcGet(t, s), p.PublicKey.hex()) {
		t.Fatal("the new peer is not live")
	}
	s.mu.Lock()
	now = now.Add(2 * time.Minute)
	s.syncLocked()
	s.mu.Unlock()
	if s.filter.allows(p.Address, netip.MustParseAddr("198.19.0.64")) || strings.Contains(ipcGet(t, s), p.PublicKey.hex()) {
		t.Fatal("the expired peer is still live")
	}
	if st := s.Status(); len(st.Peers) != 1 || !st.Peers[0].Expired {
		t.Fatalf("status: %+v, want the peer listed as expired", st.Peers)
	}
}

func ipcGet(t *testing.T, s *Server) string {
	out, err := s.dev.IpcGet()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestAddRefuses(t *testing.T) {
	s := newTestServer(t, t.TempDir(), nil)
	for _, tc := range []struct {
		req  AddRequest
		want string
	}{
		{AddRequest{Name: "Bad Name", Allow: []string{"dvr1"}}, "name"},
		{AddRequest{Name: "a"}, "allow"},
		{AddRequest{Name: "a", Allow: []string{"nvr9"}}, `"nvr9" is not a device`},
		{AddRequest{Name: "a", Allow: []string{"dvr1"}, Expires: time.Now().Add(-time.Hour)}, "past"},
		{AddRequest{Name: "a", Allow: []string{"dvr1"}, Endpoint: "x\nDNS = 1.1.1.1"}, "endpoint"},
		{AddRequest{Name: "a", Allow: []string{"dvr1"}, Endpoint: "[::1\n]:5"}, "endpoint"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			_, _, err := s.Add(tc.req)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error about %q", err, tc.want)
			}
		})
	}
}

func TestParseExpiry(t *testing.T) {
	now := time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Time
		err  string
	}{
		{"", time.Time{}, ""},
		{"never", time.Time{}, ""},
		{"30d", now.Add(30 * 24 * time.Hour), ""},
		{"12h", now.Add(12 * time.Hour), ""},
		{"2w", now.Add(14 * 24 * time.Hour), ""},
		{"2027-01-31", time.Date(2027, 1, 31, 23, 59, 59, 0, time.UTC), ""},
		{"2026-12-06T04:00:00Z", now.Add(time.Hour), ""},
		{"2020-01-01", time.Time{}, "past"},
		{"0d", time.Time{}, "use a duration"},
		{"5y", time.Time{}, "use a duration"},
		{"99999w", time.Time{}, "ten years"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseExpiry(tc.in, now)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v, %v; want an error with %q", got, err, tc.err)
				}
				return
			}
			if err != nil || !got.Equal(tc.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

// FuzzAddRequest: what the API and the CLI pass to Add either makes a
// peer whose config has exactly the lines wg-quick expects, or is
// refused.
func FuzzAddRequest(f *testing.F) {
	f.Add("alice", "dvr1", "", "198.18.0.1")
	f.Add("bob", "dvr1,dvr2", "30d", "cams.example.org:443")
	f.Add("x", "dvr1", "", "a\n[Peer]")
	dir := f.TempDir()
	s, err := New(Config{StateDir: dir, AnyPort: true}, testConfig())
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()
	f.Fuzz(func(t *testing.T, name, allow, expires, endpoint string) {
		exp, err := ParseExpiry(expires, time.Now())
		if err != nil {
			return
		}
		_, conf, err := s.Add(AddRequest{Name: name, Allow: strings.Split(allow, ","), Expires: exp, Endpoint: endpoint})
		if err != nil {
			return
		}
		defer s.Remove(name)
		if n := strings.Count(conf, "\n"); n != 9 {
			t.Fatalf("config has %d lines, want 9:\n%s", n, conf)
		}
	})
}
