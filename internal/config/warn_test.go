package config

import (
	"strings"
	"testing"
)

func TestWarnings(t *testing.T) {
	const head = "version: 1\nrules:\n"
	rule := func(name, port string, extra string) string {
		return "  - {name: " + name + ", external_port: " + port + ", internal_ip: 192.168.1.64" + extra + "}\n"
	}
	plain := BindRight{Known: true, Allowed: false, Start: 1024, Who: "uid 1000"}
	root := BindRight{Known: true, Allowed: true, Start: 1024, Who: "uid 0"}
	tests := []struct {
		name  string
		yaml  string
		right BindRight
		want  []string // each in some warning; none means no warnings
		line  int      // of the first warning, when set
	}{
		{"nothing to say", head + rule("dvr-web", "8082", ""), plain, nil, 0},
		{"rule on the admin UI's port", head + rule("dvr-web", "8443", ""), root,
			[]string{`rule "dvr-web": external_port: port 8443 is also the admin UI's (admin.listen 0.0.0.0:8443)`, "move the admin UI with admin.listen"}, 3},
		{"range over the admin port", head + rule("rtp", `"8440-8449"`, ""), root, []string{"is also the admin UI's"}, 0},
		{"admin moved away", head + rule("dvr-web", "8443", "") + "admin: {listen: \"127.0.0.1:9443\"}\n", root, nil, 0},
		{"rule on another address than the admin UI", head + rule("dvr-web", "8443", ", listen_address: 192.0.2.1") + "admin: {listen: \"127.0.0.1:8443\"}\n", root, nil, 0},
		{"admin off", head + rule("dvr-web", "8443", "") + "admin: {enabled: false}\n", root, nil, 0},
		{"udp rule on the admin port", head + rule("x", "8443", ", protocol: udp"), root, nil, 0},
		{"privileged port, user cannot bind", head + rule("dvr-rtsp", "554", ""), plain,
			[]string{"port 554 is below 1024 and this user (uid 1000) may not listen there", "run as root", "setcap cap_net_bind_service=+ep", "the packaged service", "use a port ≥ 1024"}, 3},
		{"privileged port as root", head + rule("dvr-rtsp", "554", ""), root,
			[]string{"port 554 is below 1024: this user (uid 0) may listen there, a plain user may not"}, 0},
		{"privileged port, rights unknown", head + rule("dvr-https", "443", ""), BindRight{},
			[]string{"port 443 is below 1024, which needs a right", "the packaged service"}, 0},
		{"lowered unprivileged start", head + rule("dvr-rtsp", "554", ""), BindRight{Known: true, Start: 500, Who: "uid 1000"}, nil, 0},
		{"disabled rules are not served", head + rule("dvr-rtsp", "554", ", enabled: false"), plain, nil, 0},
		{"admin UI on port 0 (a free port)", head + "admin: {listen: \"127.0.0.1:0\"}\n", plain, nil, 0},
		{"admin UI on 443", head + "admin: {listen: \"0.0.0.0:443\"}\n", plain, []string{"admin.listen: port 443 is below 1024 and this user"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Load([]byte(tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			ws := cfg.Warnings(tt.right)
			var all []string
			for _, w := range ws {
				all = append(all, w.Error())
			}
			text := strings.Join(all, "\n")
			if len(tt.want) == 0 && len(ws) > 0 {
				t.Fatalf("got warnings %q, want none", text)
			}
			for _, want := range tt.want {
				if !strings.Contains(text, want) {
					t.Errorf("got %q, want a warning saying %q", text, want)
				}
			}
			if tt.line > 0 && (len(ws) == 0 || ws[0].Line != tt.line) {
				t.Errorf("got %+v, want the first warning on line %d", ws, tt.line)
			}
		})
	}
}
