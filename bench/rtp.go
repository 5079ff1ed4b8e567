package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/ipv4"
)

// P5 models cameras streaming RTP over UDP to viewers through the
// gateway: each viewer's socket opens a session with a "hello" datagram
// (and repeats it every second, as RTCP receiver reports would), and the
// "camera" backend then streams to the address the hello came from at
// --p5-mbps, in 1,328-byte datagrams (a 12-byte RTP header and seven
// 188-byte MPEG-TS packets). Each datagram carries its stream and
// sequence number, so the viewer can count losses and datagrams that
// arrive after a later one (reordering). The camera paces every stream
// on a 1 ms tick with staggered phases, so bursts stay small.
const (
	rtpSize      = 1328
	rtpHello     = "HELO"
	rtpHelloFreq = time.Second
)

func (h *harness) measureRTP(ctx context.Context) {
	for _, peer := range h.opts.p5Peers {
		if ctx.Err() != nil {
			return
		}
		if !supports(peer, "udp") {
			continue
		}
		loss, reorder, err := h.rtpOne(ctx, peer)
		if err != nil {
			h.recordErr("p5_loss", peer, err)
			continue
		}
		h.record(loss)
		h.record(reorder)
	}
}

func (h *harness) rtpOne(ctx context.Context, peer string) (Result, Result, error) {
	camConn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return Result{}, Result{}, err
	}
	_ = camConn.SetWriteBuffer(4 << 20)
	cam := newRTPCamera(camConn, h.opts.p5Streams)
	defer cam.close()
	lport, err := h.ports.get()
	if err != nil {
		return Result{}, Result{}, err
	}
	in, err := h.startPeer(ctx, peer, []route{{name: "bench-rtp", proto: "udp", listen: lport, target: uint16(camConn.LocalAddr().(*net.UDPAddr).Port)}}, peerOpts{})
	if err != nil {
		return Result{}, Result{}, err
	}
	defer h.stopPeer(in)
	st, err := runRTP(ctx, cam, in.addr(0), h.opts.p5Streams, h.opts.p5Mbps, h.opts.p5Duration)
	if err != nil {
		return Result{}, Result{}, err
	}
	if err := in.alive(); err != nil {
		return Result{}, Result{}, err
	}
	h.logf("p5 %-8s %d streams × %.1f Mb/s for %s: sent %d, received %d, lost %d, reordered %d, duplicated %d",
		peer, h.opts.p5Streams, h.opts.p5Mbps, h.opts.p5Duration, st.sent, st.unique, st.lost, st.reordered, st.dups)
	d := map[string]float64{
		"streams": float64(h.opts.p5Streams), "mbps_each": h.opts.p5Mbps, "seconds": h.opts.p5Duration.Seconds(),
		"sent": float64(st.sent), "received": float64(st.unique), "duplicated": float64(st.dups),
		"worst_stream_lost": float64(st.worstLost), "streams_with_loss": float64(st.streamsWithLoss),
	}
	return Result{Metric: "p5_loss", Peer: peer, Value: float64(st.lost), Detail: d},
		Result{Metric: "p5_reorder", Peer: peer, Value: float64(st.reordered)}, nil
}

type rtpStats struct {
	sent, unique, lost, reordered, dups, worstLost int64
	streamsWithLoss                                int64
}

// rtpViewer is one receiving socket and its sequence bookkeeping.
type rtpViewer struct {
	id   uint16
	conn *net.UDPConn
	to   *net.UDPAddr // where hellos go when conn is not connected

	mu        sync.Mutex // guards following
	seen      []uint64   // bitmap of sequence numbers received
	maxSeq    int64
	unique    int64
	reordered int64
	dups      int64
}

func (v *rtpViewer) note(seq uint32) {
	v.mu.Lock()
	defer v.mu.Unlock()
	w := int(seq / 64)
	for w >= len(v.seen) {
		v.seen = append(v.seen, 0)
	}
	bit := uint64(1) << (seq % 64)
	if v.seen[w]&bit != 0 {
		v.dups++
		return
	}
	v.seen[w] |= bit
	v.unique++
	if int64(seq) < v.maxSeq {
		v.reordered++
	} else {
		v.maxSeq = int64(seq)
	}
}

func (v *rtpViewer) read(wg *sync.WaitGroup) {
	defer wg.Done()
	buf := make([]byte, 2048)
	for {
		n, err := v.conn.Read(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return
			}
			continue
		}
		if n != rtpSize || binary.BigEndian.Uint16(buf[0:2]) != v.id {
			continue
		}
		v.note(binary.BigEndian.Uint32(buf[2:6]))
	}
}

func (v *rtpViewer) hello() {
	b := make([]byte, 6)
	copy(b, rtpHello)
	binary.BigEndian.PutUint16(b[4:6], v.id)
	if v.to != nil {
		_, _ = v.conn.WriteToUDP(b, v.to)
		return
	}
	_, _ = v.conn.Write(b)
}

// rtpCamera is the backend: it learns each viewer's address from its
// hellos and streams to it.
type rtpCamera struct {
	conn *net.UDPConn
	dest []atomic.Pointer[net.UDPAddr] // by stream id
	done chan struct{}
}

func newRTPCamera(conn *net.UDPConn, maxStreams int) *rtpCamera {
	c := &rtpCamera{conn: conn, dest: make([]atomic.Pointer[net.UDPAddr], maxStreams), done: make(chan struct{})}
	go c.listen()
	return c
}

