package vpn

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
)

// RTSP over UDP through the tunnel. A player on a phone asks the device,
// in SETUP, to send RTP to client_port=a-b of its tunnel address, which
// the device cannot reach. camgate replaces a-b by a pair of host sockets
// on its LAN address (the device sends there, as it would to a LAN
// player), puts a-b back in the answer, and forwards what arrives on the
// pair into the tunnel from the device's address and server_port, which
// is what the player expects. RTCP from the player to the device's
// server ports goes the other way through the same pair. TCP interleaved
// streams, and everything else, pass unchanged.
//
// Package rtsp (the relay for forwarded rules) does the same for the
// internet side with a fixed external port range; here the client side is
// the netstack, whose sockets are free to bind any address, so this file
// keeps its own small version rather than reserving that range.

// maxRTSPHead bounds one RTSP message head; real ones are under 2 KB.
const maxRTSPHead = 16 << 10

// isRTSP reports whether target is an allowed device's RTSP port.
func (s *Server) isRTSP(target netip.AddrPort) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.devices {
		if _, rtsp, _ := d.Ports(); rtsp != target.Port() {
			continue
		}
		if a, err := netip.ParseAddr(d.Address); err == nil && a.Unmap() == target.Addr() {
			return true
		}
	}
	return false
}

// rtspConn is one RTSP connection from a peer.
type rtspConn struct {
	s      *Server
	peer   netip.Addr
	device netip.AddrPort
	lan    netip.Addr // camgate's address towards the device

	mu      sync.Mutex // guards following
	pending map[string]*track
	tracks  []*track
}

// track is one SETUP's UDP pair: host sockets towards the device and
// netstack sockets towards the peer.
type track struct {
	peerPorts [2]uint16
	host      [2]*net.UDPConn
	tun       [2]*gonet.UDPConn
}

func (t *track) close() {
	for i := range 2 {
		if t.host[i] != nil {
			t.host[i].Close()
		}
		if t.tun[i] != nil {
			t.tun[i].Close()
		}
	}
}

// serveRTSP relays one RTSP connection, rewriting UDP SETUPs.
func (s *Server) serveRTSP(peer netip.Addr, device netip.AddrPort, cc *TunnelConn, dc *net.TCPConn) error {
	rc := &rtspConn{s: s, peer: peer, device: device, pending: map[string]*track{}}
	rc.lan = dc.LocalAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
	defer rc.close()
	errc := make(chan error, 1)
	go func() {
		err := rc.answers(cc, bufio.NewReaderSize(dc, 32<<10))
		cc.CloseWrite()
		errc <- err
	}()
	// requests returns only when the player's side ends (io.EOF included):
	// the session is over then, so both sides are closed, which also ends
	// the answers loop.
	err := rc.requests(dc, bufio.NewReader(cc))
	cc.Close()
	dc.Close()
	<-errc
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

func (rc *rtspConn) close() {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, t := range rc.tracks {
		t.close()
	}
	for _, t := range rc.pending {
		t.close()
	}
	rc.tracks, rc.pending = nil, nil
}

// requests passes the player's messages to the device.
func (rc *rtspConn) requests(dst io.Writer, src *bufio.Reader) error {
	for {
		head, err := readRTSPHead(src)
		if err != nil {
			return err
		}
		if head == nil { // an interleaved frame, already passed
			if err := passInterleaved(dst, src); err != nil {
				return err
			}
			continue
		}
		if bytes.HasPrefix(head, []byte("SETUP ")) {
			head, err = rc.setup(head)
			if err != nil {
				return err
			}
		}
		if _, err := dst.Write(head); err != nil {
			return err
		}
		if err := passBody(dst, src, head); err != nil {
			return err
		}
	}
}

// answers passes the device's messages and interleaved data to the
// player.
func (rc *rtspConn) answers(dst io.Writer, src *bufio.Reader) error {
	for {
		head, err := readRTSPHead(src)
		if err != nil {
			return err
		}
		if head == nil {
			if err := passInterleaved(dst, src); err != nil {
				return err
			}
			continue
		}
		if bytes.HasPrefix(head, []byte("RTSP/")) {
			head = rc.answer(head)
		}
		if _, err := dst.Write(head); err != nil {
			return err
		}
		if err := passBody(dst, src, head); err != nil {
			return err
		}
	}
}

// setup swaps a UDP SETUP's client_port for a host pair.
func (rc *rtspConn) setup(head []byte) ([]byte, error) {
	tr := rtspHeader(head, "Transport")
	if tr == "" || !bytes.Contains(bytes.ToLower([]byte(tr)), []byte("client_port=")) {
		return head, nil
	}
	a, b, ok := portPair(tr, "client_port=")
	if !ok {
		return head, nil
	}
	t := &track{peerPorts: [2]uint16{a, b}}
	for i := range 2 {
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(rc.lan, 0)))
		if err != nil {
			t.close()
			return nil, fmt.Errorf("rtsp setup: bind rtp pair: %w", err)
		}
		t.host[i] = c
	}
	hp := [2]uint16{localUDPPort(t.host[0]), localUDPPort(t.host[1])}
	rc.mu.Lock()
	if old := rc.pending[rtspHeader(head, "CSeq")]; old != nil {
		old.close()
	}
	rc.pending[rtspHeader(head, "CSeq")] = t
	rc.mu.Unlock()
	return replacePorts(head, "client_port=", hp), nil
}

