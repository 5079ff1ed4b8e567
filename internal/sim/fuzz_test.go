package sim

import (
	"encoding/xml"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// addSeeds adds every testdata file whose name starts with prefix.
func addSeeds(f *testing.F, prefix string) {
	f.Helper()
	files, _ := filepath.Glob(filepath.Join("testdata", prefix+"*"))
	if len(files) == 0 {
		f.Fatalf("no seeds testdata/%s*", prefix)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// fuzzDevice is a Device with no sockets, enough to build replies.
func fuzzDevice(f *testing.F) *Device {
	d, err := New(Config{Listen: loopback(), Password: "x", Ports: allOff()})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { d.Close() })
	return d
}

// FuzzSADPProbe feeds arbitrary datagrams to the SADP parser and
// responder: it must not panic, and every reply must be well-formed XML
// that echoes the probe's Uuid (bounded) and never answers a write.
func FuzzSADPProbe(f *testing.F) {
	addSeeds(f, "sadp-")
	f.Add([]byte(`<Probe><Uuid>&lt;x&gt;</Uuid><Types>INQUIRY</Types></Probe>`))
	f.Add([]byte(`<ProbeMatch><Uuid>1</Uuid></ProbeMatch>`))
	f.Add([]byte("<Probe><Uuid>\xff\xfe</Uuid><Types>inquiry</Types></Probe>"))
	d := fuzzDevice(f)
	src := netip.MustParseAddrPort("127.0.0.1:50000")
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parseSADPProbe(b)
		reply, method := d.answerSADP(b, src, loopback())
		if err != nil {
			if reply != nil || method != "" {
				t.Fatalf("unparsable datagram answered: %q %q", method, reply)
			}
			return
		}
		if !sadpInquiry(p.Types) {
			if reply != nil {
				t.Fatalf("Types %q answered", p.Types)
			}
			return
		}
		var m struct {
			XMLName xml.Name
			UUID    string `xml:"Uuid"`
		}
		if err := xml.Unmarshal(reply, &m); err != nil {
			t.Fatalf("reply is not XML: %v\n%s", err, reply)
		}
		if m.XMLName.Local != "ProbeMatch" || len(m.UUID) > 3*maxEchoedUUID {
			t.Fatalf("reply root %q uuid %d bytes", m.XMLName.Local, len(m.UUID))
		}
		if utf8.ValidString(p.UUID) && len(p.UUID) <= maxEchoedUUID && validXMLText(p.UUID) && m.UUID != p.UUID {
			t.Fatalf("Uuid %q echoed as %q", p.UUID, m.UUID)
		}
	})
}

func validXMLText(s string) bool {
	for _, r := range s {
		if r < 0x20 && r != '\t' && r != '\n' && r != '\r' || r == 0xFFFD || r == 0xFFFE || r == 0xFFFF {
			return false
		}
	}
	return !strings.Contains(s, "\r")
}

// FuzzWSDProbe feeds arbitrary datagrams to the WS-Discovery parser and
// responder; replies must be well-formed and relate to the probe.
func FuzzWSDProbe(f *testing.F) {
	addSeeds(f, "wsd-")
	f.Add([]byte(`<e:Envelope xmlns:e="x"><e:Body><Probe/></e:Body></e:Envelope>`))
	f.Add([]byte(`<Envelope><Header><MessageID>]]&gt;</MessageID></Header><Body><Probe><Scopes MatchBy="x">a b</Scopes></Probe></Body></Envelope>`))
	d := fuzzDevice(f)
	src := netip.MustParseAddrPort("127.0.0.1:50000")
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parseWSDProbe(b)
		reply, _ := d.answerWSDiscovery(b, src, loopback())
		if err != nil {
			if reply != nil {
				t.Fatalf("bad probe answered: %v", err)
			}
			return
		}
		if reply == nil {
			return
		}
		var v struct {
			Header struct {
				RelatesTo string `xml:"RelatesTo"`
			} `xml:"Header"`
		}
		if err := xml.Unmarshal(reply, &v); err != nil {
			t.Fatalf("reply is not XML: %v\n%s", err, reply)
		}
		if utf8.ValidString(p.MessageID) && len(p.MessageID) <= 256 && validXMLText(p.MessageID) && v.Header.RelatesTo != p.MessageID {
			t.Fatalf("RelatesTo %q, want %q", v.Header.RelatesTo, p.MessageID)
		}
	})
}

// FuzzAuthorization checks the Authorization parser and the verifier on
// arbitrary headers: no panic, and nothing but the right answer passes.
func FuzzAuthorization(f *testing.F) {
	f.Add(`Digest username="admin", realm="IP Camera(71935)", nonce="0", uri="/ISAPI/System/deviceInfo", algorithm=MD5, response="6629fae49393a05397450978507c4ef1", opaque="5ccc069c403ebaf9f0171e9517f40e41", qop=auth, nc=00000001, cnonce="0a4f113b"`)
	f.Add(`Digest username="admin", realm="IP Camera(21388)", nonce="4e5468694e7a42694e7a4d364f4463304f6d5535", uri="rtsp://192.168.5.106:554/Streaming/Channels/101", response="c2a4ee8b6e5a4d9b13c4b3d0b2e3c1aa"`)
	f.Add(`Basic YWRtaW46MTIzNDU=`)
	f.Add(`Digest ,,,a="\\\"",b=c`)
	f.Add(`Bearer abc.def-ghi~`)
	a, err := newDigestAuth("IP Camera(71935)", nil, 0)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, h string) {
		c, err := parseAuthorization(h)
		if err != nil || c.scheme != "digest" {
			return
		}
		if v := a.verify(digestRequest{method: "GET"}, c.params, "admin", "pw"); v == verdictOK {
			t.Fatalf("a fuzzed header authenticated: %q", h)
		}
	})
}

// FuzzDeviceInfoPUT checks the PUT deviceInfo body parser.
func FuzzDeviceInfoPUT(f *testing.F) {
	f.Add([]byte(`<?xml version="1.0" encoding="UTF-8"?><DeviceInfo version="2.0" xmlns="http://www.hikvision.com/ver20/XMLSchema"><deviceName>Shop DVR</deviceName><model>ignored</model></DeviceInfo>`))
	f.Add([]byte(`<DeviceInfo><deviceName>   </deviceName></DeviceInfo>`))
	f.Add([]byte(`<x:DeviceInfo xmlns:x="y"><x:deviceName>a&#x1;b</x:deviceName></x:DeviceInfo>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		name, err := parseDeviceInfoPUT(b)
		if err != nil {
			return
		}
		if name != "" && checkText(name, 64) != nil {
			t.Fatalf("accepted name %q", name)
		}
	})
}
