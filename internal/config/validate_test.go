package config

import (
	"strings"
	"testing"
)

const good = `version: 1
rules:
  - name: dvr-web
    description: DVR web page
    protocol: tcp
    external_port: 8082
    internal_ip: 192.168.1.64
`

func TestLoadRejections(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // substrings, each must appear in one problem
	}{
		{"unknown key with line", good + "    colour: red\n", []string{`line 8: rule "dvr-web": unknown key "colour"`}},
		{"unknown top-level key", "version: 1\nrulez: []\n", []string{`line 2: unknown key "rulez"`}},
		{"malformed value with line", strings.Replace(good, "8082", "web", 1), []string{`line 6: rule "dvr-web": external_port: "web" is not a port number`}},
		{"duplicate name", good + strings.Replace(good[strings.Index(good, "  - name"):], "8082", "8083", 1),
			[]string{`rule "dvr-web": name: duplicate name`}},
		{"same port and protocol twice", good + "  - name: other\n    external_port: 8082\n    internal_ip: 192.168.1.65\n",
			[]string{`rule "other": external_port: tcp/8082 is already used by rule "dvr-web"`}},
		{"overlapping ranges", "version: 1\nrules:\n  - name: a\n    external_port: \"100-110\"\n    internal_ip: 10.0.0.1\n  - name: b\n    external_port: \"110-120\"\n    internal_ip: 10.0.0.2\n",
			[]string{`rule "b": external_port: tcp/110-120 is already used by rule "a"`}},
		{"port out of range", strings.Replace(good, "8082", "70000", 1), []string{`external_port: port 70000 is outside 1-65535`}},
		{"port zero", strings.Replace(good, "8082", "0", 1), []string{`external_port: port 0 is outside 1-65535`}},
		{"backwards range", strings.Replace(good, "8082", `"9000-8000"`, 1), []string{`external_port: range "9000-8000" runs backwards`}},
		{"ranges of different lengths", strings.Replace(good, "8082", `"10000-10009"`, 1) + "    internal_port: \"20000-20004\"\n",
			[]string{`internal_port: range 20000-20004 has 5 ports but external_port 10000-10009 has 10`}},
		{"malformed address", strings.Replace(good, "192.168.1.64", "192.168.1.300", 1), []string{`internal_ip: "192.168.1.300" is not a valid IP address`}},
		{"malformed host name", strings.Replace(good, "192.168.1.64", "dvr_1.local", 1), []string{`internal_ip: "dvr_1.local" is neither an IP address nor a valid host name`}},
		{"malformed CIDR", good + "    allow: [203.0.113.0/33]\n", []string{`rule "dvr-web": allow: "203.0.113.0/33" is not a CIDR`}},
		{"malformed deny", good + "    deny: [nope]\n", []string{`deny: "nope" is not a CIDR`}},
		{"bad protocol", strings.Replace(good, "protocol: tcp", "protocol: sctp", 1), []string{`protocol: "sctp" is not tcp, udp or both`}},
		{"bad name", strings.Replace(good, "dvr-web", "DVR Web", 1), []string{`name: "DVR Web" must be lower-case`}},
		{"missing name", strings.Replace(good, "name: dvr-web", "name: \"\"", 1), []string{`rule "rules[0]": name: missing`}},
		{"missing internal ip", strings.Replace(good, "    internal_ip: 192.168.1.64\n", "", 1), []string{`internal_ip: missing`}},
		{"missing version", strings.Replace(good, "version: 1\n", "", 1), []string{`version: missing`}},
		{"future version", strings.Replace(good, "version: 1", "version: 7", 1), []string{`version: 7 is not supported`}},
		{"bad listen address", "listen_address: everywhere\n" + good, []string{`listen_address: "everywhere" is not an IP address`}},
		{"bad duration", good + "    idle_timeout: forever\n", []string{`idle_timeout: "forever" is not a duration`}},
		{"range too large", strings.Replace(good, "8082", `"1-65535"`, 1), []string{`has 65535 ports; at most 1024`}},
		{"negative cap", good + "    max_connections: -1\n", []string{`max_connections: must not be negative`}},
		{"udp option on tcp rule", good + "    udp_max_sessions: 10\n", []string{`udp_max_sessions: is set but the rule's protocol is tcp`}},
		{"not yaml", "rules: [\n", []string{`did not find expected`}},
		{"empty file", "", []string{`the file is empty`}},
		{"every problem at once", strings.Replace(strings.Replace(good, "8082", "70000", 1), "192.168.1.64", "1.2.3.400", 1) + "    bogus: 1\n",
			[]string{"external_port", "internal_ip", `unknown key "bogus"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load([]byte(tt.yaml))
			if err == nil {
				t.Fatalf("got no error, want %q", tt.want)
			}
			var msgs []string
			for _, p := range ProblemsOf(err) {
				msgs = append(msgs, p.Error())
			}
			all := strings.Join(msgs, "\n")
			for _, w := range tt.want {
				if !strings.Contains(all, w) {
					t.Errorf("got problems:\n%s\nwant one containing %q", all, w)
				}
			}
		})
	}
}

func TestLoadAccepts(t *testing.T) {
	tests := []struct {
		name, yaml string
	}{
		{"minimal", good},
		{"hikvision dvr", `version: 1
listen_address: "::"
rules:
  - {name: dvr-https, protocol: tcp, external_port: 443, internal_ip: 192.168.1.64}
  - {name: dvr-rtsp, protocol: TCP, external_port: 554, internal_ip: "fd00::64", allow: [198.51.100.0/24, "2001:db8::/32", 203.0.113.7]}
  - {name: dvr-web, protocol: both, external_port: 8082, internal_ip: dvr.lan, enabled: false}
  - {name: rtp, protocol: udp, external_port: "10000-10009", internal_port: "20000-20009", internal_ip: 192.168.1.64, udp_idle_timeout: 5m}
`},
		{"same port different protocol", good + "  - name: dvr-udp\n    protocol: udp\n    external_port: 8082\n    internal_ip: 192.168.1.64\n"},
		{"same port different address", "version: 1\nrules:\n  - {name: a, external_port: 80, internal_ip: 10.0.0.1, listen_address: 127.0.0.1}\n  - {name: b, external_port: 80, internal_ip: 10.0.0.2, listen_address: 127.0.0.2}\n"},
		{"clash with a disabled rule", good + "  - name: old\n    external_port: 8082\n    internal_ip: 192.168.1.70\n    enabled: false\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Load([]byte(tt.yaml)); err != nil {
				t.Fatalf("got %v, want no error", err)
			}
		})
	}
}

func TestRangeExpansion(t *testing.T) {
	tests := []struct {
		ext, in string
		probe   uint16
		want    uint16
	}{
		{"8082", "", 8082, 8082},
		{"8082", "80", 8082, 80},
		{"10000-10009", "", 10005, 10005},
		{"10000-10009", "20000-20009", 10000, 20000},
		{"10000-10009", "20000-20009", 10009, 20009},
	}
	for _, tt := range tests {
		r := Rule{Name: "r", InternalIP: "10.0.0.1"}
		r.ExternalPort, _ = ParsePortRange(tt.ext)
		if tt.in != "" {
			r.InternalPort, _ = ParsePortRange(tt.in)
		}
		if got := r.InternalPortFor(tt.probe); got != tt.want {
			t.Errorf("%s->%s: port %d maps to %d, want %d", tt.ext, tt.in, tt.probe, got, tt.want)
		}
	}
	if got := (PortRange{10000, 10009}).Len(); got != 10 {
		t.Errorf("Len = %d, want 10", got)
	}
}

func TestProtocolSpellings(t *testing.T) {
	for in, want := range map[string]Protocol{"TCP": TCP, "udp": UDP, "Both": Both, "TCP/UDP": Both, "all": Both} {
		if got := ParseProtocol(in); got != want {
			t.Errorf("ParseProtocol(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	cfg, err := Load([]byte(`version: 1
rules:
  - {name: a, protocol: both, external_port: "100-101", internal_port: "200-201", internal_ip: 10.0.0.1, enabled: false, idle_timeout: 90s, allow: [10.0.0.0/8]}
`))
	if err != nil {
		t.Fatal(err)
	}
	out, err := Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Load(out)
	if err != nil {
		t.Fatalf("re-load of marshalled config: %v\n%s", err, out)
	}
	a, b := cfg.Rules[0], back.Rules[0]
	if !a.SameForwarding(&b) || a.IsEnabled() != b.IsEnabled() {
		t.Fatalf("round trip changed the rule:\n%+v\n%+v\n%s", a, b, out)
	}
}

func TestFlowMappingNamesTheRightField(t *testing.T) {
	_, err := Load([]byte("version: 1\nrules:\n  - {name: broken, external_port: 99999, internal_ip: 10.0.0.1}\n"))
	got := ProblemsOf(err)
	if len(got) != 1 || got[0].Error() != `line 3: rule "broken": external_port: port 99999 is outside 1-65535` {
		t.Fatalf("got %v, want one external_port problem", got)
	}
}

func TestDevicesSection(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"ok", "version: 1\ndevices:\n  - {name: dvr1, address: 192.168.1.64, channels: [101, 201]}\nrules:\n  - {name: r, external_port: 554, internal_ip: 192.168.1.64, device: dvr1}\n", ""},
		{"missing address", "version: 1\ndevices:\n  - {name: dvr1}\nrules: []\n", "address"},
		{"duplicate", "version: 1\ndevices:\n  - {name: dvr1, address: a.lan}\n  - {name: dvr1, address: b.lan}\nrules: []\n", "duplicate name"},
		{"unknown device on rule", "version: 1\nrules:\n  - {name: r, external_port: 554, internal_ip: 192.168.1.64, device: nvr9}\n", "not in the devices section"},
		{"bad channel", "version: 1\ndevices:\n  - {name: dvr1, address: a.lan, channels: [0]}\nrules: []\n", "not a channel"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load([]byte(tc.yaml))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("got %v, want no error", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
	cfg, err := Load([]byte(cases[0].yaml))
	if err != nil {
		t.Fatal(err)
	}
	if d := cfg.DeviceOf(&cfg.Rules[0]); d == nil || d.Name != "dvr1" {
		t.Fatalf("DeviceOf: got %v, want dvr1", d)
	}
	if h, r, s := cfg.Devices[0].Ports(); h != 80 || r != 554 || s != 443 {
		t.Errorf("Ports: got %d %d %d, want 80 554 443", h, r, s)
	}
}

// TestDiscoveryPortsRefused: issue 14 item 10.
func TestDiscoveryPortsRefused(t *testing.T) {
	for _, rule := range []string{
		"{name: sadp, protocol: udp, external_port: 37020, internal_ip: 192.168.1.64}",
		"{name: onvif, protocol: both, external_port: 13702, internal_port: 3702, internal_ip: 192.168.1.64}",
		"{name: wide, protocol: udp, external_port: 37000-37100, internal_ip: 192.168.1.64}",
	} {
		c, err := Parse([]byte("version: 1\nrules:\n  - " + rule + "\n"))
		if err == nil {
			err = c.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), "cannot be forwarded") || !strings.Contains(err.Error(), "amplified") {
			t.Errorf("%s: got %v, want a refusal that says why", rule, err)
		}
	}
}
