package router

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Fakes for hardware, in the manner of tailscale's portmapper tests: a
// router on a random 127.x.y.z address (all of 127/8 is loopback on
// Linux), so that it can own the fixed ports 5351 and 1900 without
// colliding with another test, and nothing leaves the machine.

// loopbackAddr picks a random 127.x.y.z address not used by another test.
func loopbackAddr() netip.Addr {
	return netip.AddrFrom4([4]byte{127, byte(rand.IntN(250) + 2), byte(rand.IntN(256)), byte(rand.IntN(250) + 2)})
}

// fakeNAT speaks PCP (version 2) and NAT-PMP (version 0) on addr:5351,
// like miniupnpd does.
type fakeNAT struct {
	t    *testing.T
	addr netip.Addr
	conn *net.UDPConn

	mu sync.Mutex // guards following
	// maps holds mappings by protocol and internal port.
	maps     map[key]*fakeMapping
	epoch    uint32
	requests []string
	// Knobs.
	silent     bool      // drop every request
	natpmpOnly bool      // answer PCP with a version-0 UNSUPP_VERSION
	result     pcpResult // force this PCP result on MAP
	natpmpCode uint16    // force this NAT-PMP result code on mappings
	assignPort uint16    // give this external port instead of the one asked for
	lifetime   uint32    // grant this lifetime (0: as asked)
	junkFirst  bool      // send a malformed packet before each answer
	extIP      netip.Addr
	// replay answers NAT-PMP requests with these captured packets, by
	// opcode.
	replay map[byte][]byte
}

type fakeMapping struct {
	nonce pcpNonce
	ext   uint16
	life  uint32
}

func newFakeNAT(t *testing.T) *fakeNAT {
	t.Helper()
	for range 20 {
		a := loopbackAddr()
		c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, pcpServerPort)))
		if err != nil {
			continue
		}
		f := &fakeNAT{t: t, addr: a, conn: c, maps: map[key]*fakeMapping{}, epoch: 1000,
			extIP: netip.MustParseAddr("203.0.113.7")}
		t.Cleanup(func() { c.Close() })
		go f.serve()
		return f
	}
	t.Fatal("no free loopback address for the fake router")
	return nil
}

func (f *fakeNAT) set(fn func(f *fakeNAT)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fakeNAT) log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...)
}

func (f *fakeNAT) mapping(proto string, port uint16) (fakeMapping, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, ok := f.maps[key{proto, port}]
	if !ok {
		return fakeMapping{}, false
	}
	return *m, true
}

func (f *fakeNAT) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.maps)
}

func (f *fakeNAT) serve() {
	buf := make([]byte, 2048)
	for {
		n, from, err := f.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return // closed by the test's cleanup
		}
		f.mu.Lock()
		var resp []byte
		if f.silent && n >= pcpHeaderLen+pcpMapLen && buf[0] == pcpVersion {
			f.requests = append(f.requests, fmt.Sprintf("ignored pcp map %d", binary.BigEndian.Uint16(buf[pcpHeaderLen+16:])))
		}
		if !f.silent && n >= 2 {
			switch buf[0] {
			case 0:
				resp = f.natpmpLocked(buf[:n])
			case pcpVersion:
				resp = f.pcpLocked(buf[:n])
			}
		}
		junk := f.junkFirst
		f.mu.Unlock()
		if resp != nil {
			if junk {
				f.conn.WriteToUDPAddrPort([]byte{2, 0x81, 0}, from)
			}
			f.conn.WriteToUDPAddrPort(resp, from)
		}
	}
}

