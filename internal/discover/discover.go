// Package discover finds Hikvision devices on the local network with
// SADP (Hikvision's own discovery, UDP 37020) and ONVIF WS-Discovery (UDP
// 3702), both multicast to 239.255.255.250, and merges the answers into
// one record per device.
//
//	devs, err := discover.Discover(ctx, discover.Options{Timeout: 3 * time.Second})
//	for _, d := range devs {
//		if d.Activated != nil && !*d.Activated { ... never expose it ... }
//	}
//
// Discover sends one probe of each kind per chosen interface address,
// from a socket bound to that address with the multicast interface set,
// repeats it at a third and two thirds of the window (UDP gets lost), and
// collects answers until the window closes. SADP probes also go to the
// limited and the subnet broadcast address, and a listener on the SADP
// port catches devices that answer to the group rather than to us.
//
// Read-only by construction: the only SADP message this package can
// build is the "inquiry" probe. SADP's write commands (activate, update,
// reboot, restore, resetPassword) are deliberately absent.
//
// Non-goals: IPv6 discovery, the layer-2 SADP (EtherType 0x8033), and
// watching for devices over time; call Discover again.
package discover

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// DefaultTimeout is the reply window when Options.Timeout is zero. Devices
// on a LAN answer within milliseconds; a busy DVR within a second or two.
const DefaultTimeout = 3 * time.Second

// Source says which protocol reported a device.
type Source string

// The discovery protocols.
const (
	SourceSADP Source = "sadp"
	SourceWSD  Source = "wsd"
)

// Options tune Discover.
type Options struct {
	// Interfaces names the interfaces to probe from. Empty means every
	// interface that is up, not loopback, multicast-capable and has an
	// IPv4 address. A named interface is used even if it is loopback.
	Interfaces []string
	// Timeout is how long to collect replies. Zero means DefaultTimeout.
	Timeout time.Duration
	// SkipSADP and SkipWSD turn one protocol off. Default: both run.
	SkipSADP, SkipWSD bool
	// SADPAddr and WSDAddr are where probes go. The zero value means the
	// standard group, 239.255.255.250:37020 and :3702. A unicast address
	// (a test responder on 127.0.0.1) disables broadcast and the SADP
	// group listener.
	SADPAddr, WSDAddr netip.AddrPort
	// Progress, if set, is called as probes go out and replies come in.
	// Calls come from one goroutine, in order, before Discover returns.
	Progress func(Progress)
	// Logger receives debug lines. Nil means discard.
	Logger *slog.Logger
}

func (o *Options) timeout() time.Duration {
	if o.Timeout <= 0 {
		return DefaultTimeout
	}
	return o.Timeout
}

func (o *Options) sadpAddr() netip.AddrPort {
	if !o.SADPAddr.IsValid() {
		return netip.AddrPortFrom(netip.MustParseAddr(GroupAddr), SADPPort)
	}
	return o.SADPAddr
}

func (o *Options) wsdAddr() netip.AddrPort {
	if !o.WSDAddr.IsValid() {
		return netip.AddrPortFrom(netip.MustParseAddr(GroupAddr), WSDPort)
	}
	return o.WSDAddr
}

// ProgressKind is what a Progress event reports.
type ProgressKind int

// The progress events.
const (
	// Probing: probes went out from Interface/Addr.
	Probing ProgressKind = iota
	// Reply: a reply from From arrived on Interface/Addr.
	Reply
	// Failed: probing from Interface/Addr failed (Err).
	Failed
	// Done: the window closed for Interface/Addr; Replies is final.
	Done
)

// Progress is one event of a discovery run.
type Progress struct {
	Kind      ProgressKind
	Interface string
	Addr      netip.Addr
	// Source and From describe a Reply.
	Source Source
	From   netip.Addr
	// Replies counts the replies so far on this interface address.
	Replies int
	Err     error
}

// Device is everything learnt about one device, merged over protocols
// and interfaces.
type Device struct {
	IP  netip.Addr `json:"ip"`
	MAC string     `json:"mac,omitempty"`
	// Model comes from SADP's DeviceDescription, else the ONVIF hardware scope.
	Model  string `json:"model,omitempty"`
	Serial string `json:"serial,omitempty"`
	// Firmware is SADP's SoftwareVersion, e.g. "V4.30.085 build 200916".
	Firmware   string `json:"firmware,omitempty"`
	DeviceType string `json:"device_type,omitempty"`
	// Activated is nil when no SADP reply said. False means the device has
	// no admin password yet: it must never be exposed.
	Activated *bool `json:"activated,omitempty"`
	// HTTPPort and ServerPort (SADP's CommandPort, the SDK port) as SADP
	// reports them; 0 if unknown.
	HTTPPort       uint16 `json:"http_port,omitempty"`
	ServerPort     uint16 `json:"server_port,omitempty"`
	SDKOverTLSPort uint16 `json:"sdk_over_tls_port,omitempty"`
	// ONVIF are the device-service URLs from WS-Discovery.
	ONVIF []string `json:"onvif,omitempty"`
	// Name is the ONVIF name scope.
	Name string `json:"name,omitempty"`
	// Interface is the local interface the first reply came in on.
	Interface string `json:"interface,omitempty"`
	// Sources lists the protocols that reported the device.
	Sources []Source `json:"sources"`
}

