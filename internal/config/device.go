package config

import (
	"fmt"
	"slices"
	"strings"
)

// DefaultDeviceUser is the account camgate logs in with when a device
// entry names none: Hikvision's built-in administrator.
const DefaultDeviceUser = "admin"

// Device is one recorder or camera that camgate knows by name: written by
// `camgate device add` and by the admin UI's "add device", read by the
// live view, the auth guard, the VPN's per-peer access lists, check and
// audit. Its password is never in camgate.yaml: it lives in the state
// directory (package credstore), one 0600 file per device.
type Device struct {
	// Name identifies the device, as `device add --name` gave it: lower-case
	// letters, digits and '-'. Rules point at it with Rule.Device.
	Name string `yaml:"name" json:"name"`
	// Address is the device's LAN IPv4 or IPv6 address or host name.
	Address string `yaml:"address" json:"address"`
	// User is the account camgate uses. Empty means DefaultDeviceUser.
	User string `yaml:"user,omitempty" json:"user,omitempty"`
	// HTTPPort, RTSPPort and HTTPSPort are the device's own ports as
	// `device add` read them over ISAPI. Zero means the Hikvision defaults
	// (80, 554, 443).
	HTTPPort  uint16 `yaml:"http_port,omitempty" json:"http_port,omitempty"`
	RTSPPort  uint16 `yaml:"rtsp_port,omitempty" json:"rtsp_port,omitempty"`
	HTTPSPort uint16 `yaml:"https_port,omitempty" json:"https_port,omitempty"`
	// Channels lists the stream channels to show and share, Hikvision
	// style: 101 is camera 1's main stream, 102 its sub-stream. Empty means
	// 101 and 102.
	Channels []int `yaml:"channels,omitempty" json:"channels,omitempty"`
	// Model and Firmware are informational, as the device reported them.
	Model    string `yaml:"model,omitempty" json:"model,omitempty"`
	Firmware string `yaml:"firmware,omitempty" json:"firmware,omitempty"`
}

// Username returns the effective account name.
func (d *Device) Username() string {
	if d.User == "" {
		return DefaultDeviceUser
	}
	return d.User
}

// Ports returns the effective HTTP, RTSP and HTTPS ports.
func (d *Device) Ports() (http, rtsp, https uint16) {
	http, rtsp, https = d.HTTPPort, d.RTSPPort, d.HTTPSPort
	if http == 0 {
		http = 80
	}
	if rtsp == 0 {
		rtsp = 554
	}
	if https == 0 {
		https = 443
	}
	return http, rtsp, https
}

// StreamChannels returns the effective channel list.
func (d *Device) StreamChannels() []int {
	if len(d.Channels) == 0 {
		return []int{101, 102}
	}
	return slices.Clone(d.Channels)
}

// Device returns the device with the given name, or nil.
func (c *Config) Device(name string) *Device {
	for i := range c.Devices {
		if c.Devices[i].Name == name {
			return &c.Devices[i]
		}
	}
	return nil
}

// DeviceOf returns the device a rule forwards to: the one Rule.Device
// names, or else the one whose address is the rule's internal_ip. Nil
// when camgate knows no such device.
func (c *Config) DeviceOf(r *Rule) *Device {
	if r.Device != "" {
		return c.Device(r.Device)
	}
	for i := range c.Devices {
		if strings.EqualFold(c.Devices[i].Address, r.InternalIP) {
			return &c.Devices[i]
		}
	}
	return nil
}

func (d Device) clone() Device {
	d.Channels = slices.Clone(d.Channels)
	return d
}

func validateDevices(c *Config, ps *problems) {
	seen := map[string]int{}
	for i := range c.Devices {
		d := &c.Devices[i]
		label := d.Name
		if label == "" {
			label = fmt.Sprintf("%d", i)
		}
		add := ps.forSection("devices[" + label + "]")
		switch {
		case d.Name == "":
			add("name", "missing; give the device a short name such as \"dvr1\"")
		case !nameRE.MatchString(d.Name):
			add("name", "%q must be lower-case letters, digits and '-' (at most 63, not starting or ending with '-')", d.Name)
		default:
			if j, dup := seen[d.Name]; dup {
				add("name", "duplicate name: devices[%d] is also called %q; names must be unique", j, d.Name)
			}
			seen[d.Name] = i
		}
		if d.Address == "" {
			add("address", "missing; the LAN address of the device, e.g. 192.168.1.64")
		} else if err := checkHost(d.Address); err != nil {
			add("address", "%v", err)
		}
		for _, ch := range d.Channels {
			if ch < 1 || ch > 99999 {
				add("channels", "%d is not a channel such as 101 (camera 1, main stream) or 102 (sub-stream)", ch)
			}
		}
	}
	for i := range c.Rules {
		r := &c.Rules[i]
		if r.Device != "" && c.Device(r.Device) == nil {
			ps.forRule(i)("device", "%q is not in the devices section; add it with `camgate device add` or remove this line", r.Device)
		}
	}
}
