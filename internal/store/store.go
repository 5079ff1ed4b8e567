// Package store reads and writes camgate.yaml.
//
// Reads decode strictly (package config reports unknown keys with line
// numbers); writes are atomic: a temporary file in the same directory is
// written, synced and renamed over the old one, so a crash leaves either
// the old file or the new one, never half of each. A missing file can be
// replaced by a commented starter file.
package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/camgate/camgate/internal/config"
)

// Load reads, parses and validates the config at path. On problems it
// returns the (possibly partial) config together with every problem.
func Load(path string) (*config.Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return config.Load(data)
}

// Save validates cfg and writes it to path atomically, keeping the
// comments of the file it replaces (config.MarshalKeeping). An invalid
// config is not written.
func Save(path string, cfg *config.Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	data, err := config.MarshalKeeping(old, cfg)
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	return WriteFile(path, data, 0o600)
}

// WriteFile writes data to path atomically with the given permissions:
// temp file in the same directory, fsync, rename, then fsync of the
// directory so the rename itself survives a power cut.
func WriteFile(path string, data []byte, perm fs.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = f.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("write %s: sync: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if d, derr := os.Open(dir); derr == nil {
		d.Sync()
		d.Close()
	}
	return nil
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
