package main

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/camgate/camgate/internal/netlab"
)

// browserTest is what a test driving web/<script>.mjs in Chromium needs:
// node, the browser, web/ with playwright-core, and the camgate binary.
type browserTest struct {
	node, chromium, webDir, bin string
}

// needBrowser skips the test unless node, Chromium and playwright-core
// are installed (scripts/test.sh installs them), and builds camgate
// (CAMGATE_BIN runs a binary built beforehand instead).
func needBrowser(t *testing.T) browserTest {
	t.Helper()
	if testing.Short() {
		t.Skip("browser end-to-end test skipped in -short mode")
	}
	b := browserTest{chromium: os.Getenv("CHROMIUM")}
	if b.chromium == "" {
		b.chromium = "/usr/bin/chromium"
	}
	var err error
	if b.node, err = exec.LookPath("node"); err != nil {
		t.Skip("needs node (apt-get install nodejs) to run the web/ scripts")
	}
	if _, err := os.Stat(b.chromium); err != nil {
		t.Skipf("needs Chromium at %s (apt-get install chromium; scripts/test.sh installs it)", b.chromium)
	}
	b.webDir, _ = filepath.Abs(filepath.Join("..", "..", "web"))
	if _, err := os.Stat(filepath.Join(b.webDir, "node_modules", "playwright-core")); err != nil {
		t.Skipf("needs playwright-core in web/node_modules: run `npm ci` in %s (scripts/test.sh does)", b.webDir)
	}
	if b.bin = os.Getenv("CAMGATE_BIN"); b.bin == "" {
		b.bin = netlab.Camgate(t)
	}
	return b
}

// run starts web/<script> with env added (CHROMIUM is set), in its own
// process group that ctx's end kills, and returns its stdin, stdout and
// stderr.
func (b browserTest) run(ctx context.Context, t *testing.T, script string, env ...string) (*exec.Cmd, io.WriteCloser, io.ReadCloser, *lockedBuffer) {
	t.Helper()
	cmd := exec.CommandContext(ctx, b.node, filepath.Join(b.webDir, script))
	cmd.Dir = b.webDir
	cmd.Env = append(append(os.Environ(), "CHROMIUM="+b.chromium), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, stdin, stdout, stderr
}
