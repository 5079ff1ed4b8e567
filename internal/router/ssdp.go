package router

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"golang.org/x/net/ipv4"
)

// SSDP (UPnP Device Architecture 2.0 §1.3) finds the router's UPnP
// description. camgate asks two ways at once: unicast to the gateway's
// port 1900, which miniupnpd and most routers answer and which needs no
// multicast route, and the 239.255.255.250 multicast group on the
// interface that reaches the gateway, for routers that only listen there.

const (
	ssdpPort   = 1900
	stIGD2     = "urn:schemas-upnp-org:device:InternetGatewayDevice:2"
	stIGD1     = "urn:schemas-upnp-org:device:InternetGatewayDevice:1"
	ssdpMaxLen = 4096
)

var ssdpGroup = netip.AddrPortFrom(netip.AddrFrom4([4]byte{239, 255, 255, 250}), ssdpPort)

// ssdpReply is the part of an M-SEARCH answer camgate uses.
type ssdpReply struct {
	ST       string
	USN      string
	Location string
	Server   string
}

// igd2 reports whether the reply advertises an IGD version 2 device.
func (r ssdpReply) igd2() bool { return strings.HasSuffix(r.ST, ":InternetGatewayDevice:2") }

func ssdpSearchRequest(st string) []byte {
	return []byte("M-SEARCH * HTTP/1.1\r\n" +
		"HOST: 239.255.255.250:1900\r\n" +
		"MAN: \"ssdp:discover\"\r\n" +
		"MX: 1\r\n" +
		"ST: " + st + "\r\n\r\n")
}

// parseSSDPReply decodes an M-SEARCH answer: an HTTP/1.1 200 response
// over UDP that names the description in its LOCATION header.
func parseSSDPReply(b []byte) (ssdpReply, error) {
	var r ssdpReply
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(b)), nil)
	if err != nil {
		return r, fmt.Errorf("ssdp answer is not an HTTP response: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return r, fmt.Errorf("ssdp answer has status %q", resp.Status)
	}
	r.ST = resp.Header.Get("St")
	r.USN = resp.Header.Get("Usn")
	r.Location = resp.Header.Get("Location")
	r.Server = resp.Header.Get("Server")
	if r.Location == "" {
		return r, errors.New("ssdp answer has no LOCATION header")
	}
	return r, nil
}

// ssdpSearch asks for an Internet Gateway Device and returns the best
// answer from gw: IGD2 if offered, else IGD1. Answers from other hosts are
// ignored (and logged): only the default gateway, or the configured one,
// may tell camgate where to send port-mapping requests.
func ssdpSearch(ctx context.Context, log *slog.Logger, local, gw netip.Addr, multicast bool, wait time.Duration) (ssdpReply, error) {
	conn, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(local, 0)))
	if err != nil {
		return ssdpReply{}, fmt.Errorf("ssdp: listen on %s: %w", local, err)
	}
	defer conn.Close()
	// Cancelling ctx interrupts a pending read.
	defer context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Now()) })()
	if multicast {
		if err := setMulticastInterface(conn, local); err != nil {
			log.Debug("ssdp: cannot choose the multicast interface; using the routing table", "local", local, "err", err)
		}
	}
	unicast := netip.AddrPortFrom(gw, ssdpPort)
	send := func() error {
		for _, st := range []string{stIGD2, stIGD1} {
			req := ssdpSearchRequest(st)
			if _, err := conn.WriteToUDPAddrPort(req, unicast); err != nil {
				return fmt.Errorf("ssdp: send to %s: %w", unicast, err)
			}
			if multicast {
				if _, err := conn.WriteToUDPAddrPort(req, ssdpGroup); err != nil {
					log.Debug("ssdp: multicast search failed", "err", err)
				}
			}
		}
		return nil
	}
	if err := send(); err != nil {
		return ssdpReply{}, err
	}
	deadline := time.Now().Add(wait)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	resend := time.Now().Add(wait / 3) // one retransmission against a lost datagram
	var best ssdpReply
	var found bool
	var last error
	buf := make([]byte, ssdpMaxLen)
	for {
		now := time.Now()
		if !now.Before(deadline) || ctx.Err() != nil {
			break
		}
		next := deadline
		if !resend.IsZero() && resend.Before(next) {
			next = resend
		}
		if found { // an IGD1 answer: give an IGD2 one a moment more
			if g := now.Add(150 * time.Millisecond); g.Before(next) {
				next = g
			}
		}
		if ctx.Err() != nil {
			break
		}
		conn.SetReadDeadline(next)
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				return ssdpReply{}, fmt.Errorf("ssdp: read: %w", err)
			}
			if found {
				break
			}
			if !resend.IsZero() && !time.Now().Before(resend) {
				resend = time.Time{}
				if err := send(); err != nil {
					return ssdpReply{}, err
				}
			}
			continue
		}
		if from.Addr().Unmap() != gw {
			log.Debug("ssdp: ignoring an answer that is not from the gateway", "from", from, "gateway", gw)
			continue
		}
		r, err := parseSSDPReply(buf[:n])
		if err != nil {
			last = err
			continue
		}
		if !strings.Contains(r.ST, ":InternetGatewayDevice:") {
			continue
		}
		if r.igd2() {
			return r, nil
		}
		best, found = r, true
	}
	if found {
		return best, nil
	}
	if last != nil {
		return ssdpReply{}, fmt.Errorf("%w: no usable UPnP answer from %s (last problem: %v)", errTimeout, gw, last)
	}
	return ssdpReply{}, fmt.Errorf("%w: no UPnP Internet Gateway Device answered at %s", errTimeout, gw)
}

// setMulticastInterface sends multicast out of the interface that holds
// local, so the search reaches the router's LAN even when the default
// route points elsewhere.
func setMulticastInterface(conn *net.UDPConn, local netip.Addr) error {
	ifs, err := net.Interfaces()
	if err != nil {
		return err
	}
	for i := range ifs {
		addrs, err := ifs[i].Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if p, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(p.IP); ok && ip.Unmap() == local {
					pc := ipv4.NewPacketConn(conn)
					if err := pc.SetMulticastTTL(2); err != nil {
						return err
					}
					return pc.SetMulticastInterface(&ifs[i])
				}
			}
		}
	}
	return fmt.Errorf("no interface has address %s", local)
}
