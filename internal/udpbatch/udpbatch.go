// Package udpbatch moves UDP datagrams in batches, one recvmmsg to read
// up to Size of them from a socket and one sendmmsg (with UDP segmentation
// offload) to write them on, allocating nothing per batch. Package forward
// relays UDP rules with it and package rtsp the RTP of its UDP tracks.
//
// Typical use, relaying what arrives on in to one address through out:
//
//	var to udpbatch.Sockaddr
//	to.Set(dst, outFamily)
//	g := udpbatch.NewGSO(outFamily)
//	for {
//		b, n, err := udpbatch.Recv(inRC) // waits in the runtime poller
//		if err != nil {
//			return
//		}
//		for i := 0; i < n; i++ {
//			b.Queue(i)
//		}
//		b.Send(outRC, &to, g)
//		b.Put()
//	}
//
// Linux only; it does not open, bind or close sockets, and it knows
// nothing of sessions or addresses beyond decoding each sender.
package udpbatch

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// MaxDatagram is the largest UDP payload (65,535 minus the 8-byte UDP and
// 20-byte IPv4 headers is 65,507; IPv6 allows a little more): any
// datagram fits a batch's slot whole.
const MaxDatagram = 65536

// Why our own recvmmsg/sendmmsg (measured; see docs/PERFORMANCE.md):
// golang.org/x/net/ipv4's ReadBatch reports each sender as a net.Addr, which
// costs two allocations per datagram (the *net.UDPAddr and its net.IP), and
// the session table is keyed by netip.AddrPort anyway. These wrappers
// decode the sockaddr in place: a batch of datagrams costs no allocation.
//
// A batch's datagram buffers are one anonymous mapping of Size slots of
// MaxDatagram bytes. Any datagram up to 65,507 bytes fits its slot, yet
// only the pages datagrams actually touch become resident: 32 datagrams of
// 1,400 bytes pin 32 pages, not 2 MiB. A batch is borrowed only while
// datagrams move (the readers take it inside the poller callback and give
// it back on EAGAIN), so idle ports and sessions hold none.

// Raw syscalls: recvmmsg and sendmmsg are issued with RawSyscall6,
// without telling the scheduler. Both are non-blocking
// (MSG_DONTWAIT) and bounded by one batch, yet a sendmmsg of a batch to a
// loopback or local peer runs the receiver's softirq too and can take tens
// of microseconds. Through syscall.Syscall the runtime's sysmon then
// retakes the P and wakes another thread to run it, on a machine with no
// CPU to spare: perf showed sysmon and the extra context switches at ~10 %
// of the relay's CPU. Raw calls measured 7–10 % less CPU per echoed
// datagram (see docs/PERFORMANCE.md). The cost is a P held for the
// syscall's duration (a stop-the-world waits that long).

// Size is the most datagrams moved per recvmmsg/sendmmsg.
const Size = 32

// mmsghdr is struct mmsghdr from <sys/socket.h>, laid out for the target
// architecture by x/sys (28+4 bytes on 32-bit, 56+4+4 on 64-bit): a layout
// written by hand for one word size makes the kernel and this package
// disagree on where the second message starts.
type mmsghdr = unix.Mmsghdr

// segCmsg is one control message carrying a UDP_SEGMENT size: a struct
// cmsghdr (whose length field is a size_t) followed by the uint16 at
// CMSG_DATA, padded by the compiler to CMSG_SPACE(2) on every architecture
// (24 bytes on 64-bit, 16 on 32-bit).
type segCmsg struct {
	hdr unix.Cmsghdr
	seg uint16
}

// sockaddr holds a struct sockaddr_in or sockaddr_in6.
type sockaddr [unix.SizeofSockaddrInet6]byte

// Sockaddr is a destination encoded once for a socket's address family,
// so that sending to it costs no conversion. The zero value means none
// (a connected socket's peer).
type Sockaddr struct {
	sa sockaddr
	n  uint32
}

// Set encodes ap for a socket of family (unix.AF_INET or AF_INET6: an
// AF_INET6 socket takes IPv4 peers as IPv4-mapped addresses).
func (s *Sockaddr) Set(ap netip.AddrPort, family int) { s.n = encodeSockaddr(&s.sa, ap, family) }

// AddrPort decodes the address back.
func (s *Sockaddr) AddrPort() netip.AddrPort { return decodeSockaddr(&s.sa) }

