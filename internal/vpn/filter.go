package vpn

import (
	"net/netip"
	"sync/atomic"
)

// filter is the per-peer access list at the packet level: a packet from
// the tunnel passes only if its source is a live peer's tunnel address
// (WireGuard's cryptokey routing has already checked that the peer owns
// it) and its destination is one of the devices that peer may reach.
// Everything else (other devices, camgate's own addresses and ports, the
// admin UI, the LAN at large) is dropped before the stack sees it, and
// counted. The table is swapped whole, so the packet path takes no lock.
type filter struct {
	table   atomic.Pointer[aclTable]
	refused atomic.Uint64 // packets from an unknown source or to a refused destination
}

// aclTable maps a peer's tunnel address to what it may reach.
type aclTable map[netip.Addr]*peerACL

// peerACL is one peer's allowed destinations and its counters. The
// counters live as long as the peer: a new table reuses them.
type peerACL struct {
	name    string
	allowed map[netip.Addr]bool
	refused *atomic.Uint64
}

func (a *peerACL) total() uint64 { return a.refused.Load() }

func (f *filter) set(t aclTable) { f.table.Store(&t) }

// lookup returns the ACL of the peer with tunnel address a, or nil.
func (f *filter) lookup(a netip.Addr) *peerACL {
	t := f.table.Load()
	if t == nil {
		return nil
	}
	return (*t)[a]
}

// pass reports whether the IP packet p may enter the stack.
func (f *filter) pass(p []byte) bool {
	src, dst, ok := packetAddrs(p)
	if !ok {
		f.refused.Add(1)
		return false
	}
	acl := f.lookup(src)
	if acl == nil {
		f.refused.Add(1)
		return false
	}
	if !acl.allowed[dst] {
		acl.refused.Add(1)
		f.refused.Add(1)
		return false
	}
	return true
}

// allows reports whether the peer with tunnel address src may reach dst.
// The stack's forwarders ask again, so that a connection set up just as a
// peer was revoked is not served.
func (f *filter) allows(src, dst netip.Addr) bool {
	acl := f.lookup(src)
	return acl != nil && acl.allowed[dst]
}

// packetAddrs returns an IPv4 or IPv6 packet's source and destination.
func packetAddrs(p []byte) (src, dst netip.Addr, ok bool) {
	if len(p) < 1 {
		return src, dst, false
	}
	switch p[0] >> 4 {
	case 4:
		if len(p) < 20 {
			return src, dst, false
		}
		return netip.AddrFrom4([4]byte(p[12:16])), netip.AddrFrom4([4]byte(p[16:20])), true
	case 6:
		if len(p) < 40 {
			return src, dst, false
		}
		return netip.AddrFrom16([16]byte(p[8:24])), netip.AddrFrom16([16]byte(p[24:40])), true
	}
	return src, dst, false
}
