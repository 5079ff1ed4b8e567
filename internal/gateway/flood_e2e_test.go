package gateway_test

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/netlab"
)

const floodConfig = `version: 1
listen_address: %[1]s
state_dir: %[2]s
admin: {enabled: false}
rules:
  - name: sdk
    external_port: 8000
    internal_ip: %[3]s
  - name: rtp-range
    protocol: udp
    external_port: 20000-20015
    internal_ip: %[3]s
  - name: intercom
    protocol: udp
    external_port: 5000
    internal_ip: %[3]s
`

// TestSpoofedUDPFloodSparesOtherRules is #14.8's attack in the namespace
// topology: datagrams from 120 wan addresses × a 16-port range (1,920
// would-be sessions) hit a gateway whose descriptor limit is 1,024. The
// flooded rule must stay within its share of the budget, and the TCP
// rule, the other UDP rule and a fresh client of the flooded range must
// still work.
func TestSpoofedUDPFloodSparesOtherRules(t *testing.T) {
	bin := netlab.Camgate(t)
	if _, err := os.Stat("/usr/bin/prlimit"); err != nil {
		t.Skip("needs prlimit (util-linux)")
	}
	l := netlab.New(t, netlab.Options{})

	// The device: TCP echo on 8000, UDP echo on 5000 and 20000-20015.
	tcpLn, err := l.Listen(l.LAN, "tcp4", netlab.LANAddr.String()+":8000")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tcpLn.Close() })
	go func() {
		for {
			c, err := tcpLn.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	ports := []int{5000}
	for p := 20000; p <= 20015; p++ {
		ports = append(ports, p)
	}
	for _, p := range ports {
		pc, err := l.ListenPacket(l.LAN, "udp4", fmt.Sprintf("%s:%d", netlab.LANAddr, p))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
		go func() {
			buf := make([]byte, 2048)
			for {
				n, from, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				pc.WriteTo(buf[:n], from)
			}
		}()
	}

	dir := t.TempDir()
	cfg := filepath.Join(dir, "camgate.yaml")
	y := fmt.Sprintf(floodConfig, netlab.GWWANAddr, filepath.Join(dir, "state"), netlab.LANAddr)
	if err := os.WriteFile(cfg, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	gw := l.Start(l.GW, "prlimit", "--nofile=1024:1024", bin, "serve", "--config", cfg, "--log-level", "debug")
	if !gw.WaitFor("camgate is running", 15*time.Second) {
		t.Fatalf("camgate did not start:\n%s", gw.Output())
	}

	// 120 more wan addresses: 198.18.0.100 to .219.
	var batch strings.Builder
	var srcs []string
	for i := 100; i < 220; i++ {
		a := fmt.Sprintf("198.18.0.%d", i)
		srcs = append(srcs, a)
		fmt.Fprintf(&batch, "addr add %s/24 dev eth0\n", a)
	}
	bf := filepath.Join(dir, "addrs.batch")
	os.WriteFile(bf, []byte(batch.String()), 0o600)
	l.Exec(l.WAN, "ip", "-batch", bf)

	// The flood: one datagram from every source address × port, from a
	// fresh source port each time.
	err = l.Do(l.WAN, func() error {
		for _, src := range srcs {
			for p := 20000; p <= 20015; p++ {
				c, err := net.DialUDP("udp4", &net.UDPAddr{IP: net.ParseIP(src)},
					&net.UDPAddr{IP: netlab.GWWANAddr.AsSlice(), Port: p})
				if err != nil {
					return err
				}
				c.Write([]byte("flood"))
				c.Close()
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)

	check := func(name, network string, src int, port int) {
		t.Helper()
		c, err := l.Dial(l.WAN, network, netlab.WANClient(src).String()+":0",
			fmt.Sprintf("%s:%d", netlab.GWWANAddr, port), 3*time.Second)
		if err != nil {
			t.Errorf("%s during the flood: %v", name, err)
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := c.Write([]byte("hello")); err != nil {
			t.Errorf("%s during the flood: %v", name, err)
			return
		}
		buf := make([]byte, 5)
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hello" {
			t.Errorf("%s during the flood: got %q, %v; want \"hello\" back", name, buf, err)
		}
	}
	check("the sdk rule (tcp)", "tcp4", 1, 8000)
	check("the intercom rule (udp)", "udp4", 2, 5000)
	check("a new client of the flooded range", "udp4", 3, 20007)
	if t.Failed() {
		t.Logf("camgate's log:\n%s", gw.Output())
	}
}
