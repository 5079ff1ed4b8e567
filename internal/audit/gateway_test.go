package audit

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/router"
)

func TestAdminFindings(t *testing.T) {
	const rule = "rules:\n  - {name: cam, external_port: 10554, internal_ip: 192.168.1.64, internal_port: 554, guard: auth}\n"
	tests := []struct {
		name  string
		admin string
		extra string
		want  []string
	}{
		{"default (https on every interface)", "", "",
			[]string{"gateway-admin-all-interfaces low admin UI"}},
		{"https on the LAN", "admin: {listen: 'https://192.168.1.10:8443'}\n", "", nil},
		{"plain http on the LAN", "admin: {listen: 'http://192.168.1.10:8080', insecure_http: true}\n", "",
			[]string{"gateway-admin-plain-http high admin UI"}},
		{"plain http on loopback", "admin: {listen: 'http://127.0.0.1:8080'}\n", "", nil},
		{"plain http everywhere", "admin: {listen: 'http://0.0.0.0:8080', insecure_http: true}\n", "",
			[]string{"gateway-admin-all-interfaces low admin UI", "gateway-admin-plain-http high admin UI"}},
		{"public address", "admin: {listen: 'https://8.8.8.8:8443'}\n", "",
			[]string{"gateway-admin-exposed high admin UI"}},
		{"forwarded by a rule", "admin: {listen: 'https://127.0.0.1:8443'}\n", "  - {name: admin-fwd, external_port: 9443, internal_ip: 127.0.0.1, internal_port: 8443, allow: [10.0.0.0/8]}\n",
			[]string{"gateway-admin-exposed high admin UI"}},
		{"metrics public", "admin: {listen: 'https://192.168.1.10:8443', metrics_public: true}\n", "",
			[]string{"gateway-metrics-public low admin UI"}},
		{"admin off", "admin: {listen: 'off', metrics_public: true}\n", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := mustConfig(t, tt.admin+rule+tt.extra)
			var fs []Finding
			for _, f := range GatewayFindings(cfg, "", "", time.Now()) {
				if f.ID != IDPasswordPolicy {
					fs = append(fs, f)
				} else if f.Severity != Info {
					t.Errorf("password policy: got %s, want info", f.Severity)
				}
			}
			got := brief(fs)
			want := slices.Clone(tt.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("got %v, want %v", got, want)
			}
		})
	}
}

