package audit

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/camgate/camgate/internal/config"
)

func mustConfig(t *testing.T, yaml string) *config.Config {
	t.Helper()
	cfg, err := config.Load([]byte("version: 1\n" + yaml))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, yaml)
	}
	return cfg
}

// brief is a finding reduced to what tests compare.
func brief(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, fmt.Sprintf("%s %s %s", f.ID, f.Severity, f.Subject))
	}
	slices.Sort(out)
	return out
}

func TestRuleFindings(t *testing.T) {
	const allowed = `allow: [203.0.113.0/24]`
	tests := []struct {
		name  string
		rules string
		want  []string
	}{
		{"sdk port", `{name: dvr-server, external_port: 18000, internal_ip: 192.168.1.64, internal_port: 8000, ` + allowed + `}`,
			[]string{"rule-sdk-port-exposed high rule dvr-server"}},
		{"sdk port by name", `{name: ivms, external_port: 19000, internal_ip: 192.168.1.64, ` + allowed + `}`,
			[]string{"rule-sdk-port-exposed high rule ivms"}},
		{"telnet", `{name: shell, external_port: 2323, internal_ip: 192.168.1.64, internal_port: 23, ` + allowed + `}`,
			[]string{"rule-telnet-exposed critical rule shell"}},
		{"ssh", `{name: ssh, external_port: 2222, internal_ip: 192.168.1.64, internal_port: 22, ` + allowed + `}`,
			[]string{"rule-ssh-exposed high rule ssh"}},
		{"sadp", `{name: sadp, protocol: tcp, external_port: 37020, internal_ip: 192.168.1.64, ` + allowed + `}`,
			[]string{"rule-discovery-port-exposed high rule sadp"}},
		{"ws-discovery", `{name: onvif, protocol: tcp, external_port: 13702, internal_port: 3702, internal_ip: 192.168.1.64, ` + allowed + `}`,
			[]string{"rule-discovery-port-exposed high rule onvif"}},
		{"http beside https", `{name: dvr-web, external_port: 8082, internal_ip: 192.168.1.64, ` + allowed + `}
  - {name: dvr-https, external_port: 8443, internal_ip: 192.168.1.64, internal_port: 443, ` + allowed + `}`,
			[]string{"rule-plain-http-with-https medium rule dvr-web"}},
		{"http beside terminated tls", `{name: dvr-web, external_port: 8082, internal_ip: 192.168.1.64, ` + allowed + `}
  - {name: dvr-tls, external_port: 8443, internal_ip: 192.168.1.64, internal_port: 8082, tls: terminate, ` + allowed + `}`,
			[]string{"rule-duplicate-exposure medium rules dvr-web and dvr-tls", "rule-plain-http-with-https medium rule dvr-web"}},
		{"https passthrough", `{name: dvr-https, external_port: 8443, internal_ip: 192.168.1.64, internal_port: 443}`,
			[]string{"rule-https-passthrough medium rule dvr-https", "rule-open-to-world medium rule dvr-https"}},
		{"plain http alone", `{name: dvr-web, external_port: 8082, internal_ip: 192.168.1.64, ` + allowed + `}`,
			[]string{"rule-plain-http low rule dvr-web"}},
		{"https other device", `{name: dvr-web, external_port: 8082, internal_ip: 192.168.1.64, ` + allowed + `}
  - {name: cam-https, external_port: 8443, internal_ip: 192.168.1.65, internal_port: 443, ` + allowed + `}`,
			[]string{"rule-plain-http low rule dvr-web"}},
		{"udp open to world", `{name: media, protocol: udp, external_port: 20000, internal_ip: 192.168.1.64}`,
			[]string{"rule-open-to-world low rule media"}},
		{"open to world", `{name: cam-rtsp, external_port: 10554, internal_ip: 192.168.1.64, internal_port: 554}`,
			[]string{"rule-open-to-world medium rule cam-rtsp"}},
		{"allow everyone explicitly", `{name: cam-rtsp, external_port: 10554, internal_ip: 192.168.1.64, internal_port: 554, allow: ["0.0.0.0/0", "::/0"]}`,
			[]string{"rule-open-to-world medium rule cam-rtsp"}},
		{"guard auth is enough", `{name: cam-rtsp, external_port: 10554, internal_ip: 192.168.1.64, internal_port: 554, guard: auth}`,
			nil},
		{"exploit filter off", `{name: dvr-web, external_port: 18082, internal_ip: 192.168.1.64, internal_port: 8082, guard: {auth: true, hikvision: false}}`,
			[]string{"rule-exploit-filter-off medium rule dvr-web", "rule-plain-http low rule dvr-web"}},
		{"rtsp over udp", `{name: dvr-rtsp, protocol: both, external_port: 10554, internal_ip: 192.168.1.64, internal_port: 554, ` + allowed + `}`,
			[]string{"rule-rtsp-udp low rule dvr-rtsp"}},
		{"rtsp by name over udp", `{name: rtsp-media, protocol: udp, external_port: 20000, internal_ip: 192.168.1.64, ` + allowed + `}`,
			[]string{"rule-rtsp-udp low rule rtsp-media"}},
		{"duplicate", `{name: rtsp-a, external_port: 10554, internal_ip: 192.168.1.64, internal_port: 554, ` + allowed + `}
  - {name: rtsp-b, external_port: 11554, internal_ip: 192.168.1.64, internal_port: 554, ` + allowed + `}`,
			[]string{"rule-duplicate-exposure medium rules rtsp-a and rtsp-b"}},
		{"no duplicate across protocols", `{name: a, protocol: tcp, external_port: 10001, internal_ip: 192.168.1.64, internal_port: 9000, ` + allowed + `}
  - {name: b, protocol: udp, external_port: 10002, internal_ip: 192.168.1.64, internal_port: 9000, ` + allowed + `}`,
			nil},
		{"default external port", `{name: dvr-rtsp, external_port: 554, internal_ip: 192.168.1.64, ` + allowed + `}`,
			[]string{"rule-default-external-port info rule dvr-rtsp"}},
		{"disabled rules are not audited", `{name: dvr-server, external_port: 8000, internal_ip: 192.168.1.64, enabled: false}`,
			nil},
		{"the seed guide's DVR", `{name: dvr-web, external_port: 8082, internal_ip: 192.168.1.64}
  - {name: dvr-rtsp, protocol: both, external_port: 554, internal_ip: 192.168.1.64}
  - {name: dvr-server, protocol: both, external_port: 8000, internal_ip: 192.168.1.64}`,
			[]string{
				"rule-default-external-port info rule dvr-rtsp",
				"rule-default-external-port info rule dvr-server",
				"rule-open-to-world medium rule dvr-rtsp",
				"rule-open-to-world medium rule dvr-server",
				"rule-open-to-world medium rule dvr-web",
				"rule-plain-http low rule dvr-web",
				"rule-rtsp-udp low rule dvr-rtsp",
				"rule-sdk-port-exposed high rule dvr-server",
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := mustConfig(t, "rules:\n  - "+tt.rules+"\n")
			got := brief(RuleFindings(cfg))
			want := slices.Clone(tt.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
			}
			for _, f := range RuleFindings(cfg) {
				if f.Title == "" || f.Meaning == "" || f.Fix == "" || len(f.Rules) == 0 {
					t.Errorf("%s: incomplete finding %+v", f.ID, f)
				}
			}
		})
	}
}

