package sim

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// File is the YAML form of a simulator configuration (camgate sim
// --config sim.yaml). Every key is optional: an absent key keeps the
// profile's value, and command-line flags win over the file. Unknown keys
// are errors. The password itself never goes in the file, only the name
// of a file holding it.
//
//	version: 1
//	profile: default            # default | vulnerable | patched
//	listen: 0.0.0.0
//	advertise: 198.19.0.64      # address reported in SADP, WS-Discovery, DESCRIBE
//	gateway: 198.19.0.1
//	interfaces: [eth0]          # multicast interfaces for SADP / WS-Discovery
//	user: admin
//	password_file: /run/secrets/dvr
//	https: true
//	digest_algorithms: [SHA-256, MD5]
//	ports: {http: 8082, https: 443, rtsp: 554, rtp: 0, sdk: 8000,
//	        sdk_over_tls: 8443, websocket: 7681, sadp: 37020, wsdiscovery: 3702}
//	device: {name: Shop DVR, model: DS-7208HQHI-K1, serial: ..., mac: 44:19:b6:3c:5a:71,
//	         firmware: V4.30.085, build: "220120", encoder: V5.0, encoder_build: "220120",
//	         type: DVR, sadp_type: "44322", analog_channels: 8, ip_channels: 2, activated: true}
//	lockout: {max_failures: 7, duration: 30m}
//	tls: {cert: cert.pem, key: key.pem}
type File struct {
	Version          int         `yaml:"version"`
	Profile          string      `yaml:"profile"`
	Listen           string      `yaml:"listen"`
	Advertise        string      `yaml:"advertise"`
	Gateway          string      `yaml:"gateway"`
	Interfaces       []string    `yaml:"interfaces"`
	User             string      `yaml:"user"`
	PasswordFile     string      `yaml:"password_file"`
	HTTPS            *bool       `yaml:"https"`
	DigestAlgorithms []string    `yaml:"digest_algorithms"`
	Ports            FilePorts   `yaml:"ports"`
	Device           FileDevice  `yaml:"device"`
	Lockout          FileLockout `yaml:"lockout"`
	TLS              FileTLS     `yaml:"tls"`
}

// FilePorts are the ports: 0 picks a free port, -1 turns a service off.
type FilePorts struct {
	HTTP        *int `yaml:"http"`
	HTTPS       *int `yaml:"https"`
	RTSP        *int `yaml:"rtsp"`
	RTP         *int `yaml:"rtp"`
	SDK         *int `yaml:"sdk"`
	SDKOverTLS  *int `yaml:"sdk_over_tls"`
	WebSocket   *int `yaml:"websocket"`
	SADP        *int `yaml:"sadp"`
	WSDiscovery *int `yaml:"wsdiscovery"`
}

// FileDevice overrides identity fields (see Identity).
type FileDevice struct {
	Name           string `yaml:"name"`
	Model          string `yaml:"model"`
	Serial         string `yaml:"serial"`
	MAC            string `yaml:"mac"`
	Firmware       string `yaml:"firmware"`
	Build          string `yaml:"build"`
	Encoder        string `yaml:"encoder"`
	EncoderBuild   string `yaml:"encoder_build"`
	Type           string `yaml:"type"`
	SADPType       string `yaml:"sadp_type"`
	AnalogChannels *int   `yaml:"analog_channels"`
	IPChannels     *int   `yaml:"ip_channels"`
	Activated      *bool  `yaml:"activated"`
}

// FileLockout is the illegal-login lock.
type FileLockout struct {
	MaxFailures *int           `yaml:"max_failures"`
	Duration    *time.Duration `yaml:"duration"`
}

// FileTLS names a PEM certificate and key for HTTPS.
type FileTLS struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// ParseFile decodes a simulator YAML file strictly: unknown keys and a
// version other than 1 are errors, reported with their line.
func ParseFile(data []byte) (*File, error) {
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("sim config: %w", err)
	}
	if f.Version != 0 && f.Version != 1 {
		return nil, fmt.Errorf("sim config: version %d: want 1", f.Version)
	}
	if f.Profile != "" {
		if _, err := ParseProfile(f.Profile); err != nil {
			return nil, fmt.Errorf("sim config: %w", err)
		}
	}
	return &f, nil
}

