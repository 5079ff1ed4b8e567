package router

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// PCP (Port Control Protocol, RFC 6887) MAP client. No maintained Go
// client exists, so this is a small one: the 24-byte common header, the
// 36-byte MAP payload, options skipped (but bounds-checked), result codes
// mapped to camgate's mapping states, and the epoch check of §8.5.
//
// The nonce (§11.1) identifies a mapping: renewing and deleting must send
// the nonce that created it, or the server answers NOT_AUTHORIZED. It is
// kept in the lease and persisted for crash reclaim.

const (
	pcpVersion    = 2
	pcpServerPort = 5351 // RFC 6887 §19.1; shared with NAT-PMP (RFC 6886)
	pcpOpAnnounce = 0
	pcpOpMap      = 1
	pcpReplyBit   = 0x80

	pcpHeaderLen = 24
	pcpMapLen    = 36
	// pcpMaxLen is the largest PCP message (RFC 6887 §7).
	pcpMaxLen = 1100

	ipProtoTCP = 6
	ipProtoUDP = 17
)

// pcpResult is a PCP result code (RFC 6887 §7.4).
type pcpResult uint8

const (
	pcpSuccess               pcpResult = 0
	pcpUnsuppVersion         pcpResult = 1
	pcpNotAuthorized         pcpResult = 2
	pcpMalformedRequest      pcpResult = 3
	pcpUnsuppOpcode          pcpResult = 4
	pcpUnsuppOption          pcpResult = 5
	pcpMalformedOption       pcpResult = 6
	pcpNetworkFailure        pcpResult = 7
	pcpNoResources           pcpResult = 8
	pcpUnsuppProtocol        pcpResult = 9
	pcpUserExQuota           pcpResult = 10
	pcpCannotProvideExternal pcpResult = 11
	pcpAddressMismatch       pcpResult = 12
	pcpExcessiveRemotePeers  pcpResult = 13
)

var pcpResultNames = [...]string{
	"SUCCESS", "UNSUPP_VERSION", "NOT_AUTHORIZED", "MALFORMED_REQUEST",
	"UNSUPP_OPCODE", "UNSUPP_OPTION", "MALFORMED_OPTION", "NETWORK_FAILURE",
	"NO_RESOURCES", "UNSUPP_PROTOCOL", "USER_EX_QUOTA", "CANNOT_PROVIDE_EXTERNAL",
	"ADDRESS_MISMATCH", "EXCESSIVE_REMOTE_PEERS",
}

func (r pcpResult) String() string {
	if int(r) < len(pcpResultNames) {
		return pcpResultNames[r]
	}
	return fmt.Sprintf("result %d", uint8(r))
}

// state maps a result code to what camgate reports for the mapping.
func (r pcpResult) state() State {
	switch r {
	case pcpNotAuthorized, pcpNoResources, pcpUserExQuota, pcpExcessiveRemotePeers:
		return StateRefused
	case pcpCannotProvideExternal:
		return StateConflict
	case pcpUnsuppVersion, pcpUnsuppOpcode, pcpUnsuppOption, pcpUnsuppProtocol:
		return StateUnsupported
	default:
		return StateError
	}
}

// explain says in words what a result code means for the user.
func (r pcpResult) explain() string {
	switch r {
	case pcpNotAuthorized:
		return "the router does not allow this mapping (PCP NOT_AUTHORIZED: its rules forbid the port, or the mapping belongs to someone else)"
	case pcpNoResources, pcpUserExQuota:
		return fmt.Sprintf("the router has no room for more mappings (PCP %s)", r)
	case pcpCannotProvideExternal:
		return "the router cannot give this external port (PCP CANNOT_PROVIDE_EXTERNAL: it is in use)"
	case pcpNetworkFailure:
		return "the router has no working WAN connection (PCP NETWORK_FAILURE)"
	case pcpAddressMismatch:
		return "the router sees a different source address than camgate's LAN address (PCP ADDRESS_MISMATCH: another NAT in between, or a wrong local_address)"
	case pcpUnsuppVersion, pcpUnsuppOpcode, pcpUnsuppOption, pcpUnsuppProtocol:
		return fmt.Sprintf("the router does not support this request (PCP %s)", r)
	default:
		return fmt.Sprintf("the router answered PCP %s", r)
	}
}

// pcpNonce is the 96-bit mapping nonce.
type pcpNonce [12]byte

func newNonce() pcpNonce {
	var n pcpNonce
	rand.Read(n[:])
	return n
}

func (n pcpNonce) String() string { return hex.EncodeToString(n[:]) }

