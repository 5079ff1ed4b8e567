package config

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestGuardShortForms(t *testing.T) {
	tr := true
	tests := []struct {
		name, yaml string
		want       Guard
		wantTLS    TLS
	}{
		{"word auth", "guard: auth", Guard{Auth: true}, TLS{}},
		{"list", "guard: [auth, hikvision]", Guard{Auth: true, Hikvision: &tr}, TLS{}},
		{"off", "guard: off", GuardOff(), TLS{}},
		{"mapping", "guard: {auth: true, max_failures: 3, ban: 1h, per_ip_connections: 10, per_ip_rate: 2.5}",
			Guard{Auth: true, MaxFailures: 3, Ban: Duration(time.Hour), PerIPConnections: 10, PerIPRate: 2.5}, TLS{}},
		{"tls word", "tls: terminate", Guard{}, TLS{Mode: "terminate"}},
		{"tls mapping", "tls: {mode: terminate, names: [cam.example.org, 198.18.0.1]}", Guard{}, TLS{Mode: "terminate", Names: "cam.example.org,198.18.0.1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := "version: 1\nrules:\n  - name: web\n    external_port: 80\n    internal_ip: 192.168.1.64\n    " + tt.yaml + "\n"
			cfg, err := Load([]byte(doc))
			if err != nil {
				t.Fatalf("got error %v", err)
			}
			r := cfg.Rules[0]
			if !r.Guard.equal(tt.want) {
				t.Fatalf("got guard %+v, want %+v", r.Guard, tt.want)
			}
			if r.TLS != tt.wantTLS {
				t.Fatalf("got tls %+v, want %+v", r.TLS, tt.wantTLS)
			}
			// Round trip through Marshal keeps the meaning.
			b, err := Marshal(cfg)
			if err != nil {
				t.Fatal(err)
			}
			back, err := Load(b)
			if err != nil {
				t.Fatalf("round trip: %v\n%s", err, b)
			}
			if !back.Rules[0].SameForwarding(&r) {
				t.Fatalf("round trip changed the rule:\n%s", b)
			}
			// JSON too.
			jb, _ := json.Marshal(r)
			var jr Rule
			if err := json.Unmarshal(jb, &jr); err != nil {
				t.Fatalf("json round trip: %v (%s)", err, jb)
			}
			if !jr.Guard.equal(r.Guard) || jr.TLS != r.TLS {
				t.Fatalf("json round trip: got %+v %+v, want %+v %+v", jr.Guard, jr.TLS, r.Guard, r.TLS)
			}
		})
	}
}

