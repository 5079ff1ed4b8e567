package sim

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/big"
	"net"
	"regexp"
	"slices"
	"strings"
)

// Profile names a preset device: identity, firmware, default credentials
// and whether HTTPS is on.
type Profile string

// The profiles. Model numbers, serials and the SADP device-type codes are
// illustrative, shaped like real ones; the firmware builds are chosen
// around Hikvision's CVE-2021-36260 fix (build 210628).
const (
	// ProfileDefault is the seed guide's DVR: a DS-7208HQHI-K1 on a recent
	// build, activated, HTTPS on. Real ports: HTTP 8082, RTSP 554, server
	// 8000, HTTPS 443.
	ProfileDefault Profile = "default"
	// ProfileVulnerable is an old DVR: firmware build 200318 (before the
	// 210628 fix), the old default password admin/12345, reported
	// Activated=false in SADP, HTTPS disabled.
	ProfileVulnerable Profile = "vulnerable"
	// ProfilePatched is an IP camera on the fixed build V5.5.800 build
	// 210628, HTTPS on, listing its protocols in a different order (so
	// adminAccesses ids differ from the DVR's, as they do between real
	// devices).
	ProfilePatched Profile = "patched"
)

// profileSpec is everything a profile fixes.
type profileSpec struct {
	summary  string
	identity Identity
	password string // "" = generate one
	https    bool
	// order of the adminAccesses entries (and so their ids).
	protocols []string
}

// adminAccesses protocol names (ISAPI AdminAccessProtocol/protocol).
const (
	protoHTTP       = "HTTP"
	protoHTTPS      = "HTTPS"
	protoRTSP       = "RTSP"
	protoDevManage  = "DEV_MANAGE"
	protoWebSocket  = "WebSocket"
	protoSDKOverTLS = "SDK_OVER_TLS"
)

// lookupProfile returns a fresh copy of profile p's spec (a function, not a
// package-level map, so nothing can change the presets).
func lookupProfile(p Profile) (profileSpec, bool) {
	specs := map[Profile]profileSpec{
		ProfileDefault: {
			summary: "DVR DS-7208HQHI-K1, firmware V4.30.085 build 220120, activated, HTTPS on",
			identity: Identity{
				DeviceName:      "Embedded Net DVR",
				Model:           "DS-7208HQHI-K1",
				SerialNumber:    "DS-7208HQHI-K10820210315CCRRF28471935WCVU",
				MAC:             net.HardwareAddr{0x44, 0x19, 0xb6, 0x3c, 0x5a, 0x71},
				FirmwareVersion: "V4.30.085",
				FirmwareBuild:   "220120",
				EncoderVersion:  "V5.0",
				EncoderBuild:    "220120",
				DeviceType:      "DVR",
				SADPDeviceType:  "44322",
				AnalogChannels:  8,
				IPChannels:      2,
				Activated:       ptr(true),
			},
			https:     true,
			protocols: []string{protoHTTP, protoRTSP, protoHTTPS, protoDevManage, protoWebSocket, protoSDKOverTLS},
		},
		ProfileVulnerable: {
			summary: "old DVR DS-7204HQHI-K1, firmware V4.22.005 build 200318, admin/12345, not activated, HTTPS off",
			identity: Identity{
				DeviceName:      "Embedded Net DVR",
				Model:           "DS-7204HQHI-K1",
				SerialNumber:    "DS-7204HQHI-K10420190822CCRRD61734620WCVU",
				MAC:             net.HardwareAddr{0x44, 0x19, 0xb6, 0x0e, 0x21, 0x9c},
				FirmwareVersion: "V4.22.005",
				FirmwareBuild:   "200318",
				EncoderVersion:  "V5.0",
				EncoderBuild:    "200318",
				DeviceType:      "DVR",
				SADPDeviceType:  "44322",
				AnalogChannels:  4,
				IPChannels:      1,
				Activated:       ptr(false),
			},
			password:  "12345",
			https:     false,
			protocols: []string{protoHTTP, protoRTSP, protoHTTPS, protoDevManage, protoWebSocket, protoSDKOverTLS},
		},
		ProfilePatched: {
			summary: "IP camera DS-2CD2143G0-I, firmware V5.5.800 build 210628 (the CVE-2021-36260 fix), HTTPS on",
			identity: Identity{
				DeviceName:      "IP CAMERA",
				Model:           "DS-2CD2143G0-I",
				SerialNumber:    "DS-2CD2143G0-I20210702AAWRF39586421",
				MAC:             net.HardwareAddr{0x68, 0x6d, 0xbc, 0x5c, 0xb1, 0x5e},
				FirmwareVersion: "V5.5.800",
				FirmwareBuild:   "210628",
				EncoderVersion:  "V7.3",
				EncoderBuild:    "210628",
				DeviceType:      "IPCamera",
				SADPDeviceType:  "20002",
				AnalogChannels:  1,
				IPChannels:      0,
				Activated:       ptr(true),
			},
			https:     true,
			protocols: []string{protoHTTP, protoHTTPS, protoRTSP, protoDevManage, protoWebSocket, protoSDKOverTLS},
		},
	}
	s, ok := specs[p]
	return s, ok
}

