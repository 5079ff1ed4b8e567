package admin

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/ccojocar/zxcvbn-go"
	"golang.org/x/crypto/argon2"

	"github.com/camgate/camgate/internal/store"
)

// AccountFile is the owner's account in the state directory.
const AccountFile = "admin.json"

// Password hashing is argon2id with OWASP's minimum recommended cost
// (19 MiB, 2 passes, 1 lane): about 30 ms on a small ARM board, and the
// Server allows only two hashes at a time, so login floods cannot exhaust
// memory.
const (
	argon2Time    = 2
	argon2Memory  = 19 * 1024
	argon2Threads = 1
	argon2KeyLen  = 32
)

// Password rules: a length floor, a ceiling that bounds hashing cost, and
// zxcvbn's score (0-4; 3 means about 10^8 guesses, "safely unguessable"
// for an online attacker and slow to crack offline from the argon2 hash).
const (
	minPasswordLen   = 10
	maxPasswordLen   = 256
	minPasswordScore = 3
)

// account is the owner's login, stored as JSON in AccountFile.
type account struct {
	User string `json:"user"`
	// Hash is the argon2id hash in PHC string format.
	Hash    string    `json:"hash"`
	Created time.Time `json:"created"`
	// PasswordChanged ends every session made before it.
	PasswordChanged time.Time `json:"password_changed"`
}

// accountStore reads AccountFile, again whenever it changes on disk, so a
// `camgate admin reset-password` run beside a live gateway takes effect at
// once.
type accountStore struct {
	path string

	mu   sync.Mutex // guards following
	acct *account
	mod  time.Time
	size int64
}

func newAccountStore(dir string) *accountStore {
	return &accountStore{path: filepath.Join(dir, AccountFile)}
}

// load returns the account, re-reading the file if it changed; nil if
// there is none yet.
func (a *accountStore) load() (*account, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	fi, err := os.Stat(a.path)
	if errors.Is(err, fs.ErrNotExist) {
		a.acct = nil
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("admin account %s: %w", a.path, err)
	}
	if a.acct != nil && fi.ModTime().Equal(a.mod) && fi.Size() == a.size {
		cp := *a.acct
		return &cp, nil
	}
	acct, err := readAccount(a.path)
	if err != nil {
		return nil, err
	}
	a.acct, a.mod, a.size = acct, fi.ModTime(), fi.Size()
	cp := *acct
	return &cp, nil
}

func (a *accountStore) exists() bool {
	acct, err := a.load()
	return err == nil && acct != nil
}

// save writes the account atomically and caches it.
func (a *accountStore) save(acct *account) error {
	if err := writeAccount(a.path, acct); err != nil {
		return err
	}
	_, err := a.load()
	return err
}

func readAccount(path string) (*account, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("admin account %s: %w", path, err)
	}
	var acct account
	if err := json.Unmarshal(b, &acct); err != nil {
		return nil, fmt.Errorf("admin account %s: %w (fix it with `camgate admin reset-password`)", path, err)
	}
	if acct.User == "" || !strings.HasPrefix(acct.Hash, "$argon2id$") {
		return nil, fmt.Errorf("admin account %s: no user or password hash (fix it with `camgate admin reset-password`)", path)
	}
	return &acct, nil
}

func writeAccount(path string, acct *account) error {
	b, err := json.MarshalIndent(acct, "", "  ")
	if err != nil {
		return err
	}
	return store.WriteFile(path, append(b, '\n'), 0o600)
}

// ensureStateDir creates the state directory, readable by its owner only:
// it holds the password hash, token hashes and the TLS key.
func ensureStateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("state directory %s: %w", dir, err)
	}
	return nil
}

// ResetPassword sets the owner's password in stateDir, creating the
// account if there is none, after the same strength check as the UI. It
// works without a running gateway; a running one sees the new file at the
// next request, and every existing session ends. An empty user keeps the
// current name ("admin" for a new account).
func ResetPassword(stateDir, user, password string, now time.Time) error {
	if err := ensureStateDir(stateDir); err != nil {
		return err
	}
	path := filepath.Join(stateDir, AccountFile)
	acct, err := readAccount(path)
	if err != nil {
		// Missing or unreadable: a fresh account is the locked-out
		// owner's way back in.
		acct = &account{Created: now}
	}
	if user != "" {
		if err := checkUserName(user); err != nil {
			return err
		}
		acct.User = user
	}
	if acct.User == "" {
		acct.User = "admin"
	}
	if st := CheckPassword(password, acct.User); !st.OK {
		return &WeakPasswordError{Strength: st}
	}
	acct.Hash = hashPassword(password)
	acct.PasswordChanged = now
	return writeAccount(path, acct)
}

