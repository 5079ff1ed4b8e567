package check

import (
	"fmt"
	"strings"
	"unicode"

	"github.com/camgate/camgate/internal/config"
)

// Kind is the protocol probe used for a port.
type Kind string

// The probes. TCP kinds first, then UDP kinds.
const (
	// KindHTTP: GET / and read the status, Server header and page, to
	// tell whether it looks like a Hikvision web server.
	KindHTTP Kind = "http"
	// KindHTTPS: TLS handshake (certificate subject and expiry), then
	// GET / over it like KindHTTP.
	KindHTTPS Kind = "https"
	// KindTLS: TLS handshake only (SDK over TLS, RTSPS).
	KindTLS Kind = "tls"
	// KindRTSP: OPTIONS; 200 or 401 both mean the RTSP server is alive.
	KindRTSP Kind = "rtsp"
	// KindSDK: TCP connect to the server/SDK port; its protocol is
	// proprietary, so only the connection is tested.
	KindSDK Kind = "sdk"
	// KindSSH: TCP connect and read the "SSH-" banner.
	KindSSH Kind = "ssh"
	// KindTCP: TCP connect only, for ports camgate does not recognise.
	KindTCP Kind = "tcp"
	// KindUDP: an empty datagram on a connected socket; an ICMP "port
	// unreachable" answer proves nothing listens, silence proves nothing.
	KindUDP Kind = "udp"
	// KindRTP: RTP/RTCP media over UDP (the RTSP port's UDP side, or media
	// ranges); it has no request/answer, so there is nothing to probe.
	KindRTP Kind = "rtp"
	// KindDiscovery: SADP (37020) or WS-Discovery (3702), LAN-only
	// multicast protocols that devices ignore when sent unicast.
	KindDiscovery Kind = "discovery"
	// KindListener is the gateway layer's check: camgate's own socket.
	KindListener Kind = "listener"
	// KindKernel is the gateway layer's check of a kernel rule: its
	// nftables DNAT in camgate's table (docs/KERNEL.md).
	KindKernel Kind = "nftables"
	// KindWireGuard is the VPN's check: a WireGuard handshake with a
	// probe key the running gateway hands out (vpn.go).
	KindWireGuard Kind = "wireguard"
)

// tcpPorts maps well-known device ports to probes. Hikvision defaults
// first (80, 443, 554, 8000), then the seed guides' and common alternates.
var tcpPorts = map[uint16]Kind{
	80: KindHTTP, 443: KindHTTPS, 554: KindRTSP, 8000: KindSDK,
	81: KindHTTP, 8080: KindHTTP, 8081: KindHTTP, 8082: KindHTTP, 8088: KindHTTP,
	7681:  KindHTTP, // Hikvision WebSocket live view: an HTTP server
	8443:  KindTLS,  // Hikvision SDK_OVER_TLS, or an HTTPS alternate
	322:   KindTLS,  // RTSPS
	8554:  KindRTSP,
	10554: KindRTSP,
	22:    KindSSH,
	23:    KindTCP, // telnet: connecting is enough
}

// udpPorts maps well-known UDP ports to probes.
var udpPorts = map[uint16]Kind{
	554:   KindRTP,
	37020: KindDiscovery,
	3702:  KindDiscovery,
}

// nameHints maps words in a rule's name or description to a TCP probe.
// Earlier entries win: "https" is looked for before "http" and "web",
// "rtsp" before "web".
var nameHints = []struct {
	words []string
	kind  Kind
}{
	{[]string{"https", "ssl"}, KindHTTPS},
	{[]string{"tls", "rtsps"}, KindTLS},
	{[]string{"rtsp", "stream", "streaming"}, KindRTSP},
	{[]string{"http", "web", "www"}, KindHTTP},
	{[]string{"sdk", "server", "ivms", "dev_manage"}, KindSDK},
	{[]string{"ssh"}, KindSSH},
}

// coreTCP are the ports whose meaning is certain enough to win over a
// rule's name: the Hikvision factory ports.
var coreTCP = map[uint16]bool{80: true, 443: true, 554: true, 8000: true}

// ChooseKind picks the probe for a rule's protocol ("tcp" or "udp") and
// says why. For TCP: the Hikvision factory ports (80, 443, 554, 8000),
// then words in the rule's name and description, then other well-known
// ports, then a bare TCP connect. For UDP: RTP on the RTSP port or a
// name/description that mentions RTSP or RTP, discovery ports, else the
// generic UDP probe.
func ChooseKind(rule *config.Rule, proto string) (Kind, string) {
	port := rule.InternalPortFor(rule.ExternalPort.First)
	words := hintWords(rule.Name + " " + rule.Description)
	if proto == "udp" {
		if k, ok := udpPorts[port]; ok {
			return k, fmt.Sprintf("udp port %d is %s", port, describeKind(k))
		}
		for _, w := range []string{"rtsp", "rtp", "rtcp", "stream", "streaming", "video", "media"} {
			if words[w] {
				return KindRTP, fmt.Sprintf("the rule's name or description mentions %q", w)
			}
		}
		return KindUDP, fmt.Sprintf("udp port %d has no known request/answer protocol", port)
	}
	if coreTCP[port] {
		return tcpPorts[port], fmt.Sprintf("port %d is the Hikvision %s port", port, describeKind(tcpPorts[port]))
	}
	for _, h := range nameHints {
		for _, w := range h.words {
			if words[w] {
				return h.kind, fmt.Sprintf("the rule's name or description mentions %q", w)
			}
		}
	}
	if k, ok := tcpPorts[port]; ok {
		return k, fmt.Sprintf("port %d is usually %s", port, describeKind(k))
	}
	return KindTCP, fmt.Sprintf("port %d is not a port camgate recognises, so only the TCP connection is tested", port)
}

// hintWords splits s into lower-case words at anything but letters,
// digits and '_'.
func hintWords(s string) map[string]bool {
	out := map[string]bool{}
	for _, f := range strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '_'
	}) {
		out[f] = true
	}
	return out
}

func describeKind(k Kind) string {
	switch k {
	case KindHTTP:
		return "web (HTTP)"
	case KindHTTPS:
		return "web (HTTPS)"
	case KindTLS:
		return "TLS"
	case KindRTSP:
		return "RTSP"
	case KindSDK:
		return "server/SDK"
	case KindSSH:
		return "SSH"
	case KindRTP:
		return "RTP media"
	case KindDiscovery:
		return "discovery (SADP or WS-Discovery)"
	default:
		return string(k)
	}
}