func parseNonce(s string) (pcpNonce, error) {
	var n pcpNonce
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(n) {
		return n, fmt.Errorf("nonce %q is not 24 hex digits", s)
	}
	copy(n[:], b)
	return n, nil
}

// pcpMapRequest is a MAP request (RFC 6887 §11.1). A lifetime of 0
// deletes the mapping named by nonce, protocol and internal port.
type pcpMapRequest struct {
	Lifetime      uint32
	Client        netip.Addr // this host's address, as the router sees it
	Nonce         pcpNonce
	Proto         uint8
	InternalPort  uint16
	SuggestedPort uint16
	SuggestedIP   netip.Addr // zero means "no preference"
}

// addr16 encodes an address as PCP does: IPv6, or IPv4-mapped IPv6. The
// zero Addr becomes the IPv4 all-zeros address ::ffff:0.0.0.0 (§11.1).
func addr16(a netip.Addr) [16]byte {
	if !a.IsValid() {
		a = netip.IPv4Unspecified()
	}
	return netip.AddrFrom16(a.As16()).As16()
}

func pcpHeader(op uint8, lifetime uint32, client netip.Addr, payload int) []byte {
	b := make([]byte, pcpHeaderLen+payload)
	b[0] = pcpVersion
	b[1] = op
	binary.BigEndian.PutUint32(b[4:8], lifetime)
	c := addr16(client)
	copy(b[8:24], c[:])
	return b
}

func (r pcpMapRequest) marshal() []byte {
	b := pcpHeader(pcpOpMap, r.Lifetime, r.Client, pcpMapLen)
	m := b[pcpHeaderLen:]
	copy(m[0:12], r.Nonce[:])
	m[12] = r.Proto
	binary.BigEndian.PutUint16(m[16:18], r.InternalPort)
	binary.BigEndian.PutUint16(m[18:20], r.SuggestedPort)
	s := addr16(r.SuggestedIP)
	copy(m[20:36], s[:])
	return b
}

// pcpAnnounce is an ANNOUNCE request (§14.1): a harmless probe that a PCP
// server answers with SUCCESS and its epoch.
func pcpAnnounce(client netip.Addr) []byte { return pcpHeader(pcpOpAnnounce, 0, client, 0) }

// pcpResponse is a decoded PCP response. The MAP fields are set only for
// a MAP response long enough to carry them.
type pcpResponse struct {
	Opcode   uint8
	Result   pcpResult
	Lifetime uint32
	Epoch    uint32

	HasMap       bool
	Nonce        pcpNonce
	Proto        uint8
	InternalPort uint16
	ExternalPort uint16
	ExternalIP   netip.Addr
}

// errPCPVersion means the server does not speak PCP version 2; a
// NAT-PMP-only router answers a PCP request with a version-0 packet
// (RFC 6887 §9).
var errPCPVersion = errors.New("the router does not speak PCP version 2")

// parsePCPResponse decodes a PCP response. It never panics on hostile
// input; every problem is an error naming what was wrong.
func parsePCPResponse(b []byte) (pcpResponse, error) {
	var r pcpResponse
	if len(b) >= 4 && b[0] != pcpVersion {
		if b[0] == 0 {
			return r, fmt.Errorf("%w (it answered with NAT-PMP, version 0)", errPCPVersion)
		}
		return r, fmt.Errorf("%w (it answered with version %d)", errPCPVersion, b[0])
	}
	switch {
	case len(b) < pcpHeaderLen:
		return r, fmt.Errorf("pcp response is %d bytes, shorter than the %d-byte header", len(b), pcpHeaderLen)
	case len(b) > pcpMaxLen:
		return r, fmt.Errorf("pcp response is %d bytes, longer than the %d allowed", len(b), pcpMaxLen)
	case len(b)%4 != 0:
		return r, fmt.Errorf("pcp response is %d bytes, not a multiple of 4", len(b))
	case b[1]&pcpReplyBit == 0:
		return r, fmt.Errorf("pcp packet is a request, not a response")
	}
	r.Opcode = b[1] &^ pcpReplyBit
	r.Result = pcpResult(b[3])
	r.Lifetime = binary.BigEndian.Uint32(b[4:8])
	r.Epoch = binary.BigEndian.Uint32(b[8:12])
	rest := b[pcpHeaderLen:]
	if r.Opcode == pcpOpMap {
		if len(rest) < pcpMapLen {
			if r.Result == pcpSuccess {
				return r, fmt.Errorf("pcp MAP response is %d bytes, too short for the MAP fields", len(b))
			}
			return r, nil // error responses may be truncated (§7.2)
		}
		r.HasMap = true
		copy(r.Nonce[:], rest[0:12])
		r.Proto = rest[12]
		r.InternalPort = binary.BigEndian.Uint16(rest[16:18])
		r.ExternalPort = binary.BigEndian.Uint16(rest[18:20])
		r.ExternalIP = netip.AddrFrom16([16]byte(rest[20:36])).Unmap()
		rest = rest[pcpMapLen:]
	}
	if err := checkPCPOptions(rest); err != nil {
		return r, err
	}
	return r, nil
}