func (c *rtpCamera) listen() {
	defer close(c.done)
	buf := make([]byte, 64)
	for {
		n, from, err := c.conn.ReadFromUDP(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if n == 6 && string(buf[:4]) == rtpHello {
			if id := int(binary.BigEndian.Uint16(buf[4:6])); id < len(c.dest) {
				c.dest[id].Store(from)
			}
		}
	}
}

// close closes the socket and waits for the listener to end.
func (c *rtpCamera) close() {
	c.conn.Close()
	<-c.done
}

// runRTP streams for d and returns the viewers' tally.
func runRTP(ctx context.Context, cam *rtpCamera, addr string, streams int, mbps float64, d time.Duration) (rtpStats, error) {
	return runRTPWith(ctx, cam, func(int, *net.UDPAddr) (string, error) { return addr, nil }, streams, mbps, d)
}

// runRTPWith is runRTP with each viewer's destination given by dial,
// called with the viewer's bound local address (the RTSP relay's viewers
// name it in SETUP first).
func runRTPWith(ctx context.Context, cam *rtpCamera, dial func(i int, local *net.UDPAddr) (string, error), streams int, mbps float64, d time.Duration) (rtpStats, error) {
	if streams > len(cam.dest) {
		return rtpStats{}, fmt.Errorf("%d streams, camera has room for %d", streams, len(cam.dest))
	}
	dest := cam.dest[:streams]
	for i := range dest {
		dest[i].Store(nil)
	}

	viewers := make([]*rtpViewer, streams)
	var rwg sync.WaitGroup
	defer func() {
		for _, v := range viewers {
			if v != nil {
				v.conn.Close()
			}
		}
		rwg.Wait()
	}()
	for i := range viewers {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return rtpStats{}, err
		}
		_ = c.SetReadBuffer(2 << 20)
		addr, err := dial(i, c.LocalAddr().(*net.UDPAddr))
		if err != nil {
			c.Close()
			return rtpStats{}, err
		}
		raddr, err := net.ResolveUDPAddr("udp4", addr)
		if err != nil {
			c.Close()
			return rtpStats{}, err
		}
		viewers[i] = &rtpViewer{id: uint16(i), conn: c, to: raddr}
		rwg.Add(1)
		go viewers[i].read(&rwg)
	}

	// Open the sessions and wait until the camera knows every viewer.
	deadline := time.Now().Add(10 * time.Second)
	for {
		missing := 0
		for i, v := range viewers {
			if dest[i].Load() == nil {
				v.hello()
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			return rtpStats{}, fmt.Errorf("%d of %d streams never reached the camera", missing, streams)
		}
		if ctx.Err() != nil {
			return rtpStats{}, ctx.Err()
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Keep the sessions alive while streaming.
	stopHello := make(chan struct{})
	var hwg sync.WaitGroup
	hwg.Add(1)
	go func() {
		defer hwg.Done()
		t := time.NewTicker(rtpHelloFreq)
		defer t.Stop()
		for {
			select {
			case <-stopHello:
				return
			case <-t.C:
				for _, v := range viewers {
					v.hello()
				}
			}
		}
	}()

	sent, err := rtpStream(ctx, cam.conn, dest, streams, mbps, d)
	close(stopHello)
	hwg.Wait()
	if err != nil {
		return rtpStats{}, err
	}
	// Let the last datagrams arrive.
	time.Sleep(500 * time.Millisecond)
	for _, v := range viewers {
		_ = v.conn.SetReadDeadline(time.Now())
	}
	rwg.Wait()

	var st rtpStats
	for i, v := range viewers {
		v.mu.Lock()
		lost := sent[i] - v.unique
		st.sent += sent[i]
		st.unique += v.unique
		st.lost += lost
		st.reordered += v.reordered
		st.dups += v.dups
		st.worstLost = max(st.worstLost, lost)
		if lost > 0 {
			st.streamsWithLoss++
		}
		v.mu.Unlock()
	}
	return st, nil
}

// rtpStream paces every stream at mbps until d has passed and returns how
// many datagrams each stream sent.
func rtpStream(ctx context.Context, cam *net.UDPConn, dest []atomic.Pointer[net.UDPAddr], streams int, mbps float64, d time.Duration) ([]int64, error) {
	pps := mbps * 1e6 / 8 / rtpSize
	interval := 1 / pps // seconds between datagrams of one stream
	sent := make([]int64, streams)
	pc := ipv4.NewPacketConn(cam)
	var bufs [][]byte // reused every tick: the kernel copies on send
	msgs := make([]ipv4.Message, 0, 1024)
	t0 := time.Now()
	for {
		el := time.Since(t0)
		if el >= d {
			return sent, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		msgs = msgs[:0]
		for i := range streams {
			// Stagger the streams' phases across one interval.
			due := int64(math.Floor(el.Seconds()/interval + float64(i)/float64(streams)))
			for ; sent[i] < due; sent[i]++ {
				if len(msgs) == len(bufs) {
					bufs = append(bufs, make([]byte, rtpSize))
				}
				b := bufs[len(msgs)]
				binary.BigEndian.PutUint16(b[0:2], uint16(i))
				binary.BigEndian.PutUint32(b[2:6], uint32(sent[i]))
				msgs = append(msgs, ipv4.Message{Buffers: [][]byte{b}, Addr: dest[i].Load()})
			}
		}
		for w := 0; w < len(msgs); {
			k, err := pc.WriteBatch(msgs[w:], 0)
			if err != nil {
				// A send error (ICMP unreachable from a vanished session)
				// loses that datagram; the viewer will count it.
				k = max(k, 1)
			}
			w += k
		}
		time.Sleep(time.Millisecond)
	}
}
