package router

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/netlab"
)

// miniLab is netlab's topology with gw playing the home router: nftables
// with miniupnpd's chains, Debian's miniupnpd (-d, secure_mode) on lan0,
// and a STUN server in wan. It follows the recipe in the team's
// reference notes (real-peers.md §2), adapted to netlab's addresses:
//
//   - miniupnpd refuses a reserved WAN address (198.18.0.1 is RFC 2544's
//     range), so it learns its "public" address with ext_perform_stun=yes
//     from stund on two wan addresses; 2.3.1 does not check the STUN
//     answer against its reserved list.
//   - miniupnpd 2.3.x does not create its nft tables, so the test loads
//     them (the recipe's one-line chains need their "}" on a line of
//     their own for nft 1.0.6).
//   - miniupnpd keeps its rules after SIGTERM and reloads them as
//     permanent, so the chains are flushed between cases.
type miniLab struct {
	*netlab.Lab
	t        *testing.T
	dir      string
	stunHost string
	mu       *netlab.Proc
}

// Addresses inside the topology.
const (
	gwLAN       = "198.19.0.1"
	gwWAN       = "198.18.0.1"
	lanHost     = "198.19.0.64"
	rootDescURL = "http://198.19.0.1:5000/rootDesc.xml"
)

func needTools(t *testing.T) {
	t.Helper()
	if why := netlab.Skip(); why != "" {
		t.Skip("netlab: " + why)
	}
	for _, bin := range []string{"miniupnpd", "upnpc", "natpmpc", "stund", "nft", "ss"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("needs %s (apt-get install miniupnpd-nftables miniupnpc natpmpc stun-server nftables iproute2)", bin)
		}
	}
}

const miniupnpdNFT = `table inet filter {
  chain forward {
    type filter hook forward priority 0; policy drop;
    ct state established,related accept
    iifname "lan0" oifname "wan0" accept
    jump miniupnpd
  }
  chain miniupnpd {
  }
  chain prerouting {
    type nat hook prerouting priority -100; policy accept;
    jump prerouting_miniupnpd
  }
  chain postrouting {
    type nat hook postrouting priority 100; policy accept;
    oifname "wan0" masquerade
    jump postrouting_miniupnpd
  }
  chain prerouting_miniupnpd {
  }
  chain postrouting_miniupnpd {
  }
}
`

// miniOpts tune the router.
type miniOpts struct {
	// setup runs after netlab's topology exists and before anything is
	// started, to re-address it (the CGNAT case).
	setup func(l *netlab.Lab)
	// stunHost and stunAlt are the wan addresses stund listens on.
	// Empty means 198.18.0.10 and .11.
	stunHost, stunAlt string
}

func newMiniLab(t *testing.T, opts miniOpts) *miniLab {
	t.Helper()
	needTools(t)
	l := netlab.New(t, netlab.Options{Forwarding: true})
	if opts.setup != nil {
		opts.setup(l)
	}
	m := &miniLab{Lab: l, t: t, dir: t.TempDir()}
	nft := filepath.Join(m.dir, "miniupnpd.nft")
	if err := os.WriteFile(nft, []byte(miniupnpdNFT), 0o600); err != nil {
		t.Fatal(err)
	}
	l.Exec(l.GW, "nft", "-f", nft)
	if opts.stunHost == "" {
		opts.stunHost, opts.stunAlt = netlab.WANAddr.String(), netlab.WANClient(1).String()
	}
	m.stunHost = opts.stunHost
	l.Start(l.WAN, "stund", "-h", opts.stunHost, "-a", opts.stunAlt)
	m.waitUDP(l.WAN, opts.stunAlt+":3479")
	return m
}

