package hikvision

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// The ISAPI documents carry the namespace
// http://www.hikvision.com/ver20/XMLSchema (ver10 on older firmware), and
// third-party captures show prefixed variants. Struct tags without a
// namespace match local names in any namespace, which is what we want.

// DeviceInfo is /ISAPI/System/deviceInfo.
type DeviceInfo struct {
	DeviceName      string `json:"device_name,omitempty"`
	DeviceID        string `json:"device_id,omitempty"`
	Model           string `json:"model,omitempty"`
	SerialNumber    string `json:"serial_number,omitempty"`
	MACAddress      string `json:"mac,omitempty"` // normalised: lower case, colons
	FirmwareVersion string `json:"firmware_version,omitempty"`
	// FirmwareReleasedDate is the raw text, e.g. "build 160510".
	FirmwareReleasedDate string `json:"firmware_released_date,omitempty"`
	// BuildDate is FirmwareReleasedDate parsed (YYMMDD); zero if it did not parse.
	BuildDate      time.Time `json:"build_date,omitzero"`
	EncoderVersion string    `json:"encoder_version,omitempty"`
	DeviceType     string    `json:"device_type,omitempty"` // IPCamera, DVR, NVR...
}

type xmlDeviceInfo struct {
	XMLName              xml.Name
	DeviceName           string `xml:"deviceName"`
	DeviceID             string `xml:"deviceID"`
	Model                string `xml:"model"`
	SerialNumber         string `xml:"serialNumber"`
	MACAddress           string `xml:"macAddress"`
	FirmwareVersion      string `xml:"firmwareVersion"`
	FirmwareReleasedDate string `xml:"firmwareReleasedDate"`
	EncoderVersion       string `xml:"encoderVersion"`
	DeviceType           string `xml:"deviceType"`
}

// maxDoc bounds every ISAPI document we read; the real ones are a few KB.
const maxDoc = 1 << 20

// ErrNotISAPI means a response was not the ISAPI document asked for.
var ErrNotISAPI = errors.New("not the expected ISAPI document")

// decode unmarshals an XML document whose root must be want (any case,
// any namespace). A ResponseStatus or userCheck root comes back as a
// *StatusError so callers see what the device said.
func decode(data []byte, want string, v any) error {
	if len(data) > maxDoc {
		return fmt.Errorf("%w: document is larger than %d bytes", ErrNotISAPI, maxDoc)
	}
	root, err := rootName(data)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNotISAPI, err)
	}
	if !strings.EqualFold(root, want) {
		if st, err := ParseStatus(data); err == nil && st.IsStatus() {
			return &StatusError{Status: st}
		}
		return fmt.Errorf("%w: root element is <%s>, want <%s>", ErrNotISAPI, root, want)
	}
	d := newDecoder(data)
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("%w: <%s>: %v", ErrNotISAPI, want, err)
	}
	return nil
}

func newDecoder(data []byte) *xml.Decoder {
	d := xml.NewDecoder(bytes.NewReader(data))
	// Devices declare "UTF-8", and a few SADP implementations other
	// charsets for what is ASCII in practice: read the bytes as they are.
	d.CharsetReader = func(_ string, r io.Reader) (io.Reader, error) { return r, nil }
	return d
}

// rootName returns the local name of the document's root element.
func rootName(data []byte) (string, error) {
	d := newDecoder(data)
	for {
		tok, err := d.Token()
		if err != nil {
			if err == io.EOF {
				return "", errors.New("no XML element")
			}
			return "", err
		}
		if se, ok := tok.(xml.StartElement); ok {
			return se.Name.Local, nil
		}
	}
}

// ParseDeviceInfo parses a deviceInfo document.
func ParseDeviceInfo(data []byte) (DeviceInfo, error) {
	var x xmlDeviceInfo
	if err := decode(data, "DeviceInfo", &x); err != nil {
		return DeviceInfo{}, err
	}
	t := strings.TrimSpace
	info := DeviceInfo{
		DeviceName:           t(x.DeviceName),
		DeviceID:             t(x.DeviceID),
		Model:                t(x.Model),
		SerialNumber:         t(x.SerialNumber),
		MACAddress:           NormalizeMAC(x.MACAddress),
		FirmwareVersion:      t(x.FirmwareVersion),
		FirmwareReleasedDate: t(x.FirmwareReleasedDate),
		EncoderVersion:       t(x.EncoderVersion),
		DeviceType:           t(x.DeviceType),
	}
	info.BuildDate, _ = ParseBuildDate(info.FirmwareReleasedDate)
	return info, nil
}

var buildRE = regexp.MustCompile(`(?i)build\s*(\d{6})\b`)

// ParseBuildDate finds "build YYMMDD" in a firmware string ("build
// 210628", "V3.5.38build 191215") and returns the date. Hikvision build
// dates are all in this century.
func ParseBuildDate(s string) (time.Time, bool) {
	m := buildRE.FindStringSubmatch(s)
	if m == nil {
		return time.Time{}, false
	}
	n, _ := strconv.Atoi(m[1])
	y, mo, d := 2000+n/10000, time.Month(n/100%100), n%100
	t := time.Date(y, mo, d, 0, 0, 0, 0, time.UTC)
	if t.Month() != mo || t.Day() != d { // time.Date normalises 991332 into a real date
		return time.Time{}, false
	}
	return t, true
}

