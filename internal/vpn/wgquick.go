package vpn

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"
)

// wgQuick is a peer's configuration in wg-quick's format, the text the
// WireGuard apps import from a file or a QR code.
type wgQuick struct {
	PrivateKey Key
	Address    netip.Addr
	ServerKey  Key
	Endpoint   string
	// Allowed are the device addresses the peer may reach; they become
	// AllowedIPs, so the phone sends only those through the tunnel.
	Allowed []netip.Addr
}

// keepalive keeps the phone's NAT mapping open so that camgate's answers
// (RTP especially) get back; 25 s is what wg(8) suggests.
const keepalive = 25

func (w wgQuick) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "[Interface]\nPrivateKey = %s\nAddress = %s/32\n\n", w.PrivateKey, w.Address)
	allowed := make([]string, len(w.Allowed))
	for i, a := range w.Allowed {
		allowed[i] = netip.PrefixFrom(a, a.BitLen()).String()
	}
	fmt.Fprintf(&b, "[Peer]\nPublicKey = %s\nEndpoint = %s\nAllowedIPs = %s\nPersistentKeepalive = %d\n",
		w.ServerKey, w.Endpoint, strings.Join(allowed, ", "), keepalive)
	return b.String()
}

func keyFromHex(s string) Key {
	var k Key
	b, err := hex.DecodeString(s)
	if err == nil && len(b) == len(k) {
		copy(k[:], b)
	}
	return k
}
