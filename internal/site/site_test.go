package site

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/gateway"
	"github.com/camgate/camgate/internal/store"
)

func newSite(t *testing.T) (*Site, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "camgate.yaml")
	os.WriteFile(path, []byte("version: 1\nlisten_address: 127.0.0.1\nrules: []\n"), 0o600)
	g := gateway.New(gateway.Config{})
	t.Cleanup(func() { g.Close(context.Background()) })
	s := New(Config{Path: path, Gateway: g})
	if _, err := s.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s, path
}

func TestUpdateAppliesThenPersists(t *testing.T) {
	s, path := newSite(t)
	var seen []int
	s.Subscribe(context.Background(), func(_ context.Context, cfg *config.Config) { seen = append(seen, len(cfg.Rules)) })
	_, err := s.Update(context.Background(), func(cfg *config.Config) error {
		cfg.Rules = append(cfg.Rules, config.Rule{Name: "cam", ExternalPort: config.PortRange{First: 0}, InternalIP: "127.0.0.1"})
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), `rule "cam": external_port: missing`) {
		t.Fatalf("got %v, want a validation error", err)
	}
	ln, _ := net.Listen("tcp4", "127.0.0.1:0")
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	if _, err := s.Update(context.Background(), func(cfg *config.Config) error {
		cfg.Rules = append(cfg.Rules, config.Rule{Name: "cam", ExternalPort: config.PortRange{First: port, Last: port}, InternalIP: "127.0.0.1", InternalPort: config.PortRange{First: 80, Last: 80}})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	onDisk, err := store.Load(path)
	if err != nil || onDisk.Rule("cam") == nil {
		t.Fatalf("file not updated: %v", err)
	}
	if s.Gateway().Addrs("cam") == nil {
		t.Fatal("rule not running")
	}
	if len(seen) != 2 || seen[1] != 1 {
		t.Fatalf("subscriber saw %v, want [0 1]", seen)
	}
	// A stale writer is refused before anything changes.
	_, err = s.UpdateIf(context.Background(), func(*config.Config) error { return ErrConflict }, func(*config.Config) error { return nil })
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("got %v, want ErrConflict", err)
	}
}

func TestFailedApplyIsNotPersisted(t *testing.T) {
	s, path := newSite(t)
	busy, _ := net.Listen("tcp4", "127.0.0.1:0")
	defer busy.Close()
	port := uint16(busy.Addr().(*net.TCPAddr).Port)
	before, _ := os.ReadFile(path)
	_, err := s.Update(context.Background(), func(cfg *config.Config) error {
		cfg.Rules = append(cfg.Rules, config.Rule{Name: "clash", ExternalPort: config.PortRange{First: port, Last: port}, InternalIP: "127.0.0.1"})
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), `rule "clash": listen tcp`) {
		t.Fatalf("got %v, want a listen error", err)
	}
	after, _ := os.ReadFile(path)
	if string(before) != string(after) {
		t.Fatal("file changed although applying failed")
	}
}
