package sim

import (
	"crypto/sha1"
	"encoding/base64"
	"strings"
	"testing"
)

func tokenEnvelope(action, user, pass, arg string) string {
	nonce := []byte("nonce-0123456789")
	created := "2026-12-06T03:00:00Z"
	h := sha1.New()
	h.Write(nonce)
	h.Write([]byte(created))
	h.Write([]byte(pass))
	return `<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Header><Security><UsernameToken><Username>` + user +
		`</Username><Password>` + base64.StdEncoding.EncodeToString(h.Sum(nil)) + `</Password><Nonce>` +
		base64.StdEncoding.EncodeToString(nonce) + `</Nonce><Created>` + created + `</Created></UsernameToken></Security></s:Header>` +
		`<s:Body><` + action + `>` + arg + `</` + action + `></s:Body></s:Envelope>`
}

func TestParseSOAPAndToken(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		action     string
		ok         bool
	}{
		{"right password", tokenEnvelope("GetStreamUri", "admin", "pw", "<ProfileToken>Profile_2</ProfileToken>"), "GetStreamUri", true},
		{"wrong password", tokenEnvelope("GetProfiles", "admin", "guess", ""), "GetProfiles", false},
		{"wrong user", tokenEnvelope("GetProfiles", "root", "pw", ""), "GetProfiles", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := parseSOAP([]byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if req.action != tc.action || usernameTokenOK(req, "admin", "pw") != tc.ok {
				t.Fatalf("got action %q ok %v, want %q %v", req.action, !tc.ok, tc.action, tc.ok)
			}
		})
	}
	if _, err := parseSOAP([]byte("<a>" + strings.Repeat("<b>", 40))); err == nil {
		t.Fatal("deep nesting accepted")
	}
}

func FuzzParseSOAP(f *testing.F) {
	f.Add([]byte(tokenEnvelope("GetStreamUri", "admin", "pw", "<ProfileToken>Profile_1</ProfileToken>")))
	f.Add([]byte(`<?xml version="1.0"?><language>$(id)</language>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := parseSOAP(b)
		if err == nil && req.action == "" {
			t.Fatal("parsed without an action")
		}
		usernameTokenOK(req, "admin", "pw")
	})
}

func TestSameRTSPURI(t *testing.T) {
	req := "rtsp://198.18.0.1:10554/Streaming/Channels/101/trackID=1?transportmode=unicast"
	for _, tc := range []struct {
		uri  string
		want bool
	}{
		{req, true},
		{"rtsp://198.18.0.1:10554/Streaming/Channels/101/trackID=1/?transportmode=unicast", true},
		{"/Streaming/Channels/101/trackID=1", true},
		{"RTSP://198.18.0.1:10554/Streaming/Channels/101/trackID=1?transportmode=unicast", true},
		// A proxy that rewrote the request line to the LAN address.
		{"rtsp://198.19.0.64:554/Streaming/Channels/101/trackID=1?transportmode=unicast", false},
		{"rtsp://198.18.0.1:10554/Streaming/Channels/102/trackID=1?transportmode=unicast", false},
		{"rtsp://198.18.0.1:10554/Streaming/Channels/101/trackID=1", false},
	} {
		if got := sameRTSPURI(tc.uri, req); got != tc.want {
			t.Errorf("sameRTSPURI(%q) = %v, want %v", tc.uri, got, tc.want)
		}
	}
}
