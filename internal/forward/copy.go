package forward

import (
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

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
// Here a direction ("half") owns nothing while it waits: not a pipe, not a
// buffer, not even a goroutine (see poller.go). When its source becomes
// readable it moves one burst — everything queued, until the source would
// block — and gives back what it borrowed:
//
//   - a burst starts with one read(2) into a pooled 16 KiB buffer, which is
//     the cheapest way to move a request or a keep-alive: two syscalls, no
//     pipe. A read that fills the buffer means more is queued, so the rest
//     of the burst, and the next burst, go through splice(2);
//   - splice moves the data socket → pipe → socket without copying it to
//     user space, through a 1 MiB pipe borrowed from a pool for the burst
//     only. A pipe is returned to the pool empty, so idle directions hold
//     none;
//   - a burst that moved less than the buffer size switches the direction
//     back to read mode.
//
// Bytes are counted once per burst, not once per syscall: the counters are
// atomics shared by every connection of a rule.

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
	fds     [2]int // read end, write end
	cleanup runtime.Cleanup
}

// pipePool caches empty pipes. A pipe that still holds data (its writer
// failed) is closed instead of pooled.
type pipePool struct{ p sync.Pool }

func (pp *pipePool) get() (*pipe, error) {
	if v := pp.p.Get(); v != nil {
		return v.(*pipe), nil
	}
	p := &pipe{}
	if err := unix.Pipe2(p.fds[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return nil, err
	}
	// A smaller pipe still works, with more syscalls per burst.
	unix.FcntlInt(uintptr(p.fds[0]), unix.F_SETPIPE_SZ, pipeSize)
	p.cleanup = runtime.AddCleanup(p, closePipe, p.fds)
	return p, nil
}

func (pp *pipePool) put(p *pipe) { pp.p.Put(p) }

// discard closes a pipe that cannot be reused.
func (p *pipe) discard() {
	p.cleanup.Stop()
	closePipe(p.fds)
}

func closePipe(fds [2]int) {
	unix.Close(fds[0])
	unix.Close(fds[1])
}

// burstResult says why a burst ended.
type burstResult int

const (
	wouldBlock burstResult = iota // the source has nothing more queued
	atEOF                         // the source shut down its write half
	failed                        // an error; the connection must close
)

// half is one direction of a TCP connection between two *net.TCPConn.
type half struct {
	c            *Conn // nil in Conn.Relay
	src, dst     *net.TCPConn
	srcRC, dstRC syscall.RawConn
	count, total *atomic.Uint64
	// bulk is set while the direction carries a stream: its bursts start
	// with splice instead of a read into the pooled buffer. Only the
	// goroutine running the burst touches it; handovers are ordered by the
	// connection's lock.
	bulk bool
	// registered, slot and gen are the half's entry in the poller.
	registered bool
	slot, gen  uint32
}

func (h *half) init(dst, src *net.TCPConn, count, total *atomic.Uint64) error {
	var err error
	h.src, h.dst, h.count, h.total = src, dst, count, total
	if h.srcRC, err = src.SyscallConn(); err != nil {
		return err
	}
	h.dstRC, err = dst.SyscallConn()
	return err
}

// burst moves everything src has queued to dst, waiting for dst to drain
// when it is full (that is backpressure, not idleness), and returns as soon
// as src would block.
func (h *half) burst() (burstResult, error) {
	var moved int64
	res, err := wouldBlock, error(nil)
	for {
		var n int64
		if h.bulk {
			n, res, err = h.spliceOnce()
		} else {
			n, res, err = h.readOnce()
			if n == readBufSize {
				h.bulk = true // more is queued: splice the rest
			} else if n > 0 {
				// A short read drained the socket (as of the read): stop
				// here rather than pay a read that says EAGAIN. Waiting
				// again sees anything that arrived since.
				moved += n
				break
			}
		}
		moved += n
		if res != wouldBlock || err != nil || n == 0 {
			break
		}
	}
	if moved > 0 {
		h.count.Add(uint64(moved))
		h.total.Add(uint64(moved))
	}
	if moved < readBufSize {
		h.bulk = false
	}
	return res, err
}

// readOnce moves one read's worth through a pooled buffer. It reports
// wouldBlock with n > 0 after moving data, and n == 0 when src had none.
func (h *half) readOnce() (int64, burstResult, error) {
	bp := readPool.get()
	defer readPool.put(bp)
	var n int
	var rerr error
	err := h.srcRC.Read(func(fd uintptr) bool {
		for {
			n, rerr = unix.Read(int(fd), *bp)
			if rerr != unix.EINTR {
				return true
			}
		}
	})
	switch {
	case err != nil:
		return 0, failed, err
	case rerr == unix.EAGAIN:
		return 0, wouldBlock, nil
	case rerr != nil:
		return 0, failed, rerr
	case n == 0:
		return 0, atEOF, nil
	}
	if _, err := h.dst.Write((*bp)[:n]); err != nil {
		return int64(n), failed, err
	}
	return int64(n), wouldBlock, nil
}

// spliceOnce moves up to pipeSize bytes with splice(2) through a pooled
// pipe, which is back in the pool, empty, when it returns.
func (h *half) spliceOnce() (int64, burstResult, error) {
	p, err := pipes.get()
	if err != nil {
		return h.readOnce() // out of fds: the buffer needs none
	}
	var n int
	var serr error
	err = h.srcRC.Read(func(fd uintptr) bool {
		for {
			n, serr = splice(int(fd), p.fds[1], pipeSize)
			if serr != unix.EINTR {
				return true
			}
		}
	})
	switch {
	case err != nil:
		pipes.put(p)
		return 0, failed, err
	case serr == unix.EAGAIN:
		pipes.put(p)
		return 0, wouldBlock, nil
	case serr != nil:
		pipes.put(p)
		return 0, failed, serr
	case n == 0:
		pipes.put(p)
		return 0, atEOF, nil
	}
	left := n
	var werr error
	err = h.dstRC.Write(func(fd uintptr) bool {
		for left > 0 {
			m, e := splice(p.fds[0], int(fd), left)
			switch {
			case m > 0:
				left -= m
			case e == unix.EAGAIN:
				return false // dst is full: park until it drains
			case e == unix.EINTR:
			default:
				if e == nil {
					e = io.ErrUnexpectedEOF // cannot happen: the pipe holds left bytes
				}
				werr = e
				return true
			}
		}
		return true
	})
	if err == nil {
		err = werr
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

func splice(from, to, max int) (int, error) {
	n, err := unix.Splice(from, nil, to, nil, max, unix.SPLICE_F_NONBLOCK|unix.SPLICE_F_MOVE)
	return int(n), err
}

// copyStream copies src to dst until EOF (returning nil) or an error. It is
// the blocking form used by Conn.Relay: between bursts it waits for src to
// become readable holding nothing but its goroutine.
func copyStream(dst, src net.Conn, count, total *atomic.Uint64) error {
	s, sok := src.(*net.TCPConn)
	d, dok := dst.(*net.TCPConn)
	if !sok || !dok {
		return copyBuffered(dst, src, count, total)
	}
	var h half
	if err := h.init(d, s, count, total); err != nil {
		return err
	}
	for {
		res, err := h.burst()
		switch {
		case err != nil:
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		case res == atEOF:
			return nil
		}
		if err := waitReadable(h.srcRC); err != nil {
			return err
		}
	}
}

// waitReadable blocks until the socket is readable (data, end of stream or
// an error to report), without reading anything: a 1-byte MSG_PEEK through
// the runtime poller.
func waitReadable(rc syscall.RawConn) error {
	var serr error
	err := rc.Read(func(fd uintptr) bool {
		var b [1]byte
		_, _, e := unix.Syscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
			unix.MSG_PEEK|unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case unix.EAGAIN, unix.EINTR:
			return false // not readable yet: park in the poller
		case 0:
			return true
		}
		serr = e
		return true
	})
	if err != nil {
		return err
	}
	return serr
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
