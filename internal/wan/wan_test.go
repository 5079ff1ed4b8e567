package wan

import (
	"net/netip"
	"testing"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		ip   string
		want Class
	}{
		{"0.0.0.0", Unknown},
		{"8.8.8.8", Public},
		{"2a00:1450::1", Public},
		{"100.64.0.1", CGNAT},
		{"100.127.255.254", CGNAT},
		{"100.128.0.1", Public},
		{"10.1.2.3", Private},
		{"172.16.0.1", Private},
		{"192.168.1.1", Private},
		{"192.0.0.2", Private},
		{"169.254.1.1", Private},
		{"::ffff:192.168.1.1", Private},
		{"fd00::1", Private},
		{"224.0.0.1", Private},
		{"198.18.0.1", Reserved},
		{"203.0.113.9", Reserved},
		{"2001:db8::1", Reserved},
	}
	for _, tt := range tests {
		var ip netip.Addr
		if tt.ip != "" {
			ip = netip.MustParseAddr(tt.ip)
		}
		got, name := Classify(ip)
		if got != tt.want {
			t.Errorf("Classify(%s) = %s, want %s", tt.ip, got, tt.want)
		}
		if (got == Public || got == Unknown) != (name == "") {
			t.Errorf("Classify(%s): range name %q for class %s", tt.ip, name, got)
		}
	}
}
