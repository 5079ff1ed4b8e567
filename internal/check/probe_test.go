package check

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// serve accepts connections on a fresh 127.0.0.1 port and hands each to
// fn, until the test ends.
func serve(t *testing.T, fn func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				fn(c)
			}()
		}
	}()
	return ln.Addr().String()
}

// httpAnswer reads one request and writes a canned answer.
func httpAnswer(answer string) func(net.Conn) {
	return func(c net.Conn) {
		http.ReadRequest(bufio.NewReader(c))
		io.WriteString(c, answer)
	}
}

const hikRoot = "HTTP/1.1 302 Found\r\nServer: App-webs/\r\nLocation: /doc/page/login.asp?_1\r\nContent-Length: 0\r\n\r\n"

// closedPort returns an address on which nothing listens.
func closedPort(t *testing.T, network string) string {
	t.Helper()
	if network == "udp" {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		a := pc.LocalAddr().String()
		pc.Close()
		return a
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().String()
	ln.Close()
	return a
}

func selfSigned(t *testing.T, cn string, notBefore, notAfter time.Time) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func tlsServe(t *testing.T, cert tls.Certificate, inner func(net.Conn)) string {
	return serve(t, func(c net.Conn) {
		tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}})
		if tc.Handshake() != nil {
			return
		}
		inner(tc)
	})
}

func TestProbe(t *testing.T) {
	now := time.Now()
	valid := selfSigned(t, "192.0.2.64", now.Add(-time.Hour), now.Add(365*24*time.Hour))
	expired := selfSigned(t, "old-dvr", now.Add(-3*365*24*time.Hour), now.Add(-24*time.Hour))
	tests := []struct {
		name   string
		kind   Kind
		addr   string
		status Status
		reason string // substring of the summary (or of the dial error words)
	}{
		{"http hikvision", KindHTTP, serve(t, httpAnswer(hikRoot)), OK, "looks like a Hikvision web server (Server: App-webs/)"},
		{"http other", KindHTTP, serve(t, httpAnswer("HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 2\r\n\r\nhi")), OK, "HTTP 200 (Server: nginx; no Hikvision markers)"},
		{"http realm", KindHTTP, serve(t, httpAnswer("HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Digest realm=\"IP Camera(21388)\", nonce=\"x\"\r\nContent-Length: 0\r\n\r\n")), OK, `realm "IP Camera(21388)"`},
		{"http speaks rtsp", KindHTTP, serve(t, httpAnswer("RTSP/1.0 400 Bad Request\r\n\r\n")), Fail, "no HTTP answer"},
		{"http silent close", KindHTTP, serve(t, func(c net.Conn) { http.ReadRequest(bufio.NewReader(c)) }), Fail, "closed without an answer"},
		{"http refused", KindHTTP, closedPort(t, "tcp"), Fail, "connection refused"},
		{"https ok", KindHTTPS, tlsServe(t, valid, httpAnswer(hikRoot)), OK, "CN=192.0.2.64 valid until"},
		{"https expired", KindHTTPS, tlsServe(t, expired, httpAnswer(hikRoot)), Fail, "certificate (CN=old-dvr) expired"},
		{"https on plain http", KindHTTPS, serve(t, httpAnswer(hikRoot)), Fail, "TLS handshake failed"},
		{"tls only", KindTLS, tlsServe(t, valid, func(net.Conn) {}), OK, "TLS handshake OK, certificate CN=192.0.2.64"},
		{"rtsp 401", KindRTSP, serve(t, httpAnswer("RTSP/1.0 401 Unauthorized\r\nCSeq: 1\r\nWWW-Authenticate: Digest realm=\"IP Camera(1)\"\r\n\r\n")), OK, "401 (it wants a password"},
		{"rtsp 200", KindRTSP, serve(t, httpAnswer("RTSP/1.0 200 OK\r\nCSeq: 1\r\nPublic: OPTIONS, DESCRIBE\r\n\r\n")), OK, "200 OK"},
		{"rtsp on http", KindRTSP, serve(t, httpAnswer(hikRoot)), Fail, "not RTSP"},
		{"sdk open", KindSDK, serve(t, func(net.Conn) {}), OK, "proprietary"},
		{"sdk refused", KindSDK, closedPort(t, "tcp"), Fail, "connection refused"},
		{"ssh banner", KindSSH, serve(t, func(c net.Conn) { io.WriteString(c, "SSH-2.0-dropbear\r\n") }), OK, "SSH-2.0-dropbear"},
		{"udp refused", KindUDP, closedPort(t, "udp"), Fail, "port unreachable"},
		{"rtp", KindRTP, "127.0.0.1:9", Unknown, "cannot be probed"},
		{"discovery", KindDiscovery, "127.0.0.1:37020", Unknown, "multicast"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := probe(context.Background(), tt.kind, From{}.dialer(), tt.addr, 2*time.Second, now)
			text := o.summary
			if o.dialErr != nil {
				text = describeDial(o.dialErr).words
			}
			if o.status != tt.status || !strings.Contains(text, tt.reason) {
				t.Errorf("got %s %q, want %s containing %q", o.status, text, tt.status, tt.reason)
			}
		})
	}
}

func TestProbeUDPAnswers(t *testing.T) {
	echo, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		b := make([]byte, 1500)
		for {
			n, a, err := echo.ReadFrom(b)
			if err != nil {
				return
			}
			echo.WriteTo(append(b[:n], "pong"...), a)
		}
	}()
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	for _, tt := range []struct {
		addr string
		want Status
	}{{echo.LocalAddr().String(), OK}, {silent.LocalAddr().String(), Unknown}} {
		o := probe(context.Background(), KindUDP, From{}.dialer(), tt.addr, 3*time.Second, time.Now())
		if o.status != tt.want {
			t.Errorf("%s: got %s (%s), want %s", tt.addr, o.status, o.summary, tt.want)
		}
	}
}

func TestHikvisionMarkers(t *testing.T) {
	tests := []struct {
		name   string
		header http.Header
		body   string
		want   int
	}{
		{"app-webs", http.Header{"Server": {"App-webs/"}}, "", 1},
		{"old dvr", http.Header{"Server": {"DVRDVS-Webs"}}, `<script>location.href="/doc/page/login.asp"</script>`, 2},
		{"redirect", http.Header{"Location": {"http://1.2.3.4/doc/index.html"}}, "", 1},
		{"webserver alone", http.Header{"Server": {"webserver"}}, "", 1},
		{"nginx", http.Header{"Server": {"nginx/1.22"}}, "<h1>Welcome</h1>", 0},
		{"realm", http.Header{"Www-Authenticate": {`Digest qop="auth", realm="DS-7608NI-K2", nonce="a"`}}, "", 1},
		{"word", nil, "Copyright HIKVISION DIGITAL TECHNOLOGY", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := HikvisionMarkers(tt.header, []byte(tt.body))
			if len(got) != tt.want {
				t.Errorf("got %q, want %d markers", got, tt.want)
			}
		})
	}
}

func TestProbeHTTPBadGatewayIsNotTheDevice(t *testing.T) {
	for _, code := range []int{502, 504} {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			bufio.NewReader(c).ReadString('\n')
			fmt.Fprintf(c, "HTTP/1.1 %d Gateway Trouble\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", code)
		}()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		o := probeHTTP(c, ln.Addr().String(), "http")
		c.Close()
		ln.Close()
		if o.status != Fail || !strings.Contains(o.summary, "a proxy answered") {
			t.Errorf("HTTP %d: got %v %q, want a failure saying a proxy answered", code, o.status, o.summary)
		}
	}
}