// LoadFile reads and parses a simulator YAML file.
func LoadFile(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	f, err := ParseFile(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// Apply sets the fields the file names on cfg (the profile is the
// caller's choice: see File.Profile). It reports every bad value at once.
func (f *File) Apply(cfg *Config) error {
	var errs []error
	addr := func(field, s string, dst *netip.Addr) {
		if s == "" {
			return
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", field, err))
			return
		}
		*dst = a
	}
	addr("listen", f.Listen, &cfg.Listen)
	addr("advertise", f.Advertise, &cfg.Advertise)
	addr("gateway", f.Gateway, &cfg.Gateway)
	if f.Interfaces != nil {
		cfg.MulticastInterfaces = f.Interfaces
	}
	if f.User != "" {
		cfg.User = f.User
	}
	if f.HTTPS != nil {
		cfg.HTTPSEnabled = ptr(*f.HTTPS)
	}
	if f.DigestAlgorithms != nil {
		cfg.DigestAlgorithms = f.DigestAlgorithms
	}
	for _, p := range []struct {
		svc Service
		v   *int
	}{
		{ServiceHTTP, f.Ports.HTTP}, {ServiceHTTPS, f.Ports.HTTPS}, {ServiceRTSP, f.Ports.RTSP},
		{ServiceRTP, f.Ports.RTP}, {ServiceSDK, f.Ports.SDK}, {ServiceSDKOverTLS, f.Ports.SDKOverTLS},
		{ServiceWebSocket, f.Ports.WebSocket}, {ServiceSADP, f.Ports.SADP}, {ServiceWSDiscovery, f.Ports.WSDiscovery},
	} {
		if p.v == nil {
			continue
		}
		if *p.v < -1 || *p.v > 65535 {
			errs = append(errs, fmt.Errorf("ports.%s: %d: want 1-65535, 0 (free port) or -1 (off)", p.svc, *p.v))
			continue
		}
		cfg.Ports.SetPort(p.svc, *p.v)
	}
	dv := f.Device
	id := &cfg.Identity
	for _, s := range []struct {
		v   string
		dst *string
	}{
		{dv.Name, &id.DeviceName}, {dv.Model, &id.Model}, {dv.Serial, &id.SerialNumber},
		{dv.Firmware, &id.FirmwareVersion}, {dv.Build, &id.FirmwareBuild}, {dv.Encoder, &id.EncoderVersion},
		{dv.EncoderBuild, &id.EncoderBuild}, {dv.Type, &id.DeviceType}, {dv.SADPType, &id.SADPDeviceType},
	} {
		if s.v != "" {
			*s.dst = s.v
		}
	}
	if dv.MAC != "" {
		mac, err := net.ParseMAC(dv.MAC)
		if err != nil || len(mac) != 6 {
			errs = append(errs, fmt.Errorf("device.mac: %q: want six bytes like 44:19:b6:3c:5a:71", dv.MAC))
		} else {
			id.MAC = mac
		}
	}
	if dv.AnalogChannels != nil {
		id.AnalogChannels = *dv.AnalogChannels
	}
	if dv.IPChannels != nil {
		id.IPChannels = *dv.IPChannels
	}
	if dv.Activated != nil {
		id.Activated = ptr(*dv.Activated)
	}
	if f.Lockout.MaxFailures != nil {
		cfg.MaxFailedLogins = *f.Lockout.MaxFailures
	}
	if f.Lockout.Duration != nil {
		if *f.Lockout.Duration <= 0 {
			errs = append(errs, fmt.Errorf("lockout.duration: %v: want a positive duration like 30m", *f.Lockout.Duration))
		} else {
			cfg.LockDuration = *f.Lockout.Duration
		}
	}
	if f.TLS.Cert != "" || f.TLS.Key != "" {
		if f.TLS.Cert == "" || f.TLS.Key == "" {
			errs = append(errs, errors.New("tls: set both cert and key"))
		}
		cfg.TLSCertFile, cfg.TLSKeyFile = f.TLS.Cert, f.TLS.Key
	}
	if len(errs) > 0 {
		return fmt.Errorf("sim config: %w", errors.Join(errs...))
	}
	return nil
}

// ReadPasswordFile reads a password from a file: the first line, without
// its line ending. An empty password is an error.
func ReadPasswordFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("password file: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	line = strings.TrimRight(line, "\r")
	if line == "" {
		return "", fmt.Errorf("password file %s: empty", path)
	}
	return line, nil
}
