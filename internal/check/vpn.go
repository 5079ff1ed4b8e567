package check

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/camgate/camgate/internal/netns"
	"github.com/camgate/camgate/internal/portowner"
)

// The VPN (docs/VPN.md). WireGuard answers nothing to a packet that does
// not carry a key it knows, so the only real test of its port is a
// handshake. The running gateway hands out a short-lived probe identity
// (Config.VPNProbe); the outside layer completes a WireGuard handshake
// with it from the vantage point, through the public address, and ends
// the identity at once.

// VPNRule is the name the VPN's results carry in the report.
const VPNRule = "vpn"

// VPNProbe is a probe identity of the running VPN: the server's public
// key, the probe's private key and the server's UDP port.
type VPNProbe struct {
	ServerKey, PrivateKey [32]byte
	Port                  uint16
	// End removes the identity from the server. Check calls it as soon
	// as the handshake is over, whatever its outcome.
	End func()
}

// vpnLayers checks the VPN's UDP port: camgate holds it (gateway), and a
// WireGuard handshake with a probe key completes through the public
// address (outside).
func (r *runner) vpnLayers(ctx context.Context) RuleReport {
	port := r.cfg.VPN.Port()
	rr := RuleReport{Rule: VPNRule, Description: fmt.Sprintf("built-in WireGuard VPN, udp port %d", port), Enabled: true}
	gw := r.vpnGateway(port)
	rr.Results = append(rr.Results, gw, r.vpnOutside(ctx, port, gw))
	return rr
}

// vpnGateway checks that camgate holds the VPN's UDP port (WireGuard
// binds it on every address).
func (r *runner) vpnGateway(port uint16) Result {
	any4 := netip.IPv4Unspecified()
	res := Result{Layer: LayerGateway, Protocol: "udp", Probe: KindWireGuard, Target: netip.AddrPortFrom(any4, port).String()}
	socks, procErr := r.owners.Bound("udp", any4, port)
	var camgate, other *portowner.Owner
	unknown := false
	for _, s := range socks {
		o, ok := r.owners.Owner(s.Inode)
		switch {
		case !ok:
			unknown = true
		case o.IsCamgate():
			camgate = &o
		default:
			other = &o
		}
	}
	where := fmt.Sprintf("udp port %d", port)
	switch {
	case camgate != nil:
		res.Status, res.Reason = OK, fmt.Sprintf("%s holds the VPN's %s", *camgate, where)
	case other != nil:
		res.Status, res.Reason = Fail, fmt.Sprintf("the VPN's %s is held by another program: %s", where, *other)
		res.Fix = "stop that program, or set vpn.listen_port to a free port"
	case unknown:
		res.Status, res.Reason = OK, fmt.Sprintf("a UDP socket is bound on the VPN's %s (which program holds it is not visible; run as root to tell)", where)
	case procErr != nil:
		res.Status, res.Reason = Unknown, fmt.Sprintf("the socket table cannot be read here (%v), so camgate cannot tell whether the VPN listens on %s", procErr, where)
		res.Fix = "run camgate check on the host that runs camgate serve"
	default:
		res.Status, res.Reason = Fail, fmt.Sprintf("nothing is bound on the VPN's %s", where)
		res.Fix = "start camgate serve with this config (vpn: {enabled: true}), or read its log: the VPN may have failed to start"
	}
	return res
}

