package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/ipv4"
)

// The UDP measure (P4) sends datagrams through a peer to an echo backend
// and counts the echoes that come back. Several client sessions (each its
// own socket, so each its own session in the peer) run at once. Each
// session keeps at most udpWindow datagrams in flight, so the load is
// clocked by the path rather than by how fast the harness can send: a
// sender flooding a 2-core machine would measure CPU contention, not the
// peer. A session that hears nothing for udpStall writes its in-flight
// datagrams off as lost and carries on. Both sides use recvmmsg/sendmmsg
// so that the harness spends as little CPU per datagram as possible.
const (
	udpSessions = 4
	udpWindow   = 64
	udpBatch    = 16
	udpStall    = 20 * time.Millisecond
)

func (h *harness) measureUDP(ctx context.Context) {
	for _, size := range []int{64, 1400} {
		id := fmt.Sprintf("udp%d", size)
		for _, peer := range h.opts.peers {
			if ctx.Err() != nil {
				return
			}
			if !supports(peer, "udp") {
				continue
			}
			r, err := h.udpOne(ctx, peer, size)
			if err != nil {
				h.recordErr(id, peer, err)
				continue
			}
			r.Metric, r.Peer = id, peer
			h.record(r)
			h.record(Result{Metric: id + "_loss", Peer: peer, Value: r.Detail["loss_pct"]})
			if c, ok := r.Detail["peer_cpu_seconds"]; ok {
				if cr, ok := cpuPerOp(id+"_cpu", peer, c, r.Detail["received"]); ok {
					h.record(cr)
				}
			}
		}
	}
}

func (h *harness) udpOne(ctx context.Context, peer string, size int) (Result, error) {
	echo, err := startUDPEcho()
	if err != nil {
		return Result{}, err
	}
	defer echo.close()
	lport, err := h.ports.get()
	if err != nil {
		return Result{}, err
	}
	in, err := h.startPeer(ctx, peer, []route{{name: "bench-udp", proto: "udp", listen: lport, target: echo.port}}, peerOpts{})
	if err != nil {
		return Result{}, err
	}
	defer h.stopPeer(in)
	cpu0, measured := in.cpuSeconds()
	r, err := udpLoad(ctx, in.addr(0), size, h.opts.duration)
	if err != nil {
		return r, err
	}
	if cpu1, _ := in.cpuSeconds(); measured {
		r.Detail["peer_cpu_seconds"] = cpu1 - cpu0
	}
	return r, in.alive()
}

// udpEcho is the backend: it sends every datagram back where it came from.
type udpEcho struct {
	conn *net.UDPConn
	port uint16
	done chan struct{}
}

func startUDPEcho() (*udpEcho, error) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	_ = c.SetReadBuffer(4 << 20)
	_ = c.SetWriteBuffer(4 << 20)
	e := &udpEcho{conn: c, port: uint16(c.LocalAddr().(*net.UDPAddr).Port), done: make(chan struct{})}
	go e.serve()
	return e, nil
}

func (e *udpEcho) close() {
	e.conn.Close()
	<-e.done
}

func (e *udpEcho) serve() {
	defer close(e.done)
	pc := ipv4.NewPacketConn(e.conn)
	msgs := make([]ipv4.Message, 64)
	bufs := make([][]byte, len(msgs))
	for i := range msgs {
		bufs[i] = make([]byte, 2048)
		msgs[i].Buffers = [][]byte{bufs[i]}
	}
	out := make([]ipv4.Message, len(msgs))
	for {
		n, err := pc.ReadBatch(msgs, 0)
		if err != nil {
			return
		}
		m := 0
		for i := range n {
			// rinetd 0.73 opens each UDP session by sending an empty
			// datagram, and tears the session down if an empty datagram
			// comes back; a device would not answer it either.
			if msgs[i].N == 0 {
				continue
			}
			out[m] = ipv4.Message{Buffers: [][]byte{bufs[i][:msgs[i].N]}, Addr: msgs[i].Addr}
			m++
		}
		for w := 0; w < m; {
			k, err := pc.WriteBatch(out[w:m], 0)
			if err != nil {
				break // the sender's socket is gone (ICMP unreachable): drop
			}
			w += k
		}
	}
}

