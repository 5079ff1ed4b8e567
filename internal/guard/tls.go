package guard

import (
	"github.com/camgate/camgate/internal/certs"

	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"

	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/store"
)

// TLS termination: remote clients speak TLS to camgate, camgate speaks
// plain HTTP (or RTSP) to the device. TLS 1.2 is the minimum; TLS 1.2
// suites are ECDHE with AEAD only (TLS 1.3's are all AEAD and fixed).
// Only http/1.1 is offered in ALPN: the guard reads HTTP/1.x.

// tlsSuites are the TLS 1.2 cipher suites offered, strongest first: the
// Mozilla "intermediate" list minus DHE.
var tlsSuites = [...]uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// Self-signed certificate settings.
const (
	selfSignedValidity = 2 * 365 * 24 * time.Hour
	// selfSignedRenew: a kept certificate closer than this to expiry is
	// replaced.
	selfSignedRenew = 30 * 24 * time.Hour
	// certRecheck is how often files given in cert_file/key_file are
	// checked for a renewed certificate.
	certRecheck = 10 * time.Second
)

func baseTLS(r *config.Rule) *tls.Config {
	c := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		CipherSuites: tlsSuites[:],
	}
	if r.GuardService() != config.ServiceRTSP {
		c.NextProtos = []string{"http/1.1"}
	}
	return c
}

// tlsConfig builds a rule's server TLS config: certificate files, ACME,
// or a self-signed certificate kept in the state directory.
func (p *Policy) tlsConfig(r *config.Rule) (*tls.Config, error) {
	t := r.TLS
	c := baseTLS(r)
	switch {
	case t.ACMEDomain != "":
		m := &autocert.Manager{
			Prompt:     autocert.AcceptTOS,
			HostPolicy: autocert.HostWhitelist(t.ACMEDomain),
			Email:      t.ACMEEmail,
		}
		if p.stateDir != "" {
			m.Cache = autocert.DirCache(filepath.Join(p.stateDir, "acme"))
		}
		if t.ACMEDirectory != "" {
			m.Client = &acme.Client{DirectoryURL: t.ACMEDirectory}
		}
		c.GetCertificate = m.GetCertificate
		c.NextProtos = append(c.NextProtos, acme.ALPNProto)
		p.log.Info("TLS certificate from ACME (TLS-ALPN-01 on this rule's port; it must be reachable as 443 from the internet)",
			"rule", r.Name, "domain", t.ACMEDomain)
	case t.CertFile != "":
		cf := &certFiles{cert: t.CertFile, key: t.KeyFile, log: p.log, now: p.now}
		if err := cf.load(); err != nil {
			return nil, err
		}
		c.GetCertificate = cf.get
	default:
		cert, path, err := p.selfSigned(r)
		if err != nil {
			return nil, err
		}
		c.Certificates = []tls.Certificate{cert}
		sum := sha256.Sum256(cert.Certificate[0])
		p.log.Info("TLS with a self-signed certificate; give clients this file to trust, or check the fingerprint",
			"rule", r.Name, "cert", path, "sha256", hex.EncodeToString(sum[:]))
	}
	return c, nil
}

// certFiles serves a certificate from files and picks up renewals.
type certFiles struct {
	cert, key string
	log       *slog.Logger
	now       func() time.Time

	mu      sync.Mutex // guards following
	cur     *tls.Certificate
	stamps  [2]fileStamp
	checked time.Time
}

func (cf *certFiles) load() error {
	c, err := tls.LoadX509KeyPair(cf.cert, cf.key)
	if err != nil {
		return fmt.Errorf("load certificate %s and key %s: %w", cf.cert, cf.key, err)
	}
	cf.cur = &c
	cf.stamps = [2]fileStamp{stampOf(cf.cert), stampOf(cf.key)}
	cf.checked = cf.now()
	return nil
}

func (cf *certFiles) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	cf.mu.Lock()
	defer cf.mu.Unlock()
	if now := cf.now(); now.Sub(cf.checked) >= certRecheck {
		cf.checked = now
		if [2]fileStamp{stampOf(cf.cert), stampOf(cf.key)} != cf.stamps {
			old := cf.cur
			if err := cf.load(); err != nil {
				cf.cur = old
				cf.log.Error("cannot reload the TLS certificate; keeping the previous one", "err", err)
			} else {
				cf.log.Info("TLS certificate reloaded", "cert", cf.cert)
			}
		}
	}
	return cf.cur, nil
}

// selfSigned returns the rule's self-signed certificate, generating it if
// there is none, it expires soon, or it lacks a name asked for in
// tls.names. It is kept in <state>/tls/<rule>.crt and .key.
func (p *Policy) selfSigned(r *config.Rule) (tls.Certificate, string, error) {
	names := r.TLS.Names.List()
	explicit := len(names) > 0
	if !explicit {
		names = p.defaultNames()
	}
	var certPath, keyPath string
	if p.stateDir != "" {
		dir := filepath.Join(p.stateDir, "tls")
		certPath, keyPath = filepath.Join(dir, r.Name+".crt"), filepath.Join(dir, r.Name+".key")
		if c, err := tls.LoadX509KeyPair(certPath, keyPath); err == nil {
			leaf, err := x509.ParseCertificate(c.Certificate[0])
			if err == nil && p.now().Add(selfSignedRenew).Before(leaf.NotAfter) && (!explicit || covers(leaf, names)) {
				return c, certPath, nil
			}
		}
	}
	certPEM, keyPEM, err := certs.SelfSigned("camgate "+r.Name, names, p.now(), selfSignedValidity)
	if err != nil {
		return tls.Certificate{}, "", err
	}
	if p.stateDir != "" {
		if err := os.MkdirAll(filepath.Dir(certPath), 0o700); err != nil {
			return tls.Certificate{}, "", err
		}
		if err := store.WriteFile(keyPath, keyPEM, 0o600); err != nil {
			return tls.Certificate{}, "", err
		}
		if err := store.WriteFile(certPath, certPEM, 0o644); err != nil {
			return tls.Certificate{}, "", err
		}
		p.log.Info("generated a self-signed TLS certificate", "rule", r.Name, "cert", certPath, "names", names)
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	return c, certPath, err
}

// defaultNames are the self-signed certificate's names when tls.names is
// not set: the host name, localhost, this host's addresses and the
// configured public_ip.
func (p *Policy) defaultNames() []string {
	names := []string{"localhost"}
	if h, err := os.Hostname(); err == nil && h != "" {
		names = append(names, h)
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if pn, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(pn.IP); ok && !ip.Unmap().IsLinkLocalUnicast() {
					names = append(names, ip.Unmap().String())
				}
			}
		}
	}
	p.mu.Lock()
	if p.publicIP != "" {
		names = append(names, p.publicIP)
	}
	p.mu.Unlock()
	slices.Sort(names)
	return slices.Compact(names)
}

// covers reports whether the certificate names every entry of names.
func covers(leaf *x509.Certificate, names []string) bool {
	for _, n := range names {
		if a, err := netip.ParseAddr(n); err == nil {
			if !slices.ContainsFunc(leaf.IPAddresses, func(ip net.IP) bool {
				b, _ := netip.AddrFromSlice(ip)
				return b.Unmap() == a.Unmap()
			}) {
				return false
			}
		} else if !slices.ContainsFunc(leaf.DNSNames, func(d string) bool { return strings.EqualFold(d, n) }) {
			return false
		}
	}
	return true
}