func writeCert(t *testing.T, path string, notAfter time.Time) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: filepath.Base(path)},
		NotBefore: notAfter.Add(-365 * 24 * time.Hour), NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Dir(path), 0o755)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestCertFindings(t *testing.T) {
	now := time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
	dir := t.TempDir()
	state := filepath.Join(dir, "camgate-state")
	writeCert(t, filepath.Join(state, "admin-cert.pem"), now.Add(-time.Hour))          // expired
	writeCert(t, filepath.Join(state, "tls", "dvr-web.pem"), now.Add(10*24*time.Hour)) // expiring
	writeCert(t, filepath.Join(state, "tls", "fresh.pem"), now.Add(300*24*time.Hour))  // fine
	os.WriteFile(filepath.Join(state, "admin-key.pem"), []byte("not read"), 0o600)
	writeCert(t, filepath.Join(dir, "certs", "rule.pem"), now.Add(-48*time.Hour))
	cfg := mustConfig(t, `admin: {listen: 'https://192.168.1.10:8443'}
rules:
  - {name: dvr-web, external_port: 443, internal_ip: 192.168.1.64, internal_port: 80, guard: auth, tls: {mode: terminate, cert_file: certs/rule.pem, key_file: certs/rule-key.pem}}
  - {name: gone, external_port: 444, internal_ip: 192.168.1.64, internal_port: 80, guard: auth, tls: {mode: terminate, cert_file: certs/missing.pem, key_file: certs/missing-key.pem}}
`)
	var got []string
	for _, f := range GatewayFindings(cfg, filepath.Join(dir, "camgate.yaml"), state, now) {
		if strings.HasPrefix(f.ID, "gateway-cert") {
			got = append(got, f.ID+" "+string(f.Severity)+" "+filepath.Base(strings.TrimPrefix(f.Subject, "certificate ")))
		}
	}
	slices.Sort(got)
	want := []string{
		"gateway-cert-expired high admin-cert.pem",
		"gateway-cert-expired high rule.pem",
		"gateway-cert-expiry medium dvr-web.pem",
		"gateway-cert-unreadable medium missing.pem",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func TestRouterFindings(t *testing.T) {
	cfg := mustConfig(t, `router: {mode: upnp}
rules:
  - {name: dvr-web, external_port: 8082, internal_ip: 192.168.1.64, guard: auth, router: true}
  - {name: media, protocol: udp, external_port: 10000-10001, internal_ip: 192.168.1.64, allow: [203.0.113.0/24]}
  - {name: off, external_port: 8000, internal_ip: 192.168.1.64, enabled: false}
`)
	local := netip.MustParseAddr("192.168.1.10")
	e := func(proto string, ext uint16, client string, desc string) router.Entry {
		return router.Entry{Protocol: proto, ExternalPort: ext, InternalClient: client, InternalPort: ext, Description: desc, Enabled: true}
	}
	tests := []struct {
		name    string
		entries []router.Entry
		want    []string
	}{
		{"only what the rules need", []router.Entry{e("TCP", 8082, "192.168.1.10", "camgate dvr-web"), e("UDP", 10001, "192.168.1.10", "camgate media")}, nil},
		{"a removed rule's mapping", []router.Entry{e("TCP", 8082, "192.168.1.10", "camgate dvr-web"), e("TCP", 8000, "192.168.1.10", "camgate off")},
			[]string{"router-extra-mappings medium router"}},
		{"another program on this host", []router.Entry{e("UDP", 3478, "192.168.1.10", "torrent")},
			[]string{"router-extra-mappings medium router"}},
		{"camgate prefix from another address", []router.Entry{e("TCP", 9999, "192.168.1.11", "camgate old")},
			[]string{"router-extra-mappings medium router"}},
		{"the device's own UPnP", []router.Entry{e("TCP", 80, "192.168.1.64", "DS-7204HQHI-K1 HTTP"), e("TCP", 8000, "192.168.1.64", "DS-7204HQHI-K1 SERVER")},
			[]string{"router-device-mapping high router", "router-device-mapping high router"}},
		{"someone else's mapping", []router.Entry{e("TCP", 3389, "192.168.1.50", "rdp")}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := brief(RouterFindings(cfg, local, tt.entries))
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}

	// Through Run: the router is asked only in router mode, and a
	// failure is an info finding.
	asked := 0
	c := Config{SkipDevices: true, Router: func(context.Context, *config.Config) (*router.Report, error) {
		asked++
		return nil, errors.New("no router answered")
	}}
	rep := Run(context.Background(), c, cfg)
	if asked != 1 || !slices.Contains(brief(rep.Findings), "router-not-inspected info router") {
		t.Errorf("asked %d times, findings %v; want one ask and router-not-inspected", asked, brief(rep.Findings))
	}
	cfg.Router.Mode = config.RouterOff
	Run(context.Background(), c, cfg)
	if asked != 1 {
		t.Error("the router was asked with router mode off")
	}
}

// TestAdminAllowRanked: an admin.allow that takes in public addresses is
// HIGH (issue 14); a LAN-only one is informational.
func TestAdminAllowRanked(t *testing.T) {
	tests := []struct {
		allow []string
		want  Severity
	}{
		{[]string{"0.0.0.0/0"}, High},
		{[]string{"203.0.113.7"}, High},
		{[]string{"2001:db8::/32"}, High},
		{[]string{"10.8.0.0/16", "fd00::/8"}, Info},
	}
	for _, tt := range tests {
		cfg := &config.Config{Version: 1, Admin: config.Admin{Allow: tt.allow}}
		var got Severity
		for _, f := range GatewayFindings(cfg, "", "", time.Now()) {
			if f.ID == IDAdminPublic || f.ID == IDAdminAllow {
				got = f.Severity
			}
		}
		if got != tt.want {
			t.Errorf("allow %v: got %q, want %q", tt.allow, got, tt.want)
		}
	}
}