func (f *fakeNAT) pcpLocked(b []byte) []byte {
	if f.natpmpOnly {
		return []byte{0, b[1] | 0x80, 0, 1, 0, 0, 0, 0}
	}
	if len(b) < pcpHeaderLen {
		return nil
	}
	op := b[1]
	life := binary.BigEndian.Uint32(b[4:8])
	resp := make([]byte, len(b))
	copy(resp, b)
	resp[1] = op | pcpReplyBit
	resp[2], resp[3] = 0, 0
	binary.BigEndian.PutUint32(resp[8:12], f.epoch)
	clear(resp[12:24])
	if op == pcpOpAnnounce {
		f.requests = append(f.requests, "pcp announce")
		return resp[:pcpHeaderLen]
	}
	if op != pcpOpMap || len(b) < pcpHeaderLen+pcpMapLen {
		resp[3] = byte(pcpUnsuppOpcode)
		return resp
	}
	m := b[pcpHeaderLen:]
	var nonce pcpNonce
	copy(nonce[:], m[:12])
	proto := "tcp"
	if m[12] == ipProtoUDP {
		proto = "udp"
	}
	iport := binary.BigEndian.Uint16(m[16:18])
	sport := binary.BigEndian.Uint16(m[18:20])
	f.requests = append(f.requests, fmt.Sprintf("pcp map %s %d life %d nonce %s", proto, iport, life, nonce))
	k := key{proto, iport}
	setResult := func(r pcpResult, lifetime uint32, ext uint16) []byte {
		resp[3] = byte(r)
		binary.BigEndian.PutUint32(resp[4:8], lifetime)
		binary.BigEndian.PutUint16(resp[pcpHeaderLen+18:], ext)
		ip := f.extIP.As16() // IPv4-mapped
		copy(resp[pcpHeaderLen+20:pcpHeaderLen+36], ip[:])
		return resp
	}
	if f.result != pcpSuccess {
		return setResult(f.result, 0, 0)
	}
	old := f.maps[k]
	if old != nil && old.nonce != nonce {
		return setResult(pcpNotAuthorized, 0, 0)
	}
	if life == 0 {
		delete(f.maps, k)
		return setResult(pcpSuccess, 0, sport)
	}
	ext := sport
	if f.assignPort != 0 {
		ext = f.assignPort
	}
	if f.lifetime != 0 {
		life = f.lifetime
	}
	f.maps[k] = &fakeMapping{nonce: nonce, ext: ext, life: life}
	return setResult(pcpSuccess, life, ext)
}

func (f *fakeNAT) natpmpLocked(b []byte) []byte {
	op := b[1]
	if r, ok := f.replay[op]; ok {
		f.requests = append(f.requests, fmt.Sprintf("natpmp replay %d", op))
		return r
	}
	resp := make([]byte, 16)
	resp[1] = op | 0x80
	binary.BigEndian.PutUint32(resp[4:8], f.epoch)
	if op == 0 {
		f.requests = append(f.requests, "natpmp address")
		copy(resp[8:12], f.extIP.AsSlice())
		return resp[:12]
	}
	if len(b) < 12 || (op != 1 && op != 2) {
		binary.BigEndian.PutUint16(resp[2:4], 5)
		return resp[:8]
	}
	proto := "udp"
	if op == 2 {
		proto = "tcp"
	}
	iport := binary.BigEndian.Uint16(b[4:6])
	eport := binary.BigEndian.Uint16(b[6:8])
	life := binary.BigEndian.Uint32(b[8:12])
	f.requests = append(f.requests, fmt.Sprintf("natpmp map %s %d ext %d life %d", proto, iport, eport, life))
	copy(resp[8:10], b[4:6])
	if f.natpmpCode != 0 {
		binary.BigEndian.PutUint16(resp[2:4], f.natpmpCode)
		return resp
	}
	k := key{proto, iport}
	if life == 0 {
		delete(f.maps, k)
		return resp
	}
	if f.assignPort != 0 {
		eport = f.assignPort
	}
	if f.lifetime != 0 {
		life = f.lifetime
	}
	f.maps[k] = &fakeMapping{ext: eport, life: life}
	binary.BigEndian.PutUint16(resp[10:12], eport)
	binary.BigEndian.PutUint32(resp[12:16], life)
	return resp
}

// fakeIGD is a UPnP Internet Gateway Device: an SSDP responder on
// addr:1900 and an HTTP server on addr:<port> serving miniupnpd 2.3.1's
// captured device description and a small WANIPConnection:2 SOAP
// service with a real mapping table.
type fakeIGD struct {
	t    *testing.T
	addr netip.Addr
	ssdp *net.UDPConn
	srv  *httptest.Server

	mu sync.Mutex // guards following
	// table is the mapping table, in insertion order.
	table    []fakeEntry
	requests []string
	// location overrides the SSDP LOCATION header.
	location string
	// rootDesc overrides the device description body.
	rootDesc []byte
	// override, if set, may answer an action itself (faults, garbage,
	// slowness) and returns true when it did.
	override func(action string, w http.ResponseWriter) bool
	// onlyPermanent answers 725 for leases other than 0.
	onlyPermanent bool
	extIP         string
}

