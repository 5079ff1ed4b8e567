package sim

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// SADP is Hikvision's discovery protocol: XML over UDP 37020, probes sent
// to 239.255.255.250 (and broadcast). A probe is
//
//	<?xml version="1.0" encoding="utf-8"?><Probe><Uuid>…</Uuid><Types>inquiry</Types></Probe>
//
// and the device answers with a <ProbeMatch> describing itself, echoing
// the Uuid. The same socket also accepts write commands (Types activate,
// update, reboot, restore, resetPassword, …); the simulator never
// implements them: it logs and records them, and answers nothing.

// sadpProbe is a parsed SADP request.
type sadpProbe struct {
	UUID  string
	Types string
}

var errNotSADPProbe = errors.New("sadp: not a Probe")

// parseSADPProbe parses a SADP request. Element names are matched by
// local name, so namespace prefixes do not matter.
func parseSADPProbe(b []byte) (sadpProbe, error) {
	var v struct {
		XMLName xml.Name
		UUID    string `xml:"Uuid"`
		Types   string `xml:"Types"`
	}
	if err := xml.Unmarshal(b, &v); err != nil {
		return sadpProbe{}, fmt.Errorf("sadp: %w", err)
	}
	if v.XMLName.Local != "Probe" {
		return sadpProbe{}, errNotSADPProbe
	}
	return sadpProbe{UUID: strings.TrimSpace(v.UUID), Types: strings.TrimSpace(v.Types)}, nil
}

// sadpInquiry reports whether Types asks for the device's description
// (hikvision-tooling sends both "inquiry" and "inquiry_v32").
func sadpInquiry(types string) bool {
	t := strings.ToLower(types)
	return t == "inquiry" || strings.HasPrefix(t, "inquiry_v")
}

// sadpProbeMatch is the reply. The field list and order follow captured
// replies (www.mhzhuji.com/zhuji_info_958, hikvision-tooling's Device,
// hik-dev's DeviceSearchInfoDTO).
type sadpProbeMatch struct {
	XMLName                 xml.Name `xml:"ProbeMatch"`
	UUID                    string   `xml:"Uuid"`
	Types                   string   `xml:"Types"`
	DeviceType              string   `xml:"DeviceType"`
	DeviceDescription       string   `xml:"DeviceDescription"`
	DeviceSN                string   `xml:"DeviceSN"`
	CommandPort             int      `xml:"CommandPort"`
	HTTPPort                int      `xml:"HttpPort"`
	MAC                     string   `xml:"MAC"`
	IPv4Address             string   `xml:"IPv4Address"`
	IPv4SubnetMask          string   `xml:"IPv4SubnetMask"`
	IPv4Gateway             string   `xml:"IPv4Gateway"`
	IPv6Address             string   `xml:"IPv6Address"`
	IPv6Gateway             string   `xml:"IPv6Gateway"`
	IPv6MaskLen             int      `xml:"IPv6MaskLen"`
	DHCP                    bool     `xml:"DHCP"`
	AnalogChannelNum        int      `xml:"AnalogChannelNum"`
	DigitalChannelNum       int      `xml:"DigitalChannelNum"`
	SoftwareVersion         string   `xml:"SoftwareVersion"`
	DSPVersion              string   `xml:"DSPVersion"`
	BootTime                string   `xml:"BootTime"`
	OEMInfo                 string   `xml:"OEMInfo"`
	Activated               bool     `xml:"Activated"`
	PasswordResetAbility    bool     `xml:"PasswordResetAbility"`
	PasswordResetModeSecond bool     `xml:"PasswordResetModeSecond"`
	DeviceLock              bool     `xml:"DeviceLock"`
	SupportHCPlatform       bool     `xml:"SupportHCPlatform"`
	HCPlatformEnable        bool     `xml:"HCPlatformEnable"`
	Encrypt                 bool     `xml:"Encrypt"`
	Salt                    string   `xml:"Salt"`
	SDKOverTLSPort          int      `xml:"SDKOverTLSPort"`
	SDKServerStatus         bool     `xml:"SDKServerStatus"`
}

// maxEchoedUUID bounds the Uuid echoed back, so a probe cannot make the
// reply arbitrarily large.
const maxEchoedUUID = 64

// answerSADP answers a SADP datagram.
func (d *Device) answerSADP(msg []byte, src netip.AddrPort, own netip.Addr) ([]byte, string) {
	p, err := parseSADPProbe(msg)
	if err != nil {
		return nil, ""
	}
	method := p.Types
	if len(method) > 32 {
		method = method[:32]
	}
	if !sadpInquiry(p.Types) {
		d.log.Warn("SADP command refused: the simulator implements no SADP writes",
			"types", strconv.Quote(method), "src", src.String())
		return nil, method
	}
	reply, err := d.sadpReply(p, own)
	if err != nil {
		d.log.Error("sadp reply", "err", err)
		return nil, method
	}
	return reply, method
}

func (d *Device) sadpReply(p sadpProbe, own netip.Addr) ([]byte, error) {
	id := d.Identity()
	uuid := p.UUID
	if len(uuid) > maxEchoedUUID {
		uuid = uuid[:maxEchoedUUID]
	}
	cmdPort, _ := d.reportedPort(ServiceSDK, 8000)
	httpPort, _ := d.reportedPort(ServiceHTTP, 80)
	tlsPort, _ := d.reportedPort(ServiceSDKOverTLS, 8443)
	_, sdkOn := d.reportedPort(ServiceSDK, 8000)
	salt := sha256.Sum256([]byte("salt:" + id.SerialNumber))
	m := sadpProbeMatch{
		UUID:                    uuid,
		Types:                   "inquiry",
		DeviceType:              id.SADPDeviceType,
		DeviceDescription:       id.Model,
		DeviceSN:                id.SerialNumber,
		CommandPort:             cmdPort,
		HTTPPort:                httpPort,
		MAC:                     macDashes(id.MAC),
		IPv4Address:             own.String(),
		IPv4SubnetMask:          maskString(d.subnetOf(own).Bits()),
		IPv4Gateway:             d.gatewayFor(own).String(),
		IPv6Address:             "::",
		IPv6Gateway:             "::",
		IPv6MaskLen:             64,
		AnalogChannelNum:        id.AnalogChannels,
		DigitalChannelNum:       id.IPChannels,
		SoftwareVersion:         id.SoftwareVersion(),
		DSPVersion:              id.EncoderVersion + ", build " + id.EncoderBuild,
		BootTime:                d.boot.Format("2006-01-02 15:04:05"),
		OEMInfo:                 "N/A",
		Activated:               *id.Activated,
		PasswordResetAbility:    true,
		PasswordResetModeSecond: true,
		DeviceLock:              d.locks.max > 0,
		SupportHCPlatform:       true,
		HCPlatformEnable:        false,
		Encrypt:                 true,
		Salt:                    hex.EncodeToString(salt[:16]),
		SDKOverTLSPort:          tlsPort,
		SDKServerStatus:         sdkOn,
	}
	b, err := xml.Marshal(m)
	if err != nil {
		return nil, err
	}
	return append([]byte(xml.Header), b...), nil
}
