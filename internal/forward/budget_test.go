package forward

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestLimitFairShare(t *testing.T) {
	for _, tc := range []struct {
		name        string
		max, rules  int
		flood       int   // slots the flooded rule manages to take
		otherGets   int64 // slots another rule can then take
		unlimitedOK bool
	}{
		{"one rule may take everything", 80, 1, 80, 0, false},
		{"a flooded rule stops at the reserve", 80, 4, 70, 10, false},
		{"no cap, no fairness", 0, 4, 1000, 1000, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := NewLimit(tc.max)
			l.SetRules(tc.rules)
			var flooded, other share
			got := 0
			for i := 0; i < 1000 && l.take(&flooded, 1); i++ {
				got++
			}
			if got != tc.flood {
				t.Fatalf("flooded rule got %d slots, want %d", got, tc.flood)
			}
			var more int64
			for more < 1000 && l.take(&other, 1) {
				more++
			}
			if more != tc.otherGets {
				t.Fatalf("another rule got %d slots after the flood, want %d", more, tc.otherGets)
			}
			l.give(&flooded, int64(got))
			l.give(&other, more)
			if l.Active() != 0 || flooded.n.Load() != 0 {
				t.Fatalf("got %d held after giving all back, want 0", l.Active())
			}
		})
	}
}

func TestFDBudgetHeadroom(t *testing.T) {
	for _, tc := range []struct{ limit, want int64 }{{1024, 928}, {20000, 19311}, {40, 16}} {
		if got := fdBudget(tc.limit); int64(got) != tc.want {
			t.Errorf("budget for a limit of %d: got %d, want %d", tc.limit, got, tc.want)
		}
	}
}

// TestLowFDLimitStalledReaders is #13.8's proof. A child process with a
// 1,024-descriptor limit runs three rules sharing one budget and nothing
// else; this process is the device and the clients. 150 clients per rule
// (450 in all) connect and never read while the device sends 256 KiB to
// each. Stalled readers must not pin splice pipes, and afterwards a new
// connection on every rule must still work.
func TestLowFDLimitStalledReaders(t *testing.T) {
	if os.Getenv("CAMGATE_LOWFD_CHILD") != "" {
		lowFDChild(t)
		return
	}
	if testing.Short() {
		t.Skip("starts 450 connections")
	}
	payload := bytes.Repeat([]byte("v"), 256<<10)
	dev := newDevice(t, func(c *net.TCPConn) {
		buf := make([]byte, 1)
		if _, err := c.Read(buf); err != nil {
			return
		}
		if buf[0] == 'q' { // a probe: answer and end
			c.Write([]byte("ok"))
			return
		}
		c.Write(payload) // blocks: the client never reads
		io.Copy(io.Discard, c)
	})
	cmd := exec.Command(os.Args[0], "-test.run=^TestLowFDLimitStalledReaders$", "-test.count=1")
	cmd.Env = append(os.Environ(), "CAMGATE_LOWFD_CHILD="+itoa(int(dev.port)))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		cmd.Process.Kill() // our own child, by its handle
		cmd.Wait()
	}()
	var addrs []string
	sc := bufio.NewScanner(stdout)
	for len(addrs) < 3 && sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), "LISTEN "); ok {
			addrs = append(addrs, a)
		}
	}
	if len(addrs) != 3 {
		t.Fatalf("child did not start its rules: %s", stderr.String())
	}
	var stalled []net.Conn
	for i := 0; i < 450; i++ {
		c, err := net.Dial("tcp", addrs[i%3])
		if err != nil {
			t.Fatalf("stalled client %d: %v", i, err)
		}
		c.(*net.TCPConn).SetReadBuffer(4096)
		c.Write([]byte("s"))
		stalled = append(stalled, c)
	}
	defer func() {
		for _, c := range stalled {
			c.Close()
		}
	}()
	time.Sleep(4 * blockedGrace) // every stalled direction gives its pipe back
	for round := 0; round < 3; round++ {
		for _, addr := range addrs {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatalf("new connection to %s: %v", addr, err)
			}
			c.Write([]byte("q"))
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			got, err := io.ReadAll(c)
			c.Close()
			if string(got) != "ok" {
				t.Fatalf("new connection to %s with 450 stalled readers: got %q, %v; want \"ok\"", addr, got, err)
			}
		}
	}
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", cmd.Process.Pid))
	t.Logf("the gateway holds %d descriptors with 450 stalled readers", len(ents))
	if len(ents) > 2*450+64 {
		t.Errorf("got %d descriptors for 450 connections, want at most %d: stalled directions pin pipes", len(ents), 2*450+64)
	}
}

// lowFDChild is the gateway side of TestLowFDLimitStalledReaders.
func lowFDChild(t *testing.T) {
	lim := unix.Rlimit{Cur: 1024, Max: 1024}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatalf("setrlimit: %v", err)
	}
	budget := NewFDBudget()
	if budget.Max() != 928 {
		t.Fatalf("got a budget of %d descriptors at a 1,024 limit, want 928", budget.Max())
	}
	budget.SetRules(3)
	port, _ := strconv.Atoi(os.Getenv("CAMGATE_LOWFD_CHILD"))
	for i := 0; i < 3; i++ {
		_, addr := startRule(t, Spec{Name: fmt.Sprintf("rule-%d", i), TargetPorts: []uint16{uint16(port)}, FDs: budget})
		fmt.Printf("LISTEN %s\n", addr)
	}
	io.Copy(io.Discard, os.Stdin) // until the parent is done
}
