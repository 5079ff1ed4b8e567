package share

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestStoreLifecycle creates, finds, revokes and reloads a link, and
// checks that the secret itself never reaches the file.
func TestStoreLifecycle(t *testing.T) {
	dir := t.TempDir()
	st, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	l, secret, err := st.Create(Spec{Device: "dvr", Channel: 102, MaxViewers: 2, Label: "neighbour"}, "admin", now)
	if err != nil {
		t.Fatal(err)
	}
	if len(secret) < 43 {
		t.Errorf("secret %q: got %d characters, want at least 43 (256 bits)", secret, len(secret))
	}
	if got, want := l.Expires, now.Add(DefaultTTL); !got.Equal(want) {
		t.Errorf("expires: got %v, want %v", got, want)
	}
	b, _ := os.ReadFile(filepath.Join(dir, File))
	if strings.Contains(string(b), secret) {
		t.Fatal("the secret is in the store's file")
	}
	if fi, _ := os.Stat(filepath.Join(dir, File)); fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode: got %v, want 0600", fi.Mode().Perm())
	}
	got, ok := st.Lookup(secret)
	if !ok || got.ID != l.ID || got.StateAt(now) != Active {
		t.Fatalf("lookup: got %+v %v, want the active link", got, ok)
	}
	if _, ok := st.Lookup(secret + "x"); ok {
		t.Fatal("lookup of a wrong secret found a link")
	}
	if s := got.StateAt(now.Add(DefaultTTL)); s != Expired {
		t.Errorf("at expiry: got %s, want expired", s)
	}
	if _, err := st.Revoke(l.ID, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	st2, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	got, ok = st2.Lookup(secret)
	if !ok || got.StateAt(now.Add(time.Minute)) != Revoked {
		t.Fatalf("after revoke and reload: got %+v %v, want revoked", got, ok)
	}
	if _, err := st2.Revoke("nope", now); err == nil {
		t.Error("revoking an unknown id: got no error")
	}
}

func TestCreateRefuses(t *testing.T) {
	st, _ := Open(t.TempDir())
	for _, tc := range []struct {
		name string
		sp   Spec
		want string
	}{
		{"too short", Spec{Device: "d", Channel: 101, TTL: time.Second}, "outside"},
		{"too long", Spec{Device: "d", Channel: 101, TTL: MaxTTL + time.Hour}, "outside"},
		{"negative viewers", Spec{Device: "d", Channel: 101, MaxViewers: -1}, "negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := st.Create(tc.sp, "admin", time.Now())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