// waitUDP waits until something in ns has bound addr (UDP).
func (m *miniLab) waitUDP(ns, addr string) {
	m.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if out, _ := m.Command(ns, "ss", "-Hlun", "src", addr).Output(); strings.TrimSpace(string(out)) != "" {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	m.t.Fatalf("nothing bound UDP %s in %s", addr, ns)
}

func (m *miniLab) conf(igd1 bool) string {
	c := fmt.Sprintf(`ext_ifname=wan0
listening_ip=lan0
port=5000
enable_upnp=yes
enable_natpmp=yes
secure_mode=yes
system_uptime=yes
ext_perform_stun=yes
ext_stun_host=%s
ext_stun_port=3478
uuid=3d3cec3a-8cf0-11e0-98ee-001a6bd2d07b
friendly_name=camgate test router
allow 1024-65535 198.19.0.0/24 1024-65535
deny 0-65535 0.0.0.0/0 0-65535
`, m.stunHost)
	if igd1 {
		c += "force_igd_desc_v1=yes\n"
	}
	return c
}

// startRouter (re)starts miniupnpd with a clean rule set, advertising
// IGD1 or IGD2, and waits until it serves NAT-PMP/PCP (after STUN).
func (m *miniLab) startRouter(igd1 bool) {
	m.t.Helper()
	m.stopRouter()
	m.flush()
	conf := filepath.Join(m.dir, "miniupnpd.conf")
	if err := os.WriteFile(conf, []byte(m.conf(igd1)), 0o600); err != nil {
		m.t.Fatal(err)
	}
	m.mu = m.Start(m.GW, "miniupnpd", "-d", "-f", conf, "-P", filepath.Join(m.dir, "miniupnpd.pid"))
	if !m.mu.WaitFor("Listening for NAT-PMP/PCP traffic", 15*time.Second) {
		m.t.Fatalf("miniupnpd did not start:\n%s", m.mu.Output())
	}
	if !strings.Contains(m.mu.Output(), "Port forwarding is now enabled") {
		m.t.Fatalf("miniupnpd did not enable port forwarding (STUN failed?):\n%s", m.mu.Output())
	}
	m.t.Cleanup(func() {
		if m.t.Failed() && m.mu != nil {
			m.t.Logf("miniupnpd log (tail):\n%s", tail(m.mu.Output(), 60))
		}
	})
}

func (m *miniLab) stopRouter() {
	if m.mu != nil {
		m.mu.Stop()
		m.mu = nil
	}
}

// flush empties miniupnpd's chains: leftovers of an earlier case would
// otherwise be reloaded as permanent mappings.
func (m *miniLab) flush() {
	m.t.Helper()
	for _, ch := range []string{"miniupnpd", "prerouting_miniupnpd", "postrouting_miniupnpd"} {
		m.Exec(m.GW, "nft", "flush", "chain", "inet", "filter", ch)
	}
}

// upnpcList lists the router's mappings with miniupnpc, from lan; -i
// accepts an IGD whose external address is not public.
func (m *miniLab) upnpcList() string {
	m.t.Helper()
	out, _ := m.Command(m.LAN, "upnpc", "-i", "-u", rootDescURL, "-l").CombinedOutput()
	return string(out)
}

// upnpcEntries parses upnpcList into "TCP 18080->198.19.0.64:18080"
// lines.
func (m *miniLab) upnpcEntries() []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(m.upnpcList()))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 3 && (f[1] == "TCP" || f[1] == "UDP") && strings.Contains(f[2], "->") {
			out = append(out, f[1]+" "+f[2])
		}
	}
	return out
}

// dnatRules returns miniupnpd's DNAT chain, as nft prints it.
func (m *miniLab) dnatRules() string {
	return m.Exec(m.GW, "nft", "list", "chain", "inet", "filter", "prerouting_miniupnpd")
}

// serveBanner runs a TCP server in ns on addr that greets each client.
func (m *miniLab) serveBanner(ns, addr, banner string) {
	m.t.Helper()
	ln, err := m.Listen(ns, "tcp", addr)
	if err != nil {
		m.t.Fatal(err)
	}
	m.t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, banner)
			c.Close()
		}
	}()
}

// fetchFromWAN connects from wan to the router's WAN address and returns
// what the server behind it said, or the error.
func (m *miniLab) fetchFromWAN(port uint16) (string, error) {
	c, err := m.Dial(m.WAN, "tcp", "", net.JoinHostPort(gwWAN, fmt.Sprint(port)), 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	b, err := io.ReadAll(c)
	return string(b), err
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
