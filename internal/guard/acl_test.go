package guard

import (
	"fmt"
	"net/netip"
	"testing"
)

func TestACLPermits(t *testing.T) {
	p := netip.MustParsePrefix
	acl := ACL{
		Allow: []netip.Prefix{p("198.51.100.0/24"), p("2001:db8::/32")},
		Deny:  []netip.Prefix{p("198.51.100.66/32")},
	}
	tests := []struct {
		src  string
		want bool
	}{
		{"198.51.100.7", true},
		{"::ffff:198.51.100.7", true}, // v4-mapped from a dual-stack listener
		{"198.51.100.66", false},      // deny wins over allow
		{"203.0.113.1", false},
		{"2001:db8::1", true},
		{"2001:db9::1", false},
	}
	for _, tt := range tests {
		if got := acl.Permits(netip.MustParseAddr(tt.src)); got != tt.want {
			t.Errorf("Permits(%s) = %v, want %v", tt.src, got, tt.want)
		}
	}
	if !(ACL{}).Permits(netip.MustParseAddr("192.0.2.1")) {
		t.Error("the zero ACL refused a source")
	}
	if err := acl.Check(netip.MustParseAddr("198.51.100.66")); err == nil || err.Error() != "source 198.51.100.66 is in deny 198.51.100.66/32" {
		t.Errorf("got %v, want the deny entry named", err)
	}
}

// BenchmarkACLPermits is the per-connection rule lookup at accept: a
// source checked against a 64-entry allow list (an installer's office
// ranges, say) and a deny list. It must not allocate.
func BenchmarkACLPermits(b *testing.B) {
	var acl ACL
	for i := 0; i < 64; i++ {
		acl.Allow = append(acl.Allow, netip.MustParsePrefix(fmt.Sprintf("10.%d.0.0/16", i)))
	}
	acl.Deny = []netip.Prefix{netip.MustParsePrefix("10.63.1.0/24")}
	srcs := []netip.Addr{netip.MustParseAddr("10.63.2.9"), netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("10.0.0.1")}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		acl.Permits(srcs[i%len(srcs)])
	}
}
