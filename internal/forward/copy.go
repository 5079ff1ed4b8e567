package forward

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Why the copy loop looks like this (measured; see docs/PERFORMANCE.md):
//
// A plain io.Copy between two *net.TCPConn uses splice(2), but Go takes a
// kernel pipe (2 fds) from its pool before it knows whether any data is
// coming, and holds it while the direction waits; and each direction is a
// goroutine parked for as long as the connection lives. A camera gateway
// holds thousands of mostly idle streams: 6 fds and about 15 KB of RSS per
// connection that way, against 2 fds and 3 KB for haproxy.
//
// Here a direction ("half") borrows what it needs only while data moves:
//
//   - each read starts with one read(2) into a pooled 16 KiB buffer, the
//     cheapest way to move a request or a keep-alive: no pipe, two
//     syscalls. A read that fills the buffer means more is queued, so the
//     direction switches to splice(2);
//   - splice moves data socket → pipe → socket without copying it to user
//     space, through a 1 MiB pipe borrowed from a pool for one splice in
//     and out. A splice that moves less than 16 KiB switches back to reads;
//   - while the source is empty the half waits in the runtime poller
//     holding neither buffer nor pipe (they are taken inside the poller
//     callback and given back on EAGAIN), and after linger of quiet it is
//     handed to the rule's epoll set and its goroutine ends (tcp.go pump,
//     poller.go).
//
// The poller callbacks are method values made once per half: a closure
// passed to RawConn.Read escapes, and was one allocation per read.

const (
	// readBufSize is the pooled buffer a burst starts with. 16 KiB holds
	// any HTTP request or RTSP exchange in one read, and a read that fills
	// it is the signal to splice.
	readBufSize = 16 << 10
	// copyBufSize is the pooled buffer of the portable copy (TLS, handler
	// connections that are not *net.TCPConn).
	copyBufSize = 32 << 10
	// pipeSize is the capacity asked of every pooled pipe: one splice(2)
	// then moves up to 1 MiB, the default /proc/sys/fs/pipe-max-size. Pages
	// are only pinned while data sits in the pipe, so an empty pooled pipe
	// costs its 2 fds and a slot array.
	pipeSize = 1 << 20
)

// bufPool holds *[]byte of one size. A pointer avoids an allocation per
// Put (staticcheck SA6002).
type bufPool struct {
	size int
	p    sync.Pool
}

func (b *bufPool) get() *[]byte {
	if v := b.p.Get(); v != nil {
		return v.(*[]byte)
	}
	buf := make([]byte, b.size)
	return &buf
}

func (b *bufPool) put(p *[]byte) { b.p.Put(p) }

// The pools are shared by every connection of a process. They are caches,
// not state: the GC may drop any entry at any time (a dropped pipe's fds
// are closed by its cleanup).
var (
	readPool = bufPool{size: readBufSize}
	copyPool = bufPool{size: copyBufSize}
	pipes    pipePool
)

// pipe is a non-blocking kernel pipe used as the splice(2) buffer.
type pipe struct {
	pipeFDs
	cleanup runtime.Cleanup
}

// pipeFDs are a pipe's two ends and the budget they are counted in.
type pipeFDs struct {
	fds    [2]int // read end, write end
	budget *Limit
}

// errNoFDs is a pipe refused by the file-descriptor budget.
var errNoFDs = errors.New("file-descriptor budget reached")

// pipePool caches empty pipes. A pipe that still holds data (its writer
// failed) is closed instead of pooled.
type pipePool struct{ p sync.Pool }

