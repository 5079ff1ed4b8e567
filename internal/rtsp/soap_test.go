package rtsp

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func soapMap() URLMap {
	return URLMap{Device: []string{"192.168.1.64"}, Host: "198.18.0.1", Port: func(p uint16) (uint16, bool) {
		switch p {
		case 80:
			return 8080, true
		case 554:
			return 10554, true
		}
		return 0, false
	}}
}

func TestRewriteSOAP(t *testing.T) {
	for _, tc := range []struct {
		file string
		want []string
	}{
		{"hikvision-onvif-getcapabilities.xml", []string{
			"<tt:XAddr>http://198.18.0.1:8080/onvif/device_service</tt:XAddr>",
			"<tt:XAddr>http://198.18.0.1:8080/onvif/Media</tt:XAddr>",
		}},
		{"hikvision-onvif-getstreamuri.xml", []string{
			"<tt:Uri>rtsp://198.18.0.1:10554/Streaming/Channels/101?transportmode=unicast&amp;profile=Profile_1</tt:Uri>",
		}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			in, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			out, err := RewriteSOAP(in, soapMap())
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !bytes.Contains(out, []byte(w)) {
					t.Errorf("missing %s in\n%s", w, out)
				}
			}
			if bytes.Contains(out, []byte("192.168.1.64")) {
				t.Errorf("the LAN address is still there:\n%s", out)
			}
		})
	}
	t.Run("not xml", func(t *testing.T) {
		in := []byte("<a><XAddr>http://192.168.1.64/x</XAddr>")
		if _, err := RewriteSOAP(in, soapMap()); err == nil {
			t.Fatal("got no error for a truncated document")
		}
	})
	t.Run("too deep", func(t *testing.T) {
		in := []byte(strings.Repeat("<a>", 100) + strings.Repeat("</a>", 100))
		if _, err := RewriteSOAP(in, soapMap()); err == nil || !strings.Contains(err.Error(), "deep") {
			t.Fatalf("got %v, want a nesting error", err)
		}
	})
}

func TestSOAPAnswerHead(t *testing.T) {
	head := []byte("HTTP/1.1 200 OK\r\nContent-Type: application/soap+xml\r\nTransfer-Encoding: chunked\r\n\r\n")
	want := "HTTP/1.1 200 OK\r\nContent-Type: application/soap+xml\r\nContent-Length: 42\r\n\r\n"
	if got := string(SOAPAnswerHead(head, 42)); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// FuzzRewriteSOAP: arbitrary SOAP answers never crash the rewriter,
// rewriting is idempotent, and text outside URL elements is kept.
func FuzzRewriteSOAP(f *testing.F) {
	for _, name := range []string{"hikvision-onvif-getcapabilities.xml", "hikvision-onvif-getstreamuri.xml"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`<XAddrs>http://192.168.1.64/a http://[fe80::1]:80/b</XAddrs>`))
	f.Fuzz(func(t *testing.T, body []byte) {
		m := soapMap()
		out, err := RewriteSOAP(body, m)
		if err != nil {
			if !bytes.Equal(out, body) {
				t.Fatal("a failed rewrite changed the body")
			}
			return
		}
		again, err := RewriteSOAP(out, m)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("not idempotent (%v):\n%q\n%q", err, out, again)
		}
	})
}
