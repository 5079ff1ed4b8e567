package guard

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/certs"
	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/forward"
)

func tlsRule(t config.TLS) config.Rule {
	t.Mode = "terminate"
	return config.Rule{Name: "https", TLS: t, Guard: config.Guard{Auth: true}}
}

func httpsGet(t *testing.T, addr string, roots *x509.CertPool, name string) (string, error) {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: name}}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	req, _ := http.NewRequest("GET", "https://"+addr+"/ISAPI/System/deviceInfo", nil)
	req.Header.Set("Authorization", goodAuth)
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.Status + " " + string(b), nil
}

func pool(t *testing.T, pemFile string) *x509.CertPool {
	t.Helper()
	b, err := os.ReadFile(pemFile)
	if err != nil {
		t.Fatal(err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(b) {
		t.Fatal("no certificate in " + pemFile)
	}
	return p
}

func TestTLSSelfSigned(t *testing.T) {
	d := startDevice(t)
	dir := t.TempDir()
	p := newPolicy(t, nil, dir)
	addr := startRule(t, p, tlsRule(config.TLS{}), d.addr)
	certFile := filepath.Join(dir, "tls", "https.crt")
	got, err := httpsGet(t, addr, pool(t, certFile), "127.0.0.1")
	if err != nil || !strings.Contains(got, "200 OK <ok>/ISAPI/System/deviceInfo</ok>") {
		t.Fatalf("got %q %v, want the device's answer over TLS", got, err)
	}
	// Old protocol versions are refused.
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
		c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MinVersion: v, MaxVersion: v})
		if err == nil {
			c.Close()
			t.Fatalf("TLS version %x: handshake succeeded, want refused", v)
		}
	}
	// Weak TLS 1.2 suites are not offered.
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12,
		CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_RSA_WITH_AES_128_GCM_SHA256}})
	if err == nil {
		c.Close()
		t.Fatal("CBC / RSA key exchange: handshake succeeded, want refused")
	}
	c, err = tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	if np := c.ConnectionState().NegotiatedProtocol; np != "http/1.1" {
		t.Fatalf("ALPN: got %q, want http/1.1 (the guard reads HTTP/1.x only)", np)
	}
	c.Close()
	// The server counts a failed handshake after the client has given up
	// on it, so the count may trail the client by a moment.
	deadline := time.Now().Add(2 * time.Second)
	for {
		cs, _ := p.Counters("https")
		if cs.TLSErrors >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("got %d TLS errors counted, want 3", cs.TLSErrors)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// The certificate is kept: a reload or a restart serves the same one.
	before, _ := os.ReadFile(certFile)
	p2 := newPolicy(t, nil, dir)
	r := tlsRule(config.TLS{})
	r.InternalIP, r.ExternalPort = "127.0.0.1", config.PortRange{First: 80, Last: 80}
	if _, _, err := p2.Hooks(&r); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(certFile); !bytes.Equal(before, after) {
		t.Fatal("the self-signed certificate was regenerated")
	}
	// Explicit names that the kept certificate lacks make a new one.
	r.TLS.Names = "cam.example.org,203.0.113.7"
	if _, _, err := p2.Hooks(&r); err != nil {
		t.Fatal(err)
	}
	leaf := readLeaf(t, certFile)
	if !slices.Contains(leaf.DNSNames, "cam.example.org") || len(leaf.IPAddresses) != 1 || leaf.IPAddresses[0].String() != "203.0.113.7" {
		t.Fatalf("got names %v %v", leaf.DNSNames, leaf.IPAddresses)
	}
}

func readLeaf(t *testing.T, file string) *x509.Certificate {
	t.Helper()
	c, err := tls.LoadX509KeyPair(file, strings.TrimSuffix(file, ".crt")+".key")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}

func TestTLSCertFiles(t *testing.T) {
	d := startDevice(t)
	clock := newClock()
	dir := t.TempDir()
	write := func(name string) {
		cert, key, err := certs.SelfSigned("camgate files", []string{name, "127.0.0.1"}, time.Now(), selfSignedValidity)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, "c.pem"), cert, 0o600)
		os.WriteFile(filepath.Join(dir, "k.pem"), key, 0o600)
	}
	write("one.example")
	p := newPolicy(t, clock, "")
	addr := startRule(t, p, tlsRule(config.TLS{CertFile: filepath.Join(dir, "c.pem"), KeyFile: filepath.Join(dir, "k.pem")}), d.addr)
	if got, err := httpsGet(t, addr, pool(t, filepath.Join(dir, "c.pem")), "one.example"); err != nil || !strings.Contains(got, "200 OK") {
		t.Fatalf("got %q %v", got, err)
	}
	// A renewed certificate is picked up without a reload.
	time.Sleep(10 * time.Millisecond) // a new mtime
	write("two.example")
	clock.Add(certRecheck)
	if got, err := httpsGet(t, addr, pool(t, filepath.Join(dir, "c.pem")), "two.example"); err != nil || !strings.Contains(got, "200 OK") {
		t.Fatalf("after renewal: got %q %v", got, err)
	}

	// Missing files stop the rule from starting, with the file named.
	r := tlsRule(config.TLS{CertFile: "/nonexistent/c.pem", KeyFile: "/nonexistent/k.pem"})
	r.InternalIP, r.ExternalPort = "127.0.0.1", config.PortRange{First: 443, Last: 443}
	if _, _, err := p.Hooks(&r); err == nil || !strings.Contains(err.Error(), "/nonexistent/c.pem") {
		t.Fatalf("got %v, want an error naming the file", err)
	}
}