// checkPCPOptions walks the options (§7.3) to be sure they fit; camgate
// sends none, so it uses none of their contents.
func checkPCPOptions(b []byte) error {
	for len(b) > 0 {
		if len(b) < 4 {
			return fmt.Errorf("pcp option header truncated (%d bytes left)", len(b))
		}
		n := int(binary.BigEndian.Uint16(b[2:4]))
		padded := (n + 3) &^ 3
		if 4+padded > len(b) {
			return fmt.Errorf("pcp option %d claims %d bytes but only %d remain", b[0], n, len(b)-4)
		}
		b = b[4+padded:]
	}
	return nil
}

// epochLost reports whether the server's epoch shows that it lost its
// mappings (rebooted) between two responses, per RFC 6887 §8.5 (the same
// rule as NAT-PMP, RFC 6886 §3.6): its clock went backwards, or the two
// clocks advanced by amounts that differ by more than 2 s plus 1/16.
func epochLost(prevServer uint32, prevClient time.Time, curServer uint32, curClient time.Time) bool {
	if curServer+1 < prevServer {
		return true
	}
	client := curClient.Sub(prevClient).Seconds()
	server := float64(curServer) - float64(prevServer)
	return client+2 < server-server/16 || server+2 < client-client/16
}

// pcpExchange sends req to the gateway and waits for a response that
// match accepts, retransmitting with doubling intervals from 250 ms (a
// router is one hop away; RFC 6887 §8.1.1's 3 s start is for the general
// case) until ctx is done. Packets from other addresses, unparsable ones
// and ones match rejects are ignored; the last such problem is named if
// nothing good arrives.
func pcpExchange(ctx context.Context, conn *net.UDPConn, gw netip.AddrPort, req []byte, match func(pcpResponse) bool) (pcpResponse, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(defaultRequestTimeout)
	}
	defer context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Now()) })()
	buf := make([]byte, pcpMaxLen+1)
	wait := 250 * time.Millisecond
	var last error
	for ctx.Err() == nil && time.Now().Before(deadline) {
		if _, err := conn.WriteToUDPAddrPort(req, gw); err != nil {
			return pcpResponse{}, fmt.Errorf("send to %s: %w", gw, err)
		}
		next := time.Now().Add(wait)
		if deadline.Before(next) {
			next = deadline
		}
		if ctx.Err() != nil {
			break
		}
		conn.SetReadDeadline(next)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break
				}
				return pcpResponse{}, fmt.Errorf("read from %s: %w", gw, err)
			}
			if from.Addr().Unmap() != gw.Addr() || from.Port() != gw.Port() {
				continue
			}
			r, err := parsePCPResponse(buf[:n])
			if errors.Is(err, errPCPVersion) {
				return r, err
			}
			if err != nil {
				last = err
				continue
			}
			if !match(r) {
				last = fmt.Errorf("pcp response does not match the request (opcode %d, nonce or port differ)", r.Opcode)
				continue
			}
			return r, nil
		}
		wait *= 2
	}
	if last != nil {
		return pcpResponse{}, fmt.Errorf("%w from %s (last problem: %v)", errTimeout, gw, last)
	}
	return pcpResponse{}, fmt.Errorf("%w from %s", errTimeout, gw)
}

// pcpMapper maps ports with PCP MAP requests.
type pcpMapper struct {
	gw, local netip.Addr
	timeout   time.Duration
	// lastExt is the external address from the latest MAP answer; PCP
	// has no "what is my address" request, so externalIP falls back to
	// NAT-PMP's, which PCP routers usually also answer.
	lastExt netip.Addr
}

func (p *pcpMapper) protocol() Protocol         { return ProtoPCP }
func (p *pcpMapper) gateway() netip.Addr        { return p.gw }
func (p *pcpMapper) describe() (string, string) { return "", "" }

func (p *pcpMapper) server() netip.AddrPort { return netip.AddrPortFrom(p.gw, pcpServerPort) }