// Batch is a set of datagram slots with their headers, reused for
// receiving and then sending the same datagrams. A Batch belongs to one
// goroutine at a time.
type Batch struct {
	mem   []byte // Size slots of MaxDatagram bytes, mmap'd
	hdrs  [Size]mmsghdr
	iovs  [Size]unix.Iovec
	names [Size]sockaddr
	lens  [Size]int // received length of each slot
	// q lists the slots to send, in order; out, outIov, outCtl and cnt
	// are the messages built from it (cnt[m] datagrams in message m).
	q      [Size]int
	nq     int
	out    [Size]mmsghdr
	outIov [Size]unix.Iovec
	outCtl [Size]segCmsg
	cnt    [Size]int
	// send's state, shared with its poller callback trySend.
	sgso             *GSO
	snm, sm, spos    int
	sdropped, sbytes int
	serr             error
	srebuild         bool
	trySendFn        func(uintptr) bool
	clean            runtime.Cleanup
}

type batchPool struct{ p sync.Pool }

func (bp *batchPool) get() (*Batch, error) {
	if v := bp.p.Get(); v != nil {
		return v.(*Batch), nil
	}
	mem, err := unix.Mmap(-1, 0, Size*MaxDatagram, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, err
	}
	b := &Batch{mem: mem}
	for i := range b.hdrs {
		b.iovs[i] = unix.Iovec{Base: &b.mem[i*MaxDatagram]}
		b.iovs[i].SetLen(MaxDatagram)
		b.hdrs[i].Hdr = unix.Msghdr{Name: &b.names[i][0], Iov: &b.iovs[i], Iovlen: 1}
	}
	b.trySendFn = b.trySend
	b.clean = runtime.AddCleanup(b, func(m []byte) { unix.Munmap(m) }, mem)
	return b, nil
}

func (bp *batchPool) put(b *Batch) { bp.p.Put(b) }

// batches is shared by every socket of the process that moves batches;
// like a buffer pool it is a cache the GC may empty at any time.
var batches batchPool

// Get returns a batch from the process's pool; Put gives it back.
func Get() (*Batch, error) { return batches.get() }

// Put gives the batch back to the pool; it must not be used after.
func (b *Batch) Put() { batches.put(b) }

// Recv waits until rc has datagrams and reads up to Size of them into a
// pooled batch, returning how many. It holds no batch while it waits.
// The caller gives the batch back with Put.
func Recv(rc syscall.RawConn) (*Batch, int, error) {
	var rd batchReader
	err := rc.Read(rd.try)
	if err == nil {
		err = rd.err
	}
	if err != nil {
		if rd.b != nil {
			batches.put(rd.b)
		}
		return nil, 0, err
	}
	return rd.b, rd.n, nil
}

// batchReader is Recv's poller callback and its results.
type batchReader struct {
	b   *Batch
	n   int
	err error
}

func (rd *batchReader) try(fd uintptr) bool {
	if rd.b == nil {
		if rd.b, rd.err = batches.get(); rd.err != nil {
			return true
		}
	}
	rd.n, rd.err = rd.b.recv(int(fd))
	if rd.err == unix.EAGAIN {
		batches.put(rd.b) // nothing queued: wait empty-handed
		rd.b, rd.err = nil, nil
		return false
	}
	return true
}

// recv reads up to Size datagrams from fd without blocking and returns
// how many arrived (EAGAIN when none). Senders are in b.names.
func (b *Batch) recv(fd int) (int, error) {
	for i := range b.hdrs {
		// The kernel overwrites these on return.
		b.hdrs[i].Hdr.Namelen = uint32(len(b.names[i]))
		b.hdrs[i].Hdr.Flags = 0
	}
	for {
		// Raw: see the note on raw syscalls above.
		r, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&b.hdrs[0])),
			Size, unix.MSG_DONTWAIT, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		n := int(r)
		for i := 0; i < n; i++ {
			b.lens[i] = int(b.hdrs[i].Len)
		}
		return n, nil
	}
}

// Addr decodes the sender of datagram i (IPv4-mapped addresses unmapped).
func (b *Batch) Addr(i int) netip.AddrPort {
	return decodeSockaddr(&b.names[i])
}

// Data returns datagram i's payload, valid until the batch is put back.
func (b *Batch) Data(i int) []byte { return b.mem[i*MaxDatagram : i*MaxDatagram+b.lens[i]] }

