package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/forward"
	"github.com/camgate/camgate/internal/guard"
)

// BenchmarkRTSPInterleaved compares RTSP over TCP (interleaved frames of
// 1,400 bytes) through an RTSP rule with the relay, as serve wires it,
// against the same rule without it (the plain spliced relay camgate used
// before RTP over UDP): the relay reads every message to rewrite answers,
// so frames are copied through user space.
//
//	go test ./cmd/camgate -run XXX -bench RTSPInterleaved -benchtime 2s
func BenchmarkRTSPInterleaved(b *testing.B) {
	dev := interleavedDevice(b)
	for _, tc := range []struct {
		name  string
		relay bool
	}{{"plain", false}, {"relay", true}} {
		b.Run(tc.name, func(b *testing.B) {
			cfg := guard.Config{}
			if tc.relay {
				cfg.RTSP = newRTSPRelay(nil)
			}
			p, err := guard.NewPolicy(cfg)
			if err != nil {
				b.Fatal(err)
			}
			r := config.Rule{Name: "cam", Protocol: config.TCP, InternalIP: "127.0.0.1",
				ExternalPort: config.PortRange{First: 10554, Last: 10554}, InternalPort: config.PortRange{First: 554, Last: 554}}
			admit, h, err := p.Hooks(&r)
			if err != nil {
				b.Fatal(err)
			}
			if (h != nil) != tc.relay {
				b.Fatalf("handler %v, want one only with the relay", h)
			}
			fr, err := forward.Bind(forward.Spec{Name: "cam", Listen: netip.MustParseAddr("127.0.0.1"), Ports: []uint16{0},
				Target: "127.0.0.1", TargetPorts: []uint16{dev.Port()}, TCP: true, Admit: admit, Handler: h})
			if err != nil {
				b.Fatal(err)
			}
			fr.Start()
			defer fr.Close()
			c, err := net.Dial("tcp", fr.Addrs()[0].String())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			br := bufio.NewReaderSize(c, 64<<10)
			fmt.Fprintf(c, "PLAY rtsp://127.0.0.1/x RTSP/1.0\r\nCSeq: 1\r\n\r\n")
			for {
				line, err := br.ReadString('\n')
				if err != nil {
					b.Fatal(err)
				}
				if line == "\r\n" {
					break
				}
			}
			const chunk = 1 << 20
			b.SetBytes(chunk)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := io.CopyN(io.Discard, br, chunk); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// interleavedDevice answers PLAY, then sends interleaved frames as fast
// as the connection takes them.
func interleavedDevice(b *testing.B) netip.AddrPort {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	frame := append([]byte{'$', 0, 1400 >> 8, 1400 & 0xff}, []byte(strings.Repeat("x", 1400))...)
	burst := []byte(strings.Repeat(string(frame), 32))
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						return
					}
					if line == "\r\n" {
						break
					}
				}
				io.WriteString(c, "RTSP/1.0 200 OK\r\nCSeq: 1\r\nSession: 1\r\n\r\n")
				for {
					if _, err := c.Write(burst); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

// TestRTSPWiring: the guard built by newPolicy carries the RTSP relay,
// and the admin API gets it (and nothing when there is none).
func TestRTSPWiring(t *testing.T) {
	pol, err := newPolicy(nil, "")
	if err != nil {
		t.Fatal(err)
	}
	p := pol.(*guard.Policy)
	rel, ok := p.RTSP().(*rtspRelay)
	if !ok {
		t.Fatalf("guard's RTSP relay is %T, want *rtspRelay", p.RTSP())
	}
	if c := (&services{guard: p, rtsp: rel}).adminConfig(nil, nil); c.RTSP == nil {
		t.Fatal("admin config has no RTSP relay")
	}
	if c := (&services{}).adminConfig(nil, nil); c.RTSP != nil {
		t.Fatalf("admin config has RTSP %v without a relay", c.RTSP)
	}
}

// TestRTSPRelayPassesListenUDP: the adapter hands the guard's ListenUDP
// (a connection through the WireGuard tunnel) on to package rtsp, which
// binds a UDP SETUP's client side through it.
func TestRTSPRelayPassesListenUDP(t *testing.T) {
	rel := newRTSPRelay(nil)
	var asked []uint16
	lo := netip.MustParseAddr("127.0.0.1")
	c := rel.Open("r", guard.RTSPAddrs{
		Client: netip.AddrPortFrom(lo, 40001), Local: netip.AddrPortFrom(lo, 10554),
		Device: netip.AddrPortFrom(lo, 554), DeviceLocal: netip.AddrPortFrom(lo, 0),
		ListenUDP: func(port uint16) (net.PacketConn, error) {
			asked = append(asked, port)
			return net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(lo, port)))
		},
	})
	defer c.Close()
	req := "SETUP rtsp://127.0.0.1:10554/x/trackID=1 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP;unicast;client_port=50000-50001\r\n\r\n"
	_, answer, _ := c.Request("SETUP", "rtsp://127.0.0.1:10554/x/trackID=1", []byte(req))
	if answer != nil {
		t.Fatalf("SETUP answered locally: %q", answer)
	}
	if len(asked) != 2 || asked[1] != asked[0]+1 {
		t.Fatalf("ListenUDP asked for %v, want an RTP/RTCP pair", asked)
	}
	if _, used := rel.Pool(); used != 0 {
		t.Fatalf("%d host pairs in use, want 0", used)
	}
}
