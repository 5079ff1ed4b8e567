package config

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestAdminSection(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want string // problem substring; "" means valid
	}{
		{"absent", "", ""},
		{"default https", "admin: {listen: \"0.0.0.0:8443\"}\n", ""},
		{"https scheme", "admin: {listen: \"https://[::]:8443\"}\n", ""},
		{"http on loopback", "admin: {listen: \"http://127.0.0.1:8080\"}\n", ""},
		{"http on localhost", "admin: {listen: \"http://localhost:8080\"}\n", ""},
		{"http on lan refused", "admin: {listen: \"http://0.0.0.0:8080\"}\n", "admin.listen: plain HTTP on 0.0.0.0"},
		{"http on lan allowed", "admin: {listen: \"http://0.0.0.0:8080\", insecure_http: true}\n", ""},
		{"off", "admin: {listen: \"off\"}\n", ""},
		{"disabled", "admin: {enabled: false}\n", ""},
		{"port zero", "admin: {listen: \"127.0.0.1:0\"}\n", ""},
		{"bad scheme", "admin: {listen: \"ftp://1.2.3.4:21\"}\n", "use http:// or https://"},
		{"host name", "admin: {listen: \"camgate.lan:8443\"}\n", `"camgate.lan" is not an IP address`},
		{"no port", "admin: {listen: \"0.0.0.0\"}\n", "is not host:port"},
		{"bad port", "admin: {listen: \"0.0.0.0:99999\"}\n", `port "99999"`},
		{"cert without key", "admin: {cert_file: c.pem}\n", "admin.cert_file: cert_file and key_file go together"},
		{"cert on http", "admin: {listen: \"http://127.0.0.1:80\", cert_file: c.pem, key_file: k.pem}\n", "use https://"},
		{"session too short", "admin: {session_ttl: 1s}\n", "admin.session_ttl: 1s is outside"},
		{"session ok", "admin: {session_ttl: 8h}\n", ""},
		{"allowed host", "admin: {allowed_hosts: [camgate.example.net]}\n", ""},
		{"allowed host with port", "admin: {allowed_hosts: [\"camgate.example.net:8443\"]}\n", "admin.allowed_hosts"},
		{"unknown key", "admin: {password: hunter2}\n", `unknown key "password"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load([]byte(good + tt.yaml))
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("got %v, want valid", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("got %v, want a problem containing %q", err, tt.want)
			}
		})
	}
}

func TestAdminDefaults(t *testing.T) {
	cfg, err := Load([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Admin.IsEnabled() {
		t.Fatal("got admin off, want on by default")
	}
	ep, err := cfg.Admin.Endpoint()
	if err != nil || !ep.HTTPS || ep.Addr.String() != DefaultAdminListen {
		t.Fatalf("got %+v, %v, want https on %s", ep, err, DefaultAdminListen)
	}
	if got := cfg.Admin.Session(); got != DefaultSessionTTL {
		t.Fatalf("got session %s, want %s", got, DefaultSessionTTL)
	}
	// A config without admin: is written back without one.
	out, err := Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "\nadmin:") {
		t.Fatalf("got an admin section in\n%s", out)
	}
}

func TestAdminClone(t *testing.T) {
	on := true
	c := &Config{Admin: Admin{Enabled: &on, AllowedHosts: []string{"a.example"}}}
	d := c.Clone()
	*d.Admin.Enabled = false
	d.Admin.AllowedHosts[0] = "b.example"
	if !*c.Admin.Enabled || c.Admin.AllowedHosts[0] != "a.example" {
		t.Fatalf("clone shares memory with the original: %+v", c.Admin)
	}
}

func TestPortRangeJSON(t *testing.T) {
	tests := []struct {
		in      string
		want    PortRange
		wantErr string
	}{
		{`8082`, PortRange{8082, 8082}, ""},
		{`"8082"`, PortRange{8082, 8082}, ""},
		{`"10000-10009"`, PortRange{10000, 10009}, ""},
		{`null`, PortRange{}, ""},
		{`""`, PortRange{}, ""},
		{`0`, PortRange{}, "outside 1-65535"},
		{`70000`, PortRange{}, "outside 1-65535"},
		{`80.5`, PortRange{}, "whole port number"},
		{`"web"`, PortRange{}, "not a port number"},
		{`"9-1"`, PortRange{}, "runs backwards"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var got PortRange
			err := json.Unmarshal([]byte(tt.in), &got)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, want error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %v, %v, want %v", got, err, tt.want)
			}
			if !got.IsZero() {
				b, _ := json.Marshal(got)
				var back PortRange
				if err := json.Unmarshal(b, &back); err != nil || back != got {
					t.Fatalf("round trip %s: got %v, %v", b, back, err)
				}
			}
		})
	}
	r := Rule{Name: "x", Protocol: "TCP/UDP", ExternalPort: PortRange{1, 2}, InternalIP: "10.0.0.1"}
	b, _ := json.Marshal(&r)
	if !strings.Contains(string(b), `"external_port":"1-2"`) {
		t.Fatalf("got %s, want external_port as a range string", b)
	}
	var back Rule
	if err := json.Unmarshal([]byte(`{"protocol":"TCP/UDP"}`), &back); err != nil || back.Protocol != Both {
		t.Fatalf("got %q, %v, want both", back.Protocol, err)
	}
}
