package guard

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/camgate/camgate/internal/store"
)

// Ban is one banned source.
type Ban struct {
	// Source is the banned address as a prefix: an IPv4 /32 or an IPv6
	// /64 (one subscriber's network; a host can pick any address in it).
	Source netip.Prefix `json:"source"`
	// Rule is the rule whose traffic earned the ban. The ban applies to
	// every rule that forwards to the same Device.
	Rule string `json:"rule"`
	// Device is the rule's internal_ip.
	Device string `json:"device,omitempty"`
	// Reason says why, for people.
	Reason string `json:"reason"`
	// Failures is the number of failed logins counted.
	Failures int       `json:"failures,omitempty"`
	Since    time.Time `json:"since"`
	Until    time.Time `json:"until"`
}

// Active reports whether the ban is in force at now.
func (b Ban) Active(now time.Time) bool { return now.Before(b.Until) }

// covers reports whether the ban applies to a connection on rule to device.
func (b Ban) covers(rule, device string) bool {
	return b.Rule == rule || (b.Device != "" && b.Device == device)
}

// clearRecord asks a running gateway to drop matching bans that started
// before At. `camgate ban clear` writes one when it edits the file, because
// the gateway holds its bans in memory and would otherwise write them back.
type clearRecord struct {
	// Source is the cleared address; the zero Addr means every source.
	Source netip.Addr `json:"source,omitzero"`
	// Rule is the cleared rule; empty means every rule.
	Rule string    `json:"rule,omitempty"`
	At   time.Time `json:"at"`
}

func (c clearRecord) matches(b Ban) bool {
	return (!c.Source.IsValid() || b.Source.Contains(c.Source.Unmap())) &&
		(c.Rule == "" || c.Rule == b.Rule) && !b.Since.After(c.At)
}

// banFile is the on-disk form, bans.json in the state directory.
type banFile struct {
	Version int           `json:"version"`
	Bans    []Ban         `json:"bans"`
	Cleared []clearRecord `json:"cleared,omitempty"`
}

// clearRecordTTL is how long a clear record stays in the file. A running
// gateway reads it within a second (Config.PollInterval); an old one
// could only wrongly match bans that have expired anyway.
const clearRecordTTL = time.Hour

// BanFile returns the path of the ban list in a state directory.
func BanFile(stateDir string) string { return filepath.Join(stateDir, "bans.json") }

func lockFile(stateDir string) string { return filepath.Join(stateDir, "bans.lock") }

// withBanFile runs fn with the ban file read and exclusively locked
// against other camgate processes (the gateway and the CLI), then writes
// back what fn left in f if fn reports a change. A missing file reads as
// empty.
func withBanFile(stateDir string, fn func(f *banFile) (changed bool, err error)) error {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return fmt.Errorf("ban list: %w", err)
	}
	lk, err := os.OpenFile(lockFile(stateDir), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("ban list: %w", err)
	}
	defer lk.Close() // releases the lock
	if err := unix.Flock(int(lk.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("ban list: lock %s: %w", lk.Name(), err)
	}
	f, err := readBanFile(stateDir)
	if err != nil {
		return err
	}
	changed, err := fn(f)
	if err != nil || !changed {
		return err
	}
	f.Version = 1
	if f.Bans == nil {
		f.Bans = []Ban{}
	}
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	return store.WriteFile(BanFile(stateDir), append(data, '\n'), 0o600)
}

func readBanFile(stateDir string) (*banFile, error) {
	data, err := os.ReadFile(BanFile(stateDir))
	if errors.Is(err, fs.ErrNotExist) {
		return &banFile{Version: 1}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ban list: %w", err)
	}
	var f banFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("ban list %s: %w", BanFile(stateDir), err)
	}
	if f.Version > 1 {
		return nil, fmt.Errorf("ban list %s: version %d is newer than this camgate reads", BanFile(stateDir), f.Version)
	}
	return &f, nil
}

// ListBans returns the bans in force at now recorded in stateDir, oldest
// first. It works whether or not a gateway is running: a running gateway
// writes the file on every change.
func ListBans(stateDir string, now time.Time) ([]Ban, error) {
	f, err := readBanFile(stateDir)
	if err != nil {
		return nil, err
	}
	return activeBans(f.Bans, now), nil
}

// ClearBans removes the bans matching src (the zero Addr: every source)
// and rule (empty: every rule) from the file in stateDir and records the
// clear, so that a running gateway drops them from memory too (it polls
// the file; see Policy.Run). It returns how many bans in force it removed.
func ClearBans(stateDir string, src netip.Addr, rule string, now time.Time) (int, error) {
	n := 0
	err := withBanFile(stateDir, func(f *banFile) (bool, error) {
		cr := clearRecord{Source: src.Unmap(), Rule: rule, At: now}
		var keep []Ban
		for _, b := range f.Bans {
			switch {
			case cr.matches(b):
				if b.Active(now) {
					n++
				}
			case b.Active(now):
				keep = append(keep, b)
			}
		}
		f.Bans = keep
		f.Cleared = slices.DeleteFunc(f.Cleared, func(c clearRecord) bool { return now.Sub(c.At) > clearRecordTTL })
		f.Cleared = append(f.Cleared, cr)
		return true, nil
	})
	return n, err
}

func activeBans(bs []Ban, now time.Time) []Ban {
	out := []Ban{}
	for _, b := range bs {
		if b.Active(now) && b.Source.IsValid() {
			out = append(out, b)
		}
	}
	slices.SortStableFunc(out, func(a, b Ban) int { return a.Since.Compare(b.Since) })
	return out
}

// fileStamp identifies one version of the ban file cheaply.
type fileStamp struct {
	ino   uint64
	size  int64
	mtime time.Time
}

func stampOf(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	s := fileStamp{size: fi.Size(), mtime: fi.ModTime()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.ino = st.Ino
	}
	return s
}