// get returns a pooled pipe, or a new one counted in budget (2 fds), never
// taken from the reserve that budget keeps for new connections.
func (pp *pipePool) get(budget *Limit) (*pipe, error) {
	if v := pp.p.Get(); v != nil {
		return v.(*pipe), nil
	}
	if !budget.take(nil, 2) {
		return nil, errNoFDs
	}
	p := &pipe{pipeFDs: pipeFDs{budget: budget}}
	if err := unix.Pipe2(p.fds[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		budget.give(nil, 2)
		return nil, err
	}
	// A smaller pipe still works, with more syscalls per burst.
	unix.FcntlInt(uintptr(p.fds[0]), unix.F_SETPIPE_SZ, pipeSize)
	p.cleanup = runtime.AddCleanup(p, closePipe, p.pipeFDs)
	return p, nil
}

func (pp *pipePool) put(p *pipe) { pp.p.Put(p) }

// discard closes a pipe that cannot be reused.
func (p *pipe) discard() {
	p.cleanup.Stop()
	closePipe(p.pipeFDs)
}

func closePipe(p pipeFDs) {
	unix.Close(p.fds[0])
	unix.Close(p.fds[1])
	p.budget.give(nil, 2)
}

// burstResult says why a burst ended.
type burstResult int

const (
	wouldBlock burstResult = iota // the source has nothing more queued
	atEOF                         // the source shut down its write half
	failed                        // an error; the connection must close
)

// half is one direction of a TCP connection between two *net.TCPConn.
//
// Only the goroutine that owns the half (a burst in flight, see pump)
// touches its fields; ownership passes through the connection's lock or
// the poller, which order the accesses.
type half struct {
	c            *Conn // nil in Conn.Relay
	src, dst     *net.TCPConn
	srcRC, dstRC syscall.RawConn
	count, total *atomic.Uint64
	// fds is the budget new pipes are counted in (nil: none).
	fds *Limit
	// bulk is set while the direction carries a stream: its bursts start
	// with splice instead of a read into the pooled buffer.
	bulk bool
	// registered, slot and gen are the half's entry in the poller.
	registered bool
	slot, gen  uint32

	// State shared with the poller callbacks below. They are method
	// values made once per half, so that a burst allocates nothing
	// (a closure passed to RawConn.Read escapes: one allocation per call).
	readFn, spliceFn, pumpFn func(uintptr) bool
	buf                      *[]byte
	pipe                     *pipe
	n, left                  int
	err                      error
	// slow is set once dst stalled a splice (see unpipe): until the
	// direction next goes quiet, it copies through the read buffer.
	slow bool
	// wdl is the write deadline waitDst left on dst (zero: none).
	wdl time.Time
}

func (h *half) init(dst, src *net.TCPConn, count, total *atomic.Uint64) error {
	var err error
	h.src, h.dst, h.count, h.total = src, dst, count, total
	if h.srcRC, err = src.SyscallConn(); err != nil {
		return err
	}
	if h.dstRC, err = dst.SyscallConn(); err != nil {
		return err
	}
	h.initFns()
	return nil
}

func (h *half) initFns() {
	h.readFn, h.spliceFn, h.pumpFn = h.tryRead, h.trySplice, h.tryPump
}

// burst moves src to dst until src reaches end of stream, fails, or the
// read deadline passes (which is how a direction stops lingering, see
// pump). Between reads it waits for src in the runtime poller holding no
// buffer or pipe; it waits for dst to drain when dst is full (that is
// backpressure, not idleness). Bytes are counted as they are written.
func (h *half) burst(deadline time.Duration) (burstResult, error) {
	var refreshed time.Time
	if deadline > 0 {
		refreshed = time.Now()
	}
	for {
		var n int64
		var res burstResult
		var err error
		if h.bulk {
			n, res, err = h.spliceOnce()
			if n < readBufSize || res != wouldBlock || err != nil {
				h.bulk = false // a trickle again: reads are cheaper
				h.clearWait()
			}
		} else {
			n, res, err = h.readOnce()
			if n == readBufSize && !h.slow {
				h.bulk = true // more is queued: splice the rest
			}
		}
		if n > 0 {
			h.count.Add(uint64(n))
			h.total.Add(uint64(n))
			if deadline > 0 {
				// Keep lingering while data flows, refreshing the
				// deadline (a timer update) at most twice per period.
				if now := time.Now(); now.Sub(refreshed) > deadline/2 {
					h.src.SetReadDeadline(now.Add(deadline))
					refreshed = now
				}
			}
		}
		if res != wouldBlock || err != nil {
			return res, err
		}
	}
}

// tryRead is readOnce's poller callback: it borrows a buffer only for the
// read itself and, when src is empty, waits for it with nothing borrowed.
// (The wait must happen inside this RawConn.Read call: each call starts
// by resetting the poller's readiness, so an EAGAIN seen in an earlier
// call says nothing about what arrived since.)
func (h *half) tryRead(fd uintptr) bool {
	h.buf = readPool.get()
	for {
		h.n, h.err = unix.Read(int(fd), *h.buf)
		if h.err != unix.EINTR {
			break
		}
	}
	if h.err == unix.EAGAIN {
		readPool.put(h.buf)
		h.buf = nil
		return false
	}
	return true
}

// readOnce waits for src, then moves one read's worth through a pooled
// buffer. It reports wouldBlock after moving data.
func (h *half) readOnce() (int64, burstResult, error) {
	h.buf, h.err = nil, nil
	err := h.srcRC.Read(h.readFn)
	bp, n := h.buf, h.n
	h.buf = nil
	switch {
	case err != nil:
		return 0, failed, err
	case h.err != nil:
		readPool.put(bp)
		return 0, failed, h.err
	case n == 0:
		readPool.put(bp)
		return 0, atEOF, nil
	}
	_, err = h.dst.Write((*bp)[:n])
	readPool.put(bp)
	if err != nil {
		return int64(n), failed, err
	}
	return int64(n), wouldBlock, nil
}

// trySplice is spliceOnce's callback on src: socket → pipe, with a pipe
// borrowed only for the attempt (see tryRead for the waiting).
func (h *half) trySplice(fd uintptr) bool {
	if h.pipe, h.err = pipes.get(h.fds); h.err != nil {
		return true
	}
	for yields := 0; ; {
		h.n, h.err = splice(int(fd), h.pipe.fds[1], pipeSize)
		if h.err == unix.EAGAIN && yields < drainYields {
			// src ran dry in the middle of a stream: let the sender,
			// usually runnable on this CPU, refill it before parking.
			yields++
			syscall.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
			continue
		}
		if h.err != unix.EINTR {
			break
		}
	}
	if h.err == unix.EAGAIN {
		pipes.put(h.pipe) // still empty
		h.pipe = nil
		return false
	}
	return true
}

// tryPump is spliceOnce's callback on dst: pipe → socket, until the pipe
// is empty; it waits while dst is full.
func (h *half) tryPump(fd uintptr) bool {
	for h.left > 0 {
		m, e := splice(h.pipe.fds[0], int(fd), h.left)
		switch {
		case m > 0:
			h.left -= m
		case e == unix.EAGAIN:
			return false // wait until dst drains (bounded, see armWait)
		case e == unix.EINTR:
		default:
			if e == nil {
				e = io.ErrUnexpectedEOF // cannot happen: the pipe holds left bytes
			}
			h.err = e
			return true
		}
	}
	return true
}

// spliceOnce waits for src, then moves up to pipeSize bytes with
// splice(2) through a pooled pipe, which is back in the pool, empty, when
// it returns.
func (h *half) spliceOnce() (int64, burstResult, error) {
	h.pipe, h.err = nil, nil
	err := h.srcRC.Read(h.spliceFn)
	p, n := h.pipe, h.n
	h.pipe = nil
	switch {
	case err != nil:
		return 0, failed, err
	case p == nil:
		// No pipe (out of fds): the buffer needs none.
		return h.readOnce()
	case h.err != nil:
		pipes.put(p)
		return 0, failed, h.err
	case n == 0:
		pipes.put(p)
		return 0, atEOF, nil
	}
	h.pipe, h.left, h.err = p, n, nil
	h.armWait()
	err = h.dstRC.Write(h.pumpFn)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		h.clearWait()
		err = nil // h.left > 0: fall back below
	}
	left := h.left
	if err == nil {
		err = h.err
	}
	h.pipe = nil
	if left > 0 && err == nil {
		// dst stayed full for blockedGrace: a reader that does not read.
		// Move what the pipe holds to the heap and give the pipe back,
		// so a stalled reader costs memory, not two descriptors.
		return h.unpipe(p, n)
	}
	if left > 0 {
		p.discard()
	} else {
		pipes.put(p)
	}
	if err != nil {
		return int64(n - left), failed, err
	}
	return int64(n), wouldBlock, nil
}

