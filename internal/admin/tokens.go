package admin

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/camgate/camgate/internal/store"
)

// TokensFile holds the API tokens' hashes in the state directory.
const TokensFile = "tokens.json"

// tokenPrefix starts every API token, so that secret scanners and people
// can tell one apart from other strings.
const tokenPrefix = "cgt_"

// maxTokens bounds the token file.
const maxTokens = 100

// Token scopes: full tokens may do anything the owner can (except change
// the password); read tokens may only GET (monitoring, /metrics).
const (
	scopeFull = "full"
	scopeRead = "read"
)

// apiToken is one bearer token. Only the SHA-256 of the secret is kept:
// tokens are 256 random bits, so a fast hash is enough, unlike passwords.
type apiToken struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Scope     string    `json:"scope"`
	Hash      string    `json:"sha256"`
	Created   time.Time `json:"created"`
	CreatedBy string    `json:"created_by"`
	// LastUsed is kept in memory only, so that using a token never
	// writes to disk.
	LastUsed time.Time `json:"-"`
}

type tokenStore struct {
	path string

	mu     sync.Mutex // guards following
	list   []*apiToken
	byHash map[string]*apiToken
}

func loadTokens(dir string) (*tokenStore, error) {
	ts := &tokenStore{path: filepath.Join(dir, TokensFile), byHash: map[string]*apiToken{}}
	b, err := os.ReadFile(ts.path)
	if errors.Is(err, fs.ErrNotExist) {
		return ts, nil
	}
	if err != nil {
		return nil, fmt.Errorf("api tokens %s: %w", ts.path, err)
	}
	if err := json.Unmarshal(b, &ts.list); err != nil {
		return nil, fmt.Errorf("api tokens %s: %w", ts.path, err)
	}
	for _, t := range ts.list {
		ts.byHash[t.Hash] = t
	}
	return ts, nil
}

func hashToken(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// lookup returns the token for a secret, or nil.
func (ts *tokenStore) lookup(secret string, now time.Time) *apiToken {
	if len(secret) < len(tokenPrefix)+20 || secret[:len(tokenPrefix)] != tokenPrefix {
		return nil
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	t := ts.byHash[hashToken(secret)]
	if t == nil {
		return nil
	}
	t.LastUsed = now
	cp := *t
	return &cp
}

// create adds a token and returns it with its secret, which is never
// stored or shown again.
func (ts *tokenStore) create(name, scope, by string, now time.Time) (*apiToken, string, error) {
	secret := randomToken(tokenPrefix)
	t := &apiToken{ID: randomToken("")[:12], Name: name, Scope: scope, Hash: hashToken(secret), Created: now, CreatedBy: by}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if len(ts.list) >= maxTokens {
		return nil, "", errorf(http.StatusConflict, "there are already %d API tokens; revoke some first", maxTokens)
	}
	for _, o := range ts.list {
		if o.Name == name {
			return nil, "", apiError{Status: http.StatusUnprocessableEntity, Message: "invalid token", Problems: problem("name", "a token called %q exists; pick another name", name)}
		}
	}
	next := append(append([]*apiToken{}, ts.list...), t)
	if err := ts.saveLocked(next); err != nil {
		return nil, "", err
	}
	ts.list = next
	ts.byHash[t.Hash] = t
	cp := *t
	return &cp, secret, nil
}

// revoke removes a token by id and reports whether it existed.
func (ts *tokenStore) revoke(id string) (*apiToken, error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for i, t := range ts.list {
		if t.ID != id {
			continue
		}
		next := append(append([]*apiToken{}, ts.list[:i]...), ts.list[i+1:]...)
		if err := ts.saveLocked(next); err != nil {
			return nil, err
		}
		ts.list = next
		delete(ts.byHash, t.Hash)
		return t, nil
	}
	return nil, nil
}

func (ts *tokenStore) all() []apiToken {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	out := make([]apiToken, 0, len(ts.list))
	for _, t := range ts.list {
		out = append(out, *t)
	}
	return out
}

func (ts *tokenStore) saveLocked(list []*apiToken) error {
	if list == nil {
		list = []*apiToken{}
	}
	b, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return err
	}
	return store.WriteFile(ts.path, append(b, '\n'), 0o600)
}
