package config

import (
	"strings"
	"testing"
)

func TestValidateDataplane(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"auto by default", "rules:\n  - {name: a, external_port: 9000, internal_ip: 192.0.2.64}\n", ""},
		{"kernel on a plain rule", "rules:\n  - {name: a, external_port: 9000, internal_ip: 192.0.2.64, dataplane: kernel, masquerade: off}\n", ""},
		{"kernel on an rtsp port forwards tcp", "rules:\n  - {name: a, external_port: 554, internal_ip: 192.0.2.64, dataplane: kernel}\n", ""},
		{"kernel with the exploit filter", "rules:\n  - {name: a, external_port: 8082, internal_ip: 192.0.2.64, dataplane: kernel}\n",
			`rule "a": dataplane: kernel, but the Hikvision exploit filter reads the HTTP requests`},
		{"kernel with the auth guard", "rules:\n  - {name: a, external_port: 9000, internal_ip: 192.0.2.64, dataplane: kernel, guard: {auth: true, service: http}}\n",
			`rule "a": dataplane: kernel, but the auth guard reads the logins`},
		{"kernel to a host name", "rules:\n  - {name: a, external_port: 9000, internal_ip: dvr.lan, dataplane: kernel}\n",
			"internal_ip is a host name"},
		{"unknown rule dataplane", "rules:\n  - {name: a, external_port: 9000, internal_ip: 192.0.2.64, dataplane: turbo}\n",
			`dataplane: "turbo" is not auto, userspace or kernel`},
		{"unknown masquerade", "rules:\n  - {name: a, external_port: 9000, internal_ip: 192.0.2.64, masquerade: maybe}\n",
			`masquerade: "maybe" is not auto, on or off`},
		{"unknown gateway dataplane", "dataplane: fast\nrules: []\n", `dataplane: "fast" is not auto, userspace or kernel`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte("version: 1\n" + tc.yaml))
			if err == nil {
				err = cfg.Validate()
			}
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("got %v, want no problem", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want a problem containing %q", err, tc.want)
			}
		})
	}
}