// blockedGrace is how long a direction waits for a full destination while
// it holds a pipe. A reader that reads, however slowly, makes room within
// a round trip; one that does not read would otherwise pin the pipe's
// two descriptors (and up to 1 MiB) for as long as the connection lives:
// 450 such clients exhausted a 1,024-descriptor limit (#13.8).
const blockedGrace = 250 * time.Millisecond

// armWait bounds how long the pump may wait for a full dst while it
// holds the pipe: between half of blockedGrace and blockedGrace. A stream
// into a slower reader finds dst full at almost every splice, so the
// write deadline is moved at most twice per grace period rather than set
// and cleared around every splice, and cleared when the stream ends or
// slows (clearWait).
func (h *half) armWait() {
	if now := time.Now(); h.wdl.Sub(now) < blockedGrace/2 {
		h.wdl = now.Add(blockedGrace)
		h.dst.SetWriteDeadline(h.wdl)
	}
}

// clearWait removes waitDst's deadline from dst, before dst is written
// other ways.
func (h *half) clearWait() {
	if !h.wdl.IsZero() {
		h.wdl = time.Time{}
		h.dst.SetWriteDeadline(time.Time{})
	}
}

// unpipe finishes a splice whose destination does not drain: it reads the
// pipe's remaining bytes into a buffer of their size, returns the pipe to
// the pool and writes the buffer with an ordinary blocking write. The
// direction then copies through the small read buffer (slow) until it
// next goes quiet.
func (h *half) unpipe(p *pipe, n int) (int64, burstResult, error) {
	buf := make([]byte, h.left)
	got := 0
	for got < len(buf) {
		m, err := unix.Read(p.fds[0], buf[got:])
		if err == unix.EINTR {
			continue
		}
		if err != nil || m == 0 {
			p.discard()
			return int64(n - h.left), failed, fmt.Errorf("drain pipe: %w", errors.Join(err, io.ErrUnexpectedEOF))
		}
		got += m
	}
	pipes.put(p)
	h.bulk, h.slow = false, true
	sent := n - h.left
	if _, err := h.dst.Write(buf); err != nil {
		return int64(sent), failed, err
	}
	return int64(n), wouldBlock, nil
}