func TestGuardValidate(t *testing.T) {
	tests := []struct {
		name, rule string
		want       string // substring of the error; "" = valid
	}{
		{"auth on web port", "external_port: 80\n    guard: auth", ""},
		{"auth on rtsp port", "external_port: 554\n    guard: auth", ""},
		{"auth unknown port", "external_port: 9000\n    guard: auth", "guard.service: guard auth needs to know the protocol"},
		{"auth with service", "external_port: 9000\n    guard: {auth: true, service: rtsp}", ""},
		{"bad service", "external_port: 80\n    guard: {service: ftp}", `guard.service: "ftp" is not http or rtsp`},
		{"unknown guard word", "external_port: 80\n    guard: firewall", `"firewall" is not a guard`},
		{"unknown guard key", "external_port: 80\n    guard:\n      auth: true\n      max_fail: 3", `unknown key "max_fail"`},
		{"unknown tls key", "external_port: 443\n    internal_port: 80\n    tls:\n      mode: terminate\n      cert: x", `unknown key "cert"`},
		{"negative failures", "external_port: 80\n    guard: {max_failures: -1}", "guard.max_failures: must not be negative"},
		{"bad per ip", "external_port: 80\n    guard: {per_ip_connections: -2}", "guard.per_ip_connections: must be -1"},
		{"hikvision on rtsp", "external_port: 554\n    guard: hikvision", "guard.hikvision: the exploit filter reads HTTP"},
		{"auth on udp", "external_port: 554\n    protocol: udp\n    guard: auth", "guard: the brute-force guard reads HTTP or RTSP over TCP"},
		{"udp sessions on tcp", "external_port: 80\n    guard: {per_ip_udp_sessions: 3}", "only applies to udp or both"},
		{"tls terminate", "external_port: 443\n    internal_port: 80\n    tls: terminate", ""},
		{"tls bad mode", "external_port: 443\n    tls: passthrough", `tls.mode: "passthrough" is not terminate or off`},
		{"tls half files", "external_port: 443\n    tls: {mode: terminate, cert_file: a.pem}", "cert_file and key_file go together"},
		{"tls files", "external_port: 443\n    tls: {mode: terminate, cert_file: a.pem, key_file: a.key}", ""},
		{"acme", "external_port: 443\n    tls: {mode: terminate, acme_domain: cam.example.org, acme_email: me@example.org}", ""},
		{"acme ip", "external_port: 443\n    tls: {mode: terminate, acme_domain: 203.0.113.5}", "must be a public DNS name"},
		{"acme and files", "external_port: 443\n    tls: {mode: terminate, acme_domain: cam.example.org, cert_file: a, key_file: b}", "use one source of certificates"},
		{"acme bad email", "external_port: 443\n    tls: {mode: terminate, acme_domain: cam.example.org, acme_email: nope}", `"nope" is not an e-mail address`},
		{"acme email alone", "external_port: 443\n    tls: {mode: terminate, acme_email: me@example.org}", "need acme_domain"},
		{"tls off with files", "external_port: 443\n    tls: {cert_file: a, key_file: b}", "set mode: terminate"},
		{"ban too long", "external_port: 80\n    guard: {auth: true, ban: 9000h}", "longer than a year"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := "version: 1\nrules:\n  - name: r\n    internal_ip: 192.168.1.64\n    " + tt.rule + "\n"
			_, err := Load([]byte(doc))
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("got %v, want no error", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestGuardService(t *testing.T) {
	f := false
	tests := []struct {
		rule    Rule
		service string
		filter  bool
	}{
		{Rule{ExternalPort: PortRange{80, 80}}, "http", true},
		{Rule{ExternalPort: PortRange{8082, 8082}}, "http", true},
		{Rule{ExternalPort: PortRange{554, 554}}, "rtsp", false},
		{Rule{ExternalPort: PortRange{8000, 8000}}, "", false},
		{Rule{ExternalPort: PortRange{443, 443}}, "", false},
		{Rule{ExternalPort: PortRange{443, 443}, TLS: TLS{Mode: "terminate"}}, "http", true},
		{Rule{ExternalPort: PortRange{80, 80}, Guard: Guard{Hikvision: &f}}, "http", false},
		{Rule{ExternalPort: PortRange{9000, 9000}, Guard: Guard{Service: "http"}}, "http", true},
		{Rule{ExternalPort: PortRange{80, 80}, Protocol: UDP}, "", false},
	}
	for _, tt := range tests {
		if got := tt.rule.GuardService(); got != tt.service {
			t.Errorf("%+v: got service %q, want %q", tt.rule, got, tt.service)
		}
		if got := tt.rule.HikvisionFilter(); got != tt.filter {
			t.Errorf("%+v: got filter %v, want %v", tt.rule, got, tt.filter)
		}
	}
}

func TestGuardEqual(t *testing.T) {
	a, b := true, true
	if !(Guard{Hikvision: &a}).equal(Guard{Hikvision: &b}) {
		t.Fatal("equal pointers to equal values: got unequal")
	}
	if (Guard{Hikvision: &a}).equal(Guard{}) {
		t.Fatal("set vs unset: got equal")
	}
	g := Guard{Hikvision: &a}
	c := g.clone()
	*c.Hikvision = false
	if !*g.Hikvision {
		t.Fatal("clone shares the pointer")
	}
}
