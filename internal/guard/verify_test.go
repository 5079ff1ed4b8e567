package guard

import (
	"bytes"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/config"
)

func md5hex(parts ...string) string {
	s := md5.Sum([]byte(strings.Join(parts, ":")))
	return hex.EncodeToString(s[:])
}

// digestField builds the Authorization value curl sends for user:pass.
func digestField(user, pass, method, uri string) string {
	realm, nonce, cnonce, nc := "IP Camera(21388)", "4e5468694e7a42", "ZjQ2OTI5", "00000001"
	resp := md5hex(md5hex(user, realm, pass), nonce, nc, cnonce, "auth", md5hex(method, uri))
	return fmt.Sprintf(`Digest username="%s", realm="%s", nonce="%s", uri="%s", cnonce="%s", nc=%s, qop=auth, response="%s"`,
		user, realm, nonce, uri, cnonce, nc, resp)
}

func TestCredentialsCheck(t *testing.T) {
	c := Credentials{User: "admin", Password: "Sim-Pass-1234"}
	basic := func(up string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(up)) }
	rfc2069 := func(pass string) string {
		r := md5hex(md5hex("admin", "r", pass), "n", md5hex("DESCRIBE", "rtsp://h/x"))
		return fmt.Sprintf(`Digest username="admin", realm="r", nonce="n", uri="rtsp://h/x", response="%s"`, r)
	}
	tests := []struct {
		name, method, field string
		want                AuthCheck
	}{
		{"digest right", "GET", digestField("admin", "Sim-Pass-1234", "GET", "/ISAPI/System/deviceInfo"), AuthRight},
		{"digest wrong", "GET", digestField("admin", "wrong-guess", "GET", "/ISAPI/System/deviceInfo"), AuthWrong},
		{"digest other method", "PUT", digestField("admin", "Sim-Pass-1234", "GET", "/x"), AuthWrong},
		{"digest other user", "GET", digestField("operator", "x", "GET", "/x"), AuthUnknown},
		{"rtsp digest without qop", "DESCRIBE", rfc2069("Sim-Pass-1234"), AuthRight},
		{"rtsp digest without qop wrong", "DESCRIBE", rfc2069("guess"), AuthWrong},
		{"auth-int", "GET", strings.Replace(digestField("admin", "x", "GET", "/x"), "qop=auth", "qop=auth-int", 1), AuthUnknown},
		{"unknown algorithm", "GET", digestField("admin", "x", "GET", "/x") + ", algorithm=SHA-512-256", AuthUnknown},
		{"userhash", "GET", digestField("admin", "x", "GET", "/x") + ", userhash=true", AuthUnknown},
		{"duplicate parameter", "GET", digestField("admin", "Sim-Pass-1234", "GET", "/x") + `, response="00"`, AuthUnknown},
		{"basic right", "GET", basic("admin:Sim-Pass-1234"), AuthRight},
		{"basic wrong", "GET", basic("admin:Sim-Pass-123"), AuthWrong},
		{"basic other user", "GET", basic("guest:Sim-Pass-1234"), AuthUnknown},
		{"basic garbage", "GET", "Basic !!!", AuthUnknown},
		{"bearer", "GET", "Bearer abc", AuthUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := c.Check(tt.method, tt.field); got != tt.want {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
	if got := (Credentials{}).Check("GET", basic("admin:")); got != AuthUnknown {
		t.Fatalf("zero credentials: got %v, want unknown", got)
	}
}

func TestDropAuthorization(t *testing.T) {
	m, err := parse("GET /x HTTP/1.1\r\nHost: h\r\nauthorization: Basic YQ==\r\nAccept: */*\r\n\r\n", false, true)
	if err != nil {
		t.Fatal(err)
	}
	m.dropAuthorization()
	if want := "GET /x HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n"; string(m.head) != want || m.authorization {
		t.Fatalf("got %q, want %q", m.head, want)
	}
}

// TestAttackSeeds: issue 14's parser cases. Every one is refused with 400
// except an upper-case CHUNKED, which reaches the device as exactly one
// "Transfer-Encoding: chunked".
func TestAttackSeeds(t *testing.T) {
	for name, data := range seeds(t, "attack/*.http") {
		t.Run(filepath.Base(name), func(t *testing.T) {
			out, msgs, err := walk(data, false, true)
			if strings.HasSuffix(name, "te-upper-case.http") {
				if err != nil || len(msgs) != 1 {
					t.Fatalf("got %v, want it forwarded", err)
				}
				if bytes.Count(out, []byte("Transfer-Encoding")) != 1 || !bytes.Contains(out, []byte("\r\nTransfer-Encoding: chunked\r\n")) {
					t.Fatalf("forwarded %q, want one Transfer-Encoding: chunked", out)
				}
				return
			}
			var pe *parseError
			if !errors.As(err, &pe) || pe.status != 400 || len(msgs) != 0 {
				t.Fatalf("got %d messages, %v; want a 400 refusal", len(msgs), err)
			}
		})
	}
}

func FuzzCredentials(f *testing.F) {
	f.Add("GET", digestField("admin", "Sim-Pass-1234", "GET", "/ISAPI/System/deviceInfo"))
	f.Add("DESCRIBE", `Digest username="admin", realm="r", nonce="n", uri="rtsp://h/x", response="x"`)
	f.Add("GET", "Basic YWRtaW46U2ltLVBhc3MtMTIzNA==")
	f.Add("GET", `Digest a="\"", b=, ,,c="x\\"`)
	c := Credentials{User: "admin", Password: "Sim-Pass-1234"}
	f.Fuzz(func(t *testing.T, method, field string) {
		v := c.Check(method, field)
		if v == AuthRight && !strings.Contains(field, "response") && !strings.HasPrefix(strings.ToLower(strings.TrimSpace(field)), "basic") {
			t.Fatalf("%q judged right without an answer", field)
		}
		if p, ok := parseAuthParams(field); ok && len(p) == 0 {
			t.Fatalf("%q: ok with no parameters", field)
		}
	})
}

// passwords is a PasswordSource for tests.
type passwords map[string]string

func (p passwords) Get(name string) (string, error) {
	if pw, ok := p[name]; ok {
		return pw, nil
	}
	return "", fmt.Errorf("password of device %q: none stored", name)
}

// TestVerifiedLogins: with the device's password stored, a wrong answer
// reaches the fake device without its Authorization (it counts nothing),
// the source is still banned after max_failures, and the right answer
// passes; a device the config does not name is left to its own verdicts.
func TestVerifiedLogins(t *testing.T) {
	d := startDevice(t)
	p := newPolicy(t, nil, "")
	p.passwords = passwords{"cam": "good"}
	p.SetGlobal(&config.Config{Version: 1, Devices: []config.Device{{Name: "cam", Address: d.addr.Addr().String()}}})
	addr := startRule(t, p, httpRule(config.Guard{Auth: true, MaxFailures: 3}), d.addr)
	get := func(from, auth string) string {
		c, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}).Dial("tcp", addr)
		if err != nil {
			return "dial: " + err.Error()
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "GET /ISAPI/System/deviceInfo HTTP/1.1\r\nHost: cam\r\nAuthorization: %s\r\nConnection: close\r\n\r\n", auth)
		b, _ := io.ReadAll(c)
		return string(b)
	}
	bad := "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:guess"))
	for i := 0; i < 2; i++ {
		if got := get("127.0.0.1", bad); !strings.Contains(got, " 401 ") || !strings.Contains(strings.ToLower(got), "www-authenticate") {
			t.Fatalf("wrong answer %d: got %q, want the device's challenge", i+1, clip([]byte(got)))
		}
	}
	// The third earns the ban: the connection is cut (or refused).
	if got := get("127.0.0.1", bad); strings.Contains(got, " 401 ") || strings.Contains(got, " 200 ") {
		t.Fatalf("third wrong answer: got %q, want it refused", clip([]byte(got)))
	}
	if n := d.failures.Load(); n != 0 {
		t.Fatalf("the device counted %d failures, want 0", n)
	}
	if len(p.Bans()) != 1 {
		t.Fatalf("got bans %v, want the guesser banned", p.Bans())
	}
	if got := get("127.0.0.2", goodAuth); !strings.Contains(got, "200 OK") {
		t.Fatalf("right answer: got %q", clip([]byte(got)))
	}
	// Another account: camgate cannot judge it; the device does.
	other := "Basic " + base64.StdEncoding.EncodeToString([]byte("operator:x"))
	if got := get("127.0.0.3", other); !strings.Contains(got, " 401 ") || d.failures.Load() != 1 {
		t.Fatalf("another account: got %q, device failures %d, want 401 and 1", clip([]byte(got)), d.failures.Load())
	}
}