type fakeEntry struct {
	proto  string
	ext    uint16
	client string
	in     uint16
	desc   string
	lease  uint32
}

func newFakeIGD(t *testing.T) *fakeIGD {
	t.Helper()
	for range 20 {
		a := loopbackAddr()
		u, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, ssdpPort)))
		if err != nil {
			continue
		}
		ln, err := net.Listen("tcp4", netip.AddrPortFrom(a, 0).String())
		if err != nil {
			u.Close()
			continue
		}
		f := &fakeIGD{t: t, addr: a, ssdp: u, extIP: "203.0.113.7"}
		f.srv = httptest.NewUnstartedServer(http.HandlerFunc(f.serveHTTP))
		f.srv.Listener.Close()
		f.srv.Listener = ln
		f.srv.Start()
		t.Cleanup(func() { u.Close(); f.srv.Close() })
		go f.serveSSDP()
		return f
	}
	t.Fatal("no free loopback address for the fake IGD")
	return nil
}

func (f *fakeIGD) set(fn func(f *fakeIGD)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fakeIGD) entries() []fakeEntry {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeEntry(nil), f.table...)
}

func (f *fakeIGD) log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...)
}

func (f *fakeIGD) serveSSDP() {
	buf := make([]byte, 2048)
	for {
		n, from, err := f.ssdp.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		if !bytes.HasPrefix(buf[:n], []byte("M-SEARCH")) {
			continue
		}
		st := ""
		for _, line := range strings.Split(string(buf[:n]), "\r\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, "ST") {
				st = strings.TrimSpace(v)
			}
		}
		f.mu.Lock()
		loc := f.location
		f.mu.Unlock()
		if loc == "" {
			loc = f.srv.URL + "/rootDesc.xml"
		}
		resp := "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: " + st +
			"\r\nUSN: uuid:fake::" + st + "\r\nEXT:\r\nSERVER: fake/1 UPnP/1.1 FakeIGD/1\r\nLOCATION: " + loc + "\r\n\r\n"
		f.ssdp.WriteToUDPAddrPort([]byte(resp), from)
	}
}

// readCapture returns the body of a curl -si capture in testdata.
func readCapture(t testing.TB, name string) (*http.Response, []byte) {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(b)), nil)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("%s: %v", name, err)
	}
	return resp, body
}

var soapArgRE = regexp.MustCompile(`<(New\w+)>([^<]*)</New\w+>`)

