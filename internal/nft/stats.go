package nft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Stats are one kernel rule's counters.
type Stats struct {
	// Total is the connections (TCP) and sessions (UDP) set up.
	Total uint64
	// Refused is the new connections dropped by allow, deny or a limit.
	Refused uint64
	// Active is the rule's entries in the conntrack table now.
	Active int64
	// BytesIn and PacketsIn went towards the device; BytesOut and
	// PacketsOut came back.
	BytesIn, BytesOut     uint64
	PacketsIn, PacketsOut uint64
}

// Stats reads every installed rule's counters and counts its conntrack
// entries. A rule whose counters cannot be read is missing from the map.
func (t *Table) Stats() (map[string]Stats, error) {
	t.mu.Lock()
	if !t.present {
		t.mu.Unlock()
		return map[string]Stats{}, nil
	}
	rules := make(map[string]Rule, len(t.rules))
	for name, in := range t.rules {
		rules[name] = in.rule
	}
	t.mu.Unlock()

	c, err := nftables.New()
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	objs, err := c.GetNamedObjects(t.table())
	if err != nil {
		return nil, fmt.Errorf("nftables: read counters: %w", err)
	}
	out := make(map[string]Stats, len(rules))
	for _, o := range objs {
		no, ok := o.(*nftables.NamedObj)
		if !ok {
			continue
		}
		ctr, ok := no.Obj.(*expr.Counter)
		if !ok {
			continue
		}
		i := strings.LastIndexByte(no.Name, '-')
		if i < 0 {
			continue
		}
		name, what := no.Name[:i], no.Name[i+1:]
		if _, ok := rules[name]; !ok {
			continue
		}
		s := out[name]
		switch what {
		case "new":
			s.Total = ctr.Packets
		case "refused":
			s.Refused = ctr.Packets
		case "in":
			s.BytesIn, s.PacketsIn = ctr.Bytes, ctr.Packets
		case "out":
			s.BytesOut, s.PacketsOut = ctr.Bytes, ctr.Packets
		}
		out[name] = s
	}
	flows, err := dumpConntrack()
	if err != nil {
		return out, fmt.Errorf("conntrack: %w", err)
	}
	for _, f := range flows {
		for name, r := range rules {
			if r.owns(f) {
				s := out[name]
				s.Active++
				out[name] = s
				break
			}
		}
	}
	return out, nil
}

// flow is the part of a conntrack entry the stats need: the reply tuple's
// source (the device after DNAT), the protocol and whether it is live.
type flow struct {
	proto    byte
	replySrc netip.AddrPort
	origDst  netip.AddrPort
	dnat     bool
	closing  bool   // TCP in TIME_WAIT, CLOSE or similar: no longer active
	orig     []byte // the CTA_TUPLE_ORIG attribute's payload, to delete the entry by
}

// owns reports whether a live flow was set up by the rule.
func (r *Rule) owns(f flow) bool {
	return !f.closing && r.made(f)
}

// made reports whether the rule set up the flow, live or closing: DNATed
// from one of its external ports to its device.
func (r *Rule) made(f flow) bool {
	if !f.dnat || f.replySrc.Addr() != r.Target {
		return false
	}
	if op := f.origDst.Port(); op < r.First || op > r.Last {
		return false
	}
	if (f.proto == unix.IPPROTO_TCP && !r.TCP) || (f.proto == unix.IPPROTO_UDP && !r.UDP) {
		return false
	}
	p := f.replySrc.Port()
	return p >= r.TargetFirst && p <= r.lastTarget()
}

// conntrack netlink attributes (linux/netfilter/nfnetlink_conntrack.h).
const (
	ctaTupleOrig    = 1
	ctaTupleReply   = 2
	ctaStatus       = 3
	ctaProtoinfo    = 4
	ctaTupleIP      = 1
	ctaTupleProto   = 2
	ctaIPv4Src      = 1
	ctaIPv4Dst      = 2
	ctaProtoNum     = 1
	ctaProtoSrcPort = 2
	ctaProtoDstPort = 3
	ctaProtoinfoTCP = 1
	ctaTCPState     = 1
	ipctnlMsgCtGet  = 1
	ipctnlMsgCtDel  = 2
	tcpTimeWait     = 7 // TCP_CONNTRACK_TIME_WAIT; CLOSE is 8
)

// dumpConntrack lists the IPv4 conntrack table of this network namespace.
func dumpConntrack() ([]flow, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	msgs, err := c.Execute(netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(unix.NFNL_SUBSYS_CTNETLINK<<8 | ipctnlMsgCtGet),
			Flags: netlink.Request | netlink.Dump,
		},
		Data: []byte{unix.AF_INET, unix.NFNETLINK_V0, 0, 0},
	})
	if err != nil {
		return nil, err
	}
	out := make([]flow, 0, len(msgs))
	for _, m := range msgs {
		if f, err := parseFlow(m.Data); err == nil {
			out = append(out, f)
		}
	}
	return out, nil
}

