package discover

import (
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"

	"github.com/camgate/camgate/internal/hikvision"
)

// WSDPort is ONVIF WS-Discovery's UDP port, on the same group as SADP.
const WSDPort = 3702

// wsdProbe returns the WS-Discovery Probe for NetworkVideoTransmitter
// devices, in the form use-go/onvif documents (ws-discovery/networking.go).
func wsdProbe(uuid string) []byte {
	return []byte(`<?xml version="1.0" encoding="UTF-8"?>` +
		`<Envelope xmlns="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing"><Header>` +
		`<a:Action mustUnderstand="1">http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe</a:Action>` +
		`<a:MessageID>uuid:` + uuid + `</a:MessageID><a:ReplyTo><a:Address>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address></a:ReplyTo>` +
		`<a:To mustUnderstand="1">urn:schemas-xmlsoap-org:ws:2005:04:discovery</a:To></Header>` +
		`<Body><Probe xmlns="http://schemas.xmlsoap.org/ws/2005/04/discovery"><d:Types xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery" xmlns:dp0="http://www.onvif.org/ver10/network/wsdl">dp0:NetworkVideoTransmitter</d:Types></Probe></Body></Envelope>`)
}

// WSDMatch is one WS-Discovery <ProbeMatch>.
type WSDMatch struct {
	// Address is EndpointReference/Address, e.g.
	// "urn:uuid:cea94000-fb96-11b3-8260-686dbc5cb15d".
	Address string   `json:"address,omitempty"`
	Types   []string `json:"types,omitempty"`
	Scopes  []string `json:"scopes,omitempty"`
	// XAddrs are the device service URLs (space-separated on the wire).
	XAddrs []string `json:"xaddrs,omitempty"`
	// Hosts are the hosts of XAddrs that are IP addresses, in order.
	Hosts []netip.Addr `json:"hosts,omitempty"`
	// MAC comes from an onvif://www.onvif.org/MAC/ scope; normalised.
	MAC string `json:"mac,omitempty"`
	// UUIDTail is the last 12 hex digits of a urn:uuid Address. Hikvision
	// puts the MAC there; other makers do not, so it is only a hint.
	UUIDTail string `json:"-"`
	// Hardware and Name come from the hardware/ and name/ scopes.
	Hardware string `json:"hardware,omitempty"`
	Name     string `json:"name,omitempty"`
}

type xmlEnvelope struct {
	XMLName xml.Name
	Matches []struct {
		Address string `xml:"EndpointReference>Address"`
		Types   string `xml:"Types"`
		Scopes  string `xml:"Scopes"`
		XAddrs  string `xml:"XAddrs"`
	} `xml:"Body>ProbeMatches>ProbeMatch"`
}

// ParseWSD parses a WS-Discovery ProbeMatches message. Prefixes vary
// between devices (d:, wsdd:, env:, SOAP-ENV:), so elements are matched
// by local name only.
func ParseWSD(data []byte) ([]WSDMatch, error) {
	if len(data) > maxDatagram {
		return nil, fmt.Errorf("ws-discovery: datagram of %d bytes is too large", len(data))
	}
	var x xmlEnvelope
	if err := newDecoder(data).Decode(&x); err != nil {
		return nil, fmt.Errorf("ws-discovery: %w", err)
	}
	if x.XMLName.Local != "Envelope" {
		return nil, fmt.Errorf("ws-discovery: <%s>: %w", x.XMLName.Local, ErrNotProbeMatch)
	}
	if len(x.Matches) == 0 {
		return nil, fmt.Errorf("ws-discovery: %w", ErrNotProbeMatch)
	}
	var out []WSDMatch
	for _, m := range x.Matches {
		w := WSDMatch{
			Address: strings.TrimSpace(m.Address),
			Types:   strings.Fields(m.Types),
			Scopes:  strings.Fields(m.Scopes),
			XAddrs:  strings.Fields(m.XAddrs),
		}
		for _, xa := range w.XAddrs {
			if h := urlHost(xa); h.IsValid() {
				w.Hosts = append(w.Hosts, h)
			}
		}
		for _, s := range w.Scopes {
			key, val, ok := onvifScope(s)
			if !ok {
				continue
			}
			switch strings.ToLower(key) {
			case "mac":
				if w.MAC == "" {
					w.MAC = hikvision.NormalizeMAC(val)
				}
			case "hardware":
				if w.Hardware == "" {
					w.Hardware = val
				}
			case "name":
				if w.Name == "" {
					w.Name = val
				}
			}
		}
		w.UUIDTail = uuidTail(w.Address)
		out = append(out, w)
	}
	if len(out) == 0 {
		return nil, errors.New("ws-discovery: no usable probe match")
	}
	return out, nil
}

// urlHost returns the IP host of a URL, or the zero Addr.
func urlHost(s string) netip.Addr {
	u, err := url.Parse(s)
	if err != nil {
		return netip.Addr{}
	}
	h := u.Hostname()
	if h == "" {
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(h)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

// onvifScope splits "onvif://www.onvif.org/<key>/<value...>" and
// URL-decodes the value ("name/HIKVISION%20DS-2CD2032-I").
func onvifScope(s string) (key, val string, ok bool) {
	rest, ok := strings.CutPrefix(s, "onvif://www.onvif.org/")
	if !ok {
		return "", "", false
	}
	key, val, ok = strings.Cut(rest, "/")
	if !ok || val == "" {
		return "", "", false
	}
	if v, err := url.PathUnescape(val); err == nil {
		val = v
	}
	return key, val, true
}

// uuidTail returns the last 12 hex digits of a urn:uuid address as a MAC
// ("aa:bb:..."), or "".
func uuidTail(addr string) string {
	s := strings.ToLower(addr)
	s = strings.TrimPrefix(s, "urn:")
	s = strings.TrimPrefix(s, "uuid:")
	i := strings.LastIndexByte(s, '-')
	if i < 0 || len(s)-i-1 != 12 {
		return ""
	}
	if _, err := net.ParseMAC(hikvision.NormalizeMAC(s[i+1:])); err != nil {
		return ""
	}
	return hikvision.NormalizeMAC(s[i+1:])
}

// firstHost returns the first XAddr host, or the zero Addr.
func (w WSDMatch) firstHost() netip.Addr {
	if len(w.Hosts) == 0 {
		return netip.Addr{}
	}
	return w.Hosts[0]
}
