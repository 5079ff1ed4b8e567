package sim

import (
	"encoding/xml"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// probe sends msg to the device's UDP service and returns the reply, or
// nil when none comes within wait.
func probe(t *testing.T, to string, msg []byte, wait time.Duration) []byte {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ua, _ := net.ResolveUDPAddr("udp4", to)
	if _, err := c.WriteTo(msg, ua); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 64<<10)
	n, from, err := c.ReadFrom(buf)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	if from.String() != to {
		t.Errorf("reply from %s, want %s", from, to)
	}
	return buf[:n]
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type probeMatchDoc struct {
	XMLName           xml.Name
	UUID              string `xml:"Uuid"`
	Types             string `xml:"Types"`
	DeviceType        string `xml:"DeviceType"`
	DeviceDescription string `xml:"DeviceDescription"`
	DeviceSN          string `xml:"DeviceSN"`
	CommandPort       int    `xml:"CommandPort"`
	HTTPPort          int    `xml:"HttpPort"`
	MAC               string `xml:"MAC"`
	IPv4Address       string `xml:"IPv4Address"`
	IPv4SubnetMask    string `xml:"IPv4SubnetMask"`
	IPv4Gateway       string `xml:"IPv4Gateway"`
	DHCP              string `xml:"DHCP"`
	AnalogChannelNum  int    `xml:"AnalogChannelNum"`
	DigitalChannelNum int    `xml:"DigitalChannelNum"`
	SoftwareVersion   string `xml:"SoftwareVersion"`
	DSPVersion        string `xml:"DSPVersion"`
	BootTime          string `xml:"BootTime"`
	Activated         string `xml:"Activated"`
	PasswordReset     string `xml:"PasswordResetAbility"`
	SDKOverTLSPort    int    `xml:"SDKOverTLSPort"`
}

func TestSADP(t *testing.T) {
	tests := []struct {
		profile   Profile
		model     string
		software  string
		activated string
		analog    int
	}{
		{ProfileDefault, "DS-7208HQHI-K1", "V4.30.085build 220120", "true", 8},
		{ProfileVulnerable, "DS-7204HQHI-K1", "V4.22.005build 200318", "false", 4},
		{ProfilePatched, "DS-2CD2143G0-I", "V5.5.800build 210628", "true", 1},
	}
	for _, tc := range tests {
		t.Run(string(tc.profile), func(t *testing.T) {
			d := start(t, Config{Profile: tc.profile, Gateway: loopback()})
			reply := probe(t, d.Addr(ServiceSADP).String(), readTestdata(t, "sadp-probe-inquiry.xml"), 3*time.Second)
			if reply == nil {
				t.Fatal("no reply to an inquiry")
			}
			var m probeMatchDoc
			if err := xml.Unmarshal(reply, &m); err != nil {
				t.Fatalf("reply: %v\n%s", err, reply)
			}
			checks := []struct{ name, got, want string }{
				{"root", m.XMLName.Local, "ProbeMatch"},
				{"Uuid (echoed)", m.UUID, "7A2B1C04-5D3E-4F60-8A71-92B3C4D5E6F7"},
				{"Types", m.Types, "inquiry"},
				{"DeviceDescription", m.DeviceDescription, tc.model},
				{"DeviceSN", m.DeviceSN, d.Identity().SerialNumber},
				{"CommandPort", strconv.Itoa(m.CommandPort), strconv.Itoa(int(d.Addr(ServiceSDK).Port()))},
				{"HttpPort", strconv.Itoa(m.HTTPPort), strconv.Itoa(int(d.Addr(ServiceHTTP).Port()))},
				{"SDKOverTLSPort", strconv.Itoa(m.SDKOverTLSPort), strconv.Itoa(int(d.Addr(ServiceSDKOverTLS).Port()))},
				{"MAC", m.MAC, strings.ReplaceAll(d.Identity().MAC.String(), ":", "-")},
				{"IPv4Address", m.IPv4Address, "127.0.0.1"},
				{"IPv4SubnetMask", m.IPv4SubnetMask, "255.0.0.0"},
				{"IPv4Gateway", m.IPv4Gateway, "127.0.0.1"},
				{"DHCP", m.DHCP, "false"},
				{"AnalogChannelNum", strconv.Itoa(m.AnalogChannelNum), strconv.Itoa(tc.analog)},
				{"SoftwareVersion", m.SoftwareVersion, tc.software},
				{"Activated", m.Activated, tc.activated},
				{"PasswordResetAbility", m.PasswordReset, "true"},
			}
			for _, c := range checks {
				if c.got != c.want {
					t.Errorf("%s: got %q, want %q", c.name, c.got, c.want)
				}
			}
			if m.DeviceType == "" || m.DSPVersion == "" || m.BootTime == "" {
				t.Errorf("DeviceType, DSPVersion or BootTime empty: %s", reply)
			}
		})
	}
}

func TestSADPNeverWrites(t *testing.T) {
	d := start(t, Config{Profile: ProfileVulnerable})
	for _, name := range []string{"sadp-probe-activate.xml", "sadp-probe-reset.xml"} {
		if reply := probe(t, d.Addr(ServiceSADP).String(), readTestdata(t, name), 500*time.Millisecond); reply != nil {
			t.Fatalf("%s: got a reply %s, want none", name, reply)
		}
	}
	// inquiry_v32 (sent by hikvision-tooling) is answered.
	v32 := []byte(`<?xml version="1.0" encoding="utf-8"?><Probe><Uuid>abc</Uuid><Types>inquiry_v32</Types></Probe>`)
	if probe(t, d.Addr(ServiceSADP).String(), v32, 3*time.Second) == nil {
		t.Fatal("no reply to inquiry_v32")
	}
	var methods []string
	for _, r := range d.Requests() {
		if r.Service == ServiceSADP {
			methods = append(methods, r.Method+"/"+strconv.Itoa(r.Status))
		}
	}
	if got, want := strings.Join(methods, " "), "activate/0 resetPassword/0 inquiry_v32/200"; got != want {
		t.Fatalf("request log: got %q, want %q", got, want)
	}
	if *d.Identity().Activated {
		t.Fatal("a refused activate changed the device")
	}
}

type wsdDoc struct {
	Header struct {
		RelatesTo string `xml:"RelatesTo"`
		Action    string `xml:"Action"`
	} `xml:"Header"`
	Body struct {
		ProbeMatches struct {
			Match []struct {
				Address         string `xml:"EndpointReference>Address"`
				Types           string `xml:"Types"`
				Scopes          string `xml:"Scopes"`
				XAddrs          string `xml:"XAddrs"`
				MetadataVersion int    `xml:"MetadataVersion"`
			} `xml:"ProbeMatch"`
		} `xml:"ProbeMatches"`
	} `xml:"Body"`
}

func TestWSDiscovery(t *testing.T) {
	d := start(t, Config{})
	mac := d.Identity().MAC.String()
	tests := []struct {
		name  string
		file  string
		reply bool
	}{
		{"NetworkVideoTransmitter", "wsd-probe-nvt.xml", true},
		{"no types", "wsd-probe-any.xml", true},
		{"tds:Device with a matching scope", "wsd-probe-device-scope.xml", true},
		{"printer", "wsd-probe-printer.xml", false},
		{"scope of another model", "wsd-probe-other-scope.xml", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msg := readTestdata(t, tc.file)
			p, err := parseWSDProbe(msg)
			if err != nil {
				t.Fatal(err)
			}
			wait := 3 * time.Second
			if !tc.reply {
				wait = 500 * time.Millisecond
			}
			reply := probe(t, d.Addr(ServiceWSDiscovery).String(), msg, wait)
			if !tc.reply {
				if reply != nil {
					t.Fatalf("got a reply, want none:\n%s", reply)
				}
				return
			}
			if reply == nil {
				t.Fatal("no reply")
			}
			var v wsdDoc
			if err := xml.Unmarshal(reply, &v); err != nil {
				t.Fatalf("%v\n%s", err, reply)
			}
			if v.Header.RelatesTo != p.MessageID || !strings.HasSuffix(v.Header.Action, "/discovery/ProbeMatches") {
				t.Errorf("header: got RelatesTo %q Action %q, want %q, ProbeMatches", v.Header.RelatesTo, v.Header.Action, p.MessageID)
			}
			if len(v.Body.ProbeMatches.Match) != 1 {
				t.Fatalf("got %d ProbeMatch, want 1", len(v.Body.ProbeMatches.Match))
			}
			m := v.Body.ProbeMatches.Match[0]
			wantAddr := "urn:uuid:" + d.Identity().DeviceID
			wantX := "http://127.0.0.1:" + strconv.Itoa(int(d.Addr(ServiceHTTP).Port())) + "/onvif/device_service"
			if m.Address != wantAddr || !strings.HasSuffix(m.Address, strings.ReplaceAll(mac, ":", "")) {
				t.Errorf("Address: got %q, want %q ending with the MAC", m.Address, wantAddr)
			}
			if !strings.Contains(m.Types, "dn:NetworkVideoTransmitter") {
				t.Errorf("Types: got %q", m.Types)
			}
			for _, s := range []string{"onvif://www.onvif.org/MAC/" + mac, "onvif://www.onvif.org/hardware/DS-7208HQHI-K1", "onvif://www.onvif.org/name/HIKVISION%20DS-7208HQHI-K1"} {
				if !strings.Contains(" "+m.Scopes+" ", " "+s+" ") {
					t.Errorf("Scopes lack %q: %q", s, m.Scopes)
				}
			}
			if m.XAddrs != wantX || m.MetadataVersion == 0 {
				t.Errorf("XAddrs %q MetadataVersion %d, want %q and a version", m.XAddrs, m.MetadataVersion, wantX)
			}
		})
	}
}