// parseFlow decodes one conntrack message body: the 4-byte nfgenmsg
// header, then attributes.
func parseFlow(b []byte) (flow, error) {
	var f flow
	if len(b) < 4 {
		return f, errors.New("conntrack message shorter than its header")
	}
	ad, err := netlink.NewAttributeDecoder(b[4:])
	if err != nil {
		return f, err
	}
	ad.ByteOrder = binary.BigEndian
	for ad.Next() {
		switch ad.Type() {
		case ctaTupleOrig:
			f.orig = append([]byte(nil), ad.Bytes()...)
			ad.Nested(func(nd *netlink.AttributeDecoder) error {
				_, _, f.origDst = parseTuple(nd)
				return nil
			})
		case ctaTupleReply:
			ad.Nested(func(nd *netlink.AttributeDecoder) error {
				f.proto, f.replySrc, _ = parseTuple(nd)
				return nil
			})
		case ctaStatus:
			f.dnat = ad.Uint32()&ipsDstNAT != 0
		case ctaProtoinfo:
			ad.Nested(func(nd *netlink.AttributeDecoder) error {
				for nd.Next() {
					if nd.Type() == ctaProtoinfoTCP {
						nd.Nested(func(td *netlink.AttributeDecoder) error {
							for td.Next() {
								if td.Type() == ctaTCPState {
									f.closing = td.Uint8() >= tcpTimeWait
								}
							}
							return nil
						})
					}
				}
				return nil
			})
		}
	}
	return f, ad.Err()
}

func parseTuple(ad *netlink.AttributeDecoder) (proto byte, src, dst netip.AddrPort) {
	ad.ByteOrder = binary.BigEndian
	var sa, da netip.Addr
	var sport, dport uint16
	for ad.Next() {
		switch ad.Type() {
		case ctaTupleIP:
			ad.Nested(func(nd *netlink.AttributeDecoder) error {
				for nd.Next() {
					switch b := nd.Bytes(); {
					case nd.Type() == ctaIPv4Src && len(b) == 4:
						sa = netip.AddrFrom4([4]byte(b))
					case nd.Type() == ctaIPv4Dst && len(b) == 4:
						da = netip.AddrFrom4([4]byte(b))
					}
				}
				return nil
			})
		case ctaTupleProto:
			ad.Nested(func(nd *netlink.AttributeDecoder) error {
				nd.ByteOrder = binary.BigEndian
				for nd.Next() {
					switch nd.Type() {
					case ctaProtoNum:
						proto = nd.Uint8()
					case ctaProtoSrcPort:
						sport = nd.Uint16()
					case ctaProtoDstPort:
						dport = nd.Uint16()
					}
				}
				return nil
			})
		}
	}
	return proto, netip.AddrPortFrom(sa, sport), netip.AddrPortFrom(da, dport)
}

// cutFlows deletes the conntrack entries the rules set up, so that their
// connections end as a removed userspace rule's do: without the entry
// (and without the DNAT rule) the viewer's next packet meets no socket.
func cutFlows(rules []Rule) (int, error) {
	if len(rules) == 0 {
		return 0, nil
	}
	flows, err := dumpConntrack()
	if err != nil {
		return 0, err
	}
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	n := 0
	for _, f := range flows {
		for i := range rules {
			if f.orig == nil || !rules[i].made(f) {
				continue
			}
			attrs, err := netlink.MarshalAttributes([]netlink.Attribute{{Type: unix.NLA_F_NESTED | ctaTupleOrig, Data: f.orig}})
			if err != nil {
				return n, err
			}
			_, err = c.Execute(netlink.Message{
				Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_CTNETLINK<<8 | ipctnlMsgCtDel), Flags: netlink.Request | netlink.Acknowledge},
				Data:   append([]byte{unix.AF_INET, unix.NFNETLINK_V0, 0, 0}, attrs...),
			})
			if err == nil {
				n++
			}
			break
		}
	}
	return n, nil
}

// InstalledRules lists the rules in camgate's table in this network
// namespace, for `camgate check`, which runs beside camgate serve. It
// needs CAP_NET_ADMIN to read the table.
func InstalledRules() (map[string]bool, error) {
	c, err := nftables.New()
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	tbl := &nftables.Table{Family: nftables.TableFamilyINet, Name: TableName}
	objs, err := c.GetNamedObjects(tbl)
	if err != nil {
		return nil, fmt.Errorf("nftables: read table %s: %w", TableName, err)
	}
	out := map[string]bool{}
	for _, o := range objs {
		if no, ok := o.(*nftables.NamedObj); ok {
			if name, ok := strings.CutSuffix(no.Name, "-new"); ok {
				out[name] = true
			}
		}
	}
	return out, nil
}