// NormalizeMAC writes a MAC address as lower-case hex pairs separated by
// colons ("68-6D-BC-EE-F8-F0" → "68:6d:bc:ee:f8:f0"). Input that is not
// six hex pairs (with '-', ':' or no separator) is returned trimmed and
// lower-cased, so odd values still compare equal to themselves.
func NormalizeMAC(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	hex := strings.NewReplacer("-", "", ":", "", ".", "").Replace(s)
	if len(hex) != 12 {
		return s
	}
	for _, c := range hex {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return s
		}
	}
	var b strings.Builder
	for i := 0; i < 12; i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(hex[i : i+2])
	}
	return b.String()
}

type xmlAdminAccesses struct {
	XMLName xml.Name
	List    []struct {
		ID       string `xml:"id"`
		Enabled  string `xml:"enabled"`
		Protocol string `xml:"protocol"`
		PortNo   string `xml:"portNo"`
	} `xml:"AdminAccessProtocol"`
}

// ParseAdminAccesses parses /ISAPI/Security/adminAccesses into Ports,
// keyed on <protocol> (ids differ between firmware). Entries without a
// protocol name or with a port outside 1–65535 are skipped. If a protocol
// is listed twice, the first enabled entry wins.
func ParseAdminAccesses(data []byte) (Ports, error) {
	var x xmlAdminAccesses
	if err := decode(data, "AdminAccessProtocolList", &x); err != nil {
		return nil, err
	}
	ports := Ports{}
	for _, e := range x.List {
		proto := strings.TrimSpace(e.Protocol)
		port, err := strconv.Atoi(strings.TrimSpace(e.PortNo))
		if proto == "" || err != nil || port < 1 || port > 65535 {
			continue
		}
		enabled := true
		if v := strings.TrimSpace(e.Enabled); v != "" {
			enabled = parseBool(v)
		}
		if old, ok := ports.Get(proto); ok && (old.Enabled || !enabled) {
			continue
		}
		ports.Set(proto, uint16(port), enabled)
	}
	return ports, nil
}

// parseBool reads the booleans devices write: true/false, 1/0, yes/no.
func parseBool(s string) bool {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "1", "yes", "on", "enable", "enabled":
		return true
	}
	return false
}

// NetworkInterface is one entry of /ISAPI/System/Network/interfaces.
type NetworkInterface struct {
	ID             string `json:"id,omitempty"`
	IPVersion      string `json:"ip_version,omitempty"`
	AddressingType string `json:"addressing_type,omitempty"` // static, dynamic
	IPAddress      string `json:"ip_address,omitempty"`
	SubnetMask     string `json:"subnet_mask,omitempty"`
	Gateway        string `json:"gateway,omitempty"`
	PrimaryDNS     string `json:"primary_dns,omitempty"`
	MACAddress     string `json:"mac,omitempty"`
	Speed          string `json:"speed,omitempty"`
	Duplex         string `json:"duplex,omitempty"`
	MTU            string `json:"mtu,omitempty"`
}

type xmlInterfaces struct {
	XMLName xml.Name
	List    []struct {
		ID        string `xml:"id"`
		IPAddress struct {
			IPVersion      string `xml:"ipVersion"`
			AddressingType string `xml:"addressingType"`
			IPAddress      string `xml:"ipAddress"`
			SubnetMask     string `xml:"subnetMask"`
			Gateway        string `xml:"DefaultGateway>ipAddress"`
			PrimaryDNS     string `xml:"PrimaryDNS>ipAddress"`
		} `xml:"IPAddress"`
		Link struct {
			MACAddress string `xml:"MACAddress"`
			Speed      string `xml:"speed"`
			Duplex     string `xml:"duplex"`
			MTU        string `xml:"MTU"`
		} `xml:"Link"`
	} `xml:"NetworkInterface"`
}

// ParseInterfaces parses /ISAPI/System/Network/interfaces.
func ParseInterfaces(data []byte) ([]NetworkInterface, error) {
	var x xmlInterfaces
	if err := decode(data, "NetworkInterfaceList", &x); err != nil {
		return nil, err
	}
	t := strings.TrimSpace
	out := make([]NetworkInterface, 0, len(x.List))
	for _, e := range x.List {
		out = append(out, NetworkInterface{
			ID:             t(e.ID),
			IPVersion:      t(e.IPAddress.IPVersion),
			AddressingType: t(e.IPAddress.AddressingType),
			IPAddress:      t(e.IPAddress.IPAddress),
			SubnetMask:     t(e.IPAddress.SubnetMask),
			Gateway:        t(e.IPAddress.Gateway),
			PrimaryDNS:     t(e.IPAddress.PrimaryDNS),
			MACAddress:     NormalizeMAC(e.Link.MACAddress),
			Speed:          t(e.Link.Speed),
			Duplex:         t(e.Link.Duplex),
			MTU:            t(e.Link.MTU),
		})
	}
	return out, nil
}
