package audit

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Finding ids about firmware.
const (
	IDCVE202136260 = "device-cve-2021-36260-possible"
	IDCVE20177921  = "device-cve-2017-7921-possible"
	IDFirmwareOld  = "device-firmware-old"
)

// Firmware is what is known of a device's firmware, from ISAPI deviceInfo
// or SADP.
type Firmware struct {
	// Model is e.g. "DS-2CD2142FWD-I" or "DS-7204HQHI-K1".
	Model string `json:"model,omitempty"`
	// DeviceType is ISAPI's deviceType ("IPCamera", "DVR", "NVR") or the
	// SADP description.
	DeviceType string `json:"device_type,omitempty"`
	// Version is e.g. "V5.5.800".
	Version string `json:"version,omitempty"`
	// Build is the build date ("build 210628"); zero when unknown.
	Build time.Time `json:"build,omitzero"`
	// Source is where it was read: isapi or sadp.
	Source string `json:"source,omitempty"`
}

// Known reports whether the version or build date is known.
func (f Firmware) Known() bool { return f.Version != "" || !f.Build.IsZero() }

func (f Firmware) String() string {
	s := f.Version
	if !f.Build.IsZero() {
		s = strings.TrimSpace(s + " build " + f.Build.Format("060102"))
	}
	return s
}

var (
	versionRE = regexp.MustCompile(`(?i)\bV?(\d+)\.(\d+)(?:\.(\d+))?`)
	buildRE   = regexp.MustCompile(`(?i)build\s*(\d{6})\b`)
)

// ParseFirmware splits SADP's SoftwareVersion ("V4.22.005build 200318",
// "V5.5.800 build 210628") or ISAPI's firmwareVersion plus
// firmwareReleasedDate into a version and a build date.
func ParseFirmware(s string) (version string, build time.Time) {
	if m := buildRE.FindStringSubmatchIndex(s); m != nil {
		build = parseBuild(s[m[2]:m[3]])
		s = s[:m[0]] + s[m[1]:]
	}
	if m := versionRE.FindString(s); m != "" {
		version = "V" + strings.TrimPrefix(strings.TrimPrefix(m, "V"), "v")
	}
	return version, build
}

func parseBuild(yymmdd string) time.Time {
	n, err := strconv.Atoi(yymmdd)
	if err != nil || len(yymmdd) != 6 {
		return time.Time{}
	}
	y, mo, d := 2000+n/10000, time.Month(n/100%100), n%100
	t := time.Date(y, mo, d, 0, 0, 0, 0, time.UTC)
	if t.Month() != mo || t.Day() != d {
		return time.Time{}
	}
	return t
}

// versionParts parses "V5.4.0" into [5 4 0]; missing parts are 0.
func versionParts(v string) [3]int {
	var out [3]int
	m := versionRE.FindStringSubmatch(v)
	if m == nil {
		return out
	}
	for i := 0; i < 3; i++ {
		out[i], _ = strconv.Atoi(m[i+1])
	}
	return out
}

// Family is the kind of product, as far as CVE applicability goes.
type Family string

// Product families.
const (
	FamilyCamera   Family = "camera"   // IP cameras and PTZ domes
	FamilyRecorder Family = "recorder" // DVRs, NVRs, hybrid recorders
	FamilyUnknown  Family = ""
)

var (
	cameraModel   = regexp.MustCompile(`(?i)^i?DS-2(CD|DE|DF|DY|XE|CV|PT|SE|TD)`)
	recorderModel = regexp.MustCompile(`(?i)^i?DS-(7|8|9)\d`)
)

// FamilyOf guesses the family from the model and device type.
func FamilyOf(f Firmware) Family {
	t := strings.ToLower(f.DeviceType)
	switch {
	case cameraModel.MatchString(f.Model),
		strings.Contains(t, "ipcamera"), strings.Contains(t, "ipdome"), strings.Contains(t, "ipzoom"), strings.Contains(t, "ptz"):
		return FamilyCamera
	case recorderModel.MatchString(f.Model),
		strings.Contains(t, "dvr"), strings.Contains(t, "nvr"), strings.Contains(t, "hvr"):
		return FamilyRecorder
	}
	return FamilyUnknown
}

// CVE-2021-36260: Hikvision fixed the command injection in builds dated
// 210628 (IPC_G3/IPC_H5 V5.5.800 build 210628; HSRC-202109-01). The flaw
// is in firmware back to about 2016 (Watchful IP's report), in cameras and
// some recorders. A build date alone is not conclusive (Metasploit notes
// DS-2CD2142FWD-I V5.5.0 build 170725 is unaffected), so the finding says
// "possibly".
var (
	cve202136260Fixed = time.Date(2021, 6, 28, 0, 0, 0, 0, time.UTC)
	cve202136260Since = time.Date(2016, 1, 1, 0, 0, 0, 0, time.UTC)
)

