package sim

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"time"
)

// loadOrMakeCert loads the configured certificate, or makes a self-signed
// one like the device's factory certificate: issued to its own IP address,
// valid for ten years.
func (d *Device) loadOrMakeCert() error {
	if d.cfg.TLSCertFile != "" || d.cfg.TLSKeyFile != "" {
		cert, err := tls.LoadX509KeyPair(d.cfg.TLSCertFile, d.cfg.TLSKeyFile)
		if err != nil {
			return fmt.Errorf("tls certificate %s / key %s: %w", d.cfg.TLSCertFile, d.cfg.TLSKeyFile, err)
		}
		x, err := x509.ParseCertificate(cert.Certificate[0])
		if err != nil {
			return fmt.Errorf("tls certificate %s: %w", d.cfg.TLSCertFile, err)
		}
		d.cert, d.certX509 = cert, x
		return nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("tls key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 63))
	if err != nil {
		return fmt.Errorf("tls serial: %w", err)
	}
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	cn := "127.0.0.1"
	if d.cfg.Advertise.IsValid() {
		ips = append(ips, d.cfg.Advertise.AsSlice())
		cn = d.cfg.Advertise.String()
	}
	if l := d.cfg.listen(); !l.IsUnspecified() {
		ips = append(ips, l.AsSlice())
		if !d.cfg.Advertise.IsValid() {
			cn = l.String()
		}
	} else {
		// On the wildcard address the device answers on every local
		// address; name them all so clients that check the SAN work.
		for _, info := range d.ifaces {
			for _, p := range info.prefixes {
				ips = append(ips, p.Addr().AsSlice())
			}
		}
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"camgate sim"}, OrganizationalUnit: []string{d.id.Model}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           ips,
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("self-signed certificate: %w", err)
	}
	x, err := x509.ParseCertificate(der)
	if err != nil {
		return fmt.Errorf("self-signed certificate: %w", err)
	}
	d.cert = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: x}
	d.certX509 = x
	return nil
}

func (d *Device) tlsConfig() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{d.cert}, MinVersion: tls.VersionTLS12}
}
