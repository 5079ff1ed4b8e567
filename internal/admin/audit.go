package admin

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
	"unicode/utf8"
)

// AuditFile is the audit log in the state directory: one JSON object per
// line, appended, never rewritten. When it passes auditMaxSize it is
// rotated: AuditFile+".1" becomes ".2" and so on up to auditKeep, and a
// new file is started.
//
// Actions taken before anyone logged in (failed logins, wrong setup
// tokens) go to AnonAuditFile instead, rotated on their own, so that
// unauthenticated traffic can never rotate away the history of what the
// owner did (issue 14: 188 failed logins with 64 KB user names erased
// the setup and token history). Entries are clipped to a few hundred
// bytes whatever was submitted.
const (
	AuditFile     = "audit.log"
	AnonAuditFile = "audit-anonymous.log"
)

const (
	auditMaxSize = 8 << 20
	auditKeep    = 3
	// maxAuditTarget and maxAuditDetail clip what an entry records.
	maxAuditTarget = 64
	maxAuditDetail = 512
)

// clipAudit cuts s to at most n bytes, on a rune boundary, marking the cut.
func clipAudit(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// AuditEntry is one admin action: who did what, when, from where, and
// whether it worked.
type AuditEntry struct {
	Time time.Time `json:"time"`
	// Who is the account name, "token:<name>" for an API token, "cli" for
	// a local command, or "-" before login.
	Who string `json:"who"`
	// Action is a dotted verb such as "rule.create" or "login.fail".
	Action string `json:"action"`
	// Target names the object acted on (a rule, a token, a connection).
	Target string `json:"target,omitempty"`
	// From is the client's IP address, or "local".
	From string `json:"from"`
	// OK is false for refused or failed actions.
	OK bool `json:"ok"`
	// Detail says more: the change applied, or why it failed.
	Detail string `json:"detail,omitempty"`
}

type auditLog struct {
	path, anon string
	maxSize    int64      // auditMaxSize; tests make it smaller
	mu         sync.Mutex // guards writes and rotation
}

func newAuditLog(dir string) *auditLog {
	return &auditLog{path: filepath.Join(dir, AuditFile), anon: filepath.Join(dir, AnonAuditFile), maxSize: auditMaxSize}
}

// Append writes one entry to the audit log in stateDir. The CLI uses it
// for changes made without a running gateway.
func Append(stateDir string, e AuditEntry) error {
	if err := ensureStateDir(stateDir); err != nil {
		return err
	}
	return newAuditLog(stateDir).append(e)
}

func (a *auditLog) append(e AuditEntry) error {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e.Time = e.Time.UTC().Round(time.Millisecond)
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	path, keep := a.path, auditKeep
	if e.Who == "-" {
		path, keep = a.anon, 1
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if fi, err := os.Stat(path); err == nil && fi.Size()+int64(len(b)) > a.maxSize {
		for i := keep; i > 1; i-- {
			os.Rename(fmt.Sprintf("%s.%d", path, i-1), fmt.Sprintf("%s.%d", path, i))
		}
		if err := os.Rename(path, path+".1"); err != nil {
			return fmt.Errorf("audit log: rotate: %w", err)
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("audit log: %w", err)
	}
	return f.Close()
}

// tail returns up to n entries, newest first, from both logs and their
// rotated files.
func (a *auditLog) tail(n int) ([]AuditEntry, error) {
	owner, err := tailFiles(n, a.path, auditKeep)
	if err != nil {
		return nil, err
	}
	anon, err := tailFiles(n, a.anon, 1)
	if err != nil {
		return nil, err
	}
	out := append(owner, anon...)
	slices.SortStableFunc(out, func(x, y AuditEntry) int { return y.Time.Compare(x.Time) })
	return out[:min(n, len(out))], nil
}

// tailFiles returns up to n entries, newest first, from path and its
// keep rotated files.
func tailFiles(n int, path string, keep int) ([]AuditEntry, error) {
	var out []AuditEntry
	paths := []string{path}
	for i := 1; i <= keep; i++ {
		paths = append(paths, fmt.Sprintf("%s.%d", path, i))
	}
	for _, p := range paths {
		if len(out) >= n {
			break
		}
		b, err := os.ReadFile(p)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("audit log: %w", err)
		}
		var file []AuditEntry
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var e AuditEntry
			if json.Unmarshal(sc.Bytes(), &e) == nil {
				file = append(file, e)
			}
		}
		for i := len(file) - 1; i >= 0 && len(out) < n; i-- {
			out = append(out, file[i])
		}
	}
	return out, nil
}
