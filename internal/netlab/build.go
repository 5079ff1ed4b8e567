package netlab

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