// answer puts the player's ports back into a SETUP answer and starts the
// track's relay.
func (rc *rtspConn) answer(head []byte) []byte {
	cseq := rtspHeader(head, "CSeq")
	rc.mu.Lock()
	t := rc.pending[cseq]
	delete(rc.pending, cseq)
	rc.mu.Unlock()
	if t == nil {
		return head
	}
	tr := rtspHeader(head, "Transport")
	sa, sb, ok := portPair(tr, "server_port=")
	if !ok || !bytes.HasPrefix(head, []byte("RTSP/1.0 200")) {
		t.close()
		return head
	}
	head = replacePorts(head, "client_port=", t.peerPorts)
	if err := rc.start(t, [2]uint16{sa, sb}); err != nil {
		rc.s.log.Warn("vpn: rtsp udp track not relayed", "peer", rc.peer, "device", rc.device, "err", err)
		t.close()
		return head
	}
	return head
}

// start opens the netstack side of a track and relays both ways.
func (rc *rtspConn) start(t *track, server [2]uint16) error {
	for i := range 2 {
		local := tcpip.FullAddress{NIC: nicID, Addr: tcpip.AddrFrom4(rc.device.Addr().As4()), Port: server[i]}
		remote := tcpip.FullAddress{NIC: nicID, Addr: tcpip.AddrFrom4(rc.peer.As4()), Port: t.peerPorts[i]}
		c, err := gonet.DialUDP(rc.s.tun.stack, &local, &remote, ipv4.ProtocolNumber)
		if err != nil {
			return fmt.Errorf("tunnel socket %v:%d: %w", rc.device.Addr(), server[i], err)
		}
		t.tun[i] = c
	}
	rc.mu.Lock()
	rc.tracks = append(rc.tracks, t)
	rc.mu.Unlock()
	for i := range 2 {
		dev := net.UDPAddrFromAddrPort(netip.AddrPortFrom(rc.device.Addr(), server[i]))
		rc.s.relays.Add(2)
		go func() { defer rc.s.relays.Done(); deviceToPeer(t.tun[i], t.host[i], rc.device.Addr()) }()
		go func() { defer rc.s.relays.Done(); peerToDevice(t.host[i], t.tun[i], dev) }()
	}
	return nil
}

// deviceToPeer forwards what the device sends to the host socket into
// the tunnel; datagrams from anyone but the device are dropped. It ends
// when the socket closes (the RTSP connection ended).
func deviceToPeer(dst *gonet.UDPConn, src *net.UDPConn, device netip.Addr) {
	buf := make([]byte, 65535)
	for {
		n, from, err := src.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		if from.Addr().Unmap() != device {
			continue
		}
		dst.Write(buf[:n])
	}
}

