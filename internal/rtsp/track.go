package rtsp

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/camgate/camgate/internal/udpbatch"
)

// A track is one SETUP over UDP: four sockets and four named goroutines.
//
//	client ⇄ ext[0] (RTP), ext[1] (RTCP)   camgate   dev[0], dev[1] ⇄ device
//
// The ext pair comes from the external range and is what the client is
// told as server_port; the dev pair is what the device is told as
// client_port. Media from the device goes to the client's declared ports
// until the client's own packets show where it really is (symmetric RTP,
// "latching", RFC 7362 §4): a viewer behind a NAT declares ports that the
// NAT maps to others. Only packets from the address of the RTSP
// connection may latch, so a third party cannot steal the stream by
// sending first.
//
// The media path (device → client) is the data plane's: a batch of
// datagrams per recvmmsg, sent on with one sendmmsg and segmentation
// offload, nothing allocated and no clock read per batch (package
// udpbatch). Its goroutine parks in the runtime poller between bursts, as
// a plain UDP rule's does, holding no buffer. The client → device path
// (RTCP receiver reports, NAT punching) is read the same way. A client
// side bound through Addrs.ListenUDP (the WireGuard tunnel's stack) is
// read and written one datagram at a time.
type track struct {
	c       *Conn
	session string // the device's session id, without parameters
	extPort uint16 // the client side's RTP port (server_port)
	// The client side is ext, bound from the external range (pooled), or
	// tun, bound through Addrs.ListenUDP; the other pair is nil.
	ext    [2]*net.UDPConn
	tun    [2]net.PacketConn
	pooled bool
	dev    [2]*net.UDPConn
	// devRC and extRC are dev's and ext's raw sockets (ext's on the host
	// path only), devFamily and extFamily their address families and
	// extGSO ext's offload state.
	devRC, extRC         [2]syscall.RawConn
	devFamily, extFamily int
	extGSO               [2]*udpbatch.GSO
	// to are the client's RTP and RTCP addresses: declared, then latched.
	to [2]atomic.Pointer[netip.AddrPort]
	// device are the device's RTP and RTCP addresses (server_port), set
	// from its SETUP answer.
	device [2]atomic.Pointer[netip.AddrPort]
	// active is set when a packet moves either way; the reaper clears it
	// and keeps the time in seen, so the hot path reads no clock.
	active  atomic.Bool
	seen    time.Time // guarded by c.mu
	latched [2]atomic.Bool

	wg       sync.WaitGroup
	stopOnce sync.Once
}

// relayBufSize holds any UDP datagram: devices send RTP up to the path
// MTU, but nothing forbids larger ones and a truncated one is corrupt.
const relayBufSize = udpbatch.MaxDatagram

// sockBuf is the relay sockets' buffer size; the kernel caps it at
// net.core.rmem_max / wmem_max.
const sockBuf = 1 << 20

// start starts the goroutines; the caller holds c.mu.
func (t *track) start() error {
	t.seen = time.Now()
	for i := 0; i < 2; i++ {
		// A camera's burst (an I-frame is a hundred datagrams at once)
		// must fit in the socket buffers while the relay is scheduled.
		t.dev[i].SetReadBuffer(sockBuf)
		var err error
		if t.devRC[i], err = t.dev[i].SyscallConn(); err != nil {
			return err
		}
		if t.devFamily, err = udpbatch.Family(t.devRC[i]); err != nil {
			return err
		}
		if t.ext[i] == nil {
			continue
		}
		t.ext[i].SetWriteBuffer(sockBuf)
		if t.extRC[i], err = t.ext[i].SyscallConn(); err != nil {
			return err
		}
		if t.extFamily, err = udpbatch.Family(t.extRC[i]); err != nil {
			return err
		}
		t.extGSO[i] = udpbatch.NewGSO(t.extFamily)
	}
	t.wg.Add(4)
	for i := 0; i < 2; i++ {
		if t.tun[i] != nil {
			go t.deviceToTunnel(i)
		} else {
			go t.deviceToClient(i)
		}
		go t.clientToDevice(i)
	}
	return nil
}

// closeSockets closes the track's sockets, which ends its goroutines.
func (t *track) closeSockets() {
	for i := 0; i < 2; i++ {
		if t.ext[i] != nil {
			t.ext[i].Close()
		}
		if t.tun[i] != nil {
			t.tun[i].Close()
		}
		if t.dev[i] != nil {
			t.dev[i].Close()
		}
	}
}

// stop closes the sockets, waits for the goroutines and gives the ext
// pair back.
func (t *track) stop() {
	t.stopOnce.Do(func() {
		t.closeSockets()
		t.wg.Wait()
		if t.pooled {
			t.c.r.pool.put(t.extPort)
		}
		t.c.st.tracks.Add(-1)
	})
}

// touch records that a packet moved. It reads before writing so that a
// busy track does not write the shared cache line at every batch.
func (t *track) touch() {
	if !t.active.Load() {
		t.active.Store(true)
	}
}

// idle reports whether the track has been quiet for longer than d at
// now; the reaper calls it under c.mu every reapEvery.
func (t *track) idle(now time.Time, d time.Duration) bool {
	if t.active.Swap(false) {
		t.seen = now
	}
	return now.Sub(t.seen) > d
}

// recv waits for a batch of datagrams on rc (the from side of the
// track); ok is false once the socket is closed.
func (t *track) recv(rc syscall.RawConn, from string) (b *udpbatch.Batch, n int, ok bool) {
	for {
		b, n, err := udpbatch.Recv(rc)
		if err == nil {
			return b, n, true
		}
		if errors.Is(err, net.ErrClosed) {
			return nil, 0, false
		}
		t.c.log.Debug("rtp read", "from", from, "err", err)
	}
}

