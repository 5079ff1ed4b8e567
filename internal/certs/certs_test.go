package certs

import (
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"
)

func TestSelfSigned(t *testing.T) {
	now := time.Now()
	certPEM, keyPEM, err := SelfSigned("camgate test", []string{"localhost", "127.0.0.1", "::1", "dvr.example"}, now, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(pair.Certificate[0])
	for _, host := range []string{"localhost", "127.0.0.1", "::1", "dvr.example"} {
		if err := leaf.VerifyHostname(host); err != nil {
			t.Errorf("certificate does not name %s: %v", host, err)
		}
	}
	if leaf.NotAfter.Sub(now) < 23*time.Hour || leaf.Subject.CommonName != "camgate test" {
		t.Errorf("got %s until %v, want 24 h for camgate test", leaf.Subject.CommonName, leaf.NotAfter)
	}
	if _, _, err := SelfSigned("x", nil, now, time.Hour); err == nil {
		t.Error("a certificate without names was made")
	}
}
