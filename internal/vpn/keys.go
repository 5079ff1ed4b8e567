package vpn

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/curve25519"

	"github.com/camgate/camgate/internal/store"
)

// Key is a Curve25519 key as WireGuard uses it.
type Key [32]byte

// newPrivateKey returns a fresh, clamped private key.
func newPrivateKey() (Key, error) {
	var k Key
	if _, err := rand.Read(k[:]); err != nil {
		return k, fmt.Errorf("private key: %w", err)
	}
	// Clamping as in RFC 7748 section 5 (what `wg genkey` does).
	k[0] &= 248
	k[31] = (k[31] & 127) | 64
	return k, nil
}

// Public returns the public key of private key k.
func (k Key) Public() Key {
	var pub Key
	out, _ := curve25519.X25519(k[:], curve25519.Basepoint)
	copy(pub[:], out)
	return pub
}

// String is the base64 form wg and wg-quick use.
func (k Key) String() string { return base64.StdEncoding.EncodeToString(k[:]) }

func (k Key) hex() string { return hex.EncodeToString(k[:]) }

// ParseKey reads a base64 WireGuard key.
func ParseKey(s string) (Key, error) {
	var k Key
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != len(k) {
		return k, fmt.Errorf("key %q: not a base64 WireGuard key (44 characters)", s)
	}
	copy(k[:], b)
	return k, nil
}

// loadOrCreateKey reads the server's private key from path, or makes one
// and writes it with mode 0600 the first time. The key never changes
// afterwards: every phone's config names its public half.
func loadOrCreateKey(path string) (Key, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		k, err := ParseKey(string(b))
		if err != nil {
			return k, fmt.Errorf("server key %s: %w", path, err)
		}
		return k, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return Key{}, fmt.Errorf("server key: %w", err)
	}
	k, err := newPrivateKey()
	if err != nil {
		return k, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return k, fmt.Errorf("server key: %w", err)
	}
	if err := store.WriteFile(path, []byte(k.String()+"\n"), 0o600); err != nil {
		return k, fmt.Errorf("server key: %w", err)
	}
	return k, nil
}
