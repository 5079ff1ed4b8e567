package nft

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"sort"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// chains are the table's base chains. Their rules are rewritten by every
// Apply; nothing stateful lives in them.
type chains struct {
	filter, dstnat, output, srcnat, forward *nftables.Chain
}

func (c chains) all() []*nftables.Chain {
	return []*nftables.Chain{c.filter, c.dstnat, c.output, c.srcnat, c.forward}
}

func addChains(c *nftables.Conn, t *nftables.Table) chains {
	accept := nftables.ChainPolicyAccept
	mk := func(name string, typ nftables.ChainType, hook *nftables.ChainHook, prio *nftables.ChainPriority) *nftables.Chain {
		return c.AddChain(&nftables.Chain{Name: name, Table: t, Type: typ, Hooknum: hook, Priority: prio, Policy: &accept})
	}
	return chains{
		// filter runs before DNAT (mangle priority), so it sees the
		// address and port the viewer used.
		filter:  mk("filter", nftables.ChainTypeFilter, nftables.ChainHookPrerouting, nftables.ChainPriorityMangle),
		dstnat:  mk("dstnat", nftables.ChainTypeNAT, nftables.ChainHookPrerouting, nftables.ChainPriorityNATDest),
		output:  mk("output", nftables.ChainTypeNAT, nftables.ChainHookOutput, nftables.ChainPriorityNATDest),
		srcnat:  mk("srcnat", nftables.ChainTypeNAT, nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource),
		forward: mk("forward", nftables.ChainTypeFilter, nftables.ChainHookForward, nftables.ChainPriorityFilter),
	}
}

// Object names. Counters keep the rule's name across changes, so its
// totals survive an edit; sets carry the generation.
func counterName(rule, what string) string { return rule + "-" + what }
func setName(in *installed, what string) string {
	return fmt.Sprintf("%s-%s-%d", in.rule.Name, what, in.gen)
}

// The counters of a rule: new connections, refused ones, and bytes and
// packets towards the device (in) and back (out).
var counters = []string{"new", "refused", "in", "out"}

func addObjects(c *nftables.Conn, t *nftables.Table, in *installed, newCounters bool) error {
	if newCounters {
		for _, what := range counters {
			c.AddObj(&nftables.NamedObj{Table: t, Name: counterName(in.rule.Name, what), Type: nftables.ObjTypeCounter, Obj: &expr.Counter{}})
		}
	}
	r := &in.rule
	for _, s := range []struct {
		what     string
		prefixes []netip.Prefix
	}{{"allow", r.Allow}, {"deny", r.Deny}} {
		if len(s.prefixes) == 0 {
			continue
		}
		set := &nftables.Set{Table: t, Name: setName(in, s.what), KeyType: nftables.TypeIPAddr, Interval: true}
		if err := c.AddSet(set, intervalElements(s.prefixes)); err != nil {
			return fmt.Errorf("%s set: %w", s.what, err)
		}
	}
	for _, m := range meters(r) {
		set := &nftables.Set{Table: t, Name: setName(in, m), KeyType: nftables.TypeIPAddr, Dynamic: true, Size: 65535}
		if err := c.AddSet(set, nil); err != nil {
			return fmt.Errorf("%s meter: %w", m, err)
		}
	}
	return nil
}

// meters lists the per-source meters a rule needs.
func meters(r *Rule) []string {
	var m []string
	if r.TCP && r.PerIPConns > 0 {
		m = append(m, "conns")
	}
	if r.TCP && r.PerIPRate > 0 {
		m = append(m, "rate")
	}
	if r.UDP && r.PerIPUDP > 0 {
		m = append(m, "udp")
	}
	return m
}

func delSets(c *nftables.Conn, t *nftables.Table, in *installed) {
	r := &in.rule
	names := meters(r)
	if len(r.Allow) > 0 {
		names = append(names, "allow")
	}
	if len(r.Deny) > 0 {
		names = append(names, "deny")
	}
	for _, what := range names {
		c.DelSet(&nftables.Set{Table: t, Name: setName(in, what)})
	}
}

func delCounters(c *nftables.Conn, t *nftables.Table, rule string) {
	for _, what := range counters {
		c.DeleteObject(&nftables.NamedObj{Table: t, Name: counterName(rule, what), Type: nftables.ObjTypeCounter})
	}
}

