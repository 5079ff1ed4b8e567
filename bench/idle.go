package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// The idle measure holds N connections through a peer and reads the
// peer's /proc figures before and after. Connections are held by two
// helper processes, the harness itself re-executed as "holdclient" and
// "holdserver", so each side's N file descriptors count against its own
// RLIMIT_NOFILE: 9,000 connections cost 9,000 fds in each helper and
// whatever the peer needs, within the hard limit of 20,000 everywhere.
//
// A connection counts as forwarded only when it is proven end to end: the
// client writes a byte and reads the backend's echo of it when it opens,
// and again after the measurement ("check"), through the same socket.

// holdReply is one JSON line from a helper.
type holdReply struct {
	Listen   string         `json:"listen,omitempty"`
	OK       int            `json:"ok"`
	Failed   int            `json:"failed"`
	Errors   map[string]int `json:"errors,omitempty"`
	Seconds  float64        `json:"seconds,omitempty"`
	Alive    int            `json:"alive"`
	Accepted int64          `json:"accepted"`
	Echoed   int64          `json:"echoed"`
	Open     int64          `json:"open"`
}

// helper is a running holdclient or holdserver: commands go to its stdin,
// one JSON reply per line comes back on its stdout.
type helper struct {
	c   *child
	in  io.WriteCloser
	out *bufio.Scanner
}

func (h *harness) startHelper(name string, args ...string) (*helper, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, append([]string{name}, args...)...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	c, err := h.procs.startCmd(name, nil, nil, cmd)
	if err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	return &helper{c: c, in: stdin, out: sc}, nil
}

// call sends cmd (if not empty) and waits up to timeout for the reply.
func (hp *helper) call(ctx context.Context, cmd string, timeout time.Duration) (holdReply, error) {
	if cmd != "" {
		if _, err := io.WriteString(hp.in, cmd+"\n"); err != nil {
			return holdReply{}, fmt.Errorf("%s: send %q: %w", hp.c.name, cmd, err)
		}
	}
	type res struct {
		r   holdReply
		err error
	}
	ch := make(chan res, 1)
	go func() {
		if !hp.out.Scan() {
			err := hp.out.Err()
			if err == nil {
				err = io.EOF
			}
			ch <- res{err: fmt.Errorf("%s exited: %w\n%s", hp.c.name, err, hp.c.logTail())}
			return
		}
		var r holdReply
		err := json.Unmarshal(hp.out.Bytes(), &r)
		ch <- res{r, err}
	}()
	select {
	case x := <-ch:
		return x.r, x.err
	case <-time.After(timeout):
		return holdReply{}, fmt.Errorf("%s: no reply to %q in %s", hp.c.name, cmd, timeout)
	case <-ctx.Done():
		return holdReply{}, ctx.Err()
	}
}

// measureIdle is both the "idle" measure (prefix idle_, --conns) and P3
// (prefix p3_, --p3-conns).
func (h *harness) measureIdle(ctx context.Context, peers []string, n int, prefix string) {
	for _, peer := range peers {
		if ctx.Err() != nil {
			return
		}
		rs, err := h.idleOne(ctx, peer, n, prefix)
		if err != nil {
			h.recordErr(prefix+"_fwd", peer, err)
			continue
		}
		for _, r := range rs {
			h.record(r)
		}
		// Let the closed connections' TIME_WAIT and the helpers go away.
		sleepCtx(ctx, time.Second)
	}
}

