// Package credstore keeps the passwords of the devices camgate knows, one
// file per device under <state_dir>/devices/<name>.password, mode 0600 in a
// 0700 directory. camgate.yaml never holds a password: it names the device
// (config.Device), and whoever needs to log in (the live view, the auth
// guard, check and audit) asks the Store.
//
// Writes are atomic (store.WriteFile), so a crash or a full disk leaves the
// old password or the new one, never half of one. The package neither logs
// nor returns a password in an error.
//
//	cs := credstore.New(stateDir)
//	err := cs.Put("dvr1", pw)   // after `device add` read it from a file
//	pw, err := cs.Get("dvr1")   // fs.ErrNotExist when none is stored
package credstore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/camgate/camgate/internal/store"
)

// MaxPasswordLen bounds a stored password. Hikvision allows 16 characters;
// the bound only keeps a wrong file (a video, say) from being read whole.
const MaxPasswordLen = 256

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// Store reads and writes device passwords under one state directory.
type Store struct {
	dir string
}

// New returns the store for stateDir. Nothing is created until Put.
func New(stateDir string) *Store {
	if stateDir == "" {
		panic("credstore: state directory is required")
	}
	return &Store{dir: filepath.Join(stateDir, "devices")}
}

// Path returns the file that holds device name's password.
func (s *Store) Path(name string) string { return filepath.Join(s.dir, name+".password") }

func checkName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("device name %q: must be lower-case letters, digits and '-'", name)
	}
	return nil
}

// Get returns device name's password. The error wraps fs.ErrNotExist when
// none is stored.
func (s *Store) Get(name string) (string, error) {
	if err := checkName(name); err != nil {
		return "", err
	}
	f, err := os.Open(s.Path(name))
	if err != nil {
		return "", fmt.Errorf("password of device %q: %w", name, err)
	}
	defer f.Close()
	buf := make([]byte, MaxPasswordLen+2)
	n, err := f.Read(buf)
	if err != nil && n == 0 {
		return "", fmt.Errorf("password of device %q: %s is empty", name, s.Path(name))
	}
	pw := strings.TrimRight(string(buf[:n]), "\r\n")
	if len(pw) > MaxPasswordLen {
		return "", fmt.Errorf("password of device %q: %s is longer than %d bytes", name, s.Path(name), MaxPasswordLen)
	}
	if pw == "" {
		return "", fmt.Errorf("password of device %q: %s is empty", name, s.Path(name))
	}
	return pw, nil
}

// Has reports whether a password is stored for device name.
func (s *Store) Has(name string) bool {
	_, err := s.Get(name)
	return err == nil
}

// Put stores device name's password atomically with mode 0600.
func (s *Store) Put(name, password string) error {
	if err := checkName(name); err != nil {
		return err
	}
	if password == "" || len(password) > MaxPasswordLen || strings.ContainsAny(password, "\r\n") {
		return fmt.Errorf("password of device %q: must be 1 to %d bytes on one line", name, MaxPasswordLen)
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("password of device %q: %w", name, err)
	}
	return store.WriteFile(s.Path(name), []byte(password+"\n"), 0o600)
}

// Delete removes device name's password. Deleting one that is not there
// is not an error.
func (s *Store) Delete(name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	if err := os.Remove(s.Path(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("password of device %q: %w", name, err)
	}
	return nil
}
