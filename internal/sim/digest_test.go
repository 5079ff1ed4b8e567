package sim

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestParseAuthorization(t *testing.T) {
	tests := []struct {
		in      string
		scheme  string
		params  map[string]string
		token68 string
		err     string
	}{
		{in: `Digest username="admin", realm="IP Camera(12345)", nonce="abc", uri="/ISAPI/System/deviceInfo", response="00", qop=auth, nc=00000001, cnonce="x"`,
			scheme: "digest", params: map[string]string{"username": "admin", "realm": "IP Camera(12345)", "nonce": "abc",
				"uri": "/ISAPI/System/deviceInfo", "response": "00", "qop": "auth", "nc": "00000001", "cnonce": "x"}},
		{in: `Digest username="a\"dmin" ,realm=r,,  nonce = "n"`, scheme: "digest",
			params: map[string]string{"username": `a"dmin`, "realm": "r", "nonce": "n"}},
		{in: `Basic YWRtaW46MTIzNDU=`, scheme: "basic", token68: "YWRtaW46MTIzNDU="},
		{in: `Digest username="admin`, err: "unterminated"},
		{in: `Digest realm="a", realm="b"`, err: "repeated"},
		{in: `Digest realm`, scheme: "digest", token68: "realm"},
		{in: `Digest realm, x`, err: "no value"},
		{in: ``, err: "no scheme"},
		{in: `Basic not base64!`, err: "token68"},
		{in: `Digest ` + strings.Repeat("a", 5000), err: "too long"},
	}
	for _, tc := range tests {
		t.Run(tc.in[:min(len(tc.in), 30)], func(t *testing.T) {
			c, err := parseAuthorization(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.scheme != tc.scheme || c.token68 != tc.token68 || fmt.Sprint(c.params) != fmt.Sprint(tc.params) {
				t.Fatalf("got %q %q %v, want %q %q %v", c.scheme, c.token68, c.params, tc.scheme, tc.token68, tc.params)
			}
		})
	}
}

// respond computes a client's digest answer.
func respond(al digestAlgo, user, realm, pass, method, uri, nonce, nc, cnonce string) map[string]string {
	ha1 := al.h(user, realm, pass)
	if al.sess {
		ha1 = al.h(ha1, nonce, cnonce)
	}
	ha2 := al.h(method, uri)
	p := map[string]string{"username": user, "realm": realm, "nonce": nonce, "uri": uri, "algorithm": al.name}
	if nc == "" {
		p["response"] = al.h(ha1, nonce, ha2)
		return p
	}
	p["qop"], p["nc"], p["cnonce"] = "auth", nc, cnonce
	p["response"] = al.h(ha1, nonce, nc, cnonce, "auth", ha2)
	return p
}

func TestDigestVerify(t *testing.T) {
	a, err := newDigestAuth("IP Camera(71935)", []string{"SHA-256", "MD5", "SHA-256-sess"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	a.now = func() time.Time { return now }
	sha, _ := lookupAlgo("SHA-256")
	md5, _ := lookupAlgo("MD5")
	sess, _ := lookupAlgo("SHA-256-sess")
	req := digestRequest{method: "GET", uriOK: func(u string) bool { return u == "/x" }}
	nonce := a.newNonce()
	good := func(al digestAlgo, nc string) map[string]string {
		return respond(al, "admin", a.realm, "pw", "GET", "/x", nonce, nc, "c1")
	}
	tests := []struct {
		name string
		p    func() map[string]string
		want verdict
	}{
		{"sha-256", func() map[string]string { return good(sha, "00000001") }, verdictOK},
		{"md5", func() map[string]string { return good(md5, "0000000b") }, verdictOK},
		{"sha-256-sess", func() map[string]string { return good(sess, "0000000c") }, verdictOK},
		{"no qop (RFC 2069)", func() map[string]string { return good(md5, "") }, verdictOK},
		{"replayed nc", func() map[string]string { return good(sha, "00000001") }, verdictStale},
		{"next nc", func() map[string]string { return good(sha, "00000002") }, verdictOK},
		{"wrong password", func() map[string]string {
			return respond(sha, "admin", a.realm, "nope", "GET", "/x", nonce, "00000003", "c1")
		}, verdictBad},
		{"wrong user", func() map[string]string {
			return respond(sha, "root", a.realm, "pw", "GET", "/x", nonce, "00000004", "c1")
		}, verdictBad},
		{"wrong realm", func() map[string]string {
			return respond(sha, "admin", "IP Camera(1)", "pw", "GET", "/x", nonce, "00000005", "c1")
		}, verdictBad},
		{"algorithm not offered", func() map[string]string {
			al, _ := lookupAlgo("MD5-sess")
			return respond(al, "admin", a.realm, "pw", "GET", "/x", nonce, "00000006", "c1")
		}, verdictBad},
		{"other uri", func() map[string]string {
			return respond(sha, "admin", a.realm, "pw", "GET", "/y", nonce, "00000007", "c1")
		}, verdictMalformed},
		{"forged nonce", func() map[string]string {
			return respond(sha, "admin", a.realm, "pw", "GET", "/x", strings.Repeat("ab", 24), "00000001", "c1")
		}, verdictUnknownNonce},
		{"missing response", func() map[string]string {
			p := good(sha, "00000008")
			delete(p, "response")
			return p
		}, verdictMalformed},
		{"bad nc", func() map[string]string { return good(sha, "1") }, verdictMalformed},
		{"wrong opaque", func() map[string]string {
			p := good(sha, "00000009")
			p["opaque"] = "x"
			return p
		}, verdictBad},
		{"userhash", func() map[string]string {
			p := good(sha, "0000000a")
			p["username"], p["userhash"] = sha.h("admin", a.realm), "true"
			return p
		}, verdictOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := a.verify(req, tc.p(), "admin", "pw"); got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
	// An old nonce with the right answer is stale; with a wrong one, bad.
	now = now.Add(2 * time.Minute)
	if got := a.verify(req, good(sha, "00000010"), "admin", "pw"); got != verdictStale {
		t.Fatalf("expired nonce: got %v, want stale", got)
	}
	if got := a.verify(req, respond(sha, "admin", a.realm, "x", "GET", "/x", nonce, "00000011", "c1"), "admin", "pw"); got != verdictBad {
		t.Fatalf("expired nonce, wrong password: got %v, want bad", got)
	}
}

func TestChallenges(t *testing.T) {
	a, err := newDigestAuth("IP Camera(71935)", nil, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	ch := a.httpChallenges(true)
	if len(ch) != 2 || !strings.Contains(ch[0], "algorithm=SHA-256") || !strings.Contains(ch[1], "algorithm=MD5") {
		t.Fatalf("got %q, want SHA-256 then MD5", ch)
	}
	for _, c := range ch {
		p, err := parseAuthorization(c)
		if err != nil {
			t.Fatal(err)
		}
		if p.params["realm"] != "IP Camera(71935)" || p.params["qop"] != "auth" || p.params["stale"] != "TRUE" || p.params["opaque"] == "" {
			t.Fatalf("challenge %q parsed to %v", c, p.params)
		}
		if _, ok := a.checkNonce(p.params["nonce"]); !ok {
			t.Fatalf("own nonce %q not recognised", p.params["nonce"])
		}
	}
	if got := realmFor("DS-2CD2143G0-I20210702AAWRF39586421"); got != "IP Camera(86421)" {
		t.Fatalf("realm: got %q", got)
	}
}
