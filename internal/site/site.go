// Package site ties the running gateway to its config file. It is the one
// path by which anything changes the rule table while camgate serves:
// SIGHUP and --watch reloads, the admin API and the CLI all call Reload or
// Update, which validate, apply the difference through gateway.Apply, and
// persist atomically to camgate.yaml. The new file is written and synced
// before applying and renamed into place after, so a disk that cannot
// take it refuses the change before anything runs; if applying fails,
// nothing is written; if the rename fails, the previous config is applied
// again so the running state never disagrees with the file. A file edited
// by hand since camgate last read or wrote it is never overwritten: the
// change is refused (ErrChangedOnDisk) until the file is reloaded.
//
// Subscribers (the router automation, the admin UI's event stream) are
// told after every successful change.
package site

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
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
	// Data is the file's contents the gateway was started from
	// (store.LoadData), so that a hand edit made since is noticed. Nil
	// means the file as it is when New runs.
	Data []byte
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
	// disk is the hash of the file as camgate last read or wrote it; a
	// file that hashes differently was edited by someone else.
	disk [sha256.Size]byte
	// refused says why the file on disk was last refused by a reload
	// ("" once a reload succeeds).
	refused string
	// outOfStep says why the running config is not the file's: a change
	// could not be saved and undoing it failed too.
	outOfStep string
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
	data := c.Data
	if data == nil {
		data, _ = os.ReadFile(c.Path)
	}
	return &Site{path: c.Path, gw: c.Gateway, log: log, disk: sha256.Sum256(data)}
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

// FileState is how the config file stands against the running config,
// for the admin UI's banner and /status.
type FileState struct {
	// ChangedOnDisk is true when the file differs from what camgate last
	// read or wrote: a hand edit not yet reloaded (or refused). Changes
	// from the API are refused until it is reloaded.
	ChangedOnDisk bool `json:"changed_on_disk"`
	// Refused says why the last reload refused the file, if it did.
	Refused string `json:"refused,omitempty"`
	// OutOfStep says why the running config is not the file's, if it is
	// not: a change could not be saved and undoing it failed.
	OutOfStep string `json:"out_of_step,omitempty"`
}

// FileState reads the file and compares it with what camgate last read
// or wrote.
func (s *Site) FileState() FileState {
	data, _ := os.ReadFile(s.path)
	s.mu.Lock()
	defer s.mu.Unlock()
	return FileState{ChangedOnDisk: sha256.Sum256(data) != s.disk, Refused: s.refused, OutOfStep: s.outOfStep}
}

// Reload applies the file's current contents. An invalid file is refused
// and the running config stays; FileState says so until a reload works.
func (s *Site) Reload(ctx context.Context) (config.Change, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cfg, data, err := store.LoadData(s.path)
	if err == nil {
		var ch config.Change
		old := s.gw.Config()
		if ch, err = s.gw.Apply(ctx, cfg); err == nil {
			if len(cfg.Rules) == 0 && len(old.Rules) > 0 {
				s.log.Warn("the reload removed every rule: the config file has none", "config", s.path, "removed", len(old.Rules))
			}
			s.disk, s.refused, s.outOfStep = sha256.Sum256(data), "", ""
			s.notifyLocked(ctx)
			return ch, nil
		}
	}
	s.refused = err.Error()
	return config.Change{}, err
}

// ErrConflict is returned by Update when the caller's view of the config
// is stale (see UpdateIf).
var ErrConflict = errors.New("the configuration was changed by someone else; reload and try again")

// ErrChangedOnDisk is returned by Update when the config file was edited
// since camgate last read or wrote it: writing it would lose the edit.
// The error reads "camgate.yaml changed on disk: reload it first".
var ErrChangedOnDisk = errors.New("changed on disk: reload it first")

// Update applies edit to a copy of the running config, then applies it
// live and persists it.
func (s *Site) Update(ctx context.Context, edit func(cfg *config.Config) error) (config.Change, error) {
	return s.UpdateIf(ctx, nil, edit)
}

// UpdateIf is Update guarded by check, which sees the running config
// before the edit and may return ErrConflict (for ETag/If-Match).
//
// The order makes a change all or nothing. The new file is written and
// synced to a temporary file first, so a full disk or a read-only
// directory refuses the change before any connection is touched; then
// the change is applied; then the file is renamed into place. A file
// edited on disk since camgate read it is never overwritten: the change
// is refused with ErrChangedOnDisk, before applying or, if the edit lands
// while applying, by undoing the change.
func (s *Site) UpdateIf(ctx context.Context, check func(cur *config.Config) error, edit func(cfg *config.Config) error) (config.Change, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.gw.Config()
	if check != nil {
		if err := check(old); err != nil {
			return config.Change{}, err
		}
	}
	onDisk, err := s.readUnchangedLocked()
	if err != nil {
		return config.Change{}, err
	}
	next := old.Clone()
	if err := edit(next); err != nil {
		return config.Change{}, err
	}
	if err := next.Validate(); err != nil {
		return config.Change{}, err
	}
	p, err := store.Prepare(s.path, next, onDisk)
	if err != nil {
		return config.Change{}, fmt.Errorf("save %s: %w; nothing was changed", s.path, err)
	}
	ch, err := s.gw.Apply(ctx, next)
	if err != nil {
		p.Discard()
		return config.Change{}, err
	}
	// A hand edit that landed while applying must not be overwritten.
	if _, err := s.readUnchangedLocked(); err != nil {
		p.Discard()
		return config.Change{}, s.rollbackLocked(ctx, old, err)
	}
	if err := p.Commit(); err != nil {
		return config.Change{}, s.rollbackLocked(ctx, old, fmt.Errorf("save %s: %w", s.path, err))
	}
	s.disk, s.outOfStep = sha256.Sum256(p.Data()), ""
	s.notifyLocked(ctx)
	return ch, nil
}

// readUnchangedLocked returns the file's contents, or ErrChangedOnDisk
// when they are not what camgate last read or wrote.
func (s *Site) readUnchangedLocked() ([]byte, error) {
	data, err := os.ReadFile(s.path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("save %s: %w; nothing was changed", s.path, err)
	}
	if sha256.Sum256(data) != s.disk {
		return nil, fmt.Errorf("%s %w", filepath.Base(s.path), ErrChangedOnDisk)
	}
	return data, nil
}

// rollbackLocked applies old again after a change that could not be
// saved, so the running state matches the file. The caller's context is
// not used for cancellation: a client that hangs up must not leave the
// gateway running a config the file does not hold. If undoing fails too
// (a port taken meanwhile), the error, FileState (and so /status) and
// the log say that gateway and file are out of step.
func (s *Site) rollbackLocked(ctx context.Context, old *config.Config, cause error) error {
	if _, err := s.gw.Apply(context.WithoutCancel(ctx), old); err != nil {
		s.outOfStep = fmt.Sprintf("a change could not be saved to %s (%v) and undoing it failed (%v): the gateway runs a config the file does not hold; fix the cause and reload", s.path, cause, err)
		s.log.Error("the gateway and its config file are out of step: a change could not be saved and undoing it failed",
			"config", s.path, "cause", cause, "err", err, "fix", "free the port, then reload (SIGHUP) to run the file's config")
		return fmt.Errorf("%w; undoing the change failed too, so the gateway runs a config %s does not hold: %v", cause, s.path, err)
	}
	return fmt.Errorf("%w; the change was undone", cause)
}

func (s *Site) notifyLocked(ctx context.Context) {
	cfg := s.gw.Config()
	for _, fn := range s.subs {
		fn(ctx, cfg)
	}
}
