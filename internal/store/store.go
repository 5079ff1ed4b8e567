// Package store reads and writes camgate.yaml.
//
// Reads decode strictly (package config reports unknown keys with line
// numbers); writes are atomic: a temporary file in the same directory is
// written, synced and renamed over the old one, so a crash leaves either
// the old file or the new one, never half of each (and RemoveStale clears
// the temporary file such a crash leaves). Writes keep the file's owner,
// group and mode, and go through a symlink to the file it points at.
// Prepare and Commit split a write in two, so that a caller can refuse a
// change the disk cannot hold before acting on it. A missing file can be
// replaced by a commented starter file.
package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/camgate/camgate/internal/config"
)

// Load reads, parses and validates the config at path. On problems it
// returns the (possibly partial) config together with every problem.
func Load(path string) (*config.Config, error) {
	cfg, _, err := LoadData(path)
	return cfg, err
}

// LoadData is Load that also returns the bytes it parsed, so a caller can
// tell later whether the file changed since (package site does).
func LoadData(path string) (*config.Config, []byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	cfg, err := config.Load(data)
	return cfg, data, err
}

// Save validates cfg and writes it to path atomically, keeping the
// comments of the file it replaces (config.MarshalKeeping), its owner,
// group and mode, and writing through a symlink to the file it points
// at. An invalid config is not written.
func Save(path string, cfg *config.Config) error {
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	p, err := Prepare(path, cfg, old)
	if err != nil {
		return err
	}
	return p.Commit()
}

// Pending is a config written and synced to a temporary file next to the
// file it will replace, but not yet in place: Commit renames it over the
// file, Discard removes it. Package site prepares before it applies a
// change, so a full disk or a read-only directory refuses the change
// before any live connection is touched.
type Pending struct {
	tmp    string // the synced temporary file
	target string // the file it replaces (a symlink resolved)
	data   []byte
}

// Prepare validates cfg, encodes it keeping the comments of old (the
// file's current contents; nil for none) and writes it to a synced
// temporary file in the directory of the file path names, following a
// symlink. The temporary file already has the mode, owner and group of
// the file it will replace (0600 and the caller's for a new file).
func Prepare(path string, cfg *config.Config, old []byte) (*Pending, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	data, err := config.MarshalKeeping(old, cfg)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", path, err)
	}
	target, err := resolve(path)
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	perm, uid, gid := fs.FileMode(0o600), -1, -1
	if fi, err := os.Stat(target); err == nil {
		perm = fi.Mode().Perm()
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			uid, gid = int(st.Uid), int(st.Gid)
		}
	}
	tmp, err := writeTemp(target, data, perm, uid, gid)
	if err != nil {
		return nil, err
	}
	return &Pending{tmp: tmp, target: target, data: data}, nil
}

// Data returns the bytes the file will hold.
func (p *Pending) Data() []byte { return p.data }

// Commit puts the prepared file in place: a rename, then an fsync of the
// directory so the rename itself survives a power cut. On error the
// temporary file is removed and the old file is untouched.
func (p *Pending) Commit() error {
	if err := os.Rename(p.tmp, p.target); err != nil {
		os.Remove(p.tmp)
		return fmt.Errorf("write %s: %w", p.target, err)
	}
	syncDir(filepath.Dir(p.target))
	return nil
}

// Discard removes the prepared file; the old file stays as it was.
func (p *Pending) Discard() { os.Remove(p.tmp) }

// resolve follows path's symlinks, so a linked camgate.yaml is replaced
// at its target instead of the link being replaced by a plain file. A
// path that does not exist yet is returned as it is.
func resolve(path string) (string, error) {
	t, err := filepath.EvalSymlinks(path)
	if errors.Is(err, fs.ErrNotExist) {
		if _, lerr := os.Lstat(path); lerr == nil {
			// A dangling link: write where it points.
			dest, err := os.Readlink(path)
			if err != nil {
				return "", err
			}
			if !filepath.IsAbs(dest) {
				dest = filepath.Join(filepath.Dir(path), dest)
			}
			return dest, nil
		}
		return path, nil
	}
	return t, err
}

// tempPattern names the temporary files of path; RemoveStale finds them.
func tempPattern(path string) string { return "." + filepath.Base(path) + ".tmp-*" }

// writeTemp writes data to a new synced temporary file next to path with
// the given mode and, when uid and gid are not -1, owner and group.
func writeTemp(path string, data []byte, perm fs.FileMode, uid, gid int) (tmp string, err error) {
	f, err := os.CreateTemp(filepath.Dir(path), tempPattern(path))
	if err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	name := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(name)
		}
	}()
	if err = f.Chmod(perm); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	if uid >= 0 && (uid != os.Geteuid() || gid != os.Getegid()) {
		if err = f.Chown(uid, gid); err != nil {
			return "", fmt.Errorf("write %s: keep its owner %d:%d: %w", path, uid, gid, err)
		}
	}
	if _, err = f.Write(data); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return "", fmt.Errorf("write %s: sync: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return name, nil
}

// WriteFile writes data to path atomically with the given permissions:
// temp file in the same directory, fsync, rename, then fsync of the
// directory so the rename itself survives a power cut.
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	tmp, err := writeTemp(path, data, perm, -1, -1)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	syncDir(filepath.Dir(path))
	return nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// RemoveStale removes the temporary files a crash between writing and
// renaming left next to path (".camgate.yaml.tmp-*", in the directory of
// the file a symlinked path points at too) and returns their names. Call
// it at start, before anything writes the file.
func RemoveStale(path string) ([]string, error) {
	var removed []string
	var errs []error
	dirs := []string{path}
	if t, err := resolve(path); err == nil && t != path {
		dirs = append(dirs, t)
	}
	for _, p := range dirs {
		names, err := filepath.Glob(filepath.Join(filepath.Dir(p), tempPattern(p)))
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			if err := os.Remove(n); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
				continue
			}
			removed = append(removed, n)
		}
	}
	return removed, errors.Join(errs...)
}

// EnsureStarter writes the starter config to path if no file is there. It
// reports whether it wrote one. An existing file is never touched.
func EnsureStarter(path string) (bool, error) {
	_, err := os.Stat(path)
	if err == nil {
		return false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return false, err
		}
	}
	if err := WriteFile(path, []byte(Starter), 0o600); err != nil {
		return false, err
	}
	return true, nil
}

// StateDir returns the state directory for a config: the configured one,
// or "camgate-state" next to the config file.
func StateDir(configPath string, cfg *config.Config) string {
	if cfg != nil && cfg.StateDir != "" {
		if filepath.IsAbs(cfg.StateDir) {
			return cfg.StateDir
		}
		return filepath.Join(filepath.Dir(configPath), cfg.StateDir)
	}
	return filepath.Join(filepath.Dir(configPath), "camgate-state")
}
