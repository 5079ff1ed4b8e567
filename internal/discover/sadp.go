package discover

import (
	"bytes"
	"crypto/rand"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"

	"github.com/camgate/camgate/internal/hikvision"
)

// SADP (Hikvision's "Search Active Devices Protocol") is XML over UDP
// 37020 to 239.255.255.250. We only ever send the read-only "inquiry";
// SADP also carries write commands (activate, update, reboot, restore,
// resetPassword...) which this package has no way to build.
const (
	SADPPort  = 37020
	GroupAddr = "239.255.255.250"
)

// sadpProbe returns the inquiry message for a fresh upper-case UUID, the
// form SADP tools send and devices echo back.
func sadpProbe(uuid string) []byte {
	return []byte(`<?xml version="1.0" encoding="utf-8"?><Probe><Uuid>` + strings.ToUpper(uuid) + `</Uuid><Types>inquiry</Types></Probe>`)
}

// newUUID returns a random (version 4) UUID in lower case.
func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// SADPReply is one SADP <ProbeMatch>, the fields a device reports about
// itself.
type SADPReply struct {
	UUID       string `json:"uuid,omitempty"`
	Types      string `json:"types,omitempty"`
	DeviceType string `json:"device_type,omitempty"` // a number, e.g. 44322
	// Model is <DeviceDescription>, e.g. DS-7804HQH-K1.
	Model string `json:"model,omitempty"`
	// Serial is <DeviceSN>: model, date and serial run together.
	Serial string `json:"serial,omitempty"`
	// MAC is normalised: lower case, colons.
	MAC        string     `json:"mac,omitempty"`
	IP         netip.Addr `json:"ip,omitzero"`
	SubnetMask string     `json:"subnet_mask,omitempty"`
	Gateway    string     `json:"gateway,omitempty"`
	DHCP       string     `json:"dhcp,omitempty"`
	// CommandPort is the server/SDK port (8000 by default).
	CommandPort    uint16 `json:"command_port,omitempty"`
	HTTPPort       uint16 `json:"http_port,omitempty"`
	SDKOverTLSPort uint16 `json:"sdk_over_tls_port,omitempty"`
	// Firmware is <SoftwareVersion>, e.g. "V3.5.38build 191215".
	Firmware   string `json:"firmware,omitempty"`
	DSPVersion string `json:"dsp_version,omitempty"`
	BootTime   string `json:"boot_time,omitempty"`
	// Activated is nil when the device did not say. False means no admin
	// password has been set: such a device must never be exposed.
	Activated       *bool `json:"activated,omitempty"`
	AnalogChannels  int   `json:"analog_channels,omitempty"`
	DigitalChannels int   `json:"digital_channels,omitempty"`
}

type xmlProbeMatch struct {
	XMLName           xml.Name
	UUID              string `xml:"Uuid"`
	Types             string `xml:"Types"`
	DeviceType        string `xml:"DeviceType"`
	DeviceDescription string `xml:"DeviceDescription"`
	DeviceSN          string `xml:"DeviceSN"`
	CommandPort       string `xml:"CommandPort"`
	HTTPPort          string `xml:"HttpPort"`
	MAC               string `xml:"MAC"`
	IPv4Address       string `xml:"IPv4Address"`
	IPv4SubnetMask    string `xml:"IPv4SubnetMask"`
	IPv4Gateway       string `xml:"IPv4Gateway"`
	DHCP              string `xml:"DHCP"`
	AnalogChannelNum  string `xml:"AnalogChannelNum"`
	DigitalChannelNum string `xml:"DigitalChannelNum"`
	SoftwareVersion   string `xml:"SoftwareVersion"`
	DSPVersion        string `xml:"DSPVersion"`
	BootTime          string `xml:"BootTime"`
	Activated         string `xml:"Activated"`
	SDKOverTLSPort    string `xml:"SDKOverTLSPort"`
}

// ErrNotProbeMatch means a datagram was XML but not a reply (our own
// probe looped back, another tool's probe, or a write command).
var ErrNotProbeMatch = errors.New("not a probe match")

// maxDatagram bounds what is parsed; UDP cannot carry more anyway.
const maxDatagram = 64 << 10

// ParseSADP parses a SADP reply. Elements are matched by local name, so a
// namespace prefix does not matter; unknown elements are ignored.
func ParseSADP(data []byte) (SADPReply, error) {
	if len(data) > maxDatagram {
		return SADPReply{}, fmt.Errorf("sadp: datagram of %d bytes is too large", len(data))
	}
	var x xmlProbeMatch
	if err := newDecoder(data).Decode(&x); err != nil {
		return SADPReply{}, fmt.Errorf("sadp: %w", err)
	}
	if x.XMLName.Local != "ProbeMatch" {
		return SADPReply{}, fmt.Errorf("sadp: <%s>: %w", x.XMLName.Local, ErrNotProbeMatch)
	}
	t := strings.TrimSpace
	r := SADPReply{
		UUID:           t(x.UUID),
		Types:          t(x.Types),
		DeviceType:     t(x.DeviceType),
		Model:          t(x.DeviceDescription),
		Serial:         t(x.DeviceSN),
		MAC:            hikvision.NormalizeMAC(x.MAC),
		SubnetMask:     t(x.IPv4SubnetMask),
		Gateway:        t(x.IPv4Gateway),
		DHCP:           t(x.DHCP),
		CommandPort:    port(x.CommandPort),
		HTTPPort:       port(x.HTTPPort),
		SDKOverTLSPort: port(x.SDKOverTLSPort),
		Firmware:       t(x.SoftwareVersion),
		DSPVersion:     t(x.DSPVersion),
		BootTime:       t(x.BootTime),
	}
	if a, err := netip.ParseAddr(t(x.IPv4Address)); err == nil && a.Is4() {
		r.IP = a
	}
	r.AnalogChannels, _ = strconv.Atoi(t(x.AnalogChannelNum))
	r.DigitalChannels, _ = strconv.Atoi(t(x.DigitalChannelNum))
	switch strings.ToLower(t(x.Activated)) {
	case "true", "1", "yes":
		v := true
		r.Activated = &v
	case "false", "0", "no":
		v := false
		r.Activated = &v
	}
	if r.MAC == "" && r.Serial == "" && !r.IP.IsValid() {
		return SADPReply{}, errors.New("sadp: probe match names no MAC, serial or address")
	}
	return r, nil
}

// port parses a port number, or gives 0.
func port(s string) uint16 {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 1 || n > 65535 {
		return 0
	}
	return uint16(n)
}

func newDecoder(data []byte) *xml.Decoder {
	d := xml.NewDecoder(bytes.NewReader(data))
	// Devices declare UTF-8, some GB2312 for ASCII content: take the bytes
	// as they are.
	d.CharsetReader = func(_ string, r io.Reader) (io.Reader, error) { return r, nil }
	return d
}
