package netlab

import (
	"net/netip"
	"os/exec"
)

// Addresses of the NAT'd viewer (NATViewer): a private link behind wan,
// still inside 198.18.0.0/15.
var (
	ViewerAddr    = netip.MustParseAddr("198.18.1.2")
	ViewerNATAddr = netip.MustParseAddr("198.18.1.1")
)

// NATViewer adds a namespace behind wan, as a viewer at home behind its
// own router, and returns its name:
//
//	ns viewer 198.18.1.2/24 eth0 ─► wan 198.18.1.1 on view0, masquerading
//	                                 out of eth0 as 198.18.0.10
//
// wan masquerades with random source ports (nft "masquerade random"), so
// the ports a viewer declares in RTSP are not the ports camgate sees. It
// needs nft; without it the test is skipped. The namespace is removed
// with the lab.
func (l *Lab) NATViewer() string {
	l.t.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		l.t.Skip("netlab: NATViewer needs nft (apt-get install nftables)")
	}
	ns := "cgview-" + l.WAN[len("cgwan-"):]
	l.must("ip", "netns", "add", ns)
	l.mu.Lock()
	l.extra = append(l.extra, ns)
	l.mu.Unlock()
	l.must("ip", "-n", ns, "link", "set", "lo", "up")
	l.must("ip", "link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", "view0", "netns", l.WAN)
	l.must("ip", "-n", ns, "addr", "add", ViewerAddr.String()+"/24", "dev", "eth0")
	l.must("ip", "-n", l.WAN, "addr", "add", ViewerNATAddr.String()+"/24", "dev", "view0")
	l.must("ip", "-n", ns, "link", "set", "eth0", "up")
	l.must("ip", "-n", l.WAN, "link", "set", "view0", "up")
	l.must("ip", "-n", ns, "route", "add", "default", "via", ViewerNATAddr.String())
	l.must("ip", "netns", "exec", l.WAN, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	l.must("ip", "netns", "exec", l.WAN, "nft", "add table ip cgnat; "+
		"add chain ip cgnat post { type nat hook postrouting priority 100; }; "+
		"add rule ip cgnat post oifname eth0 ip saddr 198.18.1.0/24 masquerade random")
	return ns
}
