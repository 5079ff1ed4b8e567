package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestForeignArchitectures builds the arm64 and armhf packages and checks,
// with file(1) on the unpacked binary and with the package's control
// fields, that each is for the architecture it names.
func TestForeignArchitectures(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-builds two packages")
	}
	for _, tool := range []string{"file", "dpkg-deb"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed: %v", tool, err)
		}
	}
	t.Parallel()
	dir := t.TempDir()
	cmd := exec.Command("scripts/package.sh", "arm64", "armhf")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "VERSION=1.0.0", "OUT="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/package.sh arm64 armhf: %v\n%s", err, out)
	}
	tests := []struct {
		arch string
		file []string // what file(1) must say of /usr/bin/camgate
	}{
		{"arm64", []string{"ELF 64-bit LSB", "ARM aarch64", "statically linked"}},
		{"armhf", []string{"ELF 32-bit LSB", "ARM, EABI5", "statically linked"}},
	}
	for _, tt := range tests {
		t.Run(tt.arch, func(t *testing.T) {
			deb := filepath.Join(dir, "camgate_1.0.0_"+tt.arch+".deb")
			if got := strings.TrimSpace(run(t, "dpkg-deb", "-f", deb, "Architecture")); got != tt.arch {
				t.Errorf("Architecture: got %q, want %q", got, tt.arch)
			}
			root := t.TempDir()
			run(t, "dpkg-deb", "-x", deb, root)
			out := run(t, "file", "-b", filepath.Join(root, "usr/bin/camgate"))
			for _, want := range tt.file {
				if !strings.Contains(out, want) {
					t.Errorf("file: got %q, want it to say %q", strings.TrimSpace(out), want)
				}
			}
			for _, p := range []string{"etc/camgate/camgate.yaml", "usr/lib/systemd/system/camgate.service", "usr/share/doc/camgate/INSTALL.md"} {
				if _, err := os.Stat(filepath.Join(root, p)); err != nil {
					t.Errorf("the %s package lacks /%s", tt.arch, p)
				}
			}
		})
	}
}