// udpLoad runs udpSessions windowed echo sessions against addr for d.
func udpLoad(ctx context.Context, addr string, size int, d time.Duration) (Result, error) {
	raddr, err := net.ResolveUDPAddr("udp4", addr)
	if err != nil {
		return Result{}, err
	}
	var sent, recv atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errc := make(chan error, udpSessions)
	for s := range udpSessions {
		c, err := net.DialUDP("udp4", nil, raddr)
		if err != nil {
			close(stop)
			wg.Wait()
			return Result{}, err
		}
		_ = c.SetReadBuffer(4 << 20)
		_ = c.SetWriteBuffer(4 << 20)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := udpSession(c, uint32(s), size, stop, &sent, &recv); err != nil {
				errc <- err
			}
		}()
	}
	t0 := time.Now()
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
	close(stop)
	wg.Wait()
	el := time.Since(t0).Seconds()
	close(errc)
	for err := range errc {
		return Result{}, err
	}
	if ctx.Err() != nil {
		return Result{}, ctx.Err()
	}
	s, r := sent.Load(), recv.Load()
	if r == 0 {
		return Result{}, errors.New("no datagram came back")
	}
	loss := 0.0
	if s > 0 {
		loss = 100 * float64(s-r) / float64(s)
	}
	return Result{Value: float64(r) / el / 1000, Detail: map[string]float64{
		"sent": float64(s), "received": float64(r), "loss_pct": loss, "seconds": el, "size": float64(size),
	}}, nil
}

// udpSession drives one client socket until stop is closed, then waits a
// little for the last echoes.
func udpSession(c *net.UDPConn, id uint32, size int, stop <-chan struct{}, sent, recv *atomic.Int64) error {
	defer c.Close()
	var mySent, myRecv, writtenOff atomic.Int64
	credit := make(chan struct{}, 1)
	rdone := make(chan struct{})
	go func() {
		defer close(rdone)
		pc := ipv4.NewPacketConn(c)
		msgs := make([]ipv4.Message, udpBatch)
		for i := range msgs {
			msgs[i].Buffers = [][]byte{make([]byte, 2048)}
		}
		for {
			n, err := pc.ReadBatch(msgs, 0)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					return
				}
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue // ECONNREFUSED from an ICMP error: keep reading
			}
			good := 0
			for i := range n {
				if msgs[i].N == size {
					good++
				}
			}
			myRecv.Add(int64(good))
			recv.Add(int64(good))
			select {
			case credit <- struct{}{}:
			default:
			}
		}
	}()

	pc := ipv4.NewPacketConn(c)
	msgs := make([]ipv4.Message, udpBatch)
	for i := range msgs {
		msgs[i].Buffers = [][]byte{make([]byte, size)}
	}
	var seq uint32
	lastRecv, lastProgress := int64(0), time.Now()
	timer := time.NewTimer(udpStall)
	defer timer.Stop()
loop:
	for {
		select {
		case <-stop:
			break loop
		default:
		}
		inflight := mySent.Load() - myRecv.Load() - writtenOff.Load()
		if room := udpWindow - inflight; room > 0 {
			k := int(min(room, udpBatch))
			for i := range k {
				b := msgs[i].Buffers[0]
				binary.BigEndian.PutUint32(b[0:4], id)
				binary.BigEndian.PutUint32(b[4:8], seq)
				seq++
			}
			w, err := pc.WriteBatch(msgs[:k], 0)
			if err != nil {
				// ECONNREFUSED: the peer's socket is not there (yet);
				// count the attempt as sent and lost.
				w = k
			}
			mySent.Add(int64(w))
			sent.Add(int64(w))
			continue
		}
		timer.Reset(udpStall)
		select {
		case <-stop:
			break loop
		case <-credit:
		case <-timer.C:
		}
		if r := myRecv.Load(); r != lastRecv {
			lastRecv, lastProgress = r, time.Now()
		} else if time.Since(lastProgress) >= udpStall {
			writtenOff.Store(mySent.Load() - r)
			lastProgress = time.Now()
		}
	}
	// Wait for the echoes still in flight, then stop the reader.
	_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	<-rdone
	return nil
}
