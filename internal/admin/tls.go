package admin

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/store"
)

// The generated certificate and key in the state directory.
const (
	GeneratedCertFile = "admin-cert.pem"
	GeneratedKeyFile  = "admin-key.pem"
)

// selfSignedLifetime is long because nobody renews a self-signed
// certificate by hand; browsers warn about it either way, and pinning its
// fingerprint (logged at start) is what makes it safe.
const selfSignedLifetime = 5 * 365 * 24 * time.Hour

// CertPaths returns the certificate and key files the admin UI uses for
// a config: the configured ones (relative to the config file's directory)
// or the generated pair in the state directory.
func CertPaths(a config.Admin, configPath, stateDir string) (cert, key string, generated bool) {
	if a.CertFile != "" {
		rel := func(p string) string {
			if filepath.IsAbs(p) {
				return p
			}
			return filepath.Join(filepath.Dir(configPath), p)
		}
		return rel(a.CertFile), rel(a.KeyFile), false
	}
	return filepath.Join(stateDir, GeneratedCertFile), filepath.Join(stateDir, GeneratedKeyFile), true
}

// loadCertificate loads the admin certificate, generating the self-signed
// one when it is missing or about to expire.
func loadCertificate(certPath, keyPath string, generate bool, now time.Time) (tls.Certificate, bool, error) {
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err == nil && cert.Leaf != nil && now.Add(30*24*time.Hour).Before(cert.Leaf.NotAfter) {
		return cert, false, nil
	}
	if !generate {
		if err == nil {
			return cert, false, nil // the user's certificate, even if expiring: theirs to renew
		}
		return tls.Certificate{}, false, fmt.Errorf("admin certificate %s / %s: %w", certPath, keyPath, err)
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return tls.Certificate{}, false, fmt.Errorf("admin certificate %s: %w (delete it to have a new one generated)", certPath, err)
	}
	certPEM, keyPEM, err := selfSigned(now)
	if err != nil {
		return tls.Certificate{}, false, err
	}
	if err := store.WriteFile(keyPath, keyPEM, 0o600); err != nil {
		return tls.Certificate{}, false, err
	}
	if err := store.WriteFile(certPath, certPEM, 0o644); err != nil {
		return tls.Certificate{}, false, err
	}
	cert, err = tls.X509KeyPair(certPEM, keyPEM)
	return cert, true, err
}

// selfSigned makes an ECDSA P-256 certificate for this host's names and
// addresses.
func selfSigned(now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "camgate admin (self-signed)", Organization: []string{"camgate"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(selfSignedLifetime),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if h, err := os.Hostname(); err == nil && h != "" && !strings.ContainsAny(h, " _") {
		tmpl.DNSNames = append(tmpl.DNSNames, h, h+".local")
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && !ipn.IP.IsLinkLocalUnicast() {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ipn.IP)
			}
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("self-signed certificate: %w", err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), nil
}

// Fingerprint is the SHA-256 of a certificate, as browsers show it.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	parts := make([]string, len(sum))
	for i, b := range sum {
		parts[i] = strings.ToUpper(hex.EncodeToString([]byte{b}))
	}
	return strings.Join(parts, ":")
}