// vpnOutside completes a WireGuard handshake with a probe identity from
// the vantage point through the public address.
func (r *runner) vpnOutside(ctx context.Context, port uint16, gw Result) Result {
	res := Result{Layer: LayerOutside, Protocol: "udp", Probe: KindWireGuard}
	pa := r.public
	forward := fmt.Sprintf("forward UDP %d on the router to this gateway, or set vpn.router: true", port)
	switch pa.Class {
	case ClassUnknown:
		res.Status, res.Reason = Unknown, "the public address is unknown, so the VPN cannot be tested from the internet side"
		res.Fix = "pass --public-ip ADDRESS, set public_ip in the config, or turn on router mode"
		return res
	case ClassCGNAT:
		res.Target = netip.AddrPortFrom(pa.IP, port).String()
		res.Status = Fail
		res.Reason = fmt.Sprintf("the public address %s is carrier-grade NAT (CGNAT, 100.64.0.0/10): phones cannot reach the VPN's port from the internet", pa.IP)
		res.Fix = "ask the ISP for a public IPv4 address (often free on request), or reach the gateway over IPv6"
		return res
	case ClassPrivate:
		res.Target = netip.AddrPortFrom(pa.IP, port).String()
		res.Status = Fail
		res.Reason = fmt.Sprintf("the public address %s is not an internet address (double NAT or no public address): phones cannot reach the VPN's port from the internet", pa.IP)
		res.Fix = fmt.Sprintf("forward UDP %d on the modem or router in front too (or put it in bridge mode)", port)
		return res
	}
	target := netip.AddrPortFrom(pa.IP, port)
	res.Target = target.String()
	if r.c.VPNProbe == nil {
		res.Status, res.Reason = Unknown, "no probe key: WireGuard answers only a key it knows, and check has no way to ask the running gateway for one"
		res.Fix = "run camgate check with access to the gateway's admin API"
		return res
	}
	pctx, cancel := context.WithTimeout(ctx, r.c.timeout())
	p, err := r.c.VPNProbe(pctx)
	cancel()
	if err != nil {
		res.Status = Unknown
		res.Reason = fmt.Sprintf("WireGuard answers only a key it knows, and the running gateway gave no probe key: %v", err)
		res.Fix = "run camgate serve with this config, and give check an API token (--token-file FILE or CAMGATE_TOKEN) so that it can add a short-lived probe key"
		return res
	}
	if p.End != nil {
		defer p.End()
	}
	if p.Port != 0 && p.Port != port {
		// The running gateway listens elsewhere than the file says (a
		// reload is pending): test what runs.
		port = p.Port
		target = netip.AddrPortFrom(pa.IP, port)
		res.Target = target.String()
	}
	path := "through the router (hairpin)"
	if !r.from.IsZero() {
		path = "from " + r.from.String()
	}
	took, err := Handshake(ctx, r.from.listenUDP(target.Addr()), p.ServerKey, p.PrivateKey, target, r.c.timeout())
	r.log.Debug("vpn probe", "target", target, "from", r.from.String(), "took", took, "err", err)
	if err == nil {
		res.Status = OK
		res.Reason = fmt.Sprintf("a WireGuard handshake with a probe key completed at %s %s in %s", target, path, took.Round(100*time.Microsecond))
		res.Details = map[string]string{"handshake": took.String()}
		return res
	}
	what := err.Error()
	switch {
	case gw.Status == Fail:
		res.Status = Unknown
		res.Reason = fmt.Sprintf("no WireGuard handshake at %s %s (%s), as expected while camgate does not listen (see gateway)", target, path, what)
		res.Fix = "fix the gateway layer first"
	case r.from.Netns != "":
		res.Status = Fail
		res.Reason = fmt.Sprintf("no WireGuard handshake at %s %s: %s", target, path, what)
		res.Fix = forward
	default:
		res.Status = Unknown
		res.Reason = fmt.Sprintf("no WireGuard handshake at %s %s (%s): many routers do not support hairpin NAT, so this does not tell whether phones can reach the VPN", target, path, what)
		res.Fix = "test from outside the LAN (the WireGuard app on mobile data), or " + forward
	}
	return res
}

// listenUDP returns a function that opens a UDP socket at the vantage
// point, for WireGuard to send from.
func (f From) listenUDP(dst netip.Addr) func() (*net.UDPConn, error) {
	network, src := "udp4", netip.IPv4Unspecified()
	if dst.Is6() {
		network, src = "udp6", netip.IPv6Unspecified()
	}
	if f.Addr.IsValid() {
		src = f.Addr
	}
	listen := func() (*net.UDPConn, error) {
		return net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)))
	}
	if f.Netns == "" {
		return listen
	}
	return func() (c *net.UDPConn, err error) {
		err = netns.Do(f.Netns, func() (err error) {
			c, err = listen()
			return err
		})
		return c, err
	}
}

// Handshake completes a WireGuard handshake as the peer with private key
// priv against the server with public key server at target, sending from
// the socket listen opens, and returns how long it took. It runs
// userspace WireGuard (golang.zx2c4.com/wireguard) with no TUN device:
// nothing is sent inside the tunnel.
func Handshake(ctx context.Context, listen func() (*net.UDPConn, error), server, priv [32]byte, target netip.AddrPort, timeout time.Duration) (time.Duration, error) {
	tdev := newNullTUN()
	bind := &udpBind{listen: listen}
	dev := device.NewDevice(tdev, bind, device.NewLogger(device.LogLevelSilent, ""))
	defer dev.Close()
	// A persistent keepalive makes the device send at once when it comes
	// up, which starts the handshake.
	conf := fmt.Sprintf("private_key=%s\nlisten_port=0\npublic_key=%s\nendpoint=%s\npersistent_keepalive_interval=1\n",
		hex.EncodeToString(priv[:]), hex.EncodeToString(server[:]), target)
	if err := dev.IpcSet(conf); err != nil {
		return 0, fmt.Errorf("wireguard: %w", err)
	}
	start := time.Now()
	if err := dev.Up(); err != nil {
		if bind.err != nil {
			return 0, fmt.Errorf("cannot open a UDP socket to send from: %w", bind.err)
		}
		return 0, fmt.Errorf("wireguard: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if handshakeDone(dev) {
			return time.Since(start), nil
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("no answer to the handshake initiation within %s", timeout)
		case <-tick.C:
		}
	}
}