// intervalElements turns prefixes into the elements of an interval set:
// merged, sorted ranges, each a start and an exclusive end.
func intervalElements(ps []netip.Prefix) []nftables.SetElement {
	type span struct{ lo, hi uint64 } // hi exclusive; 1<<32 is the end of the space
	var spans []span
	for _, p := range ps {
		if !p.Addr().Is4() {
			continue
		}
		p = p.Masked()
		a := p.Addr().As4()
		lo := uint64(binary.BigEndian.Uint32(a[:]))
		spans = append(spans, span{lo, lo + 1<<(32-p.Bits())})
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].lo < spans[j].lo })
	var merged []span
	for _, s := range spans {
		if n := len(merged); n > 0 && s.lo <= merged[n-1].hi {
			merged[n-1].hi = max(merged[n-1].hi, s.hi)
			continue
		}
		merged = append(merged, s)
	}
	var els []nftables.SetElement
	for _, s := range merged {
		els = append(els, nftables.SetElement{Key: be32(uint32(s.lo))})
		if s.hi < 1<<32 {
			els = append(els, nftables.SetElement{Key: be32(uint32(s.hi)), IntervalEnd: true})
		}
	}
	return els
}

func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

// addRules writes one rule's expressions into the base chains.
func addRules(c *nftables.Conn, ch chains, in *installed) error {
	r := &in.rule
	add := func(chain *nftables.Chain, exprs ...expr.Any) {
		c.AddRule(&nftables.Rule{Table: chain.Table, Chain: chain, Exprs: exprs})
	}
	drop := []expr.Any{&expr.Objref{Type: int(nftables.ObjTypeCounter), Name: counterName(r.Name, "refused")}, &expr.Verdict{Kind: expr.VerdictDrop}}
	for _, proto := range r.protos() {
		match := r.match(proto)
		isNew := cat(match, ctStateNew())
		// Admission, before DNAT: bans and deny win, then allow, then limits.
		add(ch.filter, cat(isNew, lookup(12, banSet(r.Target), false), drop)...)
		if len(r.Deny) > 0 {
			add(ch.filter, cat(isNew, lookup(12, setName(in, "deny"), false), drop)...)
		}
		if len(r.Allow) > 0 {
			add(ch.filter, cat(isNew, lookup(12, setName(in, "allow"), true), drop)...)
		}
		if proto == unix.IPPROTO_TCP {
			if r.MaxConns > 0 {
				add(ch.filter, cat(isNew, []expr.Any{&expr.Connlimit{Count: uint32(r.MaxConns), Flags: expr.NFT_CONNLIMIT_F_INV}}, drop)...)
			}
			if r.PerIPConns > 0 {
				add(ch.filter, cat(isNew, meter(setName(in, "conns"), &expr.Connlimit{Count: uint32(r.PerIPConns), Flags: expr.NFT_CONNLIMIT_F_INV}), drop)...)
			}
			if r.PerIPRate > 0 {
				lim := &expr.Limit{Type: expr.LimitTypePkts, Rate: uint64(max(r.PerIPRate, 1)), Unit: expr.LimitTimeSecond, Over: true, Burst: uint32(r.PerIPBurst)}
				add(ch.filter, cat(isNew, meter(setName(in, "rate"), lim), drop)...)
			}
		} else if r.PerIPUDP > 0 {
			add(ch.filter, cat(isNew, meter(setName(in, "udp"), &expr.Connlimit{Count: uint32(r.PerIPUDP), Flags: expr.NFT_CONNLIMIT_F_INV}), drop)...)
		}
		// DNAT, for viewers from outside (dstnat) and on this host (output).
		count := &expr.Objref{Type: int(nftables.ObjTypeCounter), Name: counterName(r.Name, "new")}
		for _, d := range r.dnats(proto) {
			add(ch.dstnat, cat(d.match, []expr.Any{count}, d.nat)...)
			add(ch.output, cat(d.match, notLoopback(), d.nat)...)
		}
		// Masquerade all, or only reflected LAN viewers (hairpin).
		post := cat(r.toDevice(proto), ctDNAT())
		switch {
		case in.place.Masquerade:
			add(ch.srcnat, cat(post, []expr.Any{&expr.Masq{}})...)
		case in.hair.IsValid():
			add(ch.srcnat, cat(post, saddrIn(in.hair), []expr.Any{&expr.Masq{}})...)
		}
		// Byte counters, both ways.
		add(ch.forward, cat(post, []expr.Any{&expr.Objref{Type: int(nftables.ObjTypeCounter), Name: counterName(r.Name, "in")}})...)
		add(ch.forward, cat(r.fromDevice(proto), ctDNAT(), []expr.Any{&expr.Objref{Type: int(nftables.ObjTypeCounter), Name: counterName(r.Name, "out")}})...)
	}
	return nil
}

