package discover

import (
	"context"
	"encoding/xml"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseSADP(t *testing.T) {
	tests := []struct {
		file                   string
		model, serial, mac, fw string
		ip                     string
		http, cmd, tls         uint16
		activated              bool
	}{
		{"sadp-ds-7804hqh-k1.xml", "DS-7804HQH-K1", "DS-7804HQH-K10420190822CCCHD53257168WCVU", "68:6d:bc:ee:f8:f0", "V3.5.38build 191215", "192.168.1.227", 80, 8000, 0, true},
		{"sadp-ipc-not-activated.xml", "DS-2CD2143G2-I", "DS-2CD2143G2-I20230101AAWRJ12345678", "bc:ad:28:01:02:03", "V5.7.11build 221014", "192.168.1.64", 80, 8000, 8443, false},
		{"sadp-prefixed-gb2312.xml", "DS-7608NI-K2", "DS-7608NI-K20820190822CCRRD53257168WCVU", "68:6d:bc:11:22:33", "V4.30.085build 200916", "198.19.0.64", 8082, 8000, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			r, err := ParseSADP(fixture(t, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if r.Model != tt.model || r.Serial != tt.serial || r.MAC != tt.mac || r.Firmware != tt.fw || r.IP.String() != tt.ip {
				t.Errorf("got %+v\nwant model %s serial %s mac %s fw %s ip %s", r, tt.model, tt.serial, tt.mac, tt.fw, tt.ip)
			}
			if r.HTTPPort != tt.http || r.CommandPort != tt.cmd || r.SDKOverTLSPort != tt.tls {
				t.Errorf("ports: got http %d cmd %d tls %d, want %d %d %d", r.HTTPPort, r.CommandPort, r.SDKOverTLSPort, tt.http, tt.cmd, tt.tls)
			}
			if r.Activated == nil || *r.Activated != tt.activated {
				t.Errorf("activated: got %v, want %v", r.Activated, tt.activated)
			}
		})
	}
}

func TestParseSADPRejects(t *testing.T) {
	tests := map[string]string{
		"our own probe": string(sadpProbe(newUUID())),
		"empty":         "",
		"not xml":       "hello",
		"empty match":   "<ProbeMatch><Types>inquiry</Types></ProbeMatch>",
		"soap":          string(fixture(t, "wsd-hikvision-env.xml")),
	}
	for name, in := range tests {
		if r, err := ParseSADP([]byte(in)); err == nil {
			t.Errorf("%s: got %+v, want an error", name, r)
		}
	}
}

func TestParseWSD(t *testing.T) {
	tests := []struct {
		file              string
		mac, tail, hw, nm string
		hosts             []string
		xaddrs            int
	}{
		{"wsd-hikvision-env.xml", "68:6d:bc:5c:b1:5d", "68:6d:bc:5c:b1:5d", "DFI6256TE", "", []string{"192.168.12.123"}, 1},
		{"wsd-tplink-soapenv.xml", "", "c0:06:c3:af:ec:0e", "MODEL", "TP-IPC", []string{"192.168.12.128"}, 1},
		{"wsd-hikvision-namespaced.xml", "", "68:6d:bc:11:22:33", "DS-7608NI-K2", "HIKVISION DS-7608NI-K2", []string{"198.19.0.64", "fe80::6a6d:bcff:fe11:2233"}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			ms, err := ParseWSD(fixture(t, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if len(ms) != 1 {
				t.Fatalf("got %d matches, want 1", len(ms))
			}
			m := ms[0]
			var hosts []string
			for _, h := range m.Hosts {
				hosts = append(hosts, h.String())
			}
			if m.MAC != tt.mac || m.UUIDTail != tt.tail || m.Hardware != tt.hw || m.Name != tt.nm ||
				strings.Join(hosts, " ") != strings.Join(tt.hosts, " ") || len(m.XAddrs) != tt.xaddrs {
				t.Errorf("got %+v\nwant mac %q tail %q hw %q name %q hosts %v", m, tt.mac, tt.tail, tt.hw, tt.nm, tt.hosts)
			}
		})
	}
}

func TestParseWSDRejects(t *testing.T) {
	tests := map[string]string{
		"our own probe": string(wsdProbe(newUUID())),
		"sadp":          string(fixture(t, "sadp-ds-7804hqh-k1.xml")),
		"empty":         "",
	}
	for name, in := range tests {
		if m, err := ParseWSD([]byte(in)); err == nil {
			t.Errorf("%s: got %+v, want an error", name, m)
		}
	}
}

func TestProbeMessages(t *testing.T) {
	uuid := newUUID()
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(uuid) {
		t.Fatalf("uuid %q is not a v4 UUID", uuid)
	}
	want := `<?xml version="1.0" encoding="utf-8"?><Probe><Uuid>` + strings.ToUpper(uuid) + `</Uuid><Types>inquiry</Types></Probe>`
	if got := string(sadpProbe(uuid)); got != want {
		t.Errorf("sadp probe: got %s, want %s", got, want)
	}
	var env struct {
		Action string `xml:"Header>Action"`
		ID     string `xml:"Header>MessageID"`
		Types  string `xml:"Body>Probe>Types"`
	}
	if err := xml.Unmarshal(wsdProbe(uuid), &env); err != nil {
		t.Fatal(err)
	}
	if env.Action != "http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe" || env.ID != "uuid:"+uuid || env.Types != "dp0:NetworkVideoTransmitter" {
		t.Errorf("ws-discovery probe: got %+v", env)
	}
}

func TestMerge(t *testing.T) {
	sadp := func(name string) SADPReply {
		r, err := ParseSADP(fixture(t, name))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	wsd := func(name string) WSDMatch {
		m, err := ParseWSD(fixture(t, name))
		if err != nil {
			t.Fatal(err)
		}
		return m[0]
	}
	src := netip.MustParseAddr("198.19.0.64")
	t.Run("by uuid tail and ip, either order", func(t *testing.T) {
		for _, sadpFirst := range []bool{true, false} {
			var m merger
			if sadpFirst {
				m.addSADP(sadp("sadp-prefixed-gb2312.xml"), "eth0", src)
				m.addWSD(wsd("wsd-hikvision-namespaced.xml"), "eth0", src)
			} else {
				m.addWSD(wsd("wsd-hikvision-namespaced.xml"), "eth0", src)
				m.addSADP(sadp("sadp-prefixed-gb2312.xml"), "eth0", src)
			}
			got := m.result()
			if len(got) != 1 {
				t.Fatalf("sadpFirst=%v: got %d devices %+v, want 1", sadpFirst, len(got), got)
			}
			d := got[0]
			if d.SourceList() != "sadp+wsd" || d.MAC != "68:6d:bc:11:22:33" || d.Model != "DS-7608NI-K2" ||
				d.HTTPPort != 8082 || d.ServerPort != 8000 || len(d.ONVIF) != 2 || d.IP != src || d.NotActivated() {
				t.Errorf("sadpFirst=%v: got %+v", sadpFirst, d)
			}
		}
	})
	t.Run("distinct devices stay apart", func(t *testing.T) {
		var m merger
		m.addSADP(sadp("sadp-ds-7804hqh-k1.xml"), "eth0", netip.MustParseAddr("192.168.1.227"))
		m.addSADP(sadp("sadp-ipc-not-activated.xml"), "eth0", netip.MustParseAddr("192.168.1.64"))
		m.addWSD(wsd("wsd-tplink-soapenv.xml"), "eth0", netip.MustParseAddr("192.168.12.128"))
		m.addSADP(sadp("sadp-ds-7804hqh-k1.xml"), "eth1", netip.MustParseAddr("192.168.1.227")) // same device again
		got := m.result()
		if len(got) != 3 {
			t.Fatalf("got %d devices, want 3: %+v", len(got), got)
		}
		if got[0].IP.String() != "192.168.1.64" || !got[0].NotActivated() {
			t.Errorf("first device: got %+v, want the not-activated camera at .64", got[0])
		}
		if got[2].IP.String() != "192.168.12.128" || got[2].SourceList() != "wsd" || got[2].MAC != "" {
			t.Errorf("ONVIF-only device: got %+v (a random UUID must not become its MAC)", got[2])
		}
	})
}

// responder answers every datagram on a loopback socket with reply and
// records what it received.
type responder struct {
	pc    net.PacketConn
	mu    sync.Mutex // guards following
	got   [][]byte
	reply []byte
}

func newResponder(t *testing.T, reply []byte) *responder {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &responder{pc: pc, reply: reply}
	t.Cleanup(func() { pc.Close() })
	go r.serve()
	return r
}

func (r *responder) serve() {
	buf := make([]byte, 65536)
	for {
		n, from, err := r.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		r.mu.Lock()
		r.got = append(r.got, append([]byte(nil), buf[:n]...))
		r.mu.Unlock()
		r.pc.WriteTo(r.reply, from)
	}
}

func (r *responder) addr() netip.AddrPort {
	return r.pc.LocalAddr().(*net.UDPAddr).AddrPort()
}

func (r *responder) received() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got
}

func TestDiscoverLoopback(t *testing.T) {
	sadpR := newResponder(t, fixture(t, "sadp-prefixed-gb2312.xml"))
	wsdR := newResponder(t, fixture(t, "wsd-hikvision-namespaced.xml"))
	var events []Progress
	start := time.Now()
	devs, err := Discover(context.Background(), Options{
		Interfaces: []string{"lo"},
		Timeout:    500 * time.Millisecond,
		SADPAddr:   sadpR.addr(),
		WSDAddr:    wsdR.addr(),
		Progress:   func(p Progress) { events = append(events, p) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("Discover ignored its window")
	}
	if len(devs) != 1 || devs[0].SourceList() != "sadp+wsd" || devs[0].Interface != "lo" {
		t.Fatalf("got %+v, want one device found by sadp and wsd on lo", devs)
	}
	for _, p := range sadpR.received() {
		var probe struct {
			XMLName xml.Name
			Types   string `xml:"Types"`
		}
		if err := xml.Unmarshal(p, &probe); err != nil || probe.XMLName.Local != "Probe" || probe.Types != "inquiry" {
			t.Errorf("SADP responder got %q; only inquiry probes may be sent", p)
		}
	}
	// Sent at the start and again at a third and two thirds of the window;
	// a unicast target gets no broadcast copies.
	if len(sadpR.received()) != 3 || len(wsdR.received()) != 3 {
		t.Errorf("got %d SADP and %d WSD probes, want 3 each", len(sadpR.received()), len(wsdR.received()))
	}
	if len(events) != 4 || events[0].Kind != Probing || events[3].Kind != Done || events[3].Replies != 2 {
		t.Errorf("progress: got %+v, want probing, 2 replies, done(2)", events)
	}
}

func TestDiscoverCancel(t *testing.T) {
	silent := newResponder(t, []byte("not xml")) // answered but ignored
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(100 * time.Millisecond); cancel() }()
	start := time.Now()
	devs, err := Discover(ctx, Options{Interfaces: []string{"lo"}, Timeout: time.Minute, SADPAddr: silent.addr(), SkipWSD: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) != 0 {
		t.Errorf("got %+v, want none", devs)
	}
	if time.Since(start) > 30*time.Second {
		t.Errorf("cancel did not end the window")
	}
}

func TestDiscoverBadInterface(t *testing.T) {
	_, err := Discover(context.Background(), Options{Interfaces: []string{"nosuch0"}})
	if err == nil || !strings.Contains(err.Error(), "nosuch0") {
		t.Fatalf("got %v, want an error naming the interface", err)
	}
}

func TestBroadcastAddrs(t *testing.T) {
	got := broadcastAddrs(netip.MustParsePrefix("192.168.1.10/24"))
	if len(got) != 2 || got[0].String() != "255.255.255.255" || got[1].String() != "192.168.1.255" {
		t.Errorf("got %v", got)
	}
	if got := broadcastAddrs(netip.MustParsePrefix("10.0.0.1/32")); len(got) != 1 {
		t.Errorf("/32: got %v, want only the limited broadcast", got)
	}
}