func (h *harness) idleOne(ctx context.Context, peer string, n int, prefix string) ([]Result, error) {
	srv, err := h.startHelper("holdserver")
	if err != nil {
		return nil, err
	}
	defer h.procs.stopChild(srv.c)
	hello, err := srv.call(ctx, "", 10*time.Second)
	if err != nil {
		return nil, err
	}
	_, sp, _ := net.SplitHostPort(hello.Listen)
	sport, _ := strconv.Atoi(sp)

	lport, err := h.ports.get()
	if err != nil {
		return nil, err
	}
	o := peerOpts{}
	if peer == peerCamgate {
		o.schedTrace = time.Second
	}
	in, err := h.startPeer(ctx, peer, []route{{name: "bench-idle", proto: "tcp", listen: lport, target: uint16(sport)}}, o)
	if err != nil {
		return nil, err
	}
	defer h.stopPeer(in)
	sleepCtx(ctx, 500*time.Millisecond)
	base, baseErr := in.usageWithGoroutines(ctx)

	cl, err := h.startHelper("holdclient", "--addr", in.addr(0), "--n", strconv.Itoa(n))
	if err != nil {
		return nil, err
	}
	defer h.procs.stopChild(cl.c)
	opened, err := cl.call(ctx, "", 10*time.Minute)
	if err != nil {
		return nil, err
	}
	h.logf("%s %-8s opened %d/%d in %.1fs%s", prefix, peer, opened.OK, n, opened.Seconds, fmtErrors(opened.Errors))
	// Let the peer finish its per-connection setup and the Go runtime
	// settle before reading its cost.
	sleepCtx(ctx, 2*time.Second)
	held, heldErr := in.usageWithGoroutines(ctx)
	check, err := cl.call(ctx, "check", 2*time.Minute)
	if err != nil {
		return nil, err
	}
	stats, err := srv.call(ctx, "stats", 10*time.Second)
	if err != nil {
		return nil, err
	}
	if _, err := cl.call(ctx, "close", time.Minute); err != nil {
		return nil, err
	}
	sleepCtx(ctx, 2*time.Second)
	after, _ := in.usageWithGoroutines(ctx)
	if err := in.alive(); err != nil {
		return nil, err
	}

	detail := map[string]float64{
		"wanted": float64(n), "opened": float64(opened.OK), "open_failed": float64(opened.Failed),
		"alive_at_check": float64(check.Alive), "backend_accepted": float64(stats.Accepted), "open_seconds": opened.Seconds,
	}
	out := []Result{{Metric: prefix + "_fwd", Peer: peer, Value: float64(check.Alive), Detail: detail}}
	if peer == peerDirect || baseErr != nil || heldErr != nil {
		return out, nil
	}
	if opened.OK == 0 {
		return out, errors.New("no connection could be opened")
	}
	k := float64(opened.OK)
	for key, v := range map[string]float64{
		"base_fds": float64(base.FDs), "held_fds": float64(held.FDs), "after_close_fds": float64(after.FDs),
		"base_rss_kb": float64(base.RSSKB), "held_rss_kb": float64(held.RSSKB), "after_close_rss_kb": float64(after.RSSKB),
		"base_pss_kb": float64(base.PSSKB), "held_pss_kb": float64(held.PSSKB),
		"held_procs": float64(held.Procs), "held_threads": float64(held.Threads),
	} {
		detail[key] = v
	}
	fds := float64(held.FDs-base.FDs) / k
	rss := float64(held.RSSKB-base.RSSKB) / k
	pss := float64(held.PSSKB-base.PSSKB) / k
	out = append(out,
		Result{Metric: prefix + "_fds", Peer: peer, Value: fds},
		Result{Metric: prefix + "_kb", Peer: peer, Value: rss},
	)
	if prefix == "idle" {
		out = append(out, Result{Metric: "idle_pss", Peer: peer, Value: pss})
	} else {
		detail["pss_kb_per_conn"] = pss
	}
	if held.Goroutines >= 0 && base.Goroutines >= 0 {
		detail["base_goroutines"], detail["held_goroutines"] = float64(base.Goroutines), float64(held.Goroutines)
		detail["after_close_goroutines"] = float64(after.Goroutines)
		if prefix == "p3" {
			out = append(out, Result{Metric: "p3_gor", Peer: peer, Value: float64(held.Goroutines-base.Goroutines) / k})
		}
	}
	return out, nil
}

func fmtErrors(m map[string]int) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] })
	s := " errors:"
	for i, k := range keys {
		if i == 3 {
			break
		}
		s += fmt.Sprintf(" %d× %s;", m[k], k)
	}
	return s
}