func (r *Rule) protos() []byte {
	var p []byte
	if r.TCP {
		p = append(p, unix.IPPROTO_TCP)
	}
	if r.UDP {
		p = append(p, unix.IPPROTO_UDP)
	}
	return p
}

func cat(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// l4 matches IPv4 and the transport protocol.
func l4(proto byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
	}
}

// addr matches the IPv4 source (offset 12) or destination (16).
func addr(offset uint32, a netip.Addr) []expr.Any {
	b := a.As4()
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: b[:]},
	}
}

// port matches the transport source (offset 0) or destination (2) port
// against a range.
func port(offset uint32, first, last uint16) []expr.Any {
	load := &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: offset, Len: 2}
	if first == last {
		return []expr.Any{load, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: be16(first)}}
	}
	return []expr.Any{load, &expr.Range{Op: expr.CmpOpEq, Register: 1, FromData: be16(first), ToData: be16(last)}}
}

// match selects the viewers' packets for the rule: its protocol, its
// listen address (any local address for the wildcard) and its ports.
func (r *Rule) match(proto byte) []expr.Any {
	m := l4(proto)
	if r.Listen.IsUnspecified() || !r.Listen.IsValid() {
		m = append(m,
			&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.NativeEndian.AppendUint32(nil, unix.RTN_LOCAL)})
	} else {
		m = append(m, addr(16, r.Listen)...)
	}
	return append(m, port(2, r.First, r.Last)...)
}

func (r *Rule) lastTarget() uint16 { return r.TargetFirst + (r.Last - r.First) }

// toDevice and fromDevice select forwarded packets of the rule after DNAT.
func (r *Rule) toDevice(proto byte) []expr.Any {
	return cat(l4(proto), addr(16, r.Target), port(2, r.TargetFirst, r.lastTarget()))
}

func (r *Rule) fromDevice(proto byte) []expr.Any {
	return cat(l4(proto), addr(12, r.Target), port(0, r.TargetFirst, r.lastTarget()))
}

type dnat struct{ match, nat []expr.Any }

// dnats builds the DNAT statements: one when the ports stay the same or a
// single port is forwarded, else one per port (nft cannot add an offset).
func (r *Rule) dnats(proto byte) []dnat {
	dev := r.Target.As4()
	natTo := func(p uint16) []expr.Any {
		e := []expr.Any{&expr.Immediate{Register: 1, Data: dev[:]}}
		n := &expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1}
		if p != 0 {
			// Specified says a port is given; without one it would be 0.
			e = append(e, &expr.Immediate{Register: 2, Data: be16(p)})
			n.RegProtoMin, n.Specified = 2, true
		}
		return append(e, n)
	}
	if r.First == r.TargetFirst {
		return []dnat{{r.match(proto), natTo(0)}}
	}
	var out []dnat
	for p := uint32(r.First); p <= uint32(r.Last); p++ {
		one := *r
		one.First, one.Last = uint16(p), uint16(p)
		out = append(out, dnat{one.match(proto), natTo(r.TargetFirst + uint16(p) - r.First)})
	}
	return out
}

func ctStateNew() []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binary.NativeEndian.AppendUint32(nil, expr.CtStateBitNEW), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}

// ipsDstNAT is conntrack's IPS_DST_NAT status bit (linux/netfilter/nf_conntrack_common.h).
const ipsDstNAT = 1 << 5

// ctDNAT matches connections that were destination-NATed.
func ctDNAT() []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATUS},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binary.NativeEndian.AppendUint32(nil, ipsDstNAT), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}

// lookup matches the IPv4 address at offset against a named set.
func lookup(offset uint32, set string, invert bool) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4},
		&expr.Lookup{SourceRegister: 1, SetName: set, Invert: invert},
	}
}

// meter adds the source address to a dynamic set whose per-element
// expression (a connection count or a rate) matches when over its limit.
func meter(set string, e expr.Any) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Dynset{SrcRegKey: 1, SetName: set, Operation: 0 /* NFT_DYNSET_OP_ADD */, Exprs: []expr.Any{e}},
	}
}

func saddrIn(p netip.Prefix) []expr.Any {
	a := p.Masked().Addr().As4()
	mask := be32(^uint32(0) << (32 - p.Bits()))
	if p.Bits() == 0 {
		mask = make([]byte, 4)
	}
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: a[:]},
	}
}

// notLoopback keeps DNAT off connections to 127.0.0.0/8 from this host:
// the kernel will not route a loopback source out of the host, so such a
// connection could only fail.
func notLoopback() []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 1},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{127}},
	}
}
