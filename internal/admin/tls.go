package admin

import (
	"github.com/camgate/camgate/internal/certs"

	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
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

// selfSigned makes a certificate for this host's names and addresses.
func selfSigned(now time.Time) (certPEM, keyPEM []byte, err error) {
	names := []string{"localhost", "127.0.0.1", "::1"}
	if h, err := os.Hostname(); err == nil && h != "" && !strings.ContainsAny(h, " _") {
		names = append(names, h, h+".local")
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && !ipn.IP.IsLinkLocalUnicast() {
				names = append(names, ipn.IP.String())
			}
		}
	}
	return certs.SelfSigned("camgate admin (self-signed)", names, now, selfSignedLifetime)
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
