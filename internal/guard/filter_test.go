package guard

import (
	"strings"
	"testing"
)

func TestFilterTable(t *testing.T) {
	f := NewFilter(HikvisionSignatures())
	tests := []struct {
		method, target string
		want           string // signature ID, or "" to pass
	}{
		// CVE-2021-36260 and its disguises.
		{"PUT", "/SDK/webLanguage", "CVE-2021-36260"},
		{"put", "/sdk/weblanguage", "CVE-2021-36260"},
		{"POST", "/SDK/webLanguage", "CVE-2021-36260"},
		{"PUT", "/%53%44%4B/webLanguage", "CVE-2021-36260"},
		{"PUT", "/%2553DK/webLanguage", "CVE-2021-36260"},
		{"PUT", "//SDK///webLanguage", "CVE-2021-36260"},
		{"PUT", "/./SDK/./webLanguage", "CVE-2021-36260"},
		{"PUT", "/SDK;x=1/webLanguage", "CVE-2021-36260"},
		{"PUT", "\\SDK\\webLanguage", "bad-path"},
		{"PUT", "/SDK\\webLanguage", "CVE-2021-36260"},
		{"PUT", "http://192.168.1.64/SDK/webLanguage", "CVE-2021-36260"},
		{"PUT", "/SDK/webLanguage?x=1", "CVE-2021-36260"},
		// Other /SDK/ writes.
		{"PUT", "/SDK/upgradeStatus", "hikvision-sdk-command"},
		{"DELETE", "/SDK/x", "hikvision-sdk-command"},
		{"PUT", "/SDK", "hikvision-sdk-command"},
		{"GET", "/SDK/webLanguage", ""},
		{"GET", "/SDK/language", ""},
		// CVE-2017-7921.
		{"GET", "/system/deviceInfo?auth=YWRtaW46MTEK", "CVE-2017-7921"},
		{"GET", "/System/configurationFile?auth=YWRtaW46MTEK", "CVE-2017-7921"},
		{"GET", "/Security/users?auth=YWRtaW46MTEK", "CVE-2017-7921"},
		{"GET", "/onvif-http/snapshot?auth=YWRtaW46MTEK", "CVE-2017-7921"},
		{"GET", "/onvif-http/snapshot?x=1&AUTH=YWRtaW46MTEK", "CVE-2017-7921"},
		{"GET", "/onvif-http/snapshot?%61uth=YWRtaW46MTEK", "CVE-2017-7921"},
		{"GET", "/ISAPI/System/deviceInfo?auth=x", ""},
		{"GET", "/onvif-http/snapshot", ""},
		{"GET", "/System/deviceInfo", ""},
		// TRACE.
		{"TRACE", "/", "http-trace"},
		// Traversal.
		{"GET", "/../etc/passwd", "path-traversal"},
		{"GET", "/doc/../../etc/passwd", "path-traversal"},
		{"GET", "/%2e%2e/etc/passwd", "path-traversal"},
		{"GET", "/%2E%2E%2Fetc%2Fpasswd", "path-traversal"},
		{"GET", "/%252e%252e/etc/passwd", "path-traversal"},
		{"GET", "/..%5c..%5cetc/passwd", "path-traversal"},
		{"GET", "/..;/etc/passwd", "path-traversal"},
		{"GET", "/.../x", "path-traversal"},
		{"GET", "/cgi-bin/x?file=../../etc/passwd", "path-traversal"},
		{"GET", "/cgi-bin/x?file=%2e%2e%2f%2e%2e%2fetc", "path-traversal"},
		{"GET", "/%c0%ae%c0%ae/etc/passwd", "bad-path"},
		{"GET", "/a%00.jpg", "bad-path"},
		{"GET", "/a%zz", "bad-path"},
		{"GET", "/a%u002e", "bad-path"},
		{"GET", "*", ""},
		{"OPTIONS", "*", ""},
		{"CONNECT", "host:443", "connect"},
		{"GET", "relative", "bad-path"},
		// Normal use.
		{"GET", "/", ""},
		{"GET", "/doc/page/login.asp?_1700000000", ""},
		{"GET", "/ISAPI/System/deviceInfo", ""},
		{"PUT", "/ISAPI/System/deviceInfo", ""},
		{"PUT", "/ISAPI/Image/channels/1/color", ""},
		{"GET", "/ISAPI/Streaming/channels/101/picture?snapShotImageType=JPEG", ""},
		{"POST", "/ISAPI/Security/sessionLogin?timeStamp=1700000000", ""},
		{"GET", "/ISAPI/Security/sessionLogin/capabilities?username=admin", ""},
		{"GET", "/doc/..foo/x", ""},
		{"GET", "/a/b..c", ""},
		{"GET", "/ISAPI/ContentMgmt/search?x=a..b", ""},
		{"GET", "/webSocketVideoCtrlProxy?version=0.1&cipherSuites=1&token=abc", ""},
	}
	covered := map[string]bool{}
	for _, tt := range tests {
		v := f.Check(tt.method, tt.target)
		got := ""
		if v != nil {
			got = v.ID
		}
		if got != tt.want {
			t.Errorf("%s %s: got %q, want %q", tt.method, tt.target, got, tt.want)
		}
		covered[tt.want] = true
	}
	// Every entry of the table has a test case.
	for _, s := range HikvisionSignatures() {
		if !covered[s.ID] {
			t.Errorf("signature %s has no test case here", s.ID)
		}
		if s.Ref == "" || s.Note == "" || len(s.Paths) == 0 {
			t.Errorf("signature %s: every entry needs Ref, Note and Paths", s.ID)
		}
		for _, p := range s.Paths {
			if p != strings.ToLower(p) || !strings.HasPrefix(p, "/") {
				t.Errorf("signature %s: path %q must be lower-case and absolute", s.ID, p)
			}
		}
	}
}

func TestLoginAttempt(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"GET /ISAPI/System/deviceInfo HTTP/1.1\r\nHost: x\r\nAuthorization: Digest a=b\r\n\r\n", true},
		{"GET /ISAPI/System/deviceInfo HTTP/1.1\r\nHost: x\r\n\r\n", false},
		{"POST /ISAPI/Security/sessionLogin?timeStamp=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", true},
		{"POST /isapi/security//sessionLogin HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", true},
		{"GET /ISAPI/Security/sessionLogin/capabilities HTTP/1.1\r\nHost: x\r\n\r\n", false},
	}
	for _, tt := range tests {
		m, err := parse(tt.in, false, true)
		if err != nil {
			t.Fatal(err)
		}
		if got := loginAttempt(m); got != tt.want {
			t.Errorf("%q: got %v, want %v", tt.in, got, tt.want)
		}
	}
}
