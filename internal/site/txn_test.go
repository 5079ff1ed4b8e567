package site

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/forward"
	"github.com/camgate/camgate/internal/gateway"
)

// hookPolicy is the default policy plus a function called whenever the
// gateway binds a rule, which lets a test act at a precise point of an
// Apply: after the new file was prepared, or during a rollback.
type hookPolicy struct {
	gateway.DefaultPolicy
	mu     sync.Mutex
	calls  int
	onBind func(call int, r *config.Rule)
}

func (p *hookPolicy) Hooks(r *config.Rule) (func(netip.AddrPort, string) (func(), error), forward.Handler, error) {
	p.mu.Lock()
	p.calls++
	n, f := p.calls, p.onBind
	p.mu.Unlock()
	if f != nil {
		f(n, r)
	}
	return p.DefaultPolicy.Hooks(r)
}

// echo serves loopback connections that echo what they read.
func echo(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// ruleSite serves one rule "cam" on a free port to an echo server, from
// a file in dir, with policy p (nil: the default) and logs into logBuf.
func ruleSite(t *testing.T, dir string, p gateway.Policy) (s *Site, path string, port int, logBuf *bytes.Buffer) {
	t.Helper()
	path = filepath.Join(dir, "camgate.yaml")
	port = freePort(t)
	body := fmt.Sprintf("version: 1\nlisten_address: 127.0.0.1\nrules:\n  - name: cam # the shop camera\n    external_port: %d\n    internal_ip: 127.0.0.1\n    internal_port: %d\n", port, echo(t))
	if err := os.WriteFile(path, []byte(body), 0o640); err != nil {
		t.Fatal(err)
	}
	g := gateway.New(gateway.Config{Policy: p})
	t.Cleanup(func() { g.Close(context.Background()) })
	logBuf = &bytes.Buffer{}
	s = New(Config{Path: path, Gateway: g, Logger: slog.New(slog.NewTextHandler(logBuf, nil))})
	if _, err := s.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s, path, port, logBuf
}

// roundTrip checks that c still carries data both ways.
func roundTrip(t *testing.T, c net.Conn) error {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("ping")); err != nil {
		return err
	}
	b := make([]byte, 4)
	_, err := io.ReadFull(c, b)
	return err
}

func moveCam(to int) func(cfg *config.Config) error {
	return func(cfg *config.Config) error {
		p := uint16(to)
		cfg.Rule("cam").ExternalPort = config.PortRange{First: p, Last: p}
		return nil
	}
}

// TestUpdateRefusesHandEdit: a file edited on disk since camgate read it
// is never overwritten; reloading it clears the refusal (item 1).
func TestUpdateRefusesHandEdit(t *testing.T) {
	s, path, _, _ := ruleSite(t, t.TempDir(), nil)
	if st := s.FileState(); st.ChangedOnDisk {
		t.Fatalf("got %+v right after a reload, want unchanged", st)
	}
	b, _ := os.ReadFile(path)
	hand := string(b) + "  # a rule the owner is still writing\n"
	os.WriteFile(path, []byte(hand), 0o640)
	if st := s.FileState(); !st.ChangedOnDisk {
		t.Fatalf("got %+v after a hand edit, want changed_on_disk", st)
	}
	_, err := s.Update(context.Background(), moveCam(freePort(t)))
	if err == nil || err.Error() != "camgate.yaml changed on disk: reload it first" {
		t.Fatalf("got %v, want camgate.yaml changed on disk: reload it first", err)
	}
	if got, _ := os.ReadFile(path); string(got) != hand {
		t.Fatalf("the hand edit was overwritten:\n%s", got)
	}
	// An invalid file is refused by the reload and stays flagged.
	os.WriteFile(path, []byte(hand+"bogus: 1\n"), 0o640)
	if _, err := s.Reload(context.Background()); err == nil {
		t.Fatal("an invalid file was reloaded")
	}
	if st := s.FileState(); !st.ChangedOnDisk || !strings.Contains(st.Refused, "bogus") {
		t.Fatalf("got %+v, want changed and refused naming the unknown key", st)
	}
	os.WriteFile(path, []byte(hand), 0o640)
	if _, err := s.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := s.FileState(); st != (FileState{}) {
		t.Fatalf("got %+v after a good reload, want a clean state", st)
	}
	if _, err := s.Update(context.Background(), moveCam(freePort(t))); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); !strings.Contains(string(got), "# a rule the owner is still writing") {
		t.Fatalf("the reloaded edit's comment was lost:\n%s", got)
	}
}