func TestSortAndAtLeast(t *testing.T) {
	fs := []Finding{{ID: "b", Severity: Low}, {ID: "a", Severity: Critical}, {ID: "c", Severity: Info}, {ID: "a", Severity: Low}}
	Sort(fs)
	var got []string
	for _, f := range fs {
		got = append(got, f.ID+":"+string(f.Severity))
	}
	want := []string{"a:critical", "a:low", "b:low", "c:info"}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	rep := Report{Findings: []Finding{{Severity: Medium}}}
	for _, tt := range []struct {
		s    Severity
		want bool
	}{{Critical, false}, {High, false}, {Medium, true}, {Info, true}} {
		if got := rep.AtLeast(tt.s); got != tt.want {
			t.Errorf("AtLeast(%s): got %v, want %v", tt.s, got, tt.want)
		}
	}
}

// TestSuggestsVPN: exposing the SDK port or the plain web page points to
// the built-in VPN, naming the rule's device.
func TestSuggestsVPN(t *testing.T) {
	cfg, err := config.Load([]byte(`version: 1
devices: [{name: dvr1, address: 192.168.1.64}]
rules:
  - {name: dvr-server, external_port: 18000, internal_ip: 192.168.1.64, internal_port: 8000, device: dvr1}
  - {name: dvr-web, external_port: 18080, internal_ip: 192.168.1.64, internal_port: 80}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{IDRuleSDKPort: "camgate vpn add PHONE --allow dvr1", IDRulePlainHTTP: "camgate vpn add PHONE --allow DEVICE"}
	for _, f := range RuleFindings(cfg) {
		if w, ok := want[f.ID]; ok {
			if !strings.Contains(f.Fix, w) {
				t.Errorf("%s: fix %q lacks %q", f.ID, f.Fix, w)
			}
			delete(want, f.ID)
		}
	}
	if len(want) > 0 {
		t.Errorf("findings not raised: %v", want)
	}
}
