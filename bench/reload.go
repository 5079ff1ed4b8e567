package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// P6: camgate forwards rule A to an echo backend while p6Flows
// connections ping-pong through it as fast as they can. Each trial appends
// a new rule B_i to the YAML file and sends SIGHUP, then dials B_i's port
// until a connection is accepted and a byte comes back through it: the
// time from the signal to that echo is the trial's figure. Afterwards
// every flow on A must still be running, with no error and no stall.
const (
	p6Flows   = 32
	p6Message = 512
	p6Stall   = 2 * time.Second
)

func (h *harness) measureReload(ctx context.Context) {
	if !slices.Contains(h.opts.peers, peerCamgate) {
		return
	}
	ms, drops, detail, err := h.reloadRun(ctx)
	if err != nil {
		h.recordErr("p6_ms", peerCamgate, err)
		return
	}
	h.record(Result{Metric: "p6_ms", Peer: peerCamgate, Value: ms, Detail: detail})
	h.record(Result{Metric: "p6_drops", Peer: peerCamgate, Value: float64(drops)})
}

func (h *harness) reloadRun(ctx context.Context) (worstMS float64, drops int, detail map[string]float64, err error) {
	echo, err := startTCPEcho()
	if err != nil {
		return 0, 0, nil, err
	}
	defer echo.close()
	lport, err := h.ports.get()
	if err != nil {
		return 0, 0, nil, err
	}
	routes := []route{{name: "rule-a", proto: "tcp", listen: lport, target: echo.port}}
	in, err := h.startPeer(ctx, peerCamgate, routes, peerOpts{})
	if err != nil {
		return 0, 0, nil, err
	}
	defer h.stopPeer(in)

	flows := make([]*p6Flow, p6Flows)
	var fwg sync.WaitGroup
	stop := make(chan struct{})
	for i := range flows {
		c, err := net.DialTimeout("tcp4", in.addr(0), 5*time.Second)
		if err != nil {
			close(stop)
			fwg.Wait()
			return 0, 0, nil, fmt.Errorf("open flow %d on rule A: %w", i, err)
		}
		flows[i] = &p6Flow{conn: c}
		fwg.Add(1)
		go flows[i].run(stop, &fwg)
	}
	defer func() {
		close(stop)
		for _, f := range flows {
			f.conn.Close()
		}
		fwg.Wait()
	}()
	sleepCtx(ctx, 500*time.Millisecond)
	before := sumRounds(flows)

	var took []float64
	for i := range h.opts.p6Trials {
		if ctx.Err() != nil {
			return 0, 0, nil, ctx.Err()
		}
		port, err := h.ports.get()
		if err != nil {
			return 0, 0, nil, err
		}
		routes = append(slices.Clone(routes), route{name: fmt.Sprintf("rule-b%d", i+1), proto: "tcp", listen: port, target: echo.port})
		t0 := time.Now()
		if err := in.reload(routes); err != nil {
			return 0, 0, nil, err
		}
		if err := pollEcho(ctx, fmt.Sprintf("127.0.0.1:%d", port), 10*time.Second); err != nil {
			return 0, 0, nil, fmt.Errorf("trial %d: rule-b%d never forwarded: %w", i+1, i+1, err)
		}
		ms := float64(time.Since(t0).Microseconds()) / 1000
		took = append(took, ms)
		h.logf("p6 trial %d: rule-b%d forwarding %.1f ms after SIGHUP", i+1, i+1, ms)
		sleepCtx(ctx, 300*time.Millisecond)
	}
	// Every flow must still be moving after the last reload.
	sleepCtx(ctx, time.Second)
	for _, f := range flows {
		if f.failed() {
			drops++
		}
	}
	after := sumRounds(flows)
	if err := in.alive(); err != nil {
		return 0, 0, nil, err
	}
	sorted := slices.Clone(took)
	slices.Sort(sorted)
	detail = map[string]float64{
		"trials": float64(len(took)), "median_ms": sorted[len(sorted)/2], "best_ms": sorted[0],
		"flows": p6Flows, "round_trips": float64(after - before),
	}
	return sorted[len(sorted)-1], drops, detail, nil
}

// pollEcho dials addr until a connection echoes a byte.
func pollEcho(ctx context.Context, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c, err := net.DialTimeout("tcp4", addr, time.Second)
		if err == nil {
			err = echoByte(c, 'b')
			c.Close()
			if err == nil {
				return nil
			}
		}
		last = err
		time.Sleep(200 * time.Microsecond)
	}
	return last
}

// p6Flow is one long-lived connection on rule A.
type p6Flow struct {
	conn   net.Conn
	rounds atomic.Int64
	// lastAt is when the last round trip completed (unix nanoseconds).
	lastAt atomic.Int64
	err    atomic.Pointer[error]
}

func (f *p6Flow) run(stop <-chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	out := bytes.Repeat([]byte("camgate!"), p6Message/8)
	in := make([]byte, p6Message)
	f.lastAt.Store(time.Now().UnixNano())
	for {
		select {
		case <-stop:
			return
		default:
		}
		_ = f.conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := f.conn.Write(out); err != nil {
			f.fail(err, stop)
			return
		}
		if _, err := io.ReadFull(f.conn, in); err != nil {
			f.fail(err, stop)
			return
		}
		if !bytes.Equal(in, out) {
			f.fail(errors.New("echo corrupted"), stop)
			return
		}
		f.rounds.Add(1)
		f.lastAt.Store(time.Now().UnixNano())
	}
}

func (f *p6Flow) fail(err error, stop <-chan struct{}) {
	select {
	case <-stop:
		return // closed by the harness
	default:
	}
	f.err.Store(&err)
}

// failed reports an error or a stall longer than p6Stall.
func (f *p6Flow) failed() bool {
	return f.err.Load() != nil || time.Since(time.Unix(0, f.lastAt.Load())) > p6Stall
}

func sumRounds(fs []*p6Flow) int64 {
	var n int64
	for _, f := range fs {
		n += f.rounds.Load()
	}
	return n
}

// tcpEcho is an in-process echo backend for P6 and the soak.
type tcpEcho struct {
	ln   net.Listener
	port uint16
	wg   sync.WaitGroup

	mu    sync.Mutex // guards following
	conns map[net.Conn]bool
}

func startTCPEcho() (*tcpEcho, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	e := &tcpEcho{ln: ln, port: uint16(ln.Addr().(*net.TCPAddr).Port), conns: map[net.Conn]bool{}}
	e.wg.Add(1)
	go e.serve()
	return e, nil
}

func (e *tcpEcho) serve() {
	defer e.wg.Done()
	for {
		c, err := e.ln.Accept()
		if err != nil {
			return
		}
		e.mu.Lock()
		e.conns[c] = true
		e.mu.Unlock()
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			defer func() {
				e.mu.Lock()
				delete(e.conns, c)
				e.mu.Unlock()
				c.Close()
			}()
			buf := make([]byte, 4096)
			for {
				n, err := c.Read(buf)
				if n > 0 {
					if _, werr := c.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
}

func (e *tcpEcho) close() {
	e.ln.Close()
	e.mu.Lock()
	for c := range e.conns {
		c.Close()
	}
	e.mu.Unlock()
	e.wg.Wait()
}