// Profiles lists the profiles.
func Profiles() []Profile { return []Profile{ProfileDefault, ProfileVulnerable, ProfilePatched} }

func profileNames() string {
	var s []string
	for _, p := range Profiles() {
		s = append(s, string(p))
	}
	return strings.Join(s, ", ")
}

// ParseProfile checks a profile name.
func ParseProfile(s string) (Profile, error) {
	p := Profile(strings.ToLower(strings.TrimSpace(s)))
	if p == "" {
		return ProfileDefault, nil
	}
	if _, ok := lookupProfile(p); !ok {
		return "", fmt.Errorf("profile %q: unknown (want one of %s)", s, profileNames())
	}
	return p, nil
}

// Summary describes the profile in one line.
func (p Profile) Summary() string {
	s, _ := lookupProfile(p)
	return s.summary
}

// Ports returns the real device's ports for the profile (the RTP pair
// stays 0: real devices pick it).
func (p Profile) Ports() Ports {
	return Ports{HTTP: 8082, HTTPS: 443, RTSP: 554, SDK: 8000, SDKOverTLS: 8443,
		WebSocket: 7681, SADP: 37020, WSDiscovery: 3702}
}

// Identity returns the profile's identity, every field filled.
func (p Profile) Identity() Identity {
	s, _ := lookupProfile(p)
	id, _ := Identity{}.resolve(s.identity)
	return id
}

// DefaultPassword returns the password the profile's firmware ships with,
// or "" when the device has none (it must be activated with one).
func (p Profile) DefaultPassword() string {
	s, _ := lookupProfile(p)
	return s.password
}

// Identity is what the device says about itself in ISAPI, SADP and
// WS-Discovery. In Config, every zero field means the profile's value.
type Identity struct {
	// DeviceName is the user-settable name (ISAPI deviceName, WS-Discovery
	// name scope). PUT /ISAPI/System/deviceInfo changes it at run time.
	DeviceName string
	// DeviceID is the ISAPI deviceID, a UUID. "" derives one from the
	// serial number whose last group is the MAC, as Hikvision's are; the
	// WS-Discovery endpoint address is "urn:uuid:" + DeviceID.
	DeviceID string
	// Model is the model number (ISAPI model, SADP DeviceDescription).
	Model string
	// SerialNumber is the full serial (model + date + serial), as in ISAPI
	// serialNumber and SADP DeviceSN. The digest realm is
	// "IP Camera(" + its last five digits + ")".
	SerialNumber string
	// MAC is the device's MAC address.
	MAC net.HardwareAddr
	// FirmwareVersion is like "V4.30.085" (ISAPI firmwareVersion).
	FirmwareVersion string
	// FirmwareBuild is the build date as YYMMDD, like "210628"; ISAPI
	// reports "build 210628" and SADP "V4.30.085build 210628".
	FirmwareBuild string
	// EncoderVersion and EncoderBuild are the DSP/encoder version and its
	// YYMMDD build.
	EncoderVersion, EncoderBuild string
	// DeviceType is the ISAPI deviceType: "DVR", "NVR", "IPCamera".
	DeviceType string
	// SADPDeviceType is SADP's numeric DeviceType code.
	SADPDeviceType string
	// AnalogChannels and IPChannels are the channel counts SADP reports.
	// RTSP serves channels 1 to AnalogChannels+IPChannels (at least 1).
	AnalogChannels, IPChannels int
	// Activated is what SADP reports; a device reporting false "has no
	// password yet". nil means the profile's value.
	Activated *bool
}

var buildRE = regexp.MustCompile(`^[0-9]{6}$`)