// cve20177921Ranges are the affected series and ranges of ICSA-17-124-01
// (NVD's CVE-2017-7921 description; nuclei's CVE-2017-7921 template).
var cve20177921Ranges = []struct {
	series   string
	model    *regexp.Regexp
	from, to fwPoint
}{
	{"DS-2CD2xx2F-I", regexp.MustCompile(`(?i)^DS-2CD2\d\d2F-I`), fwPoint{[3]int{5, 2, 0}, "140721"}, fwPoint{[3]int{5, 4, 0}, "160530"}},
	{"DS-2CD2xx0F-I", regexp.MustCompile(`(?i)^DS-2CD2\d\d0F-I`), fwPoint{[3]int{5, 2, 0}, "140721"}, fwPoint{[3]int{5, 4, 0}, "160401"}},
	{"DS-2CD2xx2FWD", regexp.MustCompile(`(?i)^DS-2CD2\d\d2FWD`), fwPoint{[3]int{5, 3, 1}, "150410"}, fwPoint{[3]int{5, 4, 4}, "161125"}},
	{"DS-2CD4x2xFWD", regexp.MustCompile(`(?i)^DS-2CD4\d2\dFWD`), fwPoint{[3]int{5, 2, 0}, "140721"}, fwPoint{[3]int{5, 4, 0}, "160414"}},
	{"DS-2CD4xx5", regexp.MustCompile(`(?i)^DS-2CD4\d\d5`), fwPoint{[3]int{5, 2, 0}, "140721"}, fwPoint{[3]int{5, 4, 0}, "160421"}},
	{"DS-2DFx", regexp.MustCompile(`(?i)^DS-2DF\d`), fwPoint{[3]int{5, 2, 0}, "140805"}, fwPoint{[3]int{5, 4, 5}, "160928"}},
	{"DS-2CD63xx", regexp.MustCompile(`(?i)^DS-2CD63\d\d`), fwPoint{[3]int{5, 0, 9}, "140305"}, fwPoint{[3]int{5, 3, 5}, "160106"}},
}

// fwPoint is a (version, build) pair; builds compare as YYMMDD strings.
type fwPoint struct {
	v     [3]int
	build string
}

// cmpPoint compares firmware f against p: version first, then build date
// when both are known.
func cmpPoint(v [3]int, build string, p fwPoint) int {
	for i := range v {
		if v[i] != p.v[i] {
			if v[i] < p.v[i] {
				return -1
			}
			return 1
		}
	}
	if build == "" {
		return 0
	}
	return strings.Compare(build, p.build)
}

// oldFirmware is when a build counts as old enough to look for updates.
const oldFirmware = 3 * 365 * 24 * time.Hour

// FirmwareFindings checks f against the known-vulnerable builds. subject
// and device name the device.
func FirmwareFindings(f Firmware, device string, now time.Time) []Finding {
	var out []Finding
	ev := map[string]string{"model": f.Model, "device_type": f.DeviceType, "firmware": f.String(), "source": f.Source}
	fam := FamilyOf(f)
	subject := "device " + device
	if fam != FamilyUnknown && !f.Build.IsZero() && f.Build.Before(cve202136260Fixed) && !f.Build.Before(cve202136260Since) {
		sev := Critical
		which := "an IP camera"
		if fam == FamilyRecorder {
			sev, which = High, "a recorder (the advisory lists some)"
		}
		out = append(out, Finding{ID: IDCVE202136260, Severity: sev, Subject: subject, Device: device, Evidence: ev,
			Title: fmt.Sprintf("is possibly vulnerable to CVE-2021-36260: %s, firmware %s is older than the fix (build 210628)", which, f),
			Meaning: "CVE-2021-36260 is an unauthenticated command injection in the web server (CVSS 9.8, in CISA's Known Exploited Vulnerabilities list, used by the Moobot botnet): anyone who reaches the HTTP or HTTPS port can take over the device. " +
				"This is a heuristic from the build date, not a test: some older builds are unaffected. Verify the model and firmware on Hikvision's advisory HSRC-202109-01.",
			Fix: "update the firmware from Hikvision's site, and until then expose no HTTP/HTTPS rule for this device (or keep camgate's exploit filter on and an allowlist)"})
	}
	if f.Model != "" && f.Version != "" {
		v := versionParts(f.Version)
		build := ""
		if !f.Build.IsZero() {
			build = f.Build.Format("060102")
		}
		for _, r := range cve20177921Ranges {
			if r.model.MatchString(f.Model) && cmpPoint(v, build, r.from) >= 0 && cmpPoint(v, build, r.to) <= 0 {
				out = append(out, Finding{ID: IDCVE20177921, Severity: Critical, Subject: subject, Device: device, Evidence: ev,
					Title: fmt.Sprintf("is possibly vulnerable to CVE-2017-7921: %s (series %s) with firmware %s is in the affected range", f.Model, r.series, f),
					Meaning: "CVE-2017-7921 (ICSA-17-124-01, CVSS 10) is an authentication bypass: a fixed auth= value in the URL gives anyone the device's configuration, user list and snapshots. " +
						"camgate compared the model and firmware with the advisory's ranges and did not try the bypass; verify on the vendor's advisory.",
					Fix: "update the firmware (5.4.41 or later for most affected series); until then expose no HTTP/HTTPS rule for this device"})
				break
			}
		}
	}
	if !f.Build.IsZero() && now.Sub(f.Build) > oldFirmware {
		out = append(out, Finding{ID: IDFirmwareOld, Severity: Low, Subject: subject, Device: device, Evidence: ev,
			Title:   fmt.Sprintf("runs firmware %s, %d years old", f, int(now.Sub(f.Build).Hours()/24/365)),
			Meaning: "Old firmware misses security fixes published since; Hikvision publishes advisories at hikvision.com/en/support/cybersecurity.",
			Fix:     "check Hikvision's download portal for a newer build for this model and update"})
	}
	return out
}
