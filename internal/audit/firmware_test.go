package audit

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func date(yymmdd string) time.Time { return parseBuild(yymmdd) }

func TestParseFirmware(t *testing.T) {
	tests := []struct {
		in, version, build string
	}{
		{"V4.22.005build 200318", "V4.22.005", "200318"},
		{"V5.5.800 build 210628", "V5.5.800", "210628"},
		{"V3.5.38build 191215", "V3.5.38", "191215"},
		{"build 160510", "", "160510"},
		{"V5.4.0", "V5.4.0", ""},
		{"v5.4", "V5.4", ""},
		{"build 991332", "", ""}, // not a date
		{"", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			v, b := ParseFirmware(tt.in)
			gotB := ""
			if !b.IsZero() {
				gotB = b.Format("060102")
			}
			if v != tt.version || gotB != tt.build {
				t.Errorf("got %q %q, want %q %q", v, gotB, tt.version, tt.build)
			}
		})
	}
}

func TestFamilyOf(t *testing.T) {
	tests := []struct {
		model, typ string
		want       Family
	}{
		{"DS-2CD2143G0-I", "", FamilyCamera},
		{"DS-2DE4A425IW-DE", "", FamilyCamera},
		{"", "IPCamera", FamilyCamera},
		{"", "IPDome", FamilyCamera},
		{"DS-7204HQHI-K1", "", FamilyRecorder},
		{"DS-9632NI-I8", "", FamilyRecorder},
		{"", "DVR", FamilyRecorder},
		{"", "NVR", FamilyRecorder},
		{"DS-K1T341AMF", "", FamilyUnknown}, // access control terminal
		{"", "", FamilyUnknown},
	}
	for _, tt := range tests {
		if got := FamilyOf(Firmware{Model: tt.model, DeviceType: tt.typ}); got != tt.want {
			t.Errorf("%q/%q: got %q, want %q", tt.model, tt.typ, got, tt.want)
		}
	}
}

func TestFirmwareFindings(t *testing.T) {
	now := time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		fw   Firmware
		want []string // "id severity"
	}{
		{"vulnerable dvr (the simulator's)", Firmware{Model: "DS-7204HQHI-K1", DeviceType: "DVR", Version: "V4.22.005", Build: date("200318")},
			[]string{"device-cve-2021-36260-possible high", "device-firmware-old low"}},
		{"camera before the fix", Firmware{Model: "DS-2CD2143G0-I", DeviceType: "IPCamera", Version: "V5.5.113", Build: date("210317")},
			[]string{"device-cve-2021-36260-possible critical", "device-firmware-old low"}},
		{"camera on the fix", Firmware{Model: "DS-2CD2143G0-I", DeviceType: "IPCamera", Version: "V5.5.800", Build: date("210628")},
			[]string{"device-firmware-old low"}},
		{"recent recorder", Firmware{Model: "DS-7208HQHI-K1", DeviceType: "DVR", Version: "V4.30.085", Build: date("250120")},
			nil},
		{"cve-2017-7921 range", Firmware{Model: "DS-2CD2132F-IS", DeviceType: "IPCamera", Version: "V5.3.0", Build: date("151119")},
			[]string{"device-cve-2017-7921-possible critical", "device-firmware-old low"}}, // before 2016: outside 36260's span
		{"cve-2017-7921 upper bound", Firmware{Model: "DS-2CD2142FWD-I", Version: "V5.4.4", Build: date("161125")},
			[]string{"device-cve-2017-7921-possible critical", "device-cve-2021-36260-possible critical", "device-firmware-old low"}},
		{"cve-2017-7921 fixed build", Firmware{Model: "DS-2CD2142FWD-I", Version: "V5.4.41", Build: date("170312")},
			[]string{"device-cve-2021-36260-possible critical", "device-firmware-old low"}},
		{"cve-2017-7921 other series", Firmware{Model: "DS-2CD2143G0-I", Version: "V5.4.0", Build: date("160401")},
			[]string{"device-cve-2021-36260-possible critical", "device-firmware-old low"}},
		{"unknown family", Firmware{Model: "DS-K1T341AMF", Version: "V3.2.30", Build: date("200101")},
			[]string{"device-firmware-old low"}},
		{"version only", Firmware{Model: "DS-2DF8223I-AEL", Version: "V5.3.0"},
			[]string{"device-cve-2017-7921-possible critical"}},
		{"nothing known", Firmware{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := FirmwareFindings(tt.fw, "192.168.1.64", now)
			var got []string
			for _, f := range fs {
				got = append(got, string(f.ID)+" "+string(f.Severity))
				if f.ID != IDFirmwareOld && !strings.Contains(f.Title, "possibly") {
					t.Errorf("%s: title %q is not worded as a heuristic", f.ID, f.Title)
				}
				if f.Device != "192.168.1.64" || f.Subject != "device 192.168.1.64" {
					t.Errorf("%s: got device %q subject %q", f.ID, f.Device, f.Subject)
				}
			}
			slices.Sort(got)
			want := slices.Clone(tt.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("got %v, want %v", got, want)
			}
		})
	}
}