// Len returns datagram i's length.
func (b *Batch) Len(i int) int { return b.lens[i] }

func decodeSockaddr(sa *sockaddr) netip.AddrPort {
	port := binary.BigEndian.Uint16(sa[2:4])
	switch binary.NativeEndian.Uint16(sa[0:2]) {
	case unix.AF_INET:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(sa[4:8])), port)
	case unix.AF_INET6:
		return netip.AddrPortFrom(netip.AddrFrom16([16]byte(sa[8:24])).Unmap(), port)
	}
	return netip.AddrPort{}
}

// encodeSockaddr writes ap for a socket of the given family (AF_INET6
// sockets take IPv4 peers as IPv4-mapped addresses) and returns its length.
func encodeSockaddr(sa *sockaddr, ap netip.AddrPort, family int) uint32 {
	*sa = sockaddr{}
	binary.BigEndian.PutUint16(sa[2:4], ap.Port())
	if family == unix.AF_INET {
		binary.NativeEndian.PutUint16(sa[0:2], unix.AF_INET)
		a := ap.Addr().As4()
		copy(sa[4:8], a[:])
		return unix.SizeofSockaddrInet4
	}
	binary.NativeEndian.PutUint16(sa[0:2], unix.AF_INET6)
	a := ap.Addr().As16()
	copy(sa[8:24], a[:])
	return unix.SizeofSockaddrInet6
}

// Queue adds datagram i to the batch's send list.
func (b *Batch) Queue(i int) {
	b.q[b.nq] = i
	b.nq++
}

// Segmentation offload (UDP_SEGMENT, Linux 4.18): a run of datagrams of one
// size to one destination goes down the stack as a single skb and is cut
// into datagrams at the bottom (or, on loopback, at the receiving socket).
// Profiling the UDP echo load showed the per-datagram send path (IP output,
// the device queue, loopback's receive softirq) to be three quarters of the
// relay's CPU; GSO pays it once per run.
//
// It is used only where it cannot change what arrives: datagrams that fit
// an Ethernet MTU (larger ones are left to IP fragmentation as before), and
// never again on a socket where the kernel refused it once (a smaller path
// MTU, IPsec, an old kernel); the refused run is re-sent datagram by
// datagram.
const (
	gsoMaxSeg4 = 1500 - 20 - 8 // IPv4 + UDP headers
	gsoMaxSeg6 = 1500 - 40 - 8
	// A run is one IP packet before segmentation: at most 64 KiB with its
	// headers, and at most UDP_MAX_SEGMENTS (64 before Linux 6.10)
	// datagrams. Exceeding either makes the kernel refuse the run, which
	// would turn offload off for good (measured: a 64-slot batch of
	// 1,400-byte datagrams did exactly that).
	gsoMaxRun      = 65000
	gsoMaxSegments = 64
)

// GSO is a socket's offload state: the largest segment to offload (0 =
// off), shared by every goroutine sending on the socket.
type GSO struct{ maxSeg atomic.Int32 }

// NewGSO returns the offload state of a socket of family (AF_INET or
// AF_INET6), on until the kernel refuses it.
func NewGSO(family int) *GSO {
	g := &GSO{}
	if family == unix.AF_INET6 {
		g.maxSeg.Store(gsoMaxSeg6)
	} else {
		g.maxSeg.Store(gsoMaxSeg4)
	}
	return g
}

// build turns the queued datagrams from pos on into send messages: runs of
// equal size (the last may be shorter) share a message and a UDP_SEGMENT
// control message when maxSeg allows.
// MaxSeg is the largest datagram offloaded; 0 once the kernel refused.
func (g *GSO) MaxSeg() int { return int(g.maxSeg.Load()) }

