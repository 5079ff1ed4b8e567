package forward

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"
)

// foreignConn is a connection that is not a *net.TCPConn, as a VPN
// tunnel's is: Rule.Serve must relay it without splice or the poller. It
// still half-closes and resets, as the tunnel's connection does.
type foreignConn struct{ net.Conn }

func (f foreignConn) CloseWrite() error       { return f.Conn.(*net.TCPConn).CloseWrite() }
func (f foreignConn) SetLinger(sec int) error { return f.Conn.(*net.TCPConn).SetLinger(sec) }

// servePair returns the test's end of a loopback connection and starts
// r.Serve on the other end, wrapped as a foreignConn, reporting from src.
// Serve's result arrives on the channel.
func servePair(t *testing.T, r *Rule, src netip.AddrPort, port uint16) (*net.TCPConn, <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer := dial(t, ln.Addr().String())
	acc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Serve(foreignConn{acc}, src, port) }()
	return peer, done
}

func waitServe(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
		return nil
	}
}

var tunnelSrc = netip.MustParseAddrPort("100.88.0.2:40123")

// TestServeForeignClient: a connection given to Serve is relayed both
// ways with half-close, listed with the source Serve was given, counted,
// and Serve returns once it has finished.
func TestServeForeignClient(t *testing.T) {
	dev := newDevice(t, func(c *net.TCPConn) {
		n, _ := io.Copy(io.Discard, c) // until the client's half-close
		fmt.Fprintf(c, "got %d bytes", n)
	})
	r, _ := startRule(t, Spec{TargetPorts: []uint16{dev.port}})
	peer, done := servePair(t, r, tunnelSrc, dev.port)
	payload := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	if _, err := peer.Write(payload); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the served connection to be listed", func() bool { return len(r.Conns()) == 1 })
	conns := r.Conns()
	if len(conns) != 1 || conns[0].Client != tunnelSrc || conns[0].Proto != "tcp" {
		t.Fatalf("Conns() = %+v, want one tcp connection from %s", conns, tunnelSrc)
	}
	peer.CloseWrite()
	peer.SetReadDeadline(time.Now().Add(10 * time.Second))
	answer, err := io.ReadAll(peer)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("got %d bytes", len(payload)); string(answer) != want {
		t.Fatalf("answer %q, want %q", answer, want)
	}
	if err := waitServe(t, done); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	s := r.Stats().Snapshot()
	if s.Total != 1 || s.Active != 0 || s.BytesIn != uint64(len(payload)) || s.BytesOut != uint64(len(answer)) {
		t.Fatalf("stats %+v: want 1 connection, none active, %d bytes in, %d out", s, len(payload), len(answer))
	}
	if n := len(r.Conns()); n != 0 {
		t.Fatalf("%d connections still listed after Serve returned", n)
	}
}

type handlerFunc func(ctx context.Context, c *Conn) error

func (f handlerFunc) ServeConn(ctx context.Context, c *Conn) error { return f(ctx, c) }

// TestServeRunsHandler: a rule's Handler gets the connection given to
// Serve, as it is, with the source Serve was given, and dials the port
// Serve named.
func TestServeRunsHandler(t *testing.T) {
	dev := newDevice(t, func(c *net.TCPConn) { c.Write([]byte("device")) })
	other := newDevice(t, func(c *net.TCPConn) { c.Write([]byte("other")) })
	r, _ := startRule(t, Spec{
		Ports:       []uint16{freePort(t), freePort(t)},
		TargetPorts: []uint16{other.port, dev.port},
		Handler: handlerFunc(func(ctx context.Context, c *Conn) error {
			if _, ok := c.ClientConn().(foreignConn); !ok {
				return fmt.Errorf("handler got a %T", c.ClientConn())
			}
			d, err := c.Dial(ctx)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.ClientConn(), "handled %s, ", c.Client)
			return c.Relay(c.ClientConn(), d)
		}),
	})
	peer, done := servePair(t, r, tunnelSrc, dev.port)
	peer.CloseWrite()
	peer.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(peer)
	if err != nil {
		t.Fatal(err)
	}
	if want := "handled " + tunnelSrc.String() + ", device"; string(got) != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if err := waitServe(t, done); err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

// TestServeRefused: Admit judges a connection given to Serve; a refusal
// resets the client, is counted, and Serve says so.
func TestServeRefused(t *testing.T) {
	dev := newDevice(t, func(c *net.TCPConn) { c.Write([]byte("must not be seen")) })
	var asked netip.AddrPort
	r, _ := startRule(t, Spec{TargetPorts: []uint16{dev.port}, Admit: func(src netip.AddrPort, proto string) (func(), error) {
		asked = src
		return nil, fmt.Errorf("%w: not on the allow list", ErrRefused)
	}})
	peer, done := servePair(t, r, tunnelSrc, dev.port)
	if err := waitServe(t, done); !errors.Is(err, ErrRefused) {
		t.Fatalf("Serve: %v, want ErrRefused", err)
	}
	if asked != tunnelSrc {
		t.Fatalf("Admit asked about %s, want %s", asked, tunnelSrc)
	}
	peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(peer); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("client read: %v, want a reset", err)
	}
	if s := r.Stats().Snapshot(); s.Refused != 1 || s.Total != 0 {
		t.Fatalf("stats %+v: want 1 refused, 0 served", s)
	}
}

