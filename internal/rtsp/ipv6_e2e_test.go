package rtsp_test

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/netlab"
)

// TestIPv6ViewerOverUDP: a viewer on the internet's IPv6 reaches the
// IPv4-only DVR through camgate listening on both families. RTP over UDP
// is relayed between the families (the external pair bound on camgate's
// IPv6 address, the device pair on its LAN IPv4 one), and the answers
// name camgate's IPv6 address in brackets, which the player follows.
func TestIPv6ViewerOverUDP(t *testing.T) {
	need(t, "ffprobe")
	l := startLabOn(t, netlab.Options{IPv6: true}, "::", "")
	host := net.JoinHostPort(netlab.GWWANAddr6.String(), strconv.Itoa(extPort))
	l.WaitTCP(l.WAN, host, 5*time.Second)
	url := fmt.Sprintf("rtsp://admin:%s@%s/Streaming/Channels/101", simPass, host)
	t.Run("ffprobe udp", func(t *testing.T) { l.probe(t, l.WAN, []string{"-rtsp_transport", "udp"}, url) })
	t.Run("ffprobe tcp", func(t *testing.T) { l.probe(t, l.WAN, []string{"-rtsp_transport", "tcp"}, url) })
	if !strings.Contains(l.gw.Output(), `msg="rtp over udp"`) {
		t.Fatal("camgate relayed no RTP over UDP for the IPv6 viewer")
	}
	for _, line := range strings.Split(l.gw.Output(), "\n") {
		if strings.Contains(line, `msg="rtp over udp"`) && !strings.Contains(line, netlab.WANAddr6.String()) {
			t.Fatalf("the UDP session is not the IPv6 viewer's: %s", line)
		}
	}
}