func (b *Batch) build(pos int, name *sockaddr, namelen uint32, maxSeg int) int {
	nm, iov := 0, 0
	for i := pos; i < b.nq; {
		l := b.lens[b.q[i]]
		cnt := 1
		if l > 0 && l <= maxSeg {
			for i+cnt < b.nq && cnt < gsoMaxSegments && (cnt+1)*l <= gsoMaxRun {
				l2 := b.lens[b.q[i+cnt]]
				if l2 > l || l2 == 0 {
					break
				}
				cnt++
				if l2 < l {
					break // a shorter datagram can only end a run
				}
			}
		}
		for k := 0; k < cnt; k++ {
			s := b.q[i+k]
			b.outIov[iov+k] = unix.Iovec{Base: &b.mem[s*MaxDatagram]}
			b.outIov[iov+k].SetLen(b.lens[s])
		}
		h := &b.out[nm]
		*h = mmsghdr{Hdr: unix.Msghdr{Iov: &b.outIov[iov]}}
		h.Hdr.SetIovlen(cnt)
		if name != nil {
			h.Hdr.Name, h.Hdr.Namelen = &name[0], namelen
		}
		if cnt > 1 {
			c := &b.outCtl[nm]
			*c = segCmsg{hdr: unix.Cmsghdr{Level: unix.SOL_UDP, Type: unix.UDP_SEGMENT}, seg: uint16(l)}
			c.hdr.SetLen(unix.CmsgLen(2))
			h.Hdr.Control = (*byte)(unsafe.Pointer(c))
			h.Hdr.SetControllen(int(unsafe.Sizeof(*c)))
		}
		b.cnt[nm] = cnt
		nm++
		iov += cnt
		i += cnt
	}
	return nm
}

// Send writes the queued datagrams through rc to to (nil on a connected
// socket), waiting while the socket buffer is full, and empties the queue.
// It returns the payload bytes sent. A datagram the kernel refuses
// (ECONNREFUSED from an earlier ICMP error, EMSGSIZE, no route) is skipped
// and counted in dropped; the rest still go. g is rc's offload state (nil:
// none).
func (b *Batch) Send(rc syscall.RawConn, to *Sockaddr, g *GSO) (sent, dropped int, err error) {
	if to == nil || to.n == 0 {
		return b.send(rc, nil, 0, g)
	}
	return b.send(rc, &to.sa, to.n, g)
}

func (b *Batch) send(rc syscall.RawConn, name *sockaddr, namelen uint32, g *GSO) (sent, dropped int, err error) {
	b.sgso = g
	b.spos, b.sdropped, b.sbytes = 0, 0, 0
	for b.spos < b.nq {
		maxSeg := 0
		if g != nil {
			maxSeg = int(g.maxSeg.Load())
		}
		b.snm, b.sm, b.serr, b.srebuild = b.build(b.spos, name, namelen, maxSeg), 0, nil, false
		err = rc.Write(b.trySendFn)
		if err == nil {
			err = b.serr
		}
		if err != nil {
			b.sdropped += b.nq - b.spos
			break
		}
		if !b.srebuild {
			break
		}
	}
	b.nq = 0
	return b.sbytes, b.sdropped, err
}

// trySend is send's poller callback (a method value made once per batch,
// so a send allocates nothing).
func (b *Batch) trySend(fd uintptr) bool {
	for b.sm < b.snm {
		r, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&b.out[b.sm])),
			uintptr(b.snm-b.sm), unix.MSG_DONTWAIT, 0, 0)
		switch {
		case e == 0:
			for k := 0; k < int(r); k++ {
				for j := 0; j < b.cnt[b.sm+k]; j++ {
					b.sbytes += b.lens[b.q[b.spos]]
					b.spos++
				}
			}
			b.sm += int(r)
		case e == unix.EAGAIN:
			return false // socket buffer full: wait for room
		case e == unix.EINTR:
		case b.cnt[b.sm] > 1 && (e == unix.EINVAL || e == unix.EIO || e == unix.EMSGSIZE || e == unix.ENOPROTOOPT):
			b.sgso.maxSeg.Store(0) // offload refused here: never again
			b.srebuild = true
			return true
		case e == unix.ECONNREFUSED || e == unix.EMSGSIZE || e == unix.EHOSTUNREACH ||
			e == unix.ENETUNREACH || e == unix.EPERM || e == unix.EINVAL:
			b.sdropped += b.cnt[b.sm]
			b.spos += b.cnt[b.sm]
			b.sm++
		default:
			b.serr = e
			return true
		}
	}
	return true
}

// Family returns a socket's address family (AF_INET or AF_INET6), which
// Sockaddr.Set and NewGSO take.
func Family(rc syscall.RawConn) (int, error) {
	var family int
	var serr error
	err := rc.Control(func(fd uintptr) {
		family, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN)
	})
	return family, errors.Join(err, serr)
}
