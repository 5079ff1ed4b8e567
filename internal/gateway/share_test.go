package gateway

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/config"
)

// TestIdleHoldersCannotLockOutOwner is #14.9's attack on loopback: many
// sources open idle connections to one rule until the gateway refuses
// them. The owner must still get in on the other rule, from the reserve
// the flooded rule cannot take, and the flooded rule (no protocol guard)
// runs with the default idle timeout.
func TestIdleHoldersCannotLockOutOwner(t *testing.T) {
	dev := echo(t)
	p := freePorts(t, 2)
	y := fmt.Sprintf("version: 1\nlisten_address: 127.0.0.1\nlimits: {max_connections: 200}\nrules:\n%s%s",
		rule("sdk", p[0], dev), rule("web", p[1], dev))
	g := New(Config{})
	defer g.Close(context.Background())
	if _, err := g.Apply(context.Background(), mustLoad(t, y)); err != nil {
		t.Fatal(err)
	}
	// 180 sources (127.0.1.1 to 127.0.1.180), as in the report, each
	// holding idle connections to the sdk rule until refused.
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	target := fmt.Sprintf("127.0.0.1:%d", p[0])
	for src := 1; src <= 180 && len(held) < 400; src++ {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 1, byte(src))}, Timeout: 3 * time.Second}
		for i := 0; i < 3; i++ {
			c, err := d.Dial("tcp", target)
			if err != nil {
				continue // refused at once: fine
			}
			held = append(held, c)
		}
	}
	// Let the gateway admit or refuse them all.
	time.Sleep(300 * time.Millisecond)
	alive := 0
	for _, c := range held {
		if roundTrip(c, "x") == nil {
			alive++
		}
	}
	if max := 200 - 200/8; alive > max {
		t.Errorf("the flooded rule holds %d connections, want at most %d (the cap less the reserve)", alive, max)
	}
	owner, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p[1]))
	if err != nil {
		t.Fatal(err)
	}
	defer owner.Close()
	if err := roundTrip(owner, "owner"); err != nil {
		t.Fatalf("the owner was locked out of the web rule while the sdk rule was flooded: %v", err)
	}
	g.mu.Lock()
	idle := g.rules["sdk"].rule.Idle()
	g.mu.Unlock()
	if idle != config.DefaultUnguardedIdleTimeout {
		t.Errorf("got idle timeout %v on a rule with no protocol guard, want %v", idle, config.DefaultUnguardedIdleTimeout)
	}
}