// TestFailedSaveChangesNothing: a read-only directory or a full disk
// refuses a change before it is applied, so live connections stay up
// (item 2). It mounts a small tmpfs, so it needs root.
func TestFailedSaveChangesNothing(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a read-only or full tmpfs")
	}
	for _, tc := range []struct {
		name   string
		break_ func(t *testing.T, dir string)
		want   string
	}{
		{"read-only directory", func(t *testing.T, dir string) {
			if out, err := exec.Command("mount", "-o", "remount,ro", dir).CombinedOutput(); err != nil {
				t.Skipf("remount read-only: %v %s", err, out)
			}
		}, "read-only file system"},
		{"full disk", func(t *testing.T, dir string) {
			f, err := os.Create(filepath.Join(dir, "filler"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			buf := make([]byte, 4096)
			for {
				if _, err := f.Write(buf); err != nil {
					break
				}
			}
		}, "no space left on device"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256k", "camgate-test", dir).CombinedOutput(); err != nil {
				t.Skipf("mount tmpfs: %v %s", err, out)
			}
			t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
			s, path, port, _ := ruleSite(t, dir, nil)
			before, _ := os.ReadFile(path)
			c, err := net.Dial("tcp4", fmt.Sprintf("127.0.0.1:%d", port))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := roundTrip(t, c); err != nil {
				t.Fatal(err)
			}
			tc.break_(t, dir)
			_, err = s.Update(context.Background(), func(cfg *config.Config) error {
				cfg.Rule("cam").SetEnabled(false)
				return nil
			})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "nothing was changed") {
				t.Fatalf("got %v, want %q and nothing was changed", err, tc.want)
			}
			if err := roundTrip(t, c); err != nil {
				t.Fatalf("the live connection was cut by a change that was not saved: %v", err)
			}
			if s.Config().Rule("cam").IsEnabled() == false || s.Gateway().Addrs("cam") == nil {
				t.Fatal("the rule was disabled although the change was refused")
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(after, before) {
				t.Fatalf("file changed:\n%s", after)
			}
			if left, _ := filepath.Glob(filepath.Join(dir, ".camgate.yaml.tmp-*")); len(left) > 0 {
				t.Fatalf("temporary files left: %v", left)
			}
		})
	}
}

// removeTemps deletes the prepared file, so that the rename after the
// apply fails.
func removeTemps(t *testing.T, dir string) {
	names, _ := filepath.Glob(filepath.Join(dir, ".camgate.yaml.tmp-*"))
	if len(names) == 0 {
		t.Error("no prepared file while applying: the file must be written before the change is applied")
	}
	for _, n := range names {
		os.Remove(n)
	}
}

// TestRollbackIsNotCancellable: the client hangs up while its change is
// applied, and the save fails; the change is still undone (item 3).
func TestRollbackIsNotCancellable(t *testing.T) {
	dir := t.TempDir()
	p := &hookPolicy{}
	s, path, port, _ := ruleSite(t, dir, p)
	before, _ := os.ReadFile(path)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p.onBind = func(call int, r *config.Rule) {
		if call == 2 { // binding the moved rule, after the file was prepared
			cancel()
			removeTemps(t, dir)
		}
	}
	_, err := s.Update(ctx, moveCam(freePort(t)))
	if err == nil || !strings.Contains(err.Error(), "the change was undone") {
		t.Fatalf("got %v, want a failed save that was undone", err)
	}
	if got := s.Config().Rule("cam").ExternalPort.First; int(got) != port {
		t.Fatalf("running port %d, want the old %d back", got, port)
	}
	if s.Gateway().Addrs("cam") == nil {
		t.Fatal("the old rule does not listen again")
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, before) {
		t.Fatalf("file changed:\n%s", after)
	}
	if st := s.FileState(); st.OutOfStep != "" {
		t.Fatalf("got %+v, want in step", st)
	}
}

// TestFailedRollbackIsReported: the save fails and, while undoing, another
// program takes the old port. The error, FileState (so /status) and the
// log say that the gateway and the file are out of step (item 3).
func TestFailedRollbackIsReported(t *testing.T) {
	dir := t.TempDir()
	p := &hookPolicy{}
	s, _, port, logBuf := ruleSite(t, dir, p)
	var thief net.Listener
	defer func() {
		if thief != nil {
			thief.Close()
		}
	}()
	p.onBind = func(call int, r *config.Rule) {
		switch call {
		case 2:
			removeTemps(t, dir)
		case 3: // the rollback binds the old port: take it first
			var err error
			if thief, err = net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", port)); err != nil {
				t.Errorf("take the old port: %v", err)
			}
		}
	}
	_, err := s.Update(context.Background(), moveCam(freePort(t)))
	if err == nil || !strings.Contains(err.Error(), "undoing the change failed too") {
		t.Fatalf("got %v, want the failed undo reported", err)
	}
	if st := s.FileState(); !strings.Contains(st.OutOfStep, "undoing it failed") {
		t.Fatalf("got %+v, want out_of_step", st)
	}
	if !strings.Contains(logBuf.String(), "out of step") {
		t.Fatalf("log lacks the failed undo:\n%s", logBuf)
	}
}

// TestReloadRemovingEveryRuleWarns (item 5).
func TestReloadRemovingEveryRuleWarns(t *testing.T) {
	s, path, _, logBuf := ruleSite(t, t.TempDir(), nil)
	os.WriteFile(path, []byte("version: 1\nrules: []\n"), 0o640)
	if _, err := s.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logBuf.String(), "level=WARN") || !strings.Contains(logBuf.String(), "removed every rule") || !strings.Contains(logBuf.String(), path) {
		t.Fatalf("got log:\n%s\nwant a warning naming %s", logBuf, path)
	}
}