// deviceToClient relays what the device sends on dev[i] to the client,
// a batch at a time. Datagrams from anywhere but the device are dropped.
func (t *track) deviceToClient(i int) {
	defer t.wg.Done()
	st := t.c.st
	devIP := t.c.devAddr
	var to udpbatch.Sockaddr
	var toAP netip.AddrPort
	for {
		b, n, ok := t.recv(t.devRC[i], "device")
		if !ok {
			return
		}
		queued := 0
		for k := 0; k < n; k++ {
			if b.Addr(k).Addr() != devIP {
				st.dropped.Add(1)
				continue
			}
			b.Queue(k)
			queued++
		}
		if queued == 0 {
			b.Put()
			continue
		}
		t.touch()
		if ap := *t.to[i].Load(); ap != toAP {
			toAP = ap
			to.Set(ap, t.extFamily)
		}
		sent, dropped, err := b.Send(t.extRC[i], &to, t.extGSO[i])
		b.Put()
		if dropped > 0 {
			st.dropped.Add(uint64(dropped))
		}
		st.out.Add(uint64(sent))
		st.packetsOut.Add(uint64(queued - dropped))
		if err != nil && errors.Is(err, net.ErrClosed) {
			return
		}
	}
}

// deviceToTunnel is deviceToClient for a client side bound through
// Addrs.ListenUDP: read in batches from the device, written one datagram
// at a time (a userspace network stack has no sendmmsg), the client's
// address converted only when it changes.
func (t *track) deviceToTunnel(i int) {
	defer t.wg.Done()
	st := t.c.st
	devIP := t.c.devAddr
	pc := t.tun[i]
	var toAP netip.AddrPort
	var toUDP *net.UDPAddr
	for {
		b, n, ok := t.recv(t.devRC[i], "device")
		if !ok {
			return
		}
		for k := 0; k < n; k++ {
			if b.Addr(k).Addr() != devIP {
				st.dropped.Add(1)
				continue
			}
			t.touch()
			if ap := *t.to[i].Load(); ap != toAP || toUDP == nil {
				toAP, toUDP = ap, net.UDPAddrFromAddrPort(ap)
			}
			if _, err := pc.WriteTo(b.Data(k), toUDP); err != nil {
				st.dropped.Add(1)
				continue
			}
			st.out.Add(uint64(b.Len(k)))
			st.packetsOut.Add(1)
		}
		b.Put()
	}
}

// clientToDevice relays the client's packets (RTCP receiver reports, NAT
// punching packets) to the device, latching the client's address. They
// are few, but read in batches all the same: a parked reader then holds
// no buffer.
func (t *track) clientToDevice(i int) {
	defer t.wg.Done()
	if t.tun[i] != nil {
		t.tunnelToDevice(i)
		return
	}
	st := t.c.st
	var dev udpbatch.Sockaddr
	var devAP netip.AddrPort
	for {
		b, n, ok := t.recv(t.extRC[i], "client")
		if !ok {
			return
		}
		queued := 0
		for k := 0; k < n; k++ {
			if t.fromClient(i, b.Addr(k)) {
				b.Queue(k)
				queued++
			}
		}
		dst := t.device[i].Load()
		if queued == 0 || dst == nil {
			b.Put()
			continue
		}
		if devAP != *dst {
			devAP = *dst
			dev.Set(devAP, t.devFamily)
		}
		sent, dropped, _ := b.Send(t.devRC[i], &dev, nil)
		b.Put()
		if dropped > 0 {
			st.dropped.Add(uint64(dropped))
		}
		st.in.Add(uint64(sent))
	}
}

// tunnelToDevice is clientToDevice for a client side bound through
// Addrs.ListenUDP, one datagram at a time.
func (t *track) tunnelToDevice(i int) {
	buf := make([]byte, relayBufSize)
	st := t.c.st
	read := t.tunnelReader(i)
	for {
		n, src, err := read(buf)
		if err != nil {
			return
		}
		if !t.fromClient(i, src) {
			continue
		}
		dst := t.device[i].Load()
		if dst == nil {
			continue
		}
		if _, err := t.dev[i].WriteToUDPAddrPort(buf[:n], *dst); err != nil {
			st.dropped.Add(1)
			continue
		}
		st.in.Add(uint64(n))
	}
}

// fromClient judges a packet from src on the client side of track i: a
// packet from the viewer's address is relayed and latches its port
// (RFC 7362 §4); any other is dropped and counted as foreign.
func (t *track) fromClient(i int, src netip.AddrPort) bool {
	src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	if src.Addr() != t.c.client.Addr() {
		// Not the viewer: no latch, no relay (RFC 7362 §5.1).
		t.c.st.dropped.Add(1)
		t.c.st.foreign.Add(1)
		return false
	}
	t.touch()
	if cur := t.to[i].Load(); *cur != src {
		t.to[i].Store(&src)
		if !t.latched[i].Swap(true) {
			t.c.log.Debug("rtp latched", "client", t.c.client, "track_port", t.extPort+uint16(i), "declared", *cur, "seen", src)
		}
	} else if !t.latched[i].Load() {
		t.latched[i].Store(true)
	}
	return true
}

// tunnelReader returns how tunnelToDevice reads the client side of
// track i.
func (t *track) tunnelReader(i int) func([]byte) (int, netip.AddrPort, error) {
	pc := t.tun[i]
	if u, ok := pc.(interface {
		ReadFromUDPAddrPort([]byte) (int, netip.AddrPort, error)
	}); ok {
		return u.ReadFromUDPAddrPort
	}
	return func(b []byte) (int, netip.AddrPort, error) {
		n, a, err := pc.ReadFrom(b)
		return n, netAddrPort(a), err
	}
}
