// Package netns runs code inside another Linux network namespace: check's
// outside probe from `--from netns:NAME`, the bench's helpers and the
// test topology (internal/netlab) all need a socket that lives in a
// namespace other than the process's own.
//
//	var c net.Conn
//	err := netns.Do(netns.Path("cgwan-1a2b3c"), func() (err error) {
//		c, err = net.Dial("tcp", "198.18.0.1:80")
//		return err
//	})
//
// A socket created inside fn belongs to that namespace for its whole
// life, so it can be used from any goroutine once Do returns.
package netns

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// Path returns the file of a namespace made by `ip netns add NAME`
// (/var/run/netns/NAME); a name with a slash is already a path (such as
// /proc/1234/ns/net).
func Path(name string) string {
	if strings.Contains(name, "/") {
		return name
	}
	return filepath.Join("/var/run/netns", name)
}

// Do runs fn on an OS thread that has joined the network namespace at
// path, and returns the thread to its own namespace afterwards. If
// anything fails before the thread is back, it stays locked and Go
// discards it when its goroutine exits, so no other goroutine ever runs
// in the wrong namespace.
func Do(path string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- fmt.Errorf("netns: %w", err)
			return
		}
		defer orig.Close()
		target, err := os.Open(path)
		if err != nil {
			errc <- fmt.Errorf("netns %s: %w", path, err)
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("netns %s: setns: %w", path, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("netns %s: setns back: %w", path, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
