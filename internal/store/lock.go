package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/camgate/camgate/internal/portowner"
)

// LockFile is the name of the lock `camgate serve` holds in its state
// directory, so that one config is served by one gateway at a time.
const LockFile = "camgate.lock"

// StateLock is a held state directory lock. The kernel releases it when
// the process ends, however it ends, so a crash leaves no stale lock.
type StateLock struct {
	f *os.File
}

// LockedError says that another process holds the state directory lock.
type LockedError struct {
	Path   string
	Holder portowner.Owner // PID 0 when the file names none
}

func (e *LockedError) Error() string {
	who := "another process"
	if e.Holder.PID > 0 {
		who = e.Holder.String()
	}
	return fmt.Sprintf("another camgate already serves this config: %s is held by %s; stop it first, or give this config another state_dir", e.Path, who)
}

// LockStateDir takes the lock in dir (creating dir, 0700, if needed) and
// writes this process's pid into it. It fails with *LockedError when
// another process holds it.
func LockStateDir(dir string) (*StateLock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory %s: %w", dir, err)
	}
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			e := &LockedError{Path: path}
			b, _ := os.ReadFile(path)
			if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil && pid > 0 {
				e.Holder = portowner.Process(pid)
			}
			return nil, e
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	// The pid is for the refusal message of a second camgate only; the
	// lock holds without it.
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &StateLock{f: f}, nil
}

// Release gives the lock up. The file stays: removing it could let a
// third process lock a fresh file while a second still waits on the old.
func (l *StateLock) Release() error { return l.f.Close() }
