package forward

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Why the copy loop looks like this (measured; see docs/BENCHMARKS.md):
//
// A plain io.Copy between two *net.TCPConn uses splice(2), but Go takes a
// kernel pipe (2 fds, ~4 KiB of kernel memory) from its pool before it
// knows whether any data is coming, and holds it while the direction waits.
// A camera gateway holds thousands of mostly idle streams, so that costs 6
// fds per connection instead of 2. Here a direction first waits for
// readability holding nothing but its socket (a 1-byte MSG_PEEK through
// the runtime poller), asks the kernel how much is queued (SIOCINQ), and
// only then moves exactly that much: small amounts through a pooled
// user-space buffer (two syscalls, no pipe), larger ones with splice.

// spliceThreshold is the queued byte count from which splice beats a
// read/write pair through a pooled buffer.
const spliceThreshold = 16 << 10

// smallBufSize is the pooled copy buffer for sub-threshold bursts and for
// connections that are not plain TCP (TLS, handlers).
const smallBufSize = 32 << 10

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

// pool is shared by every connection of a process. It is a cache, not
// state: the GC may drop any buffer at any time.
var pool = bufPool{size: smallBufSize}

// copyStream copies src to dst until EOF (returning nil) or an error.
func copyStream(dst, src net.Conn, count, total *atomic.Uint64) error {
	s, sok := src.(*net.TCPConn)
	d, dok := dst.(*net.TCPConn)
	if !sok || !dok {
		return copyBuffered(dst, src, count, total)
	}
	rc, err := s.SyscallConn()
	if err != nil {
		return err
	}
	lr := io.LimitedReader{R: s}
	for {
		avail, err := waitQueued(rc)
		if err != nil {
			return err
		}
		if avail == 0 {
			return nil // EOF
		}
		var n int64
		if avail < spliceThreshold {
			bp := pool.get()
			var m int
			m, err = s.Read((*bp)[:min(avail, smallBufSize)])
			if m > 0 {
				_, werr := d.Write((*bp)[:m])
				if err == nil {
					err = werr
				}
			}
			pool.put(bp)
			n = int64(m)
		} else {
			lr.N = int64(avail)
			n, err = d.ReadFrom(&lr)
		}
		count.Add(uint64(n))
		total.Add(uint64(n))
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// waitQueued blocks until src is readable and returns the number of bytes
// queued, or 0 at end of stream. It holds no buffer while waiting.
func waitQueued(rc syscall.RawConn) (int, error) {
	var avail int
	var serr error
	err := rc.Read(func(fd uintptr) bool {
		var b [1]byte
		n, _, e := unix.Syscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
			unix.MSG_PEEK|unix.MSG_DONTWAIT, 0, 0)
		switch {
		case e == unix.EAGAIN || e == unix.EINTR:
			return false // not readable yet: park in the poller
		case e != 0:
			serr = e
			return true
		case n == 0:
			avail = 0 // orderly shutdown by the peer
			return true
		}
		q, ierr := unix.IoctlGetInt(int(fd), unix.SIOCINQ)
		if ierr != nil || q < 1 {
			q = 1
		}
		avail = q
		return true
	})
	if err != nil {
		return 0, err
	}
	return avail, serr
}

// copyBuffered is the portable path, for TLS and handler connections.
func copyBuffered(dst io.Writer, src io.Reader, count, total *atomic.Uint64) error {
	bp := pool.get()
	defer pool.put(bp)
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
