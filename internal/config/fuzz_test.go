package config

import (
	"bytes"
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
		// Rewriting the file it came from keeps its comments, and must
		// come out as the same config.
		kept, err := MarshalKeeping(data, cfg)
		if err != nil {
			t.Fatalf("marshal keeping comments: %v", err)
		}
		again, err := Load(kept)
		if err != nil {
			t.Fatalf("valid config does not survive a comment-keeping rewrite: %v\n%s", err, kept)
		}
		if a, b := mustMarshal(t, cfg), mustMarshal(t, again); !bytes.Equal(a, b) {
			t.Fatalf("comment-keeping rewrite changed the config:\n%s\nbecame\n%s", a, b)
		}
	})
}

func mustMarshal(t *testing.T, cfg *Config) []byte {
	t.Helper()
	b, err := Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