// runHoldServer is the "holdserver" helper: it accepts connections, echoes
// what they send and keeps them open until the peer closes them.
// It prints {"listen": addr} once, then answers "stats" on stdin.
func runHoldServer(args []string) error {
	fs := flag.NewFlagSet("holdserver", flag.ContinueOnError)
	addr := fs.String("listen", "127.0.0.1:0", "listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if _, err := raiseNoFile(); err != nil {
		return err
	}
	ln, err := net.Listen("tcp4", *addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	var accepted, echoed, open atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			open.Add(1)
			go func() {
				defer open.Add(-1)
				defer c.Close()
				// A small plain loop, not io.Copy: io.Copy between two
				// TCP sockets would splice and hold a pipe per connection.
				buf := make([]byte, 64)
				first := true
				for {
					n, err := c.Read(buf)
					if n > 0 {
						if _, werr := c.Write(buf[:n]); werr != nil {
							return
						}
						if first {
							echoed.Add(1)
							first = false
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	enc := json.NewEncoder(os.Stdout)
	if err := enc.Encode(holdReply{Listen: ln.Addr().String()}); err != nil {
		return err
	}
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		if sc.Text() == "stats" {
			_ = enc.Encode(holdReply{Accepted: accepted.Load(), Echoed: echoed.Load(), Open: open.Load()})
		}
	}
	return nil
}

// runHoldClient is the "holdclient" helper: it opens --n connections to
// --addr, proves each one with a one-byte echo, prints the tally, and then
// serves commands on stdin: "check" proves every held connection again,
// "close" closes them all (with an RST if --rst), and EOF exits.
func runHoldClient(args []string) error {
	fs := flag.NewFlagSet("holdclient", flag.ContinueOnError)
	addr := fs.String("addr", "", "address to connect to")
	n := fs.Int("n", 1000, "connections to open")
	par := fs.Int("concurrency", 64, "connections opened at once")
	rst := fs.Bool("rst", false, "close with a reset (SO_LINGER 0) instead of a FIN")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if _, err := raiseNoFile(); err != nil {
		return err
	}
	enc := json.NewEncoder(os.Stdout)
	conns, rep := holdOpen(*addr, *n, *par)
	if err := enc.Encode(rep); err != nil {
		return err
	}
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		switch sc.Text() {
		case "check":
			_ = enc.Encode(holdReply{Alive: holdCheck(conns, *par)})
		case "close":
			for _, c := range conns {
				if *rst {
					_ = c.(*net.TCPConn).SetLinger(0)
				}
				c.Close()
			}
			_ = enc.Encode(holdReply{OK: len(conns)})
			conns = nil
		}
	}
	for _, c := range conns {
		c.Close()
	}
	return nil
}

// holdOpen opens n connections, par at a time, each proven by an echo.
func holdOpen(addr string, n, par int) ([]net.Conn, holdReply) {
	t0 := time.Now()
	var (
		mu    sync.Mutex // guards following
		conns []net.Conn
		errs  = map[string]int{}
	)
	jobs := make(chan struct{})
	var wg sync.WaitGroup
	for range par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				c, err := openProven(addr)
				mu.Lock()
				if err != nil {
					errs[errClass(err)]++
				} else {
					conns = append(conns, c)
				}
				mu.Unlock()
			}
		}()
	}
	for range n {
		jobs <- struct{}{}
	}
	close(jobs)
	wg.Wait()
	return conns, holdReply{OK: len(conns), Failed: n - len(conns), Errors: errs, Seconds: time.Since(t0).Seconds()}
}

func openProven(addr string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp4", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	if err := echoByte(c, 'x'); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// echoByte writes b and waits for it to come back.
func echoByte(c net.Conn, b byte) error {
	_ = c.SetDeadline(time.Now().Add(15 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write([]byte{b}); err != nil {
		return err
	}
	var got [1]byte
	if _, err := io.ReadFull(c, got[:]); err != nil {
		return err
	}
	if got[0] != b {
		return fmt.Errorf("echo: got %q, want %q", got[0], b)
	}
	return nil
}

// holdCheck proves every connection again and returns how many answered.
func holdCheck(conns []net.Conn, par int) int {
	var alive atomic.Int64
	jobs := make(chan net.Conn)
	var wg sync.WaitGroup
	for range par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range jobs {
				if echoByte(c, 'y') == nil {
					alive.Add(1)
				}
			}
		}()
	}
	for _, c := range conns {
		jobs <- c
	}
	close(jobs)
	wg.Wait()
	return int(alive.Load())
}

// errClass shortens an error to its kind, so thousands of failures print
// as a few lines.
func errClass(err error) string {
	var ne *net.OpError
	if errors.As(err, &ne) && ne.Err != nil {
		return ne.Op + ": " + ne.Err.Error()
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "closed by peer before the echo"
	}
	return err.Error()
}