// resolve fills zero fields from base and checks the result.
func (id Identity) resolve(base Identity) (Identity, error) {
	str := func(v *string, b string) {
		if *v == "" {
			*v = b
		}
	}
	str(&id.DeviceName, base.DeviceName)
	str(&id.Model, base.Model)
	str(&id.SerialNumber, base.SerialNumber)
	str(&id.FirmwareVersion, base.FirmwareVersion)
	str(&id.FirmwareBuild, base.FirmwareBuild)
	str(&id.EncoderVersion, base.EncoderVersion)
	str(&id.EncoderBuild, base.EncoderBuild)
	str(&id.DeviceType, base.DeviceType)
	str(&id.SADPDeviceType, base.SADPDeviceType)
	if id.MAC == nil {
		id.MAC = slices.Clone(base.MAC)
	}
	if id.AnalogChannels == 0 && id.IPChannels == 0 {
		id.AnalogChannels, id.IPChannels = base.AnalogChannels, base.IPChannels
	}
	if id.Activated == nil {
		id.Activated = base.Activated
	}
	if id.Activated == nil {
		id.Activated = ptr(true)
	}
	id.Activated = ptr(*id.Activated)
	if len(id.MAC) != 6 {
		return id, fmt.Errorf("identity: mac %q: want 6 bytes", id.MAC)
	}
	if id.DeviceID == "" {
		sum := sha256.Sum256([]byte(id.SerialNumber))
		h := hex.EncodeToString(sum[:10])
		id.DeviceID = h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + hex.EncodeToString(id.MAC)
	}
	for _, f := range []struct{ name, v string }{
		{"device name", id.DeviceName}, {"device id", id.DeviceID}, {"model", id.Model},
		{"serial number", id.SerialNumber}, {"firmware version", id.FirmwareVersion},
		{"encoder version", id.EncoderVersion}, {"device type", id.DeviceType},
		{"sadp device type", id.SADPDeviceType},
	} {
		if err := checkText(f.v, 64); err != nil {
			return id, fmt.Errorf("identity: %s %q: %w", f.name, f.v, err)
		}
	}
	for _, b := range []struct{ name, v string }{{"firmware build", id.FirmwareBuild}, {"encoder build", id.EncoderBuild}} {
		if !buildRE.MatchString(b.v) {
			return id, fmt.Errorf("identity: %s %q: want a date as YYMMDD, like 210628", b.name, b.v)
		}
	}
	if id.AnalogChannels < 0 || id.IPChannels < 0 || id.AnalogChannels+id.IPChannels > 64 {
		return id, fmt.Errorf("identity: channels %d+%d: want 0 to 64 in all", id.AnalogChannels, id.IPChannels)
	}
	return id, nil
}

// channels returns how many RTSP channels the device serves.
func (id Identity) channels() int { return max(1, id.AnalogChannels+id.IPChannels) }

// FirmwareReleasedDate is the ISAPI form of the build: "build YYMMDD".
func (id Identity) FirmwareReleasedDate() string { return "build " + id.FirmwareBuild }

// SoftwareVersion is the SADP form: "V4.30.085build 220120" (no space
// before "build", as in captured SADP replies).
func (id Identity) SoftwareVersion() string { return id.FirmwareVersion + "build " + id.FirmwareBuild }

// checkText accepts non-empty printable text up to max bytes.
func checkText(s string, max int) error {
	if s == "" {
		return fmt.Errorf("empty")
	}
	if len(s) > max {
		return fmt.Errorf("longer than %d bytes", max)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("has a control character")
		}
	}
	return nil
}

// realmFor returns the digest realm for a serial: "IP Camera(" and the
// serial's last five digits. Real devices show a five-digit number there
// (for example "IP Camera(21388)"); how they derive it is not public.
func realmFor(serial string) string {
	var digits []byte
	for i := 0; i < len(serial); i++ {
		if serial[i] >= '0' && serial[i] <= '9' {
			digits = append(digits, serial[i])
		}
	}
	for len(digits) < 5 {
		digits = append([]byte{'0'}, digits...)
	}
	return "IP Camera(" + string(digits[len(digits)-5:]) + ")"
}

// RandomPassword returns a random 16-character password of upper- and
// lower-case letters and digits, with at least one of each: strong by
// Hikvision's activation rules (8-16 characters, two classes or more).
func RandomPassword() (string, error) {
	const (
		lower  = "abcdefghijkmnopqrstuvwxyz"
		upper  = "ABCDEFGHJKLMNPQRSTUVWXYZ"
		digits = "23456789"
		all    = lower + upper + digits
	)
	pick := func(set string) (byte, error) {
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(set))))
		if err != nil {
			return 0, fmt.Errorf("generate password: %w", err)
		}
		return set[n.Int64()], nil
	}
	for {
		b := make([]byte, 16)
		for i := range b {
			c, err := pick(all)
			if err != nil {
				return "", err
			}
			b[i] = c
		}
		s := string(b)
		if strings.ContainsAny(s, lower) && strings.ContainsAny(s, upper) && strings.ContainsAny(s, digits) {
			return s, nil
		}
	}
}

func ptr[T any](v T) *T { return &v }
