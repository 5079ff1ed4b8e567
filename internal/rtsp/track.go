package rtsp

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/ipv4"
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
	// to are the client's RTP and RTCP addresses: declared, then latched.
	to [2]atomic.Pointer[netip.AddrPort]
	// device are the device's RTP and RTCP addresses (server_port), set
	// from its SETUP answer.
	device [2]atomic.Pointer[netip.AddrPort]
	// last is the time of the last packet either way (unix nanos).
	last    atomic.Int64
	latched [2]atomic.Bool

	wg       sync.WaitGroup
	stopOnce sync.Once
}

// relayBufSize holds any UDP datagram: devices send RTP up to the path
// MTU, but nothing forbids larger ones and a truncated one is corrupt.
const relayBufSize = 64 << 10

func (t *track) start() {
	t.last.Store(time.Now().UnixNano())
	for i := 0; i < 2; i++ {
		// A camera's burst (an I-frame is a hundred datagrams at once)
		// must fit in the socket buffers while the relay is scheduled.
		t.dev[i].SetReadBuffer(sockBuf)
		if t.ext[i] != nil {
			t.ext[i].SetWriteBuffer(sockBuf)
		}
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

// deviceToClient relays what the device sends on dev[i] to the client.
// Datagrams from anywhere but the device are dropped.
func (t *track) deviceToClient(i int) {
	defer t.wg.Done()
	if t.c.devAddr.Is4() && t.c.local.Addr().Is4() {
		t.deviceToClientBatch(i)
		return
	}
	buf := make([]byte, relayBufSize)
	st := t.c.st
	devIP := t.c.devAddr
	for {
		n, src, err := t.dev[i].ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		if src.Addr().Unmap() != devIP {
			st.dropped.Add(1)
			continue
		}
		t.last.Store(time.Now().UnixNano())
		to := t.to[i].Load()
		if _, err := t.ext[i].WriteToUDPAddrPort(buf[:n], *to); err != nil {
			st.dropped.Add(1)
			continue
		}
		st.out.Add(uint64(n))
		st.packetsOut.Add(1)
	}
}

// clientToDevice relays the client's packets (RTCP receiver reports, NAT
// punching packets) to the device, latching the client's address.
func (t *track) clientToDevice(i int) {
	defer t.wg.Done()
	buf := make([]byte, relayBufSize)
	st := t.c.st
	clientIP := t.c.client.Addr()
	read := t.clientReader(i)
	for {
		n, src, err := read(buf)
		if err != nil {
			return
		}
		src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
		if src.Addr() != clientIP {
			// Not the viewer: no latch, no relay (RFC 7362 §5.1).
			st.dropped.Add(1)
			st.foreign.Add(1)
			continue
		}
		t.last.Store(time.Now().UnixNano())
		if cur := t.to[i].Load(); *cur != src {
			t.to[i].Store(&src)
			if !t.latched[i].Swap(true) {
				t.c.log.Debug("rtp latched", "client", t.c.client, "track_port", t.extPort+uint16(i), "declared", *cur, "seen", src)
			}
		} else {
			t.latched[i].Store(true)
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

// clientReader returns how clientToDevice reads the client side of
// track i.
func (t *track) clientReader(i int) func([]byte) (int, netip.AddrPort, error) {
	if pc := t.tun[i]; pc != nil {
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
	return t.ext[i].ReadFromUDPAddrPort
}

// deviceToTunnel is deviceToClient for a client side bound through
// Addrs.ListenUDP: one datagram at a time (a userspace network stack has
// no recvmmsg to batch with), the client's address converted only when
// it changes.
func (t *track) deviceToTunnel(i int) {
	defer t.wg.Done()
	buf := make([]byte, relayBufSize)
	st := t.c.st
	devIP := t.c.devAddr
	pc := t.tun[i]
	var toAP netip.AddrPort
	var toUDP *net.UDPAddr
	for {
		n, src, err := t.dev[i].ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		if src.Addr().Unmap() != devIP {
			st.dropped.Add(1)
			continue
		}
		t.last.Store(time.Now().UnixNano())
		if to := *t.to[i].Load(); to != toAP || toUDP == nil {
			toAP, toUDP = to, net.UDPAddrFromAddrPort(to)
		}
		if _, err := pc.WriteTo(buf[:n], toUDP); err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			st.dropped.Add(1)
			continue
		}
		st.out.Add(uint64(n))
		st.packetsOut.Add(1)
	}
}

func (t *track) idleSince() time.Time { return time.Unix(0, t.last.Load()) }

// sockBuf is the relay sockets' buffer size; the kernel caps it at
// net.core.rmem_max / wmem_max.
const sockBuf = 1 << 20

// relayBatch is the most datagrams moved per recvmmsg/sendmmsg.
const relayBatch = 16

// deviceToClientBatch is deviceToClient for IPv4 with recvmmsg and
// sendmmsg: media comes in bursts (a frame is many datagrams), and one
// system call per burst instead of two per datagram is most of the
// relay's cost.
func (t *track) deviceToClientBatch(i int) {
	st := t.c.st
	devIP := net.IP(t.c.devAddr.AsSlice())
	in := ipv4.NewPacketConn(t.dev[i])
	out := ipv4.NewPacketConn(t.ext[i])
	msgs := make([]ipv4.Message, relayBatch)
	for k := range msgs {
		msgs[k].Buffers = [][]byte{make([]byte, 2048)}
	}
	send := make([]ipv4.Message, 0, relayBatch)
	var toAP netip.AddrPort
	var toUDP *net.UDPAddr
	for {
		n, err := in.ReadBatch(msgs, 0)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		to := *t.to[i].Load()
		if to != toAP || toUDP == nil {
			toAP, toUDP = to, net.UDPAddrFromAddrPort(to)
		}
		send = send[:0]
		bytes := 0
		for k := 0; k < n; k++ {
			m := &msgs[k]
			ua, ok := m.Addr.(*net.UDPAddr)
			if !ok || !ua.IP.Equal(devIP) || m.N > len(m.Buffers[0]) {
				st.dropped.Add(1)
				continue
			}
			send = append(send, ipv4.Message{Buffers: [][]byte{m.Buffers[0][:m.N]}, Addr: toUDP})
			bytes += m.N
		}
		if len(send) == 0 {
			continue
		}
		t.last.Store(time.Now().UnixNano())
		for len(send) > 0 {
			w, err := out.WriteBatch(send, 0)
			if err != nil {
				st.dropped.Add(uint64(len(send)))
				break
			}
			send = send[w:]
		}
		st.out.Add(uint64(bytes))
		st.packetsOut.Add(uint64(n))
	}
}
