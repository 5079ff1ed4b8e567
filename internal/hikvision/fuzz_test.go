package hikvision

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// addSeeds adds every testdata/*.xml capture to f's corpus, so each
// parser is also fuzzed from the other documents' shapes.
func addSeeds(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.xml"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no seeds in testdata: %v", err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`<DeviceInfo><model>a</model><firmwareReleasedDate>build 991231</firmwareReleasedDate></DeviceInfo>`))
	f.Add([]byte(`<a:AdminAccessProtocolList xmlns:a="x"><a:AdminAccessProtocol><a:protocol>RTSP</a:protocol><a:portNo>0</a:portNo></a:AdminAccessProtocol></a:AdminAccessProtocolList>`))
	f.Add([]byte(`<ResponseStatus><subStatusCode>deviceLocked</subStatusCode><unlockTime>-5</unlockTime>`))
}

func FuzzParseDeviceInfo(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := ParseDeviceInfo(data)
		if err != nil {
			return
		}
		if !info.BuildDate.IsZero() && (info.BuildDate.Year() < 2000 || info.BuildDate.Year() > 2099) {
			t.Errorf("build date %v out of range", info.BuildDate)
		}
		if info.MACAddress != strings.ToLower(info.MACAddress) {
			t.Errorf("MAC %q not lower-cased", info.MACAddress)
		}
	})
}

func FuzzParseAdminAccesses(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseAdminAccesses(data)
		if err != nil {
			return
		}
		for k, s := range p {
			if s.Port == 0 {
				t.Errorf("%s: port 0 accepted", k)
			}
			if k != strings.ToUpper(s.Protocol) || k == "" {
				t.Errorf("key %q does not match protocol %q", k, s.Protocol)
			}
		}
	})
}

func FuzzParseInterfaces(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		ParseInterfaces(data)
	})
}

func FuzzParseStatus(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := ParseStatus(data)
		if err != nil {
			return
		}
		if st.UnlockTime < 0 || st.RetryLoginTime < -1 {
			t.Errorf("negative lock values: %+v", st)
		}
		st.Locked()
		st.IsStatus()
	})
}