// drainYields is how many times a bulk direction whose source ran dry
// yields the CPU and looks again before it parks (see splice).
const drainYields = 2

// splice moves up to max bytes between a socket and a pipe without
// blocking.
//
// It is a raw system call: the runtime is not told that the thread is in
// a system call. splice never blocks here (SPLICE_F_NONBLOCK, and Go's
// sockets are non-blocking), but moving a large pipe into a local socket
// runs the receiver's softirq inline and takes tens of microseconds; as
// a plain system call that is long enough for sysmon to hand the P to
// another thread, and for a single stream on loopback those hand-offs
// and the context switches after them cost about a fifth of the
// throughput (docs/PERFORMANCE.md, step 7). The same holds for parking
// a direction the moment its source is empty: a bulk sender on this host
// is usually runnable and refills it within a time slice, so trySplice
// first yields the CPU drainYields times.
func splice(from, to, max int) (int, error) {
	n, _, e := syscall.RawSyscall6(unix.SYS_SPLICE, uintptr(from), 0, uintptr(to), 0, uintptr(max),
		unix.SPLICE_F_NONBLOCK|unix.SPLICE_F_MOVE)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// copyStream copies src to dst until EOF (returning nil) or an error. It is
// the blocking form used by Conn.Relay: between bursts it waits for src in
// the runtime poller, holding nothing but its goroutine.
func copyStream(dst, src net.Conn, fds *Limit, count, total *atomic.Uint64) error {
	s, sok := src.(*net.TCPConn)
	d, dok := dst.(*net.TCPConn)
	if !sok || !dok {
		return copyBuffered(dst, src, count, total)
	}
	h := half{fds: fds}
	if err := h.init(d, s, count, total); err != nil {
		return err
	}
	res, err := h.burst(0)
	if err == nil && res != atEOF {
		err = io.ErrUnexpectedEOF // cannot happen: burst ends at EOF or an error
	}
	return err
}

// copyBuffered is the portable path, for TLS and handler connections.
func copyBuffered(dst io.Writer, src io.Reader, count, total *atomic.Uint64) error {
	bp := copyPool.get()
	defer copyPool.put(bp)
	buf := *bp
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return werr
			}
			count.Add(uint64(n))
			total.Add(uint64(n))
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}