func (f *fakeIGD) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		f.mu.Lock()
		desc := f.rootDesc
		f.mu.Unlock()
		if desc == nil {
			_, desc = readCapture(f.t, "miniupnpd-2.3.1-rootdesc-igd2.http")
		}
		w.Header().Set("Content-Type", `text/xml; charset="utf-8"`)
		w.Write(desc)
		return
	}
	body, _ := io.ReadAll(r.Body)
	action := r.Header.Get("SOAPAction")
	if i := strings.LastIndex(action, "#"); i >= 0 {
		action = strings.Trim(action[i+1:], `"`)
	}
	args := map[string]string{}
	for _, m := range soapArgRE.FindAllStringSubmatch(string(body), -1) {
		args[m[1]] = m[2]
	}
	client, _, _ := net.SplitHostPort(r.RemoteAddr)
	f.mu.Lock()
	f.requests = append(f.requests, action+" "+args["NewExternalPort"]+args["NewProtocol"])
	override := f.override
	f.mu.Unlock()
	if override != nil && override(action, w) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	port, _ := strconv.Atoi(args["NewExternalPort"])
	proto := strings.ToLower(args["NewProtocol"])
	find := func() int {
		for i, e := range f.table {
			if e.proto == proto && int(e.ext) == port {
				return i
			}
		}
		return -1
	}
	switch action {
	case "GetExternalIPAddress":
		soapOK(w, action, "<NewExternalIPAddress>"+f.extIP+"</NewExternalIPAddress>")
	case "AddPortMapping":
		lease, _ := strconv.Atoi(args["NewLeaseDuration"])
		in, _ := strconv.Atoi(args["NewInternalPort"])
		if f.onlyPermanent && lease != 0 {
			soapFault(w, 725, "OnlyPermanentLeasesSupported")
			return
		}
		if args["NewInternalClient"] != client {
			soapFault(w, 718, "ConflictInMappingEntry") // secure mode
			return
		}
		e := fakeEntry{proto, uint16(port), client, uint16(in), args["NewPortMappingDescription"], uint32(lease)}
		if i := find(); i >= 0 {
			if f.table[i].client != client {
				soapFault(w, 718, "ConflictInMappingEntry")
				return
			}
			f.table[i] = e
		} else {
			f.table = append(f.table, e)
		}
		soapOK(w, action, "")
	case "DeletePortMapping":
		i := find()
		if i < 0 {
			soapFault(w, 714, "NoSuchEntryInArray")
			return
		}
		f.table = append(f.table[:i], f.table[i+1:]...)
		soapOK(w, action, "")
	case "GetGenericPortMappingEntry":
		i, _ := strconv.Atoi(args["NewPortMappingIndex"])
		if i >= len(f.table) {
			soapFault(w, 713, "SpecifiedArrayIndexInvalid")
			return
		}
		e := f.table[i]
		soapOK(w, action, fmt.Sprintf("<NewRemoteHost></NewRemoteHost><NewExternalPort>%d</NewExternalPort><NewProtocol>%s</NewProtocol>"+
			"<NewInternalPort>%d</NewInternalPort><NewInternalClient>%s</NewInternalClient><NewEnabled>1</NewEnabled>"+
			"<NewPortMappingDescription>%s</NewPortMappingDescription><NewLeaseDuration>%d</NewLeaseDuration>",
			e.ext, strings.ToUpper(e.proto), e.in, e.client, e.desc, e.lease))
	case "GetSpecificPortMappingEntry":
		i := find()
		if i < 0 {
			soapFault(w, 714, "NoSuchEntryInArray")
			return
		}
		e := f.table[i]
		soapOK(w, action, fmt.Sprintf("<NewInternalPort>%d</NewInternalPort><NewInternalClient>%s</NewInternalClient><NewEnabled>1</NewEnabled>"+
			"<NewPortMappingDescription>%s</NewPortMappingDescription><NewLeaseDuration>%d</NewLeaseDuration>", e.in, e.client, e.desc, e.lease))
	default:
		soapFault(w, 401, "Invalid Action")
	}
}

func soapOK(w http.ResponseWriter, action, inner string) {
	w.Header().Set("Content-Type", `text/xml; charset="utf-8"`)
	fmt.Fprintf(w, `<?xml version="1.0"?>`+"\n"+`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><u:%sResponse xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:2">%s</u:%sResponse></s:Body></s:Envelope>`, action, inner, action)
}

func soapFault(w http.ResponseWriter, code int, desc string) {
	w.Header().Set("Content-Type", `text/xml; charset="utf-8"`)
	w.WriteHeader(http.StatusInternalServerError)
	fmt.Fprintf(w, `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail><UPnPError xmlns="urn:schemas-upnp-org:control-1-0"><errorCode>%d</errorCode><errorDescription>%s</errorDescription></UPnPError></detail></s:Fault></s:Body></s:Envelope>`, code, desc)
}

// testClient returns a Client for a fake router at gw: short timeouts,
// unicast SSDP only (nothing leaves loopback), and a test logger.
func testClient(t *testing.T, gw netip.Addr, stateDir string) *Client {
	return New(Config{
		Logger:          testLogger(t),
		StateDir:        stateDir,
		DefaultGateway:  func() (netip.Addr, error) { return gw, nil },
		UnicastSSDPOnly: true,
		RequestTimeout:  400 * time.Millisecond,
		RetryInterval:   time.Hour,
	})
}
