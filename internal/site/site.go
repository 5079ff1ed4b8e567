// Package site ties the running gateway to its config file. It is the one
// path by which anything changes the rule table while camgate serves:
// SIGHUP and --watch reloads, the admin API and the CLI all call Reload or
// Update, which validate, apply the difference through gateway.Apply, and
// only then persist atomically to camgate.yaml. If applying fails, nothing
// is written; if writing fails, the previous config is applied again so
// the running state never disagrees with the file.
//
// Subscribers (the router automation, the admin UI's event stream) are
// told after every successful change.
package site

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/gateway"
	"github.com/camgate/camgate/internal/store"
)

// Config configures a Site.
type Config struct {
	// Path is the config file. Required.
	Path string
	// Gateway is the running gateway. Required.
	Gateway *gateway.Gateway
	// Logger receives reload and persistence logs. Nil discards.
	Logger *slog.Logger
}

// Site is a gateway plus the file it was configured from.
type Site struct {
	path string
	gw   *gateway.Gateway
	log  *slog.Logger

	// mu serialises changes, so a reload and an API edit cannot interleave
	// their apply and write steps.
	mu   sync.Mutex // guards following
	subs []func(ctx context.Context, cfg *config.Config)
}

// New returns a Site.
func New(c Config) *Site {
	if c.Gateway == nil || c.Path == "" {
		panic("site: Config.Gateway and Config.Path are required")
	}
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Site{path: c.Path, gw: c.Gateway, log: log}
}

// Path returns the config file's path.
func (s *Site) Path() string { return s.path }

// StateDir returns the directory for generated state (certificates, admin
// account, audit log, router leases), creating nothing.
func (s *Site) StateDir() string { return store.StateDir(s.path, s.gw.Config()) }

// Gateway returns the running gateway.
func (s *Site) Gateway() *gateway.Gateway { return s.gw }

// Config returns a copy of the running config.
func (s *Site) Config() *config.Config { return s.gw.Config() }

// Subscribe registers fn to run after every successful change, and once
// now with the running config. fn must not call Update or Reload.
func (s *Site) Subscribe(ctx context.Context, fn func(ctx context.Context, cfg *config.Config)) {
	s.mu.Lock()
	s.subs = append(s.subs, fn)
	s.mu.Unlock()
	fn(ctx, s.gw.Config())
}

// Reload applies the file's current contents. An invalid file is refused
// and the running config stays.
func (s *Site) Reload(ctx context.Context) (config.Change, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cfg, err := store.Load(s.path)
	if err != nil {
		return config.Change{}, err
	}
	ch, err := s.gw.Apply(ctx, cfg)
	if err != nil {
		return config.Change{}, err
	}
	s.notifyLocked(ctx)
	return ch, nil
}

// ErrConflict is returned by Update when the caller's view of the config
// is stale (see UpdateIf).
var ErrConflict = errors.New("the configuration was changed by someone else; reload and try again")

// Update applies edit to a copy of the running config, then applies it
// live and persists it.
func (s *Site) Update(ctx context.Context, edit func(cfg *config.Config) error) (config.Change, error) {
	return s.UpdateIf(ctx, nil, edit)
}

// UpdateIf is Update guarded by check, which sees the running config
// before the edit and may return ErrConflict (for ETag/If-Match).
func (s *Site) UpdateIf(ctx context.Context, check func(cur *config.Config) error, edit func(cfg *config.Config) error) (config.Change, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.gw.Config()
	if check != nil {
		if err := check(old); err != nil {
			return config.Change{}, err
		}
	}
	next := old.Clone()
	if err := edit(next); err != nil {
		return config.Change{}, err
	}
	if err := next.Validate(); err != nil {
		return config.Change{}, err
	}
	ch, err := s.gw.Apply(ctx, next)
	if err != nil {
		return config.Change{}, err
	}
	if err := store.Save(s.path, next); err != nil {
		// Keep the running state equal to the file.
		if _, rerr := s.gw.Apply(ctx, old); rerr != nil {
			s.log.Error("cannot restore the previous config after a failed save", "err", rerr)
		}
		return config.Change{}, fmt.Errorf("save %s: %w", s.path, err)
	}
	s.notifyLocked(ctx)
	return ch, nil
}

func (s *Site) notifyLocked(ctx context.Context) {
	cfg := s.gw.Config()
	for _, fn := range s.subs {
		fn(ctx, cfg)
	}
}