// TestTLSACMEConfig checks the ACME wiring without the network: the
// rule starts, offers the TLS-ALPN-01 protocol, and would keep its
// account and certificates in the state directory.
func TestTLSACMEConfig(t *testing.T) {
	p := newPolicy(t, nil, t.TempDir())
	r := tlsRule(config.TLS{ACMEDomain: "cam.example.org", ACMEEmail: "owner@example.org"})
	r.InternalIP, r.ExternalPort = "127.0.0.1", config.PortRange{First: 443, Last: 443}
	r.InternalPort = config.PortRange{First: 80, Last: 80}
	if err := config.ValidateRule(&r); err != nil {
		t.Fatal(err)
	}
	tc, err := p.tlsConfig(&r)
	if err != nil {
		t.Fatal(err)
	}
	if tc.GetCertificate == nil || !slices.Contains(tc.NextProtos, "acme-tls/1") || tc.MinVersion != tls.VersionTLS12 {
		t.Fatalf("got %+v, want GetCertificate, acme-tls/1 and TLS 1.2+", tc)
	}
	// A name other than the configured domain gets no certificate (and so
	// no ACME order).
	if _, err := tc.GetCertificate(&tls.ClientHelloInfo{ServerName: "other.example.org"}); err == nil {
		t.Fatal("certificate for another name: got one, want refused by the host policy")
	}
}

// TestTLSRuleServesPlainFromTunnel: a connection given to Rule.Serve (a
// VPN peer that reached the device's own port) speaks the device's plain
// HTTP, so a rule that terminates TLS skips the handshake for it, and the
// rule's HTTP guard still judges its requests: a good one is answered, an
// exploit is blocked before the device sees it.
func TestTLSRuleServesPlainFromTunnel(t *testing.T) {
	d := startDevice(t)
	p := newPolicy(t, nil, t.TempDir())
	r := tlsRule(config.TLS{})
	r.InternalIP = d.addr.Addr().String()
	r.ExternalPort = config.PortRange{First: d.addr.Port(), Last: d.addr.Port()}
	if err := config.ValidateRule(&r); err != nil {
		t.Fatal(err)
	}
	admit, h, err := p.Hooks(&r)
	if err != nil {
		t.Fatal(err)
	}
	fr, err := forward.Bind(forward.Spec{
		Name: r.Name, Target: d.addr.Addr().String(), TargetPorts: []uint16{d.addr.Port()}, TCP: true,
		Admit: admit, Handler: h, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	fr.Start()
	t.Cleanup(fr.Close)

	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ask := func(req string) string {
		t.Helper()
		peer, err := net.Dial("tcp4", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer peer.Close()
		acc, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		// Not a *net.TCPConn, as a tunnel's connection is not.
		go func() {
			done <- fr.Serve(struct{ net.Conn }{acc}, netip.MustParseAddrPort("100.88.0.2:40000"), d.addr.Port())
		}()
		peer.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(peer, req); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(peer), nil)
		if err != nil {
			t.Fatalf("%q: %v", req, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		peer.Close()
		if err := <-done; err != nil {
			t.Fatalf("Serve: %v", err)
		}
		return resp.Status + " " + string(b)
	}
	if got := ask("GET /ISAPI/System/deviceInfo HTTP/1.1\r\nHost: dvr\r\nAuthorization: " + goodAuth + "\r\nConnection: close\r\n\r\n"); !strings.Contains(got, "200 OK <ok>/ISAPI/System/deviceInfo</ok>") {
		t.Fatalf("plain request through the TLS rule's Serve: got %q, want the device's answer", got)
	}
	if got := ask("GET /system/deviceInfo?auth=YWRtaW46MTEK HTTP/1.1\r\nHost: dvr\r\nConnection: close\r\n\r\n"); !strings.HasPrefix(got, "403") {
		t.Fatalf("CVE-2017-7921 through the TLS rule's Serve: got %q, want 403", got)
	}
	d.mu.Lock()
	paths := slices.Clone(d.paths)
	d.mu.Unlock()
	if slices.ContainsFunc(paths, func(s string) bool { return strings.Contains(s, "auth=") }) {
		t.Fatalf("the exploit reached the device: %q", paths)
	}
	if cs, _ := p.Counters("https"); cs.TLSErrors != 0 {
		t.Fatalf("%d TLS errors: the served connections were made to speak TLS", cs.TLSErrors)
	}
}
