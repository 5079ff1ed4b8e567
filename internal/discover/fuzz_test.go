package discover

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// addSeeds adds every capture in testdata/ (SADP and WS-Discovery alike,
// so each parser also sees the other's shapes) and our own probes.
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
	f.Add(sadpProbe("00000000-0000-4000-8000-000000000000"))
	f.Add(wsdProbe("00000000-0000-4000-8000-000000000000"))
}

func FuzzParseSADP(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseSADP(data)
		if err != nil {
			return
		}
		if r.MAC != strings.ToLower(r.MAC) {
			t.Errorf("MAC %q not lower-cased", r.MAC)
		}
		if r.IP.IsValid() && !r.IP.Is4() {
			t.Errorf("IPv4Address gave %v", r.IP)
		}
		var m merger
		m.addSADP(r, "eth0", r.IP)
		if got := m.result(); len(got) != 1 {
			t.Errorf("merging one reply gave %d devices", len(got))
		}
	})
}

func FuzzParseWSD(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		ms, err := ParseWSD(data)
		if err != nil {
			return
		}
		var m merger
		for _, w := range ms {
			if len(w.Hosts) > len(w.XAddrs) {
				t.Errorf("more hosts than XAddrs: %+v", w)
			}
			m.addWSD(w, "eth0", w.firstHost())
		}
		if len(m.result()) > len(ms) {
			t.Errorf("merging %d matches gave more devices", len(ms))
		}
	})
}
