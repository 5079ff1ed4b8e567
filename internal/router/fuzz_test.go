package router

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/huin/goupnp"
	"github.com/huin/goupnp/dcps/internetgateway2"
	"github.com/huin/goupnp/soap"
)

// Every parser of bytes from the network is fuzzed, seeded with the
// captures in testdata (see testdata/README.md).

func addFiles(f *testing.F, pattern string, body bool) {
	files, err := filepath.Glob(filepath.Join("testdata", pattern))
	if err != nil || len(files) == 0 {
		f.Fatalf("no seeds for %s: %v", pattern, err)
	}
	for _, name := range files {
		if body {
			_, b := readCapture(f, filepath.Base(name))
			f.Add(b)
			continue
		}
		f.Add(readTestdata(f, filepath.Base(name)))
	}
}

func FuzzParsePCPResponse(f *testing.F) {
	addFiles(f, "*-pcp-*.bin", false)
	addFiles(f, "*-natpmp-*.bin", false) // version 0: what a NAT-PMP-only router says
	f.Add([]byte{2, 0x81, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parsePCPResponse(b)
		if err != nil {
			return
		}
		if len(b) < pcpHeaderLen || len(b) > pcpMaxLen || len(b)%4 != 0 || b[1]&pcpReplyBit == 0 {
			t.Fatalf("accepted a malformed packet of %d bytes: %+v", len(b), r)
		}
		if r.HasMap && r.Opcode != pcpOpMap {
			t.Fatalf("MAP fields on opcode %d", r.Opcode)
		}
		_ = r.Result.explain()
		_ = r.Result.state()
	})
}

func FuzzParseSSDPReply(f *testing.F) {
	addFiles(f, "*-ssdp-*.txt", false)
	f.Add([]byte("HTTP/1.1 200 OK\r\nLOCATION: http://[::1\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseSSDPReply(b)
		if err != nil {
			return
		}
		if r.Location == "" {
			t.Fatal("accepted an answer without LOCATION")
		}
		// What follows a reply must not panic either.
		repoint(discardLogger(), r.Location, netip.MustParseAddr("192.168.1.1"))
	})
}

func FuzzParseRootDesc(f *testing.F) {
	addFiles(f, "*-rootdesc-*.http", true)
	f.Add([]byte(`<?xml version="1.0" encoding="ISO-8859-1"?><root xmlns="urn:schemas-upnp-org:device-1-0"><URLBase>http://10.0.0.1:80/</URLBase><device><serviceList><service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:1</serviceType><controlURL>::bad</controlURL></service></serviceList></device></root>`))
	loc, _ := url.Parse("http://192.168.1.1:5000/rootDesc.xml")
	gw := netip.MustParseAddr("192.168.1.1")
	f.Fuzz(func(t *testing.T, b []byte) {
		root, err := parseRootDesc(b, loc)
		if err != nil {
			return
		}
		hc := newUPnPHTTPClient(gw, netip.MustParseAddr("192.168.1.20"), time.Second)
		m, err := selectService(context.Background(), discardLogger(), root, loc, gw, netip.MustParseAddr("192.168.1.20"), hc, time.Millisecond)
		if err == nil {
			u, err := url.Parse(m.control)
			if err != nil || u.Hostname() != gw.String() {
				t.Fatalf("control URL %q does not point at the gateway", m.control)
			}
		}
	})
}

func FuzzParseProcNetRoute(f *testing.F) {
	f.Add([]byte("Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\neth0\t00000000\t010013C6\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := parseProcNetRoute(b)
		if err == nil && !a.Is4() {
			t.Fatalf("gateway %v is not IPv4", a)
		}
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// FuzzSOAPAnswer feeds arbitrary router answers (status, content type,
// body) through camgate's transport checks, goupnp's decoder and the
// error classification, for every call camgate makes.
func FuzzSOAPAnswer(f *testing.F) {
	for _, name := range []string{"addok", "fault-606", "fault-713", "fault-714", "fault-718", "genericentry", "getexternalip"} {
		resp, body := readCapture(f, "miniupnpd-2.3.1-soap-"+name+".http")
		f.Add(resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	f.Add(200, "text/html", []byte("<html>login</html>"))
	f.Fuzz(func(t *testing.T, status int, ctype string, body []byte) {
		if status < 100 || status > 999 {
			status = 200
		}
		tr := checkedTransport{roundTripFunc(func(r *http.Request) (*http.Response, error) {
			h := http.Header{}
			h.Set("Content-Type", ctype)
			return &http.Response{StatusCode: status, Status: http.StatusText(status), Header: h,
				Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body)), Request: r}, nil
		})}
		u, _ := url.Parse("http://192.168.1.1:5000/ctl/IPConn")
		sc := goupnp.ServiceClient{SOAPClient: &soap.SOAPClient{EndpointURL: *u, HTTPClient: http.Client{Transport: tr}}}
		m := &upnpMapper{proto: ProtoUPnPIGD2, gw: netip.MustParseAddr("192.168.1.1"), local: netip.MustParseAddr("192.168.1.20"),
			svc: &internetgateway2.WANIPConnection2{ServiceClient: sc}, control: u.String(), timeout: time.Second}
		ctx := context.Background()
		l := &lease{Proto: "tcp", Port: 8082, Desc: "camgate dvr-web"}
		if _, err := m.add(ctx, l, time.Hour); err != nil {
			_ = asMapError(err).Error()
		}
		m.remove(ctx, l)
		m.externalIP(ctx)
		entries, _ := m.list(ctx)
		if len(entries) > maxListEntries {
			t.Fatalf("listing did not stop: %d entries", len(entries))
		}
		m.suggest(ctx, l, func(string, uint16) bool { return false })
	})
}