// peerToDevice forwards the player's RTCP (and hole punching) to the
// device's server port.
func peerToDevice(dst *net.UDPConn, src *gonet.UDPConn, device *net.UDPAddr) {
	buf := make([]byte, 65535)
	for {
		n, err := src.Read(buf)
		if err != nil {
			return
		}
		dst.WriteToUDP(buf[:n], device)
	}
}

func localUDPPort(c *net.UDPConn) uint16 { return c.LocalAddr().(*net.UDPAddr).AddrPort().Port() }

// readRTSPHead reads one message head, through the blank line. It
// returns nil, nil when the next byte starts an interleaved frame ('$').
func readRTSPHead(r *bufio.Reader) ([]byte, error) {
	b, err := r.Peek(1)
	if err != nil {
		return nil, err
	}
	if b[0] == '$' {
		return nil, nil
	}
	var head []byte
	for {
		line, err := r.ReadSlice('\n')
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return nil, err
		}
		head = append(head, line...)
		if len(head) > maxRTSPHead {
			return nil, errors.New("rtsp: message head too long")
		}
		if err == nil && (len(line) == 2 && line[0] == '\r' || len(line) == 1) {
			return head, nil
		}
	}
}

// passInterleaved copies one '$' frame: 1 byte '$', channel, 2-byte
// length, payload.
func passInterleaved(dst io.Writer, src *bufio.Reader) error {
	h, err := src.Peek(4)
	if err != nil {
		return err
	}
	n := 4 + (int64(h[2])<<8 | int64(h[3]))
	_, err = io.CopyN(dst, src, n)
	return err
}

// passBody copies the body a head announces with Content-Length.
func passBody(dst io.Writer, src io.Reader, head []byte) error {
	v := rtspHeader(head, "Content-Length")
	if v == "" {
		return nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || n > 16<<20 {
		return fmt.Errorf("rtsp: bad Content-Length %q", v)
	}
	_, err = io.CopyN(dst, src, n)
	return err
}

// rtspHeader returns the value of the named header in head, or "".
func rtspHeader(head []byte, name string) string {
	for line := range bytes.Lines(head) {
		k, v, ok := bytes.Cut(line, []byte(":"))
		if ok && bytes.EqualFold(bytes.TrimSpace(k), []byte(name)) {
			return string(bytes.TrimSpace(v))
		}
	}
	return ""
}

// portPair reads "key=a-b" (or "key=a") from a Transport value.
func portPair(tr, key string) (uint16, uint16, bool) {
	low := bytes.ToLower([]byte(tr))
	i := bytes.Index(low, []byte(key))
	if i < 0 {
		return 0, 0, false
	}
	v := tr[i+len(key):]
	if j := bytes.IndexAny([]byte(v), ";,"); j >= 0 {
		v = v[:j]
	}
	as, bs, pair := bytes.Cut([]byte(v), []byte("-"))
	a, err := strconv.ParseUint(string(bytes.TrimSpace(as)), 10, 16)
	if err != nil || a == 0 {
		return 0, 0, false
	}
	b := a + 1
	if pair {
		if b, err = strconv.ParseUint(string(bytes.TrimSpace(bs)), 10, 16); err != nil || b == 0 {
			return 0, 0, false
		}
	}
	return uint16(a), uint16(b), true
}

// replacePorts rewrites every "key=a-b" in head's Transport line(s).
func replacePorts(head []byte, key string, ports [2]uint16) []byte {
	var out []byte
	for line := range bytes.Lines(head) {
		k, _, ok := bytes.Cut(line, []byte(":"))
		if !ok || !bytes.EqualFold(bytes.TrimSpace(k), []byte("Transport")) {
			out = append(out, line...)
			continue
		}
		low := bytes.ToLower(line)
		for {
			i := bytes.Index(low, []byte(key))
			if i < 0 {
				break
			}
			j := i + len(key)
			for j < len(line) && (line[j] >= '0' && line[j] <= '9' || line[j] == '-') {
				j++
			}
			out = append(out, line[:i]...)
			out = fmt.Appendf(out, "%s%d-%d", line[i:i+len(key)], ports[0], ports[1])
			line, low = line[j:], low[j:]
		}
		out = append(out, line...)
	}
	return out
}
