package sim

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"

	"golang.org/x/net/ipv4"
)

// maxProbeBytes bounds the discovery messages the device reads; real
// probes are a few hundred bytes.
const maxProbeBytes = 8 << 10

// answerFunc answers one discovery datagram. It returns the reply (nil
// for none) and the name to log the message under ("" for datagrams that
// are not requests at all, which are dropped silently).
type answerFunc func(msg []byte, src netip.AddrPort, own netip.Addr) (reply []byte, method string)

// serveDiscovery reads datagrams on c until ctx is done and answers each
// probe by unicast to its source address and port. (Which address a real
// device replies to has not been captured for this project; SADP clients
// such as hikvision-tooling read replies on the ephemeral socket that sent
// the probe, which a unicast reply reaches.)
func (d *Device) serveDiscovery(ctx context.Context, svc Service, c *net.UDPConn, answer answerFunc) error {
	pc := ipv4.NewPacketConn(c)
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	defer c.Close()
	buf := make([]byte, 64<<10)
	for {
		n, cm, from, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		src := addrPortOf(from)
		if n > maxProbeBytes || !src.IsValid() || src.Port() == 0 ||
			src.Addr().IsUnspecified() || src.Addr().IsMulticast() || d.isBroadcast(src.Addr()) {
			continue
		}
		var local netip.Addr
		ifIndex := 0
		if cm != nil {
			if a, ok := netip.AddrFromSlice(cm.Dst); ok {
				local = a.Unmap()
			}
			ifIndex = cm.IfIndex
		}
		own := d.ownAddr(local, ifIndex, src.Addr())
		reply, method := answer(buf[:n], src, own)
		if method == "" {
			continue
		}
		status := 0
		if reply != nil {
			status = 200
		}
		d.reqs.add(Request{Service: svc, Source: src, Method: method, Status: status})
		if reply == nil {
			continue
		}
		var wcm *ipv4.ControlMessage
		if d.cfg.listen().IsUnspecified() && d.isLocal(own) {
			// Answer from the address the reply names, not whatever the
			// routing table would pick on a multi-address interface.
			wcm = &ipv4.ControlMessage{Src: own.AsSlice()}
		}
		if _, err := pc.WriteTo(reply, wcm, net.UDPAddrFromAddrPort(src)); err != nil {
			d.log.Debug("discovery reply not sent", "service", string(svc), "dst", src.String(), "err", err)
		}
	}
}

// isLocal reports whether a is an address of one of the interfaces.
func (d *Device) isLocal(a netip.Addr) bool {
	for _, info := range d.ifaces {
		if slices.ContainsFunc(info.prefixes, func(p netip.Prefix) bool { return p.Addr() == a }) {
			return true
		}
	}
	return false
}

// reportedPort is the port the device reports for a service (in SADP and
// adminAccesses): the bound port when it runs, otherwise the configured
// port, otherwise the standard one; on says whether it runs.
func (d *Device) reportedPort(svc Service, std int) (port int, on bool) {
	if ap := d.addrs[svc]; ap.IsValid() {
		return int(ap.Port()), true
	}
	if p := d.cfg.Ports.Port(svc); p > 0 {
		return p, false
	}
	return std, false
}
