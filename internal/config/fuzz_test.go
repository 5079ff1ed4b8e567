package config

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad feeds arbitrary bytes to the parser and validator: they must
// never panic, and a config they accept must survive Marshal and Load.
func FuzzLoad(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.yaml")
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(good))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Load(data)
		if err != nil {
			_ = ProblemsOf(err)
			return
		}
		out, err := Marshal(cfg)
		if err != nil {
			t.Fatalf("marshal of a valid config: %v", err)
		}
		if _, err := Load(out); err != nil {
			t.Fatalf("valid config does not survive a round trip: %v\n%s", err, out)
		}
	})
}
