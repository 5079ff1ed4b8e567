package audit

import (
	"testing"
	"time"
)

// FuzzParseFirmware feeds firmware strings as devices send them (SADP's
// SoftwareVersion, ISAPI's firmwareVersion and firmwareReleasedDate) to
// the parser and the CVE heuristics.
func FuzzParseFirmware(f *testing.F) {
	for _, s := range []string{
		"V4.22.005build 200318", // the simulator's vulnerable DVR (SADP)
		"V5.5.800 build 210628", // the patched camera
		"V3.5.38build 191215",   // hikvision.md's SADP sample
		"build 160510",          // ISAPI firmwareReleasedDate
		"V5.4.0", "v5", "build 991332", "V99999999999999999999.1", "",
	} {
		f.Add(s, "DS-2CD2142FWD-I")
	}
	now := time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s, model string) {
		v, b := ParseFirmware(s)
		fw := Firmware{Model: model, Version: v, Build: b}
		for _, fd := range FirmwareFindings(fw, "192.0.2.1", now) {
			if fd.ID == "" || fd.Severity.Rank() < 0 {
				t.Fatalf("bad finding %+v from %q", fd, s)
			}
		}
	})
}
