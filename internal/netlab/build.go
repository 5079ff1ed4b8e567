package netlab

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// BuildCamgate compiles cmd/camgate into dir and returns the binary's
// path. End-to-end tests run camgate as a real process inside a namespace,
// exactly as a user runs it.
func BuildCamgate(dir string) (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	bin := filepath.Join(dir, "camgate")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/camgate")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/camgate: %v\n%s", err, out)
	}
	return bin, nil
}

// Camgate returns a camgate binary built from this checkout, skipping the
// test when netlab cannot run. The binary is built once per test process,
// into a directory named after the process, so packages tested in
// parallel never write the file another one is running; the build is
// renamed into place, so parallel tests in one process never see half a
// file.
func Camgate(t testing.TB) string {
	t.Helper()
	if why := Skip(); why != "" {
		t.Skip("netlab: " + why)
	}
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("camgate-test-%d", os.Getpid()))
	bin := filepath.Join(dir, "camgate")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	tmp, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	built, err := BuildCamgate(tmp)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(built, bin); err != nil {
		t.Fatal(err)
	}
	return bin
}
