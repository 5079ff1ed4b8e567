package sim

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// ONVIF WS-Discovery (WS-Discovery 2005/04 over SOAP 1.2, UDP 3702): a
// client multicasts a Probe for types such as dn:NetworkVideoTransmitter
// and each matching device answers with ProbeMatches naming its endpoint
// (urn:uuid:…, whose last group is the MAC on Hikvision devices), scopes
// and XAddrs (the device service URL).

const (
	nsSOAP     = "http://www.w3.org/2003/05/soap-envelope"
	nsWSA      = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
	nsWSD      = "http://schemas.xmlsoap.org/ws/2005/04/discovery"
	wsaAnon    = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
	actProbe   = "http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe"
	actMatches = "http://schemas.xmlsoap.org/ws/2005/04/discovery/ProbeMatches"
	matchRFC   = "http://schemas.xmlsoap.org/ws/2005/04/discovery/rfc3986"
	matchExact = "http://schemas.xmlsoap.org/ws/2005/04/discovery/strcmp0"
)

// wsdProbe is a parsed WS-Discovery Probe.
type wsdProbe struct {
	MessageID string
	ReplyTo   string
	Types     []string // local names of the requested types
	Scopes    []string
	MatchBy   string
}

var errNotWSDProbe = errors.New("ws-discovery: not a Probe")

// parseWSDProbe parses a SOAP envelope carrying a WS-Discovery Probe.
// Elements are matched by local name, so any prefixes (d:, wsdd:, env:,
// SOAP-ENV:) and either WS-Discovery namespace version work; type QNames
// are compared by their local part.
func parseWSDProbe(b []byte) (wsdProbe, error) {
	var v struct {
		XMLName xml.Name
		Header  struct {
			MessageID string `xml:"MessageID"`
			Action    string `xml:"Action"`
			ReplyTo   struct {
				Address string `xml:"Address"`
			} `xml:"ReplyTo"`
		} `xml:"Header"`
		Body struct {
			Probe *struct {
				Types  string `xml:"Types"`
				Scopes struct {
					MatchBy string `xml:"MatchBy,attr"`
					Value   string `xml:",chardata"`
				} `xml:"Scopes"`
			} `xml:"Probe"`
		} `xml:"Body"`
	}
	if err := xml.Unmarshal(b, &v); err != nil {
		return wsdProbe{}, fmt.Errorf("ws-discovery: %w", err)
	}
	if v.XMLName.Local != "Envelope" || v.Body.Probe == nil {
		return wsdProbe{}, errNotWSDProbe
	}
	if a := strings.TrimSpace(v.Header.Action); a != "" && !strings.HasSuffix(a, "/Probe") {
		return wsdProbe{}, errNotWSDProbe
	}
	p := wsdProbe{
		MessageID: strings.TrimSpace(v.Header.MessageID),
		ReplyTo:   strings.TrimSpace(v.Header.ReplyTo.Address),
		Scopes:    strings.Fields(v.Body.Probe.Scopes.Value),
		MatchBy:   strings.TrimSpace(v.Body.Probe.Scopes.MatchBy),
	}
	for _, t := range strings.Fields(v.Body.Probe.Types) {
		if i := strings.LastIndexByte(t, ':'); i >= 0 {
			t = t[i+1:]
		}
		p.Types = append(p.Types, t)
	}
	if p.MessageID == "" {
		return p, errors.New("ws-discovery: Probe without MessageID")
	}
	return p, nil
}

// wsdTypes are the types the device answers for.
func wsdTypes() []string { return []string{"NetworkVideoTransmitter", "Device"} }

// wsdScopes returns the device's scopes, as a Hikvision device lists them.
func (d *Device) wsdScopes() []string {
	id := d.Identity()
	return []string{
		"onvif://www.onvif.org/type/video_encoder",
		"onvif://www.onvif.org/type/NetworkVideoTransmitter",
		"onvif://www.onvif.org/Profile/Streaming",
		"onvif://www.onvif.org/MAC/" + id.MAC.String(),
		"onvif://www.onvif.org/hardware/" + url.PathEscape(id.Model),
		"onvif://www.onvif.org/name/" + url.PathEscape("HIKVISION "+id.Model),
		"onvif://www.onvif.org/location/city/hangzhou",
	}
}

