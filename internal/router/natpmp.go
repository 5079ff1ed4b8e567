package router

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"

	natpmp "github.com/jackpal/go-nat-pmp"
)

// NAT-PMP (RFC 6886) through jackpal/go-nat-pmp. The library needs the
// gateway's address (NAT-PMP has no discovery), takes no context, and
// reports result codes only as text, so this file bounds each call with
// its timeout and reads the code back out of the message.

type natpmpMapper struct {
	gw, local netip.Addr
	timeout   time.Duration
	client    *natpmp.Client
}

func newNATPMPMapper(gw, local netip.Addr, timeout time.Duration) *natpmpMapper {
	return &natpmpMapper{gw: gw, local: local, timeout: timeout,
		client: natpmp.NewClientWithLocalAndTimeout(net.IP(gw.AsSlice()), net.IP(local.AsSlice()), timeout)}
}

func (n *natpmpMapper) protocol() Protocol         { return ProtoNATPMP }
func (n *natpmpMapper) gateway() netip.Addr        { return n.gw }
func (n *natpmpMapper) describe() (string, string) { return "", "" }

func (n *natpmpMapper) add(ctx context.Context, l *lease, lifetime time.Duration) (grant, error) {
	if err := ctx.Err(); err != nil {
		return grant{}, fmt.Errorf("%w: %v", errTimeout, err)
	}
	secs := int(lifetime / time.Second)
	r, err := n.client.AddPortMapping(l.Proto, int(l.Port), int(l.Port), secs)
	if err != nil {
		return grant{}, n.classify(err)
	}
	if r.InternalPort != l.Port {
		return grant{}, &mapError{state: StateError, msg: fmt.Sprintf("the router answered for internal port %d, not %d", r.InternalPort, l.Port)}
	}
	g := grant{lifetime: time.Duration(r.PortMappingLifetimeInSeconds) * time.Second,
		epoch: r.SecondsSinceStartOfEpoc, hasEpoch: true}
	if g.lifetime == 0 {
		return g, &mapError{state: StateError, msg: "the router granted a lifetime of 0 s, so no mapping exists"}
	}
	if r.MappedExternalPort != l.Port {
		// The port is taken; the router offered another. camgate does not
		// keep it (the rule says which port people use), so give it back
		// and suggest it.
		n.remove(ctx, l)
		return g, &mapError{state: StateConflict, suggested: r.MappedExternalPort,
			msg: fmt.Sprintf("the external port is taken; the router offered %d instead (NAT-PMP)", r.MappedExternalPort)}
	}
	return g, nil
}

// remove deletes a mapping: the internal port with lifetime 0 and
// suggested external port 0 (RFC 6886 §3.4).
func (n *natpmpMapper) remove(ctx context.Context, l *lease) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %v", errTimeout, err)
	}
	if _, err := n.client.AddPortMapping(l.Proto, int(l.Port), 0, 0); err != nil {
		return n.classify(err)
	}
	return nil
}

func (n *natpmpMapper) externalIP(ctx context.Context) (netip.Addr, error) {
	if err := ctx.Err(); err != nil {
		return netip.Addr{}, fmt.Errorf("%w: %v", errTimeout, err)
	}
	r, err := n.client.GetExternalAddress()
	if err != nil {
		return netip.Addr{}, n.classify(err)
	}
	return netip.AddrFrom4(r.ExternalIPAddress), nil
}

var natpmpCodeRE = regexp.MustCompile(`result code (\d+)`)

// classify maps go-nat-pmp's errors to mapping states (RFC 6886 §3.5).
func (n *natpmpMapper) classify(err error) error {
	msg := err.Error()
	if strings.Contains(msg, "Timed out") || isTimeout(err) {
		return fmt.Errorf("%w from %s (NAT-PMP, %s)", errTimeout, n.gw, n.timeout)
	}
	if strings.Contains(msg, "version 2") {
		return &mapError{state: StateUnsupported, msg: "the router answered NAT-PMP with PCP; use mode pcp"}
	}
	m := natpmpCodeRE.FindStringSubmatch(msg)
	if m == nil {
		return &mapError{state: StateError, msg: "bad NAT-PMP answer from the router", err: err}
	}
	code, _ := strconv.Atoi(m[1])
	me := &mapError{code: code}
	switch code {
	case 1:
		me.state, me.msg = StateUnsupported, "the router does not support NAT-PMP version 0 (result 1)"
	case 2:
		me.state, me.msg = StateRefused, "the router refused the mapping (NAT-PMP result 2: not authorized, or NAT-PMP is switched off)"
	case 3:
		me.state, me.msg = StateError, "the router has no working WAN connection (NAT-PMP result 3: network failure)"
	case 4:
		me.state, me.msg = StateRefused, "the router has no room for more mappings (NAT-PMP result 4: out of resources)"
	case 5:
		me.state, me.msg = StateUnsupported, "the router does not support this request (NAT-PMP result 5: unsupported opcode)"
	default:
		me.state, me.msg = StateError, fmt.Sprintf("the router answered NAT-PMP result %d", code)
	}
	return me
}
