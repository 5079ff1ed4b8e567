package gateway

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/config"
)

// echo is a device that echoes on 127.0.0.1:0.
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

func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var out []int
	var lns []net.Listener
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return out
}

func mustLoad(t *testing.T, y string) *config.Config {
	t.Helper()
	cfg, err := config.Load([]byte(y))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, y)
	}
	return cfg
}

func rule(name string, ext, in int) string {
	return fmt.Sprintf("  - {name: %s, external_port: %d, internal_ip: 127.0.0.1, internal_port: %d}\n", name, ext, in)
}

func roundTrip(c net.Conn, msg string) error {
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		return err
	}
	b := make([]byte, len(msg))
	if _, err := io.ReadFull(c, b); err != nil {
		return err
	}
	if string(b) != msg {
		return fmt.Errorf("got %q, want %q", b, msg)
	}
	return nil
}

func TestReloadKeepsUntouchedConnections(t *testing.T) {
	dev := echo(t)
	p := freePorts(t, 3)
	head := "version: 1\nlisten_address: 127.0.0.1\nrules:\n"
	g := New(Config{})
	defer g.Close(context.Background())
	if _, err := g.Apply(context.Background(), mustLoad(t, head+rule("a", p[0], dev)+rule("c", p[2], dev))); err != nil {
		t.Fatal(err)
	}
	ca, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	cc, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p[2]))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	for _, c := range []net.Conn{ca, cc} {
		if err := roundTrip(c, "before"); err != nil {
			t.Fatal(err)
		}
	}

	// Add b, remove c, and change a's description only.
	next := head + strings.Replace(rule("a", p[0], dev), "}", ", description: renamed}", 1) + rule("b", p[1], dev)
	ch, err := g.Apply(context.Background(), mustLoad(t, next))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(ch.Added, ch.Removed, ch.Kept, ch.Changed) != "[b] [c] [a] []" {
		t.Fatalf("got change %+v, want b added, c removed, a kept", ch)
	}
	if err := roundTrip(ca, "after"); err != nil {
		t.Fatalf("rule a's connection did not survive the reload: %v", err)
	}
	cc.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := cc.Read(make([]byte, 1)); err == nil {
		t.Fatal("rule c's connection is still open after c was removed")
	}
	cb, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p[1]))
	if err != nil {
		t.Fatalf("new rule b does not listen: %v", err)
	}
	defer cb.Close()
	if err := roundTrip(cb, "new"); err != nil {
		t.Fatal(err)
	}
	if _, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p[2])); err == nil {
		t.Fatal("removed rule c still accepts connections")
	}
	st := g.Status()
	if st.Rules[0].Description != "renamed" || st.Rules[0].Stats.Total != 1 {
		t.Fatalf("got rule a status %+v, want the new description and its counters kept", st.Rules[0])
	}
}

func TestFailedApplyChangesNothing(t *testing.T) {
	dev := echo(t)
	p := freePorts(t, 1)
	head := "version: 1\nlisten_address: 127.0.0.1\nrules:\n"
	g := New(Config{})
	defer g.Close(context.Background())
	good := mustLoad(t, head+rule("a", p[0], dev))
	if _, err := g.Apply(context.Background(), good); err != nil {
		t.Fatal(err)
	}
	ca, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	roundTrip(ca, "x")

	// Another program holds the port rule "b" wants (without SO_REUSEPORT).
	busy, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	bp := busy.Addr().(*net.TCPAddr).Port
	bad := mustLoad(t, head+rule("b", bp, dev)) // would also remove a
	_, err = g.Apply(context.Background(), bad)
	if err == nil || !strings.Contains(err.Error(), `rule "b": listen tcp`) {
		t.Fatalf("got %v, want a listen error naming rule b", err)
	}
	if err := roundTrip(ca, "still"); err != nil {
		t.Fatalf("rule a was disturbed by a failed apply: %v", err)
	}
	if got := g.Config().Rules; len(got) != 1 || got[0].Name != "a" {
		t.Fatalf("got running rules %+v, want only a", got)
	}
	if g.Status().LastError == "" {
		t.Fatal("status does not report the failed apply")
	}
	// An invalid config is refused by validation before anything happens.
	invalid := good.Clone()
	invalid.Rules[0].InternalIP = ""
	if _, err := g.Apply(context.Background(), invalid); err == nil || !strings.Contains(err.Error(), "internal_ip") {
		t.Fatalf("got %v, want internal_ip problem", err)
	}
}

func TestChangedRuleIsReplaced(t *testing.T) {
	dev1, dev2 := echo(t), echo(t)
	p := freePorts(t, 1)
	head := "version: 1\nlisten_address: 127.0.0.1\nrules:\n"
	g := New(Config{})
	defer g.Close(context.Background())
	if _, err := g.Apply(context.Background(), mustLoad(t, head+rule("a", p[0], dev1))); err != nil {
		t.Fatal(err)
	}
	old, _ := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p[0]))
	defer old.Close()
	roundTrip(old, "x")
	ch, err := g.Apply(context.Background(), mustLoad(t, head+rule("a", p[0], dev2)))
	if err != nil || len(ch.Changed) != 1 {
		t.Fatalf("got %+v, %v; want a changed", ch, err)
	}
	old.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := old.Read(make([]byte, 1)); err == nil {
		t.Fatal("connection to the old target survived the rule's replacement")
	}
	nc, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := roundTrip(nc, "y"); err != nil {
		t.Fatal(err)
	}
	if got := g.Connections(); len(got) != 1 || got[0].Target != fmt.Sprintf("127.0.0.1:%d", dev2) {
		t.Fatalf("got connections %+v, want one to the new target", got)
	}
	if !g.Kill(g.Connections()[0].ID) {
		t.Fatal("Kill did not find the connection")
	}
	nc.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := nc.Read(make([]byte, 1)); err == nil {
		t.Fatal("killed connection still open")
	}
}

func TestCloseDrains(t *testing.T) {
	dev := echo(t)
	p := freePorts(t, 1)
	g := New(Config{})
	if _, err := g.Apply(context.Background(), mustLoad(t, "version: 1\nlisten_address: 127.0.0.1\nrules:\n"+rule("a", p[0], dev))); err != nil {
		t.Fatal(err)
	}
	c, _ := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p[0]))
	defer c.Close()
	roundTrip(c, "x")
	done := make(chan struct{})
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		g.Close(ctx)
		close(done)
	}()
	// New connections stop at once...
	waitUntil(t, func() bool {
		nc, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p[0]))
		if err == nil {
			nc.Close()
		}
		return err != nil
	})
	// ...while the live one still works during the drain...
	if err := roundTrip(c, "draining"); err != nil {
		t.Fatalf("live connection cut before the drain period: %v", err)
	}
	// ...and is closed when it ends.
	<-done
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("connection still open after the drain period")
	}
	if _, err := g.Apply(context.Background(), g.Config()); err != ErrClosed {
		t.Fatalf("got %v after Close, want ErrClosed", err)
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	for i := 0; i < 200; i++ {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("condition not met in 2s")
}
