package check

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/portowner"
)

// The RTP range. A viewer playing an RTSP rule over UDP gets its media
// from camgate's external RTP range (rtsp.rtp_ports, docs/RTSP.md), not
// from the rule's port: that range must be free on this host and
// forwarded by the router too. camgate binds a pair only while a viewer
// plays, so the outside probe binds a free pair itself and sends one
// datagram to it from the outside vantage point.

// isRTSPRule reports whether the rule carries RTSP through the relay.
func isRTSPRule(rule *config.Rule) bool {
	return rule.IsEnabled() && rule.Proto().HasTCP() && rule.GuardService() == config.ServiceRTSP && !rule.TLS.Terminate()
}

// rtpLayers checks the RTP range for an RTSP rule: free on this host
// (gateway) and reachable from outside (outside).
func (r *runner) rtpLayers(ctx context.Context, rule *config.Rule) []Result {
	pr := r.cfg.RTSP.Ports()
	listen := rule.Listen(r.cfg.Listen())
	la, err := netip.ParseAddr(listen)
	if err != nil {
		return nil
	}
	gw := Result{Layer: LayerGateway, Protocol: "udp", Probe: KindRTP, Target: fmt.Sprintf("%s:%s", listen, pr)}
	held := 0
	var other portowner.Owner
	for p := pr.First; p <= pr.Last && p >= pr.First; p++ {
		socks, _ := r.owners.Bound("udp", la, p)
		for _, s := range socks {
			if o, ok := r.owners.Owner(s.Inode); ok && !o.IsCamgate() {
				held++
				other = o
				break
			}
		}
	}
	pairs := (int(pr.Last) - int(pr.First) + 1) / 2
	switch {
	case held == 0:
		gw.Status, gw.Reason = OK, fmt.Sprintf("the RTP range %s/udp (%d viewer tracks) is free for camgate", pr, pairs)
	case held >= pr.Len()-1:
		gw.Status, gw.Reason = Fail, fmt.Sprintf("every port of the RTP range %s/udp is held by other programs (%s)", pr, other)
		gw.Fix = "set rtsp.rtp_ports to a free range; players then fall back to RTSP over TCP"
	default:
		gw.Status, gw.Reason = OK, fmt.Sprintf("%d ports of the RTP range %s/udp are held by other programs (%s); camgate skips them", held, pr, other)
	}
	return []Result{gw, r.rtpOutside(ctx, pr, la)}
}

// rtpOutside sends one datagram from the vantage point to a free port of
// the range through the public address.
func (r *runner) rtpOutside(ctx context.Context, pr config.PortRange, la netip.Addr) Result {
	res := Result{Layer: LayerOutside, Protocol: "udp", Probe: KindRTP}
	pa := r.public
	if pa.Class == ClassUnknown || pa.Class == ClassCGNAT || pa.Class == ClassPrivate {
		res.Status, res.Reason = Unknown, "the public address is unknown or not usable, so the RTP range cannot be tested from outside (see the rule's outside line)"
		return res
	}
	var pc *net.UDPConn
	var port uint16
	for p := pr.First + pr.First%2; p < pr.Last; p += 2 {
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(la, p)))
		if err == nil {
			pc, port = c, p
			break
		}
	}
	if pc == nil {
		res.Status, res.Reason = Unknown, "no port of the RTP range is free to test with right now (viewers are playing)"
		return res
	}
	defer pc.Close()
	target := netip.AddrPortFrom(pa.IP, port).String()
	res.Target = target
	path := "through the router (hairpin)"
	if !r.from.IsZero() {
		path = "from " + r.from.String()
	}
	token := []byte(fmt.Sprintf("camgate-check-rtp-%d", time.Now().UnixNano()))
	dctx, cancel := context.WithTimeout(ctx, r.c.timeout())
	defer cancel()
	conn, err := r.from.dialer()(dctx, "udp", target)
	if err != nil {
		res.Status, res.Reason = Unknown, fmt.Sprintf("cannot send to %s %s: %v", target, path, err)
		return res
	}
	defer conn.Close()
	got := make(chan bool, 1)
	go func() {
		buf := make([]byte, 256)
		pc.SetReadDeadline(time.Now().Add(r.c.timeout()))
		for {
			n, _, err := pc.ReadFromUDPAddrPort(buf)
			if err != nil {
				got <- false
				return
			}
			if string(buf[:n]) == string(token) {
				got <- true
				return
			}
		}
	}()
	// UDP may be lost: send a few times while waiting.
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	conn.Write(token)
	for {
		select {
		case ok := <-got:
			if ok {
				res.Status, res.Reason = OK, fmt.Sprintf("the RTP range is reachable: a datagram to %s %s arrived", target, path)
				return res
			}
			res.Reason = fmt.Sprintf("a datagram to %s %s did not arrive", target, path)
			res.Fix = fmt.Sprintf("forward the RTP range %s/udp on the router to this host (or set router: true on the rule); until then players fall back to RTSP over TCP", pr)
			res.Status = Unknown
			if r.from.Netns != "" {
				res.Status = Fail
			}
			return res
		case <-tick.C:
			conn.Write(token)
		}
	}
}
