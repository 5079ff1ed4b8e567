package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestPortHeldByAnotherProcessIsRefused: another process holds a rule's
// port with SO_REUSEPORT set, as a second camgate would. Apply refuses the
// rule naming that process, instead of sharing the port and letting the
// kernel split the viewers between the two (issue #13, item 6).
func TestPortHeldByAnotherProcessIsRefused(t *testing.T) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1) })
		return serr
	}}
	ln, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	// The socket goes to a child process; this one lets go of it.
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	holder := exec.Command("sleep", "30")
	holder.ExtraFiles = []*os.File{f}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { holder.Process.Kill(); holder.Wait() }()
	f.Close()
	ln.Close()

	g := New(Config{})
	defer g.Close(context.Background())
	_, err = g.Apply(context.Background(), mustLoad(t, "version: 1\nlisten_address: 127.0.0.1\nrules:\n"+rule("cam", port, echo(t))))
	want := fmt.Sprintf("port already in use: held by sleep (pid %d)", holder.Process.Pid)
	if err == nil || !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), `rule "cam"`) {
		t.Fatalf("got %v, want the rule refused with EADDRINUSE", err)
	}
	if os.Geteuid() == 0 && !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v, want %q", err, want)
	}
	if g.Addrs("cam") != nil {
		t.Fatal("the rule listens on a port another process holds")
	}
}
