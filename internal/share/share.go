// Package share keeps camgate's share links: a link lets whoever holds it
// watch one camera channel live, with no login, until it expires or the
// owner revokes it. The store keeps only a SHA-256 hash of each link's
// secret (256 random bits, so a fast hash is enough: there is nothing to
// brute-force), in shares.json in the state directory, written atomically.
//
//	st, err := share.Open(stateDir)
//	l, secret, err := st.Create(share.Spec{Device: "dvr", Channel: 102, TTL: 24 * time.Hour}, "admin", time.Now())
//	// the URL is /s/<secret>; st.Lookup(secret, now) finds the link again
//
// The package decides nothing about HTTP, live video or rate limits: the
// admin server does (internal/admin/share.go).
package share

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/camgate/camgate/internal/store"
)

// File is the store's file in the state directory.
const File = "shares.json"

// DefaultTTL is how long a link lives when its creator names no time.
const DefaultTTL = 24 * time.Hour

// MaxTTL caps a link's life: a share is for showing a camera to someone
// for a while, not a standing account.
const MaxTTL = 90 * 24 * time.Hour

// keepGone is how long a revoked or expired link stays listed, so that
// its URL says "revoked" or "expired" rather than "unknown".
const keepGone = 7 * 24 * time.Hour

// Link is one share link. Its secret is not in it.
type Link struct {
	// ID names the link in lists, the CLI and the activity log.
	ID string `json:"id"`
	// Label is the owner's note, such as "for the neighbour".
	Label   string `json:"label,omitempty"`
	Device  string `json:"device"`
	Channel int    `json:"channel"`
	// MaxViewers caps simultaneous viewers; 0 means no cap.
	MaxViewers int       `json:"max_viewers,omitempty"`
	Created    time.Time `json:"created"`
	CreatedBy  string    `json:"created_by"`
	Expires    time.Time `json:"expires"`
	// Revoked is when the owner revoked the link; zero while it is not.
	Revoked time.Time `json:"revoked,omitzero"`
	// Hash is the hex SHA-256 of the secret.
	Hash string `json:"hash"`
}

// State is a link's standing at some time.
type State string

// The states of a link.
const (
	Active  State = "active"
	Expired State = "expired"
	Revoked State = "revoked"
)

// StateAt returns the link's state at now.
func (l *Link) StateAt(now time.Time) State {
	switch {
	case !l.Revoked.IsZero():
		return Revoked
	case !now.Before(l.Expires):
		return Expired
	}
	return Active
}

// Spec is what the owner asks for.
type Spec struct {
	Device     string
	Channel    int
	TTL        time.Duration // 0 means DefaultTTL
	MaxViewers int
	Label      string
}

// ErrNotFound means no link has the given id.
var ErrNotFound = errors.New("no such share link")

// Store is the set of links. It is safe for concurrent use.
type Store struct {
	path string

	mu    sync.Mutex // guards following
	links []*Link
}

// Open loads the store in stateDir (an absent file is an empty store).
func Open(stateDir string) (*Store, error) {
	s := &Store{path: filepath.Join(stateDir, File)}
	b, err := os.ReadFile(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("share links: %w", err)
	}
	if err := json.Unmarshal(b, &s.links); err != nil {
		return nil, fmt.Errorf("share links: %s: %w", s.path, err)
	}
	return s, nil
}

// Hash returns the stored form of a secret.
func Hash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// Create makes a link and returns it with its secret, which is shown
// this once and never stored.
func (s *Store) Create(sp Spec, by string, now time.Time) (Link, string, error) {
	ttl := sp.TTL
	if ttl == 0 {
		ttl = DefaultTTL
	}
	if ttl < time.Minute || ttl > MaxTTL {
		return Link{}, "", fmt.Errorf("share link: expiry %s is outside 1m to %s", ttl, MaxTTL)
	}
	if sp.MaxViewers < 0 {
		return Link{}, "", errors.New("share link: max viewers must not be negative")
	}
	var raw [32]byte
	rand.Read(raw[:])
	secret := base64.RawURLEncoding.EncodeToString(raw[:])
	var idb [6]byte
	rand.Read(idb[:])
	l := &Link{ID: hex.EncodeToString(idb[:]), Label: sp.Label, Device: sp.Device, Channel: sp.Channel,
		MaxViewers: sp.MaxViewers, Created: now.UTC(), CreatedBy: by, Expires: now.Add(ttl).UTC(), Hash: Hash(secret)}
	s.mu.Lock()
	defer s.mu.Unlock()
	list := append(s.pruneLocked(now), l)
	if err := s.saveLocked(list); err != nil {
		return Link{}, "", err
	}
	s.links = list
	return *l, secret, nil
}

// Lookup finds the link of a secret, in whatever state; false when none.
func (s *Store) Lookup(secret string) (Link, bool) {
	h := Hash(secret)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.links {
		if l.Hash == h {
			return *l, true
		}
	}
	return Link{}, false
}

// Get returns the link with the given id.
func (s *Store) Get(id string) (Link, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.links {
		if l.ID == id {
			return *l, true
		}
	}
	return Link{}, false
}

// List returns every link, newest first, including revoked and expired
// ones still kept.
func (s *Store) List() []Link {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Link, 0, len(s.links))
	for _, l := range s.links {
		out = append(out, *l)
	}
	slices.SortFunc(out, func(a, b Link) int { return b.Created.Compare(a.Created) })
	return out
}

// Revoke marks the link revoked (a revoked link stays revoked).
func (s *Store) Revoke(id string, now time.Time) (Link, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.IndexFunc(s.links, func(l *Link) bool { return l.ID == id })
	if i < 0 {
		return Link{}, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	if !s.links[i].Revoked.IsZero() {
		return *s.links[i], nil
	}
	list := make([]*Link, len(s.links))
	copy(list, s.links)
	c := *list[i]
	c.Revoked = now.UTC()
	list[i] = &c
	if err := s.saveLocked(list); err != nil {
		return Link{}, err
	}
	s.links = list
	return c, nil
}

// pruneLocked drops links gone for longer than keepGone.
func (s *Store) pruneLocked(now time.Time) []*Link {
	out := make([]*Link, 0, len(s.links)+1)
	for _, l := range s.links {
		end := l.Expires
		if !l.Revoked.IsZero() && l.Revoked.Before(end) {
			end = l.Revoked
		}
		if now.Sub(end) < keepGone {
			out = append(out, l)
		}
	}
	return out
}

func (s *Store) saveLocked(list []*Link) error {
	if list == nil {
		list = []*Link{}
	}
	b, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return err
	}
	return store.WriteFile(s.path, append(b, '\n'), 0o600)
}
