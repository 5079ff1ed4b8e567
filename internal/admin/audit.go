package admin

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// AuditFile is the audit log in the state directory: one JSON object per
// line, appended, never rewritten. When it passes auditMaxSize it is
// renamed to AuditFile+".1" (replacing the previous one) and a new file
// is started.
const AuditFile = "audit.log"

const auditMaxSize = 8 << 20

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
	path string
	mu   sync.Mutex // guards writes and rotation
}

func newAuditLog(dir string) *auditLog { return &auditLog{path: filepath.Join(dir, AuditFile)} }

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
	a.mu.Lock()
	defer a.mu.Unlock()
	if fi, err := os.Stat(a.path); err == nil && fi.Size()+int64(len(b)) > auditMaxSize {
		if err := os.Rename(a.path, a.path+".1"); err != nil {
			return fmt.Errorf("audit log: rotate: %w", err)
		}
	}
	f, err := os.OpenFile(a.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("audit log: %w", err)
	}
	return f.Close()
}

// tail returns up to n entries, newest first, from the current file and
// the rotated one.
func (a *auditLog) tail(n int) ([]AuditEntry, error) {
	var out []AuditEntry
	for _, p := range []string{a.path, a.path + ".1"} {
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
