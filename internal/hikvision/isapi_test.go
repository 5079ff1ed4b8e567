package hikvision

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseDeviceInfo(t *testing.T) {
	tests := []struct {
		file                       string
		model, serial, fw, mac, ty string
		build                      time.Time
	}{
		{"deviceinfo-ds-7608ni.xml", "DS-7608NI-K2", "DS-7608NI-K20820190822CCRRD53257168WCVU", "V4.30.085", "68:6d:bc:ee:f8:f0", "NVR",
			time.Date(2020, 9, 16, 0, 0, 0, 0, time.UTC)},
		{"deviceinfo-ipc-ver10-prefixed.xml", "DS-2CD2032-I", "DS-2CD2032-I20141104CCWR487754213", "V5.2.0", "44:19:b6:0a:1b:2c", "IPCamera",
			time.Date(2014, 7, 21, 0, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := ParseDeviceInfo(readFixture(t, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if got.Model != tt.model || got.SerialNumber != tt.serial || got.FirmwareVersion != tt.fw || got.MACAddress != tt.mac || got.DeviceType != tt.ty {
				t.Errorf("got %+v, want model %s serial %s fw %s mac %s type %s", got, tt.model, tt.serial, tt.fw, tt.mac, tt.ty)
			}
			if !got.BuildDate.Equal(tt.build) {
				t.Errorf("build date: got %v, want %v", got.BuildDate, tt.build)
			}
		})
	}
}

func TestParseDeviceInfoRejects(t *testing.T) {
	tests := []struct {
		name, body string
		status     bool // a *StatusError is expected
	}{
		{"empty", "", false},
		{"html", "<html><body>login</body></html>", false},
		{"garbage", "\x00\x01not xml", false},
		{"status", string(readFixture(t, "responsestatus-notsupport.xml")), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseDeviceInfo([]byte(tt.body))
			if err == nil {
				t.Fatal("got nil error, want one")
			}
			var se *StatusError
			if got := errors.As(err, &se); got != tt.status {
				t.Errorf("got StatusError %v (%v), want %v", got, err, tt.status)
			}
		})
	}
}

func TestParseBuildDate(t *testing.T) {
	tests := []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"build 210628", time.Date(2021, 6, 28, 0, 0, 0, 0, time.UTC), true},
		{"V3.5.38build 191215", time.Date(2019, 12, 15, 0, 0, 0, 0, time.UTC), true},
		{"V5.0, build 191213", time.Date(2019, 12, 13, 0, 0, 0, 0, time.UTC), true},
		{"BUILD 160510", time.Date(2016, 5, 10, 0, 0, 0, 0, time.UTC), true},
		{"build 211332", time.Time{}, false},
		{"build 2106281", time.Time{}, false},
		{"V5.5.0", time.Time{}, false},
		{"", time.Time{}, false},
	}
	for _, tt := range tests {
		got, ok := ParseBuildDate(tt.in)
		if ok != tt.ok || !got.Equal(tt.want) {
			t.Errorf("ParseBuildDate(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestNormalizeMAC(t *testing.T) {
	tests := map[string]string{
		"68-6d-bc-ee-f8-f0":   "68:6d:bc:ee:f8:f0",
		"68-6D-BC-EE-F8-F0":   "68:6d:bc:ee:f8:f0",
		"686dbceef8f0":        "68:6d:bc:ee:f8:f0",
		" 68:6d:bc:ee:f8:f0 ": "68:6d:bc:ee:f8:f0",
		"zz-6d-bc-ee-f8-f0":   "zz-6d-bc-ee-f8-f0",
		"":                    "",
	}
	for in, want := range tests {
		if got := NormalizeMAC(in); got != want {
			t.Errorf("NormalizeMAC(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseAdminAccesses(t *testing.T) {
	tests := []struct {
		file string
		want map[string]Service
	}{
		{"adminaccesses-ds-7716ni-i4.xml", map[string]Service{
			ProtoHTTP:       {"HTTP", 80, true},
			ProtoRTSP:       {"RTSP", 554, true},
			ProtoHTTPS:      {"HTTPS", 443, false},
			ProtoDevManage:  {"DEV_MANAGE", 8000, true},
			ProtoWebSocket:  {"WebSocket", 7681, true},
			ProtoIOT:        {"IOT", 30999, true},
			ProtoSDKOverTLS: {"SDK_OVER_TLS", 8443, true},
		}},
		{"adminaccesses-seed-dvr-prefixed.xml", map[string]Service{
			ProtoHTTP:      {"HTTP", 8082, true},
			ProtoHTTPS:     {"HTTPS", 443, true},
			ProtoRTSP:      {"RTSP", 554, true},
			ProtoDevManage: {"DEV_MANAGE", 8000, true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := ParseAdminAccesses(readFixture(t, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Errorf("got %d services %v, want %d", len(got), got, len(tt.want))
			}
			for k, w := range tt.want {
				if g := got[k]; g != w {
					t.Errorf("%s: got %+v, want %+v", k, g, w)
				}
			}
		})
	}
}

func TestParseAdminAccessesOddEntries(t *testing.T) {
	doc := `<AdminAccessProtocolList>
<AdminAccessProtocol><id>9</id><enabled>false</enabled><protocol>RTSP</protocol><portNo>1554</portNo></AdminAccessProtocol>
<AdminAccessProtocol><id>1</id><enabled>TRUE</enabled><protocol> rtsp </protocol><portNo> 554 </portNo></AdminAccessProtocol>
<AdminAccessProtocol><id>2</id><protocol>HTTP</protocol><portNo>80</portNo></AdminAccessProtocol>
<AdminAccessProtocol><id>3</id><enabled>true</enabled><protocol>HTTPS</protocol><portNo>70000</portNo></AdminAccessProtocol>
<AdminAccessProtocol><id>4</id><enabled>true</enabled><protocol></protocol><portNo>1</portNo></AdminAccessProtocol>
<AdminAccessProtocol><id>5</id><enabled>true</enabled><protocol>SRTP</protocol><portNo>x</portNo></AdminAccessProtocol>
</AdminAccessProtocolList>`
	got, err := ParseAdminAccesses([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	want := Ports{"RTSP": {"rtsp", 554, true}, "HTTP": {"HTTP", 80, true}}
	if len(got) != len(want) || got["RTSP"] != want["RTSP"] || got["HTTP"] != want["HTTP"] {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestParseInterfaces(t *testing.T) {
	got, err := ParseInterfaces(readFixture(t, "interfaces-ds-7716ni-i4.xml"))
	if err != nil {
		t.Fatal(err)
	}
	want := NetworkInterface{ID: "1", IPVersion: "dual", AddressingType: "static", IPAddress: "192.168.1.64",
		SubnetMask: "255.255.255.0", Gateway: "192.168.1.1", PrimaryDNS: "8.8.8.8", MACAddress: "68:6d:bc:ee:f8:f0",
		Speed: "0", Duplex: "full", MTU: "1500"}
	if len(got) != 1 || got[0] != want {
		t.Errorf("got %+v, want [%+v]", got, want)
	}
}

func TestParseStatus(t *testing.T) {
	tests := []struct {
		file      string
		code      int
		sub       string
		locked    bool
		unlock    time.Duration
		remaining int
	}{
		{"responsestatus-notsupport.xml", 4, "notSupport", false, 0, -1},
		{"responsestatus-userlocked.xml", 4, "userLocked", true, 1740 * time.Second, -1},
		{"usercheck-unauthorized.xml", 401, "", false, 0, 4},
		{"usercheck-locked.xml", 401, "", true, 1786 * time.Second, 0},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			st, err := ParseStatus(readFixture(t, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if !st.IsStatus() {
				t.Errorf("IsStatus: got false, want true")
			}
			if st.StatusCode != tt.code || st.SubStatusCode != tt.sub || st.Locked() != tt.locked ||
				st.UnlockTime != tt.unlock || st.RetryLoginTime != tt.remaining {
				t.Errorf("got %+v locked=%v, want code %d sub %q locked %v unlock %v retries %d",
					st, st.Locked(), tt.code, tt.sub, tt.locked, tt.unlock, tt.remaining)
			}
		})
	}
}

func TestMentionsLock(t *testing.T) {
	tests := map[string]bool{
		"userLocked":                    true,
		"deviceLocked":                  true,
		"IP locked":                     true,
		"The user is locked":            true,
		"lockout":                       true,
		"unlock":                        false,
		"unlocked":                      false,
		"clock skew":                    false,
		"Invalid Operation":             false,
		"":                              false,
		"unlock then lock":              true,
		"<html>Forbidden</html>":        false,
		"403 Forbidden: ip is LOCKED":   true,
		"statusString: Device Unlocked": false,
	}
	for in, want := range tests {
		if got := mentionsLock(in); got != want {
			t.Errorf("mentionsLock(%q) = %v, want %v", in, got, want)
		}
	}
}