// TestServeKillAndClose: Kill cuts a served connection like an accepted
// one, and Serve returns; a closing rule refuses; a port the rule does not
// forward is an error.
func TestServeKillAndClose(t *testing.T) {
	dev := newDevice(t, func(c *net.TCPConn) { io.Copy(io.Discard, c) })
	r, _ := startRule(t, Spec{TargetPorts: []uint16{dev.port}})
	peer, done := servePair(t, r, tunnelSrc, dev.port)
	peer.Write([]byte("hello"))
	waitFor(t, "the served connection to be listed", func() bool { return len(r.Conns()) == 1 })
	if !r.Kill(r.Conns()[0].ID) {
		t.Fatal("Kill did not find the served connection")
	}
	if err := waitServe(t, done); err != nil {
		t.Fatalf("Serve after Kill: %v", err)
	}
	peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(peer); err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("client after Kill: %v", err)
	}

	_, done = servePair(t, r, tunnelSrc, dev.port+1)
	if err := waitServe(t, done); err == nil {
		t.Fatal("Serve to a port the rule does not forward succeeded")
	}

	// A connection in progress ends with the rule.
	peer, done = servePair(t, r, tunnelSrc, dev.port)
	peer.Write([]byte("hello"))
	waitFor(t, "the served connection to be listed", func() bool { return len(r.Conns()) == 1 })
	r.Close()
	if err := waitServe(t, done); err != nil {
		t.Fatalf("Serve during Close: %v", err)
	}
	_, done = servePair(t, r, tunnelSrc, dev.port)
	if err := waitServe(t, done); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Serve on a closed rule: %v, want net.ErrClosed", err)
	}
}

// TestServeResetPropagates: a device reset reaches a served client as a
// reset, and a client reset reaches the device, as for accepted
// connections (#13.9).
func TestServeResetPropagates(t *testing.T) {
	t.Run("device resets", func(t *testing.T) {
		dev := newDevice(t, func(c *net.TCPConn) {
			c.Read(make([]byte, 64))
			c.Write([]byte("partial"))
			time.Sleep(50 * time.Millisecond)
			c.SetLinger(0)
		})
		r, _ := startRule(t, Spec{TargetPorts: []uint16{dev.port}})
		peer, done := servePair(t, r, tunnelSrc, dev.port)
		peer.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
		peer.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadAll(peer); !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("client read: %v, want a reset", err)
		}
		waitServe(t, done)
	})
	t.Run("client resets", func(t *testing.T) {
		got := make(chan error, 1)
		dev := newDevice(t, func(c *net.TCPConn) {
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err := io.ReadAll(c)
			got <- err
		})
		r, _ := startRule(t, Spec{TargetPorts: []uint16{dev.port}})
		peer, done := servePair(t, r, tunnelSrc, dev.port)
		peer.Write([]byte("hello"))
		time.Sleep(50 * time.Millisecond)
		peer.SetLinger(0)
		peer.Close()
		if err := <-got; !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("device read: %v, want a reset", err)
		}
		waitServe(t, done)
	})
}

// TestServeOnlyRule: a rule without ports listens nowhere and serves
// what Serve gives it; UDP needs ports.
func TestServeOnlyRule(t *testing.T) {
	dev := newDevice(t, func(c *net.TCPConn) { c.Write([]byte("device")) })
	r, err := Bind(Spec{Name: "tunnel-only", Target: "127.0.0.1", TargetPorts: []uint16{dev.port}, TCP: true})
	if err != nil {
		t.Fatal(err)
	}
	r.Start()
	defer r.Close()
	if a := r.Addrs(); len(a) != 0 {
		t.Fatalf("a rule without ports listens on %v", a)
	}
	peer, done := servePair(t, r, tunnelSrc, dev.port)
	peer.CloseWrite()
	peer.SetReadDeadline(time.Now().Add(10 * time.Second))
	if got, err := io.ReadAll(peer); err != nil || string(got) != "device" {
		t.Fatalf("got %q, %v; want %q", got, err, "device")
	}
	if err := waitServe(t, done); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if _, err := Bind(Spec{Name: "udp", Target: "127.0.0.1", TargetPorts: []uint16{dev.port}, UDP: true}); err == nil {
		t.Fatal("a UDP rule without ports was bound")
	}
}

// TestServeAcceptAdmitsFirst: ServeAccept completes the handshake only
// for an admitted connection; a refused one is never accepted.
func TestServeAcceptAdmitsFirst(t *testing.T) {
	dev := newDevice(t, func(c *net.TCPConn) { c.Write([]byte("device")) })
	refuse := true
	r, _ := startRule(t, Spec{TargetPorts: []uint16{dev.port}, Admit: func(netip.AddrPort, string) (func(), error) {
		if refuse {
			return nil, ErrRefused
		}
		return nil, nil
	}})
	accepted := 0
	err := r.ServeAccept(tunnelSrc, dev.port, func() (net.Conn, error) {
		accepted++
		return nil, errors.New("must not be called")
	})
	if !errors.Is(err, ErrRefused) || accepted != 0 {
		t.Fatalf("refused: ServeAccept = %v after %d accepts; want ErrRefused and none", err, accepted)
	}

	refuse = false
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer := dial(t, ln.Addr().String())
	done := make(chan error, 1)
	go func() {
		done <- r.ServeAccept(tunnelSrc, dev.port, func() (net.Conn, error) {
			accepted++
			c, err := ln.Accept()
			return foreignConn{c}, err
		})
	}()
	peer.CloseWrite()
	peer.SetReadDeadline(time.Now().Add(10 * time.Second))
	if got, err := io.ReadAll(peer); err != nil || string(got) != "device" {
		t.Fatalf("got %q, %v; want %q", got, err, "device")
	}
	if err := waitServe(t, done); err != nil || accepted != 1 {
		t.Fatalf("admitted: ServeAccept = %v after %d accepts; want nil and 1", err, accepted)
	}
	if s := r.Stats().Snapshot(); s.Refused != 1 || s.Total != 1 || s.Active != 0 {
		t.Fatalf("stats %+v: want 1 refused, 1 served, none active", s)
	}
}