func checkUserName(u string) error {
	if u == "" || len(u) > 64 || strings.ContainsAny(u, " \t\r\n:/\\") || !utf8.ValidString(u) {
		return fmt.Errorf("user name %q: use 1 to 64 characters without spaces, ':' or slashes", u)
	}
	return nil
}

// hashPassword returns the argon2id hash of pw in PHC string format.
func hashPassword(pw string) string {
	salt := make([]byte, 16)
	rand.Read(salt)
	key := argon2.IDKey([]byte(pw), salt, argon2Time, argon2Memory, argon2Threads, argon2KeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argon2Memory, argon2Time, argon2Threads,
		b64.EncodeToString(salt), b64.EncodeToString(key))
}

// verifyPassword reports whether pw matches the PHC-encoded hash, using
// the parameters stored with it.
func verifyPassword(encoded, pw string) bool {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	var v int
	var m uint32
	var t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return false
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || m == 0 || m > 1<<20 || t == 0 || t > 16 || p == 0 {
		return false
	}
	b64 := base64.RawStdEncoding
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return false
	}
	want, err := b64.DecodeString(parts[5])
	if err != nil || len(want) == 0 || len(want) > 128 {
		return false
	}
	got := argon2.IDKey([]byte(pw), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

// Strength is the verdict on a proposed password.
type Strength struct {
	// OK is true when the password may be used.
	OK bool `json:"ok"`
	// Score is zxcvbn's 0 (guessable in seconds) to 4 (centuries).
	Score int `json:"score"`
	// CrackTime is zxcvbn's estimate for an offline attack, in words.
	CrackTime string `json:"crack_time"`
	// Problems say what makes the password weak, one sentence each.
	Problems []string `json:"problems,omitempty"`
	// Advice is how to make a strong one.
	Advice string `json:"advice,omitempty"`
}

// WeakPasswordError is returned when a password fails CheckPassword.
type WeakPasswordError struct{ Strength Strength }

func (e *WeakPasswordError) Error() string {
	return "password too weak: " + strings.Join(e.Strength.Problems, "; ")
}

// passwordAdvice is shown with every refusal.
const passwordAdvice = "Use a passphrase of four or more unrelated words, or a password manager's random password."

// CheckPassword estimates a password's strength with zxcvbn, a pattern
// matcher that knows common passwords, names, English words, keyboard
// walks, sequences, repeats and dates. userInputs (the user name,
// product names) count as guessable too.
func CheckPassword(pw string, userInputs ...string) Strength {
	inputs := append([]string{"camgate", "admin", "hikvision", "dvr", "nvr", "camera", "cctv", "password"}, userInputs...)
	st := Strength{Advice: passwordAdvice}
	n := utf8.RuneCountInString(pw)
	switch {
	case n < minPasswordLen:
		st.Problems = append(st.Problems, fmt.Sprintf("It has %d characters; use at least %d.", n, minPasswordLen))
	case len(pw) > maxPasswordLen:
		st.Problems = append(st.Problems, fmt.Sprintf("It is longer than %d bytes.", maxPasswordLen))
		return st
	}
	res := zxcvbn.PasswordStrength(pw, inputs)
	st.Score, st.CrackTime = res.Score, res.CrackTimeDisplay
	if res.Score < minPasswordScore {
		seen := map[string]bool{}
		for _, m := range res.MatchSequence {
			msg := ""
			switch m.Pattern {
			case "dictionary":
				switch m.DictionaryName {
				case "user_inputs":
					msg = fmt.Sprintf("It contains %q, a word an attacker tries first here.", m.Token)
				case "Passwords":
					msg = fmt.Sprintf("It contains %q, one of the most common passwords.", m.Token)
				case "MaleNames", "FemaleNames", "Surname":
					msg = "Names are easy to guess."
				default:
					msg = "Single common words are easy to guess."
				}
			case "spatial":
				msg = fmt.Sprintf("%q is a keyboard pattern.", m.Token)
			case "repeat":
				msg = fmt.Sprintf("Repeats like %q are easy to guess.", m.Token)
			case "sequence":
				msg = fmt.Sprintf("Sequences like %q are easy to guess.", m.Token)
			case "date":
				msg = "Dates and years are easy to guess."
			}
			if msg != "" && !seen[msg] {
				seen[msg] = true
				st.Problems = append(st.Problems, msg)
			}
		}
		when := "in " + res.CrackTimeDisplay
		if res.CrackTimeDisplay == "instant" {
			when = "almost instantly"
		}
		st.Problems = append(st.Problems, fmt.Sprintf("It could be cracked %s (strength %d of 4; %d is needed).",
			when, res.Score, minPasswordScore))
	}
	st.OK = len(st.Problems) == 0
	if st.OK {
		st.Advice = ""
	}
	return st
}

// randomToken returns prefix followed by 32 random bytes in base64url.
func randomToken(prefix string) string {
	b := make([]byte, 32)
	rand.Read(b)
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}
