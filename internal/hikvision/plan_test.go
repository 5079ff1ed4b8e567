package hikvision

import (
	"errors"
	"strings"
	"testing"

	"github.com/camgate/camgate/internal/config"
)

func ports(entries ...any) Ports {
	p := Ports{}
	for i := 0; i < len(entries); i += 3 {
		p.Set(entries[i].(string), uint16(entries[i+1].(int)), entries[i+2].(bool))
	}
	return p
}

func rule(name string, ext int, proto config.Protocol) config.Rule {
	return config.Rule{Name: name, Protocol: proto, ExternalPort: config.PortRange{First: uint16(ext), Last: uint16(ext)}, InternalIP: "192.0.2.9"}
}

// summary renders a plan as "name ext->int" lines for comparison.
func summary(p Plan) string {
	var b []string
	for _, r := range p.Rules {
		b = append(b, r.Name+" "+r.ExternalPort.String()+"->"+r.InternalIP+":"+r.InternalPort.String())
	}
	return strings.Join(b, ", ")
}

func TestPlanRules(t *testing.T) {
	seed := ports(ProtoHTTP, 8082, true, ProtoHTTPS, 443, true, ProtoRTSP, 554, true, ProtoDevManage, 8000, true)
	nvr := ports(ProtoHTTP, 80, true, ProtoRTSP, 554, true, ProtoHTTPS, 443, false, ProtoDevManage, 8000, true, ProtoWebSocket, 7681, true)
	dvr := DeviceInfo{Model: "DS-7608NI-K2", DeviceType: "DVR"}
	tests := []struct {
		name     string
		existing []config.Rule
		ports    Ports
		opts     PlanOptions
		want     string
		warn     []string // substrings that must appear in the warnings
		note     []string // substrings that must appear in the notes
	}{
		{
			name:  "seed DVR on an empty table",
			ports: seed, opts: PlanOptions{Name: "dvr1", DeviceIP: "198.19.0.64"},
			want: "dvr1-https 443->198.19.0.64:8082, dvr1-rtsp 554->198.19.0.64:554",
			note: []string{"8000", "frequent attack target", "camgate serves HTTPS in dvr1-https"},
		},
		{
			name:  "HTTPS off: HTTP with a warning",
			ports: nvr, opts: PlanOptions{Name: "nvr", DeviceIP: "192.168.1.64"},
			want: "nvr-https 443->192.168.1.64:80, nvr-rtsp 554->192.168.1.64:554",
			note: []string{"WebSocket port 7681"},
		},
		{
			name:  "with SDK port",
			ports: seed, opts: PlanOptions{Name: "dvr1", DeviceIP: "198.19.0.64", WithSDKPort: true},
			want: "dvr1-https 443->198.19.0.64:8082, dvr1-rtsp 554->198.19.0.64:554, dvr1-server 8000->198.19.0.64:8000",
			warn: []string{"restrict it"},
		},
		{
			name:     "second device steps by 1000",
			existing: []config.Rule{rule("dvr1-https", 443, config.TCP), rule("dvr1-rtsp", 554, config.TCP)},
			ports:    seed, opts: PlanOptions{DeviceIP: "198.19.0.65", WithSDKPort: true},
			want: "dvr2-https 1443->198.19.0.65:8082, dvr2-rtsp 1554->198.19.0.65:554, dvr2-server 8000->198.19.0.65:8000",
		},
		{
			name: "disabled rules and ranges count as taken, UDP-only does not",
			existing: []config.Rule{
				func() config.Rule { r := rule("old", 554, config.TCP); r.SetEnabled(false); return r }(),
				{Name: "range", Protocol: config.Both, ExternalPort: config.PortRange{First: 1500, Last: 1600}, InternalIP: "192.0.2.1"},
				rule("udp-only", 443, config.UDP),
			},
			ports: seed, opts: PlanOptions{Name: "cam", DeviceIP: "10.0.0.2"},
			want: "cam-https 443->10.0.0.2:8082, cam-rtsp 2554->10.0.0.2:554",
		},
		{
			name:     "reserved ports and the stride running past 65535",
			existing: []config.Rule{rule("a", 64554, config.TCP)},
			ports:    ports(ProtoRTSP, 64554, true, ProtoHTTPS, 64600, true),
			opts:     PlanOptions{Name: "x", DeviceIP: "10.0.0.3", Reserved: []uint16{64600}, PassthroughHTTPS: true},
			want:     "x-https 64601->10.0.0.3:64600, x-rtsp 64555->10.0.0.3:64554",
		},
		{
			name:  "RTSP disabled",
			ports: ports(ProtoHTTP, 80, true, ProtoHTTPS, 443, true, ProtoRTSP, 554, false), opts: PlanOptions{Name: "d", DeviceIP: "10.0.0.4"},
			want: "d-https 443->10.0.0.4:80",
			warn: []string{"RTSP (port 554) is disabled"},
		},
		{
			name:  "assumed ports say so",
			ports: DefaultPorts(), opts: PlanOptions{Name: "d", DeviceIP: "10.0.0.5", Assumed: true},
			want: "d-https 443->10.0.0.5:80, d-rtsp 554->10.0.0.5:554",
		},
		{
			name:  "HTTP off: no web rule unless passthrough is asked for",
			ports: ports(ProtoHTTPS, 443, true, ProtoRTSP, 554, true), opts: PlanOptions{Name: "h", DeviceIP: "10.0.0.6"},
			want: "h-rtsp 554->10.0.0.6:554",
			warn: []string{"HTTP is off on the device", "--passthrough-https"},
		},
		{
			name:  "passthrough on request, with the reason",
			ports: seed, opts: PlanOptions{Name: "p", DeviceIP: "10.0.0.7", PassthroughHTTPS: true},
			want: "p-https 443->10.0.0.7:443, p-rtsp 554->10.0.0.7:554",
			warn: []string{"camgate cannot read it", "--passthrough-https"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := PlanRules(tt.existing, dvr, tt.ports, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if got := summary(p); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
			for _, w := range tt.warn {
				if !strings.Contains(strings.Join(p.Warnings, "\n"), w) {
					t.Errorf("warnings %q lack %q", p.Warnings, w)
				}
			}
			for _, n := range tt.note {
				if !strings.Contains(strings.Join(p.Notes, "\n"), n) {
					t.Errorf("notes %q lack %q", p.Notes, n)
				}
			}
			// The plan must merge into a valid config with no conflicts.
			cfg := &config.Config{Version: config.CurrentVersion, Rules: append(append([]config.Rule{}, tt.existing...), p.Rules...)}
			for i := range cfg.Rules {
				cfg.Rules[i].SetEnabled(true)
			}
			if err := cfg.Validate(); err != nil {
				t.Errorf("merged config invalid: %v", err)
			}
			for _, r := range p.Rules {
				if !strings.Contains(r.Description, "DVR DS-7608NI-K2") || r.Proto() != config.TCP {
					t.Errorf("rule %s: description %q / protocol %s", r.Name, r.Description, r.Proto())
				}
				if tt.opts.Assumed && !strings.Contains(r.Description, "assumed") {
					t.Errorf("rule %s: description %q does not say the port was assumed", r.Name, r.Description)
				}
			}
		})
	}
}

func TestPlanRulesErrors(t *testing.T) {
	seed := DefaultPorts()
	tests := []struct {
		name     string
		existing []config.Rule
		ports    Ports
		opts     PlanOptions
		want     string
		is       error
	}{
		{"no address", nil, seed, PlanOptions{Name: "a"}, "no device address", nil},
		{"bad name", nil, seed, PlanOptions{Name: "Bad Name", DeviceIP: "10.0.0.1"}, "lower-case", nil},
		{"name taken", []config.Rule{rule("dvr1-rtsp", 9554, config.TCP)}, seed, PlanOptions{Name: "dvr1", DeviceIP: "10.0.0.1"}, "dvr1-rtsp", ErrNameTaken},
		{"nothing to forward", nil, ports(ProtoDevManage, 8000, true), PlanOptions{Name: "a", DeviceIP: "10.0.0.1"}, "no port worth forwarding", nil},
		{"bad address", nil, seed, PlanOptions{Name: "a", DeviceIP: "300.1.1.1"}, "internal_ip", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := PlanRules(tt.existing, DeviceInfo{}, tt.ports, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want error containing %q", err, tt.want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("got %v, want errors.Is %v", err, tt.is)
			}
		})
	}
}

