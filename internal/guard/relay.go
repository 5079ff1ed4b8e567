package guard

import (
	"context"
	"io"
	"net"
	"net/netip"
)

// RTSPRelay carries what the guard does not judge on an RTSP rule: RTP
// over UDP and the rewriting of the device's address in answers (package
// rtsp, wired by cmd/camgate). The guard reads every RTSP message anyway;
// it hands each one to the connection's RTSPConn.
type RTSPRelay interface {
	// Open starts one connection's relay state, once the device is
	// dialled.
	Open(rule string, a RTSPAddrs) RTSPConn
}

// RTSPAddrs are the ends of one RTSP connection through camgate.
type RTSPAddrs struct {
	Client, Local, Device, DeviceLocal netip.AddrPort
	// Target is the rule's internal_ip as written.
	Target string
	// ListenUDP binds a UDP socket at the connection's local address on
	// port (0: any), for connections whose client conn can (camgate's
	// WireGuard tunnel: its addresses live in a userspace network stack,
	// not the host's). Nil: the relay binds on the host.
	ListenUDP func(port uint16) (net.PacketConn, error)
}

// udpListener is a client connection that can bind UDP sockets at its own
// local address (a connection through the WireGuard tunnel).
type udpListener interface {
	ListenUDP(port uint16) (net.PacketConn, error)
}

// RTSPConn is one RTSP connection's relay state.
type RTSPConn interface {
	// Request sees a client's request head and returns the head to send
	// to the device, or an answer for the client instead (then the
	// request is not forwarded).
	Request(method, target string, head []byte) (out, answer []byte, p RTSPPending)
	// Close ends the connection's relayed sessions.
	Close()
}

// RTSPPending is a forwarded request waiting for its answer.
type RTSPPending interface {
	// Response rewrites the answer's head and body. body is nil when the
	// body is too large to hold (over maxRelayBody); it then streams
	// unchanged.
	Response(status int, head, body []byte) (outHead, outBody []byte)
}

// maxRelayBody is the largest answer body held for rewriting (an SDP is
// a few hundred bytes; GET_PARAMETER answers less).
const maxRelayBody = 64 << 10

// openRelay starts the RTSP relay state of a session once its device
// connection is up.
func (s *session) openRelay() {
	if s.h.rg.relay == nil {
		return
	}
	a := RTSPAddrs{
		Client:      s.c.Client,
		Local:       addrPortOf(s.c.ClientConn().LocalAddr()),
		Device:      addrPortOf(s.dev.RemoteAddr()),
		DeviceLocal: addrPortOf(s.dev.LocalAddr()),
		Target:      s.h.rg.device,
	}
	if l, ok := any(s.c.ClientConn()).(udpListener); ok {
		a.ListenUDP = l.ListenUDP
	}
	s.relay = s.h.rg.relay.Open(s.h.rg.name, a)
}

func addrPortOf(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}

// answerLocally writes an answer the relay gave instead of forwarding a
// request, after the answers already owed; the request's body, if any, is
// read and dropped.
func (s *session) answerLocally(ctx context.Context, m *message, answer, buf []byte) error {
	kind, n := m.requestBody()
	if err := copyBody(io.Discard, s.cr, nil, kind, n, buf); err != nil {
		return err
	}
	s.waitIdle(ctx)
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_, err := s.toClient.Write(answer)
	return err
}

// rewriteAnswer lets the relay rewrite an answer. A body small enough is
// read whole and returned after the head, so the caller writes one
// message with no body left to stream.
func (s *session) rewriteAnswer(ex *exchange, m *message, kind bodyKind, n int64) ([]byte, bodyKind, int64, error) {
	if ex != nil && ex.onvif != "" {
		return s.rewriteONVIF(ex, m, kind, n)
	}
	if ex == nil || ex.relay == nil {
		return m.head, kind, n, nil
	}
	if kind != bodyFixed || n > maxRelayBody {
		head, _ := ex.relay.Response(m.status, m.head, nil)
		return head, kind, n, nil
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(s.dr, body); err != nil {
		return nil, 0, 0, err
	}
	head, body := ex.relay.Response(m.status, m.head, body)
	return append(head[:len(head):len(head)], body...), bodyNone, 0, nil
}

// RTSP returns the relay given in Config.RTSP (nil if none).
func (p *Policy) RTSP() RTSPRelay { return p.rtsp }
