package check

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/camgate/camgate/internal/config"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		ip   string
		want AddrClass
		note string
	}{
		{"", ClassUnknown, "--public-ip"},
		{"0.0.0.0", ClassUnknown, "--public-ip"},
		{"100.64.1.2", ClassCGNAT, "carrier-grade NAT"},
		{"100.127.255.254", ClassCGNAT, "carrier-grade NAT"},
		{"100.128.0.1", ClassPublic, ""},
		{"10.1.2.3", ClassPrivate, "RFC 1918"},
		{"172.16.0.1", ClassPrivate, "RFC 1918"},
		{"192.168.1.1", ClassPrivate, "double NAT"},
		{"169.254.3.4", ClassPrivate, "link-local"},
		{"192.0.0.2", ClassPrivate, "DS-Lite"},
		{"127.0.0.1", ClassPrivate, "loopback"},
		{"fd00::1", ClassPrivate, "unique local"},
		{"198.18.0.1", ClassReserved, "benchmarking"},
		{"203.0.113.9", ClassReserved, "documentation"},
		{"8.8.8.8", ClassPublic, ""},
		{"::ffff:100.64.0.1", ClassCGNAT, "carrier-grade"},
		{"2a00:1450::1", ClassPublic, ""},
	}
	for _, tt := range tests {
		t.Run(tt.ip, func(t *testing.T) {
			var ip netip.Addr
			if tt.ip != "" {
				ip = netip.MustParseAddr(tt.ip)
			}
			got, note := Classify(ip)
			if got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
			if !strings.Contains(note, tt.note) {
				t.Errorf("note %q, want it to mention %q", note, tt.note)
			}
		})
	}
}

func TestChooseKind(t *testing.T) {
	tests := []struct {
		name, desc string
		proto      string
		port       string
		want       Kind
	}{
		{"dvr", "", "tcp", "80", KindHTTP},
		{"dvr-web", "DVR web page", "tcp", "8082", KindHTTP},
		{"dvr-https", "", "tcp", "443", KindHTTPS},
		{"cam-secure", "web over https", "tcp", "10443", KindHTTPS},
		{"dvr-rtsp", "", "tcp", "554", KindRTSP},
		{"cam-stream", "", "tcp", "10554", KindRTSP},
		{"dvr-server", "", "tcp", "8000", KindSDK},
		{"web-on-8000", "", "tcp", "8000", KindSDK}, // factory ports win over names
		{"ivms", "", "tcp", "9000", KindSDK},
		{"sdk-tls", "", "tcp", "8443", KindTLS},
		{"shell", "", "tcp", "22", KindSSH},
		{"telnet", "", "tcp", "23", KindTCP},
		{"mystery", "", "tcp", "12345", KindTCP},
		{"rtp", "", "udp", "10000-10009", KindRTP},
		{"ports", "", "udp", "10000-10009", KindUDP},
		{"rtp", "RTSP media", "udp", "20000", KindRTP},
		{"dvr-rtsp", "", "udp", "554", KindRTP},
		{"sadp", "", "udp", "37020", KindDiscovery},
		{"onvif", "", "udp", "3702", KindDiscovery},
		{"echo", "", "udp", "9000", KindUDP},
	}
	for _, tt := range tests {
		t.Run(tt.name+"/"+tt.proto+"/"+tt.port, func(t *testing.T) {
			pr, err := config.ParsePortRange(tt.port)
			if err != nil {
				t.Fatal(err)
			}
			r := config.Rule{Name: tt.name, Description: tt.desc, ExternalPort: pr}
			got, why := ChooseKind(&r, tt.proto)
			if got != tt.want {
				t.Errorf("got %s (%s), want %s", got, why, tt.want)
			}
			if why == "" {
				t.Error("got no reason for the choice")
			}
		})
	}
}

func TestParseFrom(t *testing.T) {
	tests := []struct {
		in      string
		want    From
		wantErr string
	}{
		{"", From{}, ""},
		{"198.18.0.11", From{Addr: netip.MustParseAddr("198.18.0.11")}, ""},
		{"netns:/proc/self/ns/net", From{Netns: "/proc/self/ns/net"}, ""},
		{"netns:", From{}, "namespace name"},
		{"netns:no-such-ns-camgate", From{}, "no such file"},
		{"wan", From{}, "not an IP address"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseFrom(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestParseRTSPStatus(t *testing.T) {
	tests := []struct {
		line string
		code int
		ok   bool
	}{
		{"RTSP/1.0 200 OK", 200, true},
		{"RTSP/1.0 401 Unauthorized", 401, true},
		{"RTSP/2.0 454 Session Not Found", 454, true},
		{"RTSP/1.0 200", 200, true},
		{"HTTP/1.1 400 Bad Request", 0, false},
		{"RTSP/1.0 2000 OK", 0, false},
		{"RTSP/1.0 abc", 0, false},
		{"", 0, false},
		{"SSH-2.0-OpenSSH_9.2", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			st, ok := ParseRTSPStatus(tt.line)
			if ok != tt.ok || st.Code != tt.code {
				t.Errorf("got %d, %v; want %d, %v", st.Code, ok, tt.code, tt.ok)
			}
		})
	}
}