func TestPlanRulesNoFreePort(t *testing.T) {
	all := config.Rule{Name: "all", ExternalPort: config.PortRange{First: 554, Last: 65535}, InternalIP: "10.0.0.1"}
	_, err := PlanRules([]config.Rule{all}, DeviceInfo{}, ports(ProtoRTSP, 554, true), PlanOptions{Name: "a", DeviceIP: "10.0.0.2"})
	if err == nil || !strings.Contains(err.Error(), "no free external port") {
		t.Fatalf("got %v, want no free external port", err)
	}
}

func TestPlanRulesDuplicateDeviceWarns(t *testing.T) {
	old := rule("cam-rtsp", 554, config.TCP)
	old.InternalIP = "10.0.0.2"
	p, err := PlanRules([]config.Rule{old}, DeviceInfo{}, ports(ProtoRTSP, 554, true), PlanOptions{Name: "again", DeviceIP: "10.0.0.2"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(p.Warnings, "\n"), `"cam-rtsp" already forwards`) {
		t.Errorf("warnings %q lack the duplicate notice", p.Warnings)
	}
}

func TestDeviceLabel(t *testing.T) {
	tests := map[DeviceInfo]string{
		{DeviceType: "IPCamera", Model: "DS-2CD2032-I"}: "IP camera DS-2CD2032-I",
		{DeviceType: "NVR"}:                             "NVR",
		{DeviceType: "DVR", Model: "DS-7204"}:           "DVR DS-7204",
		{}:                                              "Hikvision device",
	}
	for in, want := range tests {
		if got := deviceLabel(in); got != want {
			t.Errorf("deviceLabel(%+v) = %q, want %q", in, got, want)
		}
	}
}

// TestPlanProtects: the default plan writes only guarded rules (issue 14):
// HTTPS terminated by camgate with the brute-force guard and the exploit
// filter, RTSP with the brute-force guard.
func TestPlanProtects(t *testing.T) {
	seed := ports(ProtoHTTP, 8082, true, ProtoHTTPS, 443, true, ProtoRTSP, 554, true)
	p, err := PlanRules(nil, DeviceInfo{}, seed, PlanOptions{Name: "dvr1", DeviceIP: "198.19.0.64"})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range p.Rules {
		if !r.AuthGuard() {
			t.Errorf("%s: no brute-force guard", r.Name)
		}
		switch r.Name {
		case "dvr1-https":
			if !r.TLS.Terminate() || !r.HikvisionFilter() || r.GuardService() != config.ServiceHTTP {
				t.Errorf("%s: tls %q, filter %v, service %q; want terminate, filter, http", r.Name, r.TLS.Mode, r.HikvisionFilter(), r.GuardService())
			}
		case "dvr1-rtsp":
			if r.GuardService() != config.ServiceRTSP {
				t.Errorf("%s: service %q, want rtsp", r.Name, r.GuardService())
			}
		}
	}
}