// handshakeDone reports whether the device's one peer has completed a
// handshake (UAPI last_handshake_time_sec set).
func handshakeDone(dev *device.Device) bool {
	text, err := dev.IpcGet()
	if err != nil {
		return false
	}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "last_handshake_time_sec="); ok && v != "0" {
			return true
		}
	}
	return false
}

// nullTUN is a TUN device with no packets: the probe only shakes hands.
type nullTUN struct {
	events    chan tun.Event
	closed    chan struct{}
	closeOnce sync.Once
}

func newNullTUN() *nullTUN {
	return &nullTUN{events: make(chan tun.Event), closed: make(chan struct{})}
}

func (t *nullTUN) File() *os.File { return nil }
func (t *nullTUN) Read([][]byte, []int, int) (int, error) {
	<-t.closed
	return 0, os.ErrClosed
}
func (t *nullTUN) Write(bufs [][]byte, _ int) (int, error) { return len(bufs), nil }
func (t *nullTUN) MTU() (int, error)                       { return 1420, nil }
func (t *nullTUN) Name() (string, error)                   { return "camgate-check", nil }
func (t *nullTUN) Events() <-chan tun.Event                { return t.events }
func (t *nullTUN) BatchSize() int                          { return 1 }
func (t *nullTUN) Close() error {
	t.closeOnce.Do(func() { close(t.closed); close(t.events) })
	return nil
}

// udpBind is a conn.Bind over one UDP socket that listen opens: in
// another network namespace or on a given source address, which
// conn.StdNetBind cannot do.
type udpBind struct {
	listen func() (*net.UDPConn, error)

	mu  sync.Mutex // guards following
	c   *net.UDPConn
	err error // the last failed listen
}

type udpEndpoint netip.AddrPort

func (e udpEndpoint) ClearSrc()           {}
func (e udpEndpoint) SrcToString() string { return "" }
func (e udpEndpoint) DstToString() string { return netip.AddrPort(e).String() }
func (e udpEndpoint) DstToBytes() []byte {
	b, _ := netip.AddrPort(e).MarshalBinary()
	return b
}
func (e udpEndpoint) DstIP() netip.Addr { return netip.AddrPort(e).Addr() }
func (e udpEndpoint) SrcIP() netip.Addr { return netip.Addr{} }

func (b *udpBind) Open(uint16) ([]conn.ReceiveFunc, uint16, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.c != nil {
		return nil, 0, conn.ErrBindAlreadyOpen
	}
	c, err := b.listen()
	if err != nil {
		b.err = err
		return nil, 0, err
	}
	b.c = c
	recv := func(packets [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
		n, from, err := c.ReadFromUDPAddrPort(packets[0])
		if err != nil {
			return 0, err
		}
		sizes[0], eps[0] = n, udpEndpoint(netip.AddrPortFrom(from.Addr().Unmap(), from.Port()))
		return 1, nil
	}
	return []conn.ReceiveFunc{recv}, uint16(c.LocalAddr().(*net.UDPAddr).Port), nil
}

func (b *udpBind) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.c == nil {
		return nil
	}
	err := b.c.Close()
	b.c = nil
	return err
}

func (b *udpBind) SetMark(uint32) error { return nil }
func (b *udpBind) BatchSize() int       { return 1 }

func (b *udpBind) Send(bufs [][]byte, ep conn.Endpoint) error {
	b.mu.Lock()
	c := b.c
	b.mu.Unlock()
	e, ok := ep.(udpEndpoint)
	if !ok {
		return conn.ErrWrongEndpointType
	}
	if c == nil {
		return net.ErrClosed
	}
	for _, buf := range bufs {
		if _, err := c.WriteToUDPAddrPort(buf, netip.AddrPort(e)); err != nil {
			return err
		}
	}
	return nil
}

func (b *udpBind) ParseEndpoint(s string) (conn.Endpoint, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return nil, fmt.Errorf("wireguard endpoint %q: %w", s, err)
	}
	return udpEndpoint(netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())), nil
}
