package store

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/camgate/camgate/internal/config"
)

func TestStarterIsValidAndExposesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "camgate.yaml")
	wrote, err := EnsureStarter(path)
	if err != nil || !wrote {
		t.Fatalf("got %v, %v; want the starter written", wrote, err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatalf("starter config does not validate: %v", err)
	}
	for _, r := range cfg.Rules {
		if r.IsEnabled() {
			t.Errorf("starter rule %q is enabled; nothing may be exposed before the owner edits the file", r.Name)
		}
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("got mode %v, want 0600", fi.Mode().Perm())
	}
	// An existing file is never touched.
	os.WriteFile(path, []byte("mine"), 0o600)
	if wrote, _ := EnsureStarter(path); wrote {
		t.Fatal("EnsureStarter overwrote an existing file")
	}
	if b, _ := os.ReadFile(path); string(b) != "mine" {
		t.Fatalf("got %q, want the user's file untouched", b)
	}
}

func TestSaveIsAtomicAndRefusesInvalid(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "camgate.yaml")
	os.WriteFile(path, []byte("version: 1\nrules: []\n"), 0o600)
	bad := &config.Config{Version: 1, Rules: []config.Rule{{Name: "x"}}}
	if err := Save(path, bad); err == nil || !strings.Contains(err.Error(), `rule "x": external_port: missing`) {
		t.Fatalf("got %v, want a validation error", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "version: 1\nrules: []\n" {
		t.Fatalf("invalid config changed the file: %q", b)
	}
	good := &config.Config{Version: 1, Rules: []config.Rule{{Name: "cam", ExternalPort: config.PortRange{First: 554, Last: 554}, InternalIP: "192.168.1.64"}}}
	if err := Save(path, good); err != nil {
		t.Fatal(err)
	}
	back, err := Load(path)
	if err != nil || back.Rule("cam") == nil {
		t.Fatalf("reload after save: %v", err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("got %d files in the directory, want no temp files left", len(ents))
	}
}

func TestWriteFileFailureLeavesOldFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "camgate.yaml")
	os.WriteFile(path, []byte("old"), 0o600)
	// A directory where the file should go makes the rename fail.
	target := filepath.Join(dir, "is-a-dir")
	os.Mkdir(target, 0o755)
	os.WriteFile(filepath.Join(target, "x"), nil, 0o600)
	if err := WriteFile(target, []byte("new"), 0o600); err == nil {
		t.Fatal("rename over a non-empty directory succeeded")
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Fatalf("temp file %s left behind", e.Name())
		}
	}
}
