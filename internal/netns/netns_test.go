package netns

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"
)

func TestPath(t *testing.T) {
	if got := Path("cgwan-1"); got != "/var/run/netns/cgwan-1" {
		t.Errorf("Path(name) = %q", got)
	}
	if got := Path("/proc/1/ns/net"); got != "/proc/1/ns/net" {
		t.Errorf("Path(path) = %q", got)
	}
}

// TestDo: a listener made inside Do lives in the namespace (its loopback
// is not the host's), the calling goroutine's thread never leaves the
// host's namespace, and a missing namespace is an error naming it.
func TestDo(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace (run the tests as root, as CI does)")
	}
	var b [3]byte
	rand.Read(b[:])
	name := "cgnetns-" + hex.EncodeToString(b[:])
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Skipf("ip netns add: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	exec.Command("ip", "-n", name, "link", "set", "lo", "up").Run()

	var ln net.Listener
	if err := Do(Path(name), func() (err error) {
		ln, err = net.Listen("tcp4", "127.0.0.1:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
		}
	}()
	// From the host's namespace the port is not there...
	if c, err := net.DialTimeout("tcp4", ln.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Fatal("the namespace's listener answered on the host's loopback")
	}
	// ...and from inside it is.
	if err := Do(Path(name), func() error {
		c, err := net.DialTimeout("tcp4", ln.Addr().String(), time.Second)
		if err == nil {
			c.Close()
		}
		return err
	}); err != nil {
		t.Fatalf("dial inside the namespace: %v", err)
	}
	if err := Do(Path("cgnetns-missing-"+name), func() error { return nil }); err == nil {
		t.Fatal("Do in a namespace that does not exist succeeded")
	}
}