func (p *pcpMapper) do(ctx context.Context, req []byte, match func(pcpResponse) bool) (pcpResponse, error) {
	conn, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(p.local, 0)))
	if err != nil {
		return pcpResponse{}, fmt.Errorf("pcp: listen on %s: %w", p.local, err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	return pcpExchange(ctx, conn, p.server(), req, match)
}

func (p *pcpMapper) mapRequest(l *lease, lifetime uint32) (pcpMapRequest, error) {
	nonce, err := parseNonce(l.Nonce)
	if err != nil {
		return pcpMapRequest{}, err
	}
	proto := uint8(ipProtoTCP)
	if l.Proto == "udp" {
		proto = ipProtoUDP
	}
	req := pcpMapRequest{Lifetime: lifetime, Client: p.local, Nonce: nonce, Proto: proto,
		InternalPort: l.Port, SuggestedPort: l.Port}
	if l.ExternalIP.IsValid() {
		req.SuggestedIP = l.ExternalIP
	}
	return req, nil
}

func matchMap(req pcpMapRequest) func(pcpResponse) bool {
	return func(r pcpResponse) bool {
		if r.Opcode != pcpOpMap {
			return false
		}
		if !r.HasMap { // a truncated error answer (§7.2)
			return r.Result != pcpSuccess
		}
		return r.Nonce == req.Nonce && r.Proto == req.Proto && r.InternalPort == req.InternalPort
	}
}

func (p *pcpMapper) add(ctx context.Context, l *lease, lifetime time.Duration) (grant, error) {
	req, err := p.mapRequest(l, uint32(lifetime/time.Second))
	if err != nil {
		return grant{}, err
	}
	r, err := p.do(ctx, req.marshal(), matchMap(req))
	if errors.Is(err, errPCPVersion) {
		return grant{}, &mapError{state: StateUnsupported, msg: "the router does not speak PCP", err: err}
	}
	if err != nil {
		return grant{}, err
	}
	g := grant{lifetime: time.Duration(r.Lifetime) * time.Second, epoch: r.Epoch, hasEpoch: true}
	if r.Result != pcpSuccess {
		return g, &mapError{state: r.Result.state(), code: int(r.Result), msg: r.Result.explain()}
	}
	if r.Lifetime == 0 {
		return g, &mapError{state: StateError, msg: "the router granted a lifetime of 0 s, so no mapping exists"}
	}
	g.external = netip.AddrPortFrom(r.ExternalIP, r.ExternalPort)
	if r.ExternalIP.IsValid() && !r.ExternalIP.IsUnspecified() {
		p.lastExt = r.ExternalIP
	}
	if r.ExternalPort != l.Port {
		// The router assigned another port (§11.3: the suggestion is only
		// a hint). The rule names the port people use, so give this one
		// back and offer it as the suggestion.
		p.remove(ctx, l)
		return g, &mapError{state: StateConflict, suggested: r.ExternalPort,
			msg: fmt.Sprintf("the external port is taken; the router offered %d instead (PCP)", r.ExternalPort)}
	}
	return g, nil
}

// remove deletes a mapping with a lifetime-0 MAP carrying the nonce that
// created it (§15).
func (p *pcpMapper) remove(ctx context.Context, l *lease) error {
	req, err := p.mapRequest(l, 0)
	if err != nil {
		return err
	}
	r, err := p.do(ctx, req.marshal(), matchMap(req))
	if err != nil {
		return err
	}
	if r.Result != pcpSuccess {
		return &mapError{state: r.Result.state(), code: int(r.Result), msg: "delete: " + r.Result.explain()}
	}
	return nil
}

func (p *pcpMapper) externalIP(ctx context.Context) (netip.Addr, error) {
	if p.lastExt.IsValid() {
		return p.lastExt, nil
	}
	return newNATPMPMapper(p.gw, p.local, p.timeout/2).externalIP(ctx)
}

// pcpProbe asks the gateway with ANNOUNCE whether it speaks PCP, and
// returns its epoch.
func pcpProbe(ctx context.Context, gw, local netip.Addr, timeout time.Duration) (uint32, error) {
	p := &pcpMapper{gw: gw, local: local, timeout: timeout}
	r, err := p.do(ctx, pcpAnnounce(local), func(r pcpResponse) bool { return r.Opcode == pcpOpAnnounce })
	if err != nil {
		return 0, err
	}
	if r.Result != pcpSuccess {
		return r.Epoch, fmt.Errorf("pcp: %s", r.Result.explain())
	}
	return r.Epoch, nil
}
