package store

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/camgate/camgate/internal/config"
)

func minimal(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Load([]byte("version: 1\nrules: []\n"))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestSaveWritesThroughSymlink: /etc/camgate.yaml -> /srv/conf/camgate.yaml
// stays a link; the file it points at gets the new contents (item 5).
func TestSaveWritesThroughSymlink(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "real"), 0o755)
	target := filepath.Join(dir, "real", "camgate.yaml")
	os.WriteFile(target, []byte("# mine\nversion: 1\nrules: []\n"), 0o600)
	link := filepath.Join(dir, "camgate.yaml")
	if err := os.Symlink("real/camgate.yaml", link); err != nil {
		t.Fatal(err)
	}
	cfg := minimal(t)
	cfg.ListenAddress = "127.0.0.1"
	if err := Save(link, cfg); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(link)
	if err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("got %v, %v; want the link kept", fi.Mode(), err)
	}
	b, _ := os.ReadFile(target)
	if got := string(b); got != "# mine\nversion: 1\nlisten_address: 127.0.0.1\nrules: []\n" {
		t.Fatalf("target holds %q", got)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*", ".camgate.yaml.tmp-*")); len(left) > 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

// TestSaveKeepsOwnerAndMode (item 5). Changing the owner needs root.
func TestSaveKeepsOwnerAndMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "camgate.yaml")
	os.WriteFile(path, []byte("version: 1\nrules: []\n"), 0o640)
	os.Chmod(path, 0o640)
	uid, gid := os.Getuid(), os.Getgid()
	if os.Geteuid() == 0 {
		uid, gid = 65534, 65534 // nobody:nogroup, as a packaged install might use
		if err := os.Chown(path, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	if err := Save(path, minimal(t)); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode().Perm() != 0o640 || int(st.Uid) != uid || int(st.Gid) != gid {
		t.Fatalf("got mode %v owner %d:%d, want 0640 %d:%d", fi.Mode().Perm(), st.Uid, st.Gid, uid, gid)
	}
}

// TestRemoveStale clears the temporary files a crash left (item 5), in
// the link's directory and the target's, and nothing else.
func TestRemoveStale(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "real"), 0o755)
	os.WriteFile(filepath.Join(dir, "real", "camgate.yaml"), []byte("version: 1\n"), 0o600)
	link := filepath.Join(dir, "camgate.yaml")
	os.Symlink(filepath.Join(dir, "real", "camgate.yaml"), link)
	stale := []string{filepath.Join(dir, ".camgate.yaml.tmp-123"), filepath.Join(dir, "real", ".camgate.yaml.tmp-456")}
	keep := []string{filepath.Join(dir, ".other.yaml.tmp-1"), filepath.Join(dir, "camgate.yaml.bak")}
	for _, n := range append(append([]string{}, stale...), keep...) {
		os.WriteFile(n, []byte("half"), 0o600)
	}
	removed, err := RemoveStale(link)
	if err != nil || len(removed) != 2 {
		t.Fatalf("got %v, %v; want the two stale files", removed, err)
	}
	for _, n := range stale {
		if _, err := os.Stat(n); err == nil {
			t.Errorf("%s is still there", n)
		}
	}
	for _, n := range keep {
		if _, err := os.Stat(n); err != nil {
			t.Errorf("%s was removed", n)
		}
	}
}

// TestStateDirLock: a second holder is refused with a message naming the
// first (its pid); the lock is free again once released (item 6). The
// second holder runs in a child process: flock locks belong to the open
// file, so a second open in this process would be refused as well, but
// the child tells the real story.
func TestStateDirLock(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	l, err := LockStateDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = LockStateDir(dir)
	var le *LockedError
	if !errors.As(err, &le) || le.Holder.PID != os.Getpid() || !strings.Contains(err.Error(), fmt.Sprintf("pid %d)", os.Getpid())) {
		t.Fatalf("got %v, want the lock held by this process", err)
	}
	// flock(1) from util-linux: a real other process trying the lock.
	if _, lerr := exec.LookPath("flock"); lerr == nil {
		if err := exec.Command("flock", "-n", filepath.Join(dir, LockFile), "true").Run(); err == nil {
			t.Fatal("another process took the lock while it was held")
		}
	}
	l.Release()
	l2, err := LockStateDir(dir)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	l2.Release()
}