// NotActivated reports whether the device said it has no password yet.
func (d *Device) NotActivated() bool { return d.Activated != nil && !*d.Activated }

// HasSource reports whether s reported the device.
func (d *Device) HasSource(s Source) bool { return slices.Contains(d.Sources, s) }

// ErrNoInterfaces means there was no interface address to probe from.
var ErrNoInterfaces = errors.New("no usable IPv4 interface")

// Discover probes and waits Options.Timeout (or until ctx is done) and
// returns the devices found, sorted by IP. Errors on single interfaces
// are reported through Progress and do not fail the run; Discover fails
// only if no probe could be sent at all.
func Discover(ctx context.Context, opts Options) ([]Device, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "discover")
	targets, err := pickInterfaces(opts.Interfaces)
	if err != nil {
		return nil, err
	}
	r := &run{opts: &opts, log: log, replies: make(chan reply, 64)}
	return r.do(ctx, targets)
}

// Lookup runs Discover and returns the device at ip, or nil if it did not
// answer. `camgate device add` uses it to learn the ports SADP reports
// when it cannot read the device over ISAPI.
func Lookup(ctx context.Context, ip netip.Addr, opts Options) (*Device, error) {
	devs, err := Discover(ctx, opts)
	if err != nil {
		return nil, err
	}
	for i := range devs {
		if devs[i].IP == ip.Unmap() {
			return &devs[i], nil
		}
	}
	return nil, nil
}

// merger folds replies into devices.
type merger struct {
	devs []*Device
}

// addSADP merges a SADP reply received on iface from src.
func (m *merger) addSADP(r SADPReply, iface string, src netip.Addr) {
	ip := r.IP
	if !ip.IsValid() {
		ip = src
	}
	d := m.find(r.MAC, "", r.Serial, ip)
	if d == nil {
		d = &Device{IP: ip, Interface: iface}
		m.devs = append(m.devs, d)
	}
	// SADP is authoritative for identity: it is Hikvision's own protocol.
	d.IP = ip
	setIf(&d.MAC, r.MAC)
	setIf(&d.Model, r.Model)
	setIf(&d.Serial, r.Serial)
	setIf(&d.Firmware, r.Firmware)
	setIf(&d.DeviceType, r.DeviceType)
	if r.Activated != nil {
		d.Activated = r.Activated
	}
	if r.HTTPPort != 0 {
		d.HTTPPort = r.HTTPPort
	}
	if r.CommandPort != 0 {
		d.ServerPort = r.CommandPort
	}
	if r.SDKOverTLSPort != 0 {
		d.SDKOverTLSPort = r.SDKOverTLSPort
	}
	addSource(d, SourceSADP)
}

// addWSD merges a WS-Discovery match received on iface from src.
func (m *merger) addWSD(w WSDMatch, iface string, src netip.Addr) {
	ip := src
	if len(w.Hosts) > 0 {
		ip = w.Hosts[0]
		for _, h := range w.Hosts {
			if h == src {
				ip = h
			}
		}
	}
	d := m.find(w.MAC, w.UUIDTail, "", ip)
	if d == nil {
		d = &Device{IP: ip, Interface: iface}
		m.devs = append(m.devs, d)
	}
	setIf(&d.MAC, w.MAC)
	if d.Model == "" {
		d.Model = w.Hardware
	}
	setIf(&d.Name, w.Name)
	for _, x := range w.XAddrs {
		if !slices.Contains(d.ONVIF, x) {
			d.ONVIF = append(d.ONVIF, x)
		}
	}
	addSource(d, SourceWSD)
}

// find returns the device with this MAC, MAC hint (a WS-Discovery UUID
// tail, trusted only if it equals a MAC seen by SADP), serial, or, failing
// those, IP address.
func (m *merger) find(mac, macHint, serial string, ip netip.Addr) *Device {
	for _, d := range m.devs {
		if d.MAC != "" && (d.MAC == mac || d.MAC == macHint) {
			return d
		}
	}
	if serial != "" {
		for _, d := range m.devs {
			if d.Serial == serial {
				return d
			}
		}
	}
	for _, d := range m.devs {
		if d.IP == ip && (mac == "" || d.MAC == "") {
			return d
		}
	}
	return nil
}

func setIf(dst *string, v string) {
	if v != "" {
		*dst = v
	}
}

func addSource(d *Device, s Source) {
	if !slices.Contains(d.Sources, s) {
		d.Sources = append(d.Sources, s)
		slices.Sort(d.Sources)
	}
}

// result returns the devices sorted by IP, then MAC.
func (m *merger) result() []Device {
	out := make([]Device, 0, len(m.devs))
	for _, d := range m.devs {
		out = append(out, *d)
	}
	slices.SortFunc(out, func(a, b Device) int {
		if c := a.IP.Compare(b.IP); c != 0 {
			return c
		}
		return cmp.Compare(a.MAC, b.MAC)
	})
	return out
}

// Format describes an interface address for messages: "eth0 (192.168.1.10)".
func (p Progress) Format() string {
	return fmt.Sprintf("%s (%s)", p.Interface, p.Addr)
}

// SourceList joins a device's sources for display: "sadp+wsd".
func (d *Device) SourceList() string {
	s := make([]string, len(d.Sources))
	for i, x := range d.Sources {
		s[i] = string(x)
	}
	return strings.Join(s, "+")
}