// matches reports whether the device matches the probe: it must have
// every requested type, and every requested scope must match one of its
// scopes (WS-Discovery section 5.1; rfc3986 is the default rule).
func (p wsdProbe) matches(scopes []string) bool {
	for _, t := range p.Types {
		if !containsFold(wsdTypes(), t) {
			return false
		}
	}
	for _, want := range p.Scopes {
		ok := false
		for _, have := range scopes {
			switch p.MatchBy {
			case "", matchRFC:
				ok = scopeMatchRFC3986(want, have)
			case matchExact:
				ok = want == have
			}
			if ok {
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// scopeMatchRFC3986: scheme and authority equal (case-insensitive), and
// the probe's path segments a prefix of the device's.
func scopeMatchRFC3986(want, have string) bool {
	w, err1 := url.Parse(want)
	h, err2 := url.Parse(have)
	if err1 != nil || err2 != nil {
		return false
	}
	if !strings.EqualFold(w.Scheme, h.Scheme) || !strings.EqualFold(w.Host, h.Host) {
		return false
	}
	ws := strings.Split(strings.Trim(w.EscapedPath(), "/"), "/")
	hs := strings.Split(strings.Trim(h.EscapedPath(), "/"), "/")
	if len(ws) == 1 && ws[0] == "" {
		return true
	}
	if len(ws) > len(hs) {
		return false
	}
	for i := range ws {
		if ws[i] != hs[i] {
			return false
		}
	}
	return true
}

// answerWSDiscovery answers a WS-Discovery datagram.
func (d *Device) answerWSDiscovery(msg []byte, src netip.AddrPort, own netip.Addr) ([]byte, string) {
	p, err := parseWSDProbe(msg)
	if err != nil {
		if errors.Is(err, errNotWSDProbe) || !bytes.Contains(msg, []byte("Probe")) {
			return nil, ""
		}
		return nil, "Probe"
	}
	if !p.matches(d.wsdScopes()) {
		return nil, "Probe"
	}
	return d.wsdReply(p, own), "Probe"
}

// esc escapes text for XML.
func esc(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

func (d *Device) wsdReply(p wsdProbe, own netip.Addr) []byte {
	id := d.Identity()
	httpPort, _ := d.reportedPort(ServiceHTTP, 80)
	host := own.String()
	if httpPort != 80 {
		host += ":" + strconv.Itoa(httpPort)
	}
	to := p.ReplyTo
	if to == "" || len(to) > 256 {
		to = wsaAnon
	}
	relates := p.MessageID
	if len(relates) > 256 {
		relates = relates[:256]
	}
	var b strings.Builder
	b.WriteString(xml.Header)
	b.WriteString(`<env:Envelope xmlns:env="` + nsSOAP + `" xmlns:wsa="` + nsWSA + `" xmlns:d="` + nsWSD +
		`" xmlns:dn="http://www.onvif.org/ver10/network/wsdl" xmlns:tds="http://www.onvif.org/ver10/device/wsdl">`)
	b.WriteString(`<env:Header>`)
	b.WriteString(`<wsa:MessageID>uuid:` + randomUUID() + `</wsa:MessageID>`)
	b.WriteString(`<wsa:RelatesTo>` + esc(relates) + `</wsa:RelatesTo>`)
	b.WriteString(`<wsa:To env:mustUnderstand="true">` + esc(to) + `</wsa:To>`)
	b.WriteString(`<wsa:Action env:mustUnderstand="true">` + actMatches + `</wsa:Action>`)
	fmt.Fprintf(&b, `<d:AppSequence InstanceId="%d" MessageNumber="%d"/>`, d.boot.Unix(), d.wsdSeq.Add(1))
	b.WriteString(`</env:Header><env:Body><d:ProbeMatches><d:ProbeMatch>`)
	b.WriteString(`<wsa:EndpointReference><wsa:Address>urn:uuid:` + esc(id.DeviceID) + `</wsa:Address></wsa:EndpointReference>`)
	b.WriteString(`<d:Types>dn:NetworkVideoTransmitter tds:Device</d:Types>`)
	b.WriteString(`<d:Scopes>` + esc(strings.Join(d.wsdScopes(), " ")) + `</d:Scopes>`)
	b.WriteString(`<d:XAddrs>http://` + host + `/onvif/device_service</d:XAddrs>`)
	b.WriteString(`<d:MetadataVersion>10</d:MetadataVersion>`)
	b.WriteString(`</d:ProbeMatch></d:ProbeMatches></env:Body></env:Envelope>`)
	return []byte(b.String())
}

// randomUUID returns a random (version 4) UUID.
func randomUUID() string {
	var u [16]byte
	rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	h := hex.EncodeToString(u[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
