package nft

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParseFlow feeds conntrack netlink bodies to the parser the stats
// read: a kernel answer is trusted, but a parser of bytes must not panic.
// The seed is a captured body (testdata/conntrack-tcp-dnat.bin: an
// established, DNATed TCP flow 198.18.0.10 -> 198.18.0.1:8082, replied by
// 198.19.0.64:8082).
func FuzzParseFlow(f *testing.F) {
	seed, err := os.ReadFile(filepath.Join("testdata", "conntrack-tcp-dnat.bin"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte{2, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		parseFlow(b)
	})
}

func TestParseFlowCapture(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "conntrack-tcp-dnat.bin"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := parseFlow(b)
	if err != nil {
		t.Fatal(err)
	}
	if f.proto != 6 || f.replySrc.String() != "198.19.0.64:8082" || !f.dnat || f.closing {
		t.Fatalf("got %+v, want an established DNATed TCP flow replied by 198.19.0.64:8082", f)
	}
}

// FuzzParseRoutes feeds /proc/net/route text to the route parser.
func FuzzParseRoutes(f *testing.F) {
	f.Add([]byte(routeSample))
	f.Add([]byte("Iface\tDestination\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		parseRoutes(bytes.NewReader(b))
	})
}

// routeSample is /proc/net/route of a LAN box: default via 198.19.0.1 on
// br0, and the LAN 198.19.0.0/24 on br0.
const routeSample = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n" +
	"br0\t00000000\t010013C6\t0003\t0\t0\t0\t00000000\t0\t0\t0\n" +
	"br0\t000013C6\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"

func TestPlaceRule(t *testing.T) {
	routes, err := parseRoutes(bytes.NewReader([]byte(routeSample)))
	if err != nil || len(routes) != 2 {
		t.Fatalf("parse: %v %+v", err, routes)
	}
	dev := Rule{Target: mustAddr("198.19.0.70")}
	router := []Route{{Dst: routes[1].Dst, Iface: "lan0"}, {Dst: routes[0].Dst, Gateway: mustAddr("198.18.0.254"), Iface: "wan0"}}
	for _, tc := range []struct {
		name   string
		mode   string
		routes []Route
		masq   bool
		hair   bool
	}{
		{"lan box: default route on the device's network", "", routes, true, false},
		{"router: the device's network is not the way out", "", router, false, true},
		{"forced on", "on", router, true, false},
		{"forced off", "off", routes, false, true},
		{"no route", "", nil, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := dev
			r.Masquerade = tc.mode
			p, hair := placeRule(&r, tc.routes)
			if p.Masquerade != tc.masq || hair.IsValid() != tc.hair {
				t.Fatalf("got masquerade %v, hairpin %v (%s); want %v, %v", p.Masquerade, hair, p.Why, tc.masq, tc.hair)
			}
		})
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
