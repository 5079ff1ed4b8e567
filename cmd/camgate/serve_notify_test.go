package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/netlab"
)

// TestServeNotifiesSystemd runs `camgate serve` the way the packaged
// unit does (Type=notify, WatchdogSec): it must say READY=1 once serving,
// ping the watchdog, and say STOPPING=1 on SIGTERM. A unit whose service
// never says READY=1 is killed by systemd after its start timeout.
func TestServeNotifiesSystemd(t *testing.T) {
	bin := camgateBin(t)
	dir := t.TempDir()
	sockPath := filepath.Join(dir, "notify")
	sock, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sockPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	cfg := writeConfig(t, dir, "version: 1\nadmin: {listen: \"127.0.0.1:0\"}\nrules: []\n")
	cmd := exec.Command(bin, "serve", "--config", cfg)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sockPath, "WATCHDOG_USEC=200000")
	gw := netlab.StartCmd(cmd)
	defer gw.Stop()
	read := func(want string, within time.Duration) {
		t.Helper()
		deadline := time.Now().Add(within)
		b := make([]byte, 256)
		for {
			sock.SetReadDeadline(deadline)
			n, err := sock.Read(b)
			if err != nil {
				t.Fatalf("no %s from camgate serve within %v: %v\n%s", want, within, err, gw.Output())
			}
			if string(b[:n]) == want {
				return
			}
		}
	}
	read("READY=1", 15*time.Second)
	read("WATCHDOG=1", 2*time.Second)
	read("WATCHDOG=1", 2*time.Second)
	cmd.Process.Signal(syscall.SIGTERM)
	read("STOPPING=1", 5*time.Second)
}
