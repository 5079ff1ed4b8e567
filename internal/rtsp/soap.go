package rtsp

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strconv"
	"strings"
)

// ONVIF answers carry the device's LAN address in every service address
// (GetCapabilities' XAddr, GetServices' XAddr) and media URI
// (GetStreamUri, GetSnapshotUri): an ONVIF client outside the LAN then
// calls addresses it cannot reach (agsh/onvif #170). camgate rewrites
// them on the HTTP rule the answers pass through; a URL gets the host the
// client used and the external port of the rule forwarding the device's
// port, so a stream URI points at the RTSP rule, not the HTTP one.

// URLMap says how to rewrite a device's URLs for one client.
type URLMap struct {
	// Device are the device's hosts (addresses or names).
	Device []string
	// Host is the host the client used (its Host header, without port).
	Host string
	// Port returns the external port forwarding the device's TCP port,
	// and false if no rule does. Nil means none does.
	Port func(port uint16) (uint16, bool)
}

// schemePorts are the default ports of the schemes scanURLs knows.
var schemePorts = map[string]uint16{"http": 80, "https": 443, "rtsp": 554, "rtsps": 322}

// rewrite maps one URL authority.
func (m URLMap) rewrite(scheme, host, port string) (string, bool) {
	am := addrMap{device: m.Device}
	if !am.isDevice(host) || m.Host == "" {
		return "", false
	}
	p := schemePorts[scheme]
	if port != "" {
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			return "", false
		}
		p = uint16(n)
	}
	if m.Port != nil {
		if ext, ok := m.Port(p); ok {
			p = ext
		}
	}
	h := m.Host
	if strings.Contains(h, ":") && !strings.HasPrefix(h, "[") {
		h = "[" + h + "]"
	}
	if p == schemePorts[scheme] {
		return h, true
	}
	return h + ":" + strconv.Itoa(int(p)), true
}

// soapURLElements are the elements whose text is a URL or a list of them.
var soapURLElements = map[string]bool{"XAddr": true, "XAddrs": true, "Uri": true, "MediaUri": true}

// maxSOAPDepth bounds element nesting; ONVIF answers nest about ten deep.
const maxSOAPDepth = 64

// RewriteSOAP returns body with the device's URLs in XAddr, XAddrs and
// Uri elements rewritten by m. Everything else is kept byte for byte. It
// parses with encoding/xml (no DTD processing, no external entities) and
// refuses nesting deeper than maxSOAPDepth; on any error body is returned
// unchanged with the error.
func RewriteSOAP(body []byte, m URLMap) ([]byte, error) {
	d := xml.NewDecoder(bytes.NewReader(body))
	d.Strict = true
	type edit struct {
		start, end int64
		text       string
	}
	var edits []edit
	depth := 0
	inURL := false
	for {
		before := d.InputOffset()
		tok, err := d.RawToken()
		if errors.Is(err, io.EOF) {
			if depth != 0 {
				return body, errors.New("soap: unclosed element")
			}
			break
		}
		if err != nil {
			return body, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth > maxSOAPDepth {
				return body, errors.New("soap: elements nested too deep")
			}
			inURL = soapURLElements[t.Name.Local]
		case xml.EndElement:
			depth--
			inURL = false
		case xml.CharData:
			if !inURL {
				continue
			}
			after := d.InputOffset()
			raw := string(body[before:after])
			if nt := scanURLs(raw, m.rewrite); nt != raw {
				edits = append(edits, edit{before, after, nt})
			}
		}
	}
	if len(edits) == 0 {
		return body, nil
	}
	var out bytes.Buffer
	out.Grow(len(body) + 64*len(edits))
	last := int64(0)
	for _, e := range edits {
		out.Write(body[last:e.start])
		out.WriteString(e.text)
		last = e.end
	}
	out.Write(body[last:])
	return out.Bytes(), nil
}

// SOAPAnswerHead fits an HTTP answer head to a rewritten body of n bytes
// sent with Content-Length: Transfer-Encoding goes, Content-Length is set.
func SOAPAnswerHead(head []byte, n int) []byte {
	seen := false
	out := editHead(head, func(name, value string) (string, bool) {
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "transfer-encoding":
			return "", false
		case "content-length":
			seen = true
			return strconv.Itoa(n), true
		}
		return value, true
	})
	if seen {
		return out
	}
	out = bytes.TrimSuffix(out, []byte("\r\n"))
	return append(out[:len(out):len(out)], []byte("Content-Length: "+strconv.Itoa(n)+"\r\n\r\n")...)
}
