package credstore

import (
	"errors"
	"io/fs"
	"os"
	"strings"
	"testing"
)

func TestPutGetDelete(t *testing.T) {
	s := New(t.TempDir())
	if _, err := s.Get("dvr1"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Get before Put: got %v, want fs.ErrNotExist", err)
	}
	if err := s.Put("dvr1", "s3cret!"); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(s.Path("dvr1"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode: got %v, want 0600", fi.Mode().Perm())
	}
	if pw, err := s.Get("dvr1"); err != nil || pw != "s3cret!" {
		t.Errorf("Get: got %q, %v; want s3cret!", pw, err)
	}
	if !s.Has("dvr1") {
		t.Error("Has: got false after Put")
	}
	if err := s.Delete("dvr1"); err != nil {
		t.Fatal(err)
	}
	if s.Has("dvr1") {
		t.Error("Has: got true after Delete")
	}
	if err := s.Delete("dvr1"); err != nil {
		t.Errorf("second Delete: %v", err)
	}
}

func TestRejects(t *testing.T) {
	s := New(t.TempDir())
	for _, tc := range []struct{ name, pw, want string }{
		{"../etc", "x", "lower-case"},
		{"dvr1", "", "1 to"},
		{"dvr1", "a\nb", "one line"},
		{"dvr1", strings.Repeat("x", MaxPasswordLen+1), "1 to"},
	} {
		err := s.Put(tc.name, tc.pw)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Put(%q): got %v, want error containing %q", tc.name, err, tc.want)
		}
		if err != nil && tc.pw != "" && strings.Contains(err.Error(), tc.pw) {
			t.Errorf("Put(%q): the error echoes the password", tc.name)
		}
	}
}
