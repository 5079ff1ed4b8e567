package packaging

import (
	"os"
	"testing"

	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/store"
)

// TestStarterMatchesServe: the packaged /etc/camgate/camgate.yaml is
// valid, keeps its state in the unit's StateDirectory, and has the same
// (disabled) rules as the starter that `camgate serve` writes, so the two
// do not drift apart.
func TestStarterMatchesServe(t *testing.T) {
	data, err := os.ReadFile("camgate.yaml")
	if err != nil {
		t.Fatal(err)
	}
	pkg, err := config.Load(data)
	if err != nil {
		t.Fatalf("packaging/camgate.yaml: %v", err)
	}
	serve, err := config.Load([]byte(store.Starter))
	if err != nil {
		t.Fatal(err)
	}
	if pkg.StateDir != "/var/lib/camgate" {
		t.Errorf("state_dir: got %q, want /var/lib/camgate (the unit's StateDirectory)", pkg.StateDir)
	}
	a, _ := config.Marshal(&config.Config{Version: 1, Rules: pkg.Rules})
	b, _ := config.Marshal(&config.Config{Version: 1, Rules: serve.Rules})
	if string(a) != string(b) {
		t.Errorf("packaged rules:\n%s\nwant the same as store.Starter's:\n%s", a, b)
	}
	for _, r := range pkg.Rules {
		if r.IsEnabled() {
			t.Errorf("rule %s is enabled in the packaged starter; the package must open nothing", r.Name)
		}
	}
	if pkg.Router.Enabled() {
		t.Error("router automation is on in the packaged starter; the package must ask the router for nothing")
	}
}
